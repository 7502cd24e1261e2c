-- 0006_direct_rooms.sql -- direct rooms and blocks (protocol v1.1, Direct messages).
-- Queries live in termrooms/storage/rooms.py (direct rooms) and
-- termrooms/storage/blocks.py (blocks).

-- A direct room is a room (events, seqs, read markers, delivery all as in any room)
-- whose two members are fixed: direct_low < direct_high are their user ids. Ordered,
-- so each pair has one key, whoever opens the room: the unique index below is what
-- makes two people opening it at once get the same room (INSERT ... ON CONFLICT).
ALTER TABLE rooms ADD COLUMN kind TEXT NOT NULL DEFAULT 'room'
    CONSTRAINT rooms_kind_check CHECK (kind IN ('room', 'direct'));
ALTER TABLE rooms ADD COLUMN direct_low BIGINT REFERENCES users (id) ON DELETE RESTRICT;
ALTER TABLE rooms ADD COLUMN direct_high BIGINT REFERENCES users (id) ON DELETE RESTRICT;
ALTER TABLE rooms ADD CONSTRAINT rooms_direct_pair CHECK (
    CASE WHEN kind = 'direct'
         THEN direct_low IS NOT NULL AND direct_high IS NOT NULL
              AND direct_low < direct_high AND visibility = 'private'
         ELSE direct_low IS NULL AND direct_high IS NULL
    END);
-- NULLs are distinct: ordinary rooms never collide here.
CREATE UNIQUE INDEX rooms_direct_pair_key ON rooms (direct_low, direct_high);

-- blocker_id blocks blocked_id (POST /api/blocks, /ignore): no direct room opened or
-- posted to by the blocked user, no notify from them, their mentions do not count.
CREATE TABLE user_blocks (
    blocker_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    blocked_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (blocker_id, blocked_id),
    CONSTRAINT user_blocks_not_self CHECK (blocker_id <> blocked_id)
);
-- Account deletion removes the blocks on a user as well as theirs.
CREATE INDEX user_blocks_blocked_idx ON user_blocks (blocked_id);
