-- 0001_initial_schema.sql -- termrooms' first schema delta: the whole v1 data model.
--
-- Contract: shared/spec/protocol.md beside this repository (wire contract v1). Needs PostgreSQL 15+ and
-- a UTF8 database (length checks count characters, as the contract does).
-- Applied by the daemon's migration runner inside one transaction, which also records
-- the version in schema_migrations; so no BEGIN/COMMIT here. Never edited once applied:
-- later changes go in 0002_*.sql and onwards.
--
-- Conventions:
-- * ids of users, rooms and events are 64-bit snowflakes made by the application
--   (termrooms/snowflake.py): plain BIGINT keys, no sequences.
-- * Users and rooms are soft-deleted (deleted_at). References to a user as author or
--   actor are RESTRICT; rows that only exist for their room (events, memberships,
--   bans, mutes, outbox) or their user (memberships, tokens) CASCADE, which matters
--   only to an explicit purge.
-- * Limits stated by the contract are CHECK constraints on text, not varchar; the
--   application validates first (422) and these are the backstop.

-- ---------------------------------------------------------------------------------
-- Accounts
-- ---------------------------------------------------------------------------------

CREATE TABLE users (
    id            BIGINT PRIMARY KEY,
    -- Shown as created, unique case-insensitively (users_username_lower_key).
    -- On account deletion the app may replace it with a placeholder that still fits
    -- the pattern, e.g. 'deleted-<id>', to free the name.
    username      TEXT NOT NULL
                  CONSTRAINT users_username_format
                  CHECK (username ~ '^[A-Za-z0-9._-]{3,32}$'),
    display_name  TEXT NOT NULL,  -- /nick; the app sets it to the username at sign-up
    -- Password hash (argon2 encoded string). NULL only once the account is deleted.
    password_hash TEXT,
    role          TEXT NOT NULL DEFAULT 'user'
                  CONSTRAINT users_role_check CHECK (role IN ('admin', 'user')),
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    disabled_at   TIMESTAMPTZ,  -- set by an admin: cannot log in, row otherwise live
    -- Soft delete (DELETE /api/auth/me): the row stays so the user's messages keep an
    -- author, shown as a deleted user.
    deleted_at    TIMESTAMPTZ,
    CONSTRAINT users_live_has_password
        CHECK (password_hash IS NOT NULL OR deleted_at IS NOT NULL)
);

-- Case-insensitive uniqueness, and the index behind every login / lookup by name:
-- query with `lower(username) = lower($1)`.
CREATE UNIQUE INDEX users_username_lower_key ON users (lower(username));

-- A login session: every refresh token issued from one login, chained by rotation.
-- Presenting a spent token revokes the whole family (refresh_reused).
CREATE TABLE refresh_token_families (
    id             UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id        BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    revoked_at     TIMESTAMPTZ,  -- non-NULL: no token of this family is accepted
    revoked_reason TEXT,         -- e.g. 'logout', 'reused', 'account_deleted'
    CONSTRAINT refresh_token_families_reason_needs_revoked
        CHECK (revoked_reason IS NULL OR revoked_at IS NOT NULL)
);

-- Logout / account deletion revoke every family of a user; also serves the FK.
CREATE INDEX refresh_token_families_user_id_idx ON refresh_token_families (user_id);

CREATE TABLE refresh_tokens (
    -- SHA-256 of the token as sent to the client; the token itself is never stored.
    token_hash BYTEA PRIMARY KEY
               CONSTRAINT refresh_tokens_hash_length CHECK (octet_length(token_hash) = 32),
    family_id  UUID NOT NULL REFERENCES refresh_token_families (id) ON DELETE CASCADE,
    issued_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ NOT NULL,
    -- Set when the token is exchanged for a new pair. A spent token is kept until it
    -- expires so that presenting it again is recognised as reuse.
    spent_at   TIMESTAMPTZ,
    CONSTRAINT refresh_tokens_expires_after_issue CHECK (expires_at > issued_at)
);

CREATE INDEX refresh_tokens_family_id_idx ON refresh_tokens (family_id);
-- Sweep of expired tokens.
CREATE INDEX refresh_tokens_expires_at_idx ON refresh_tokens (expires_at);

-- Server invites (POST /api/invites). Redeem with one statement:
-- UPDATE invites SET uses_left = uses_left - 1 WHERE code_hash = $1 AND uses_left > 0
--   AND (expires_at IS NULL OR expires_at > now()) RETURNING ...
CREATE TABLE invites (
    -- SHA-256 of the invite code; the code itself is shown once and never stored.
    code_hash  BYTEA PRIMARY KEY
               CONSTRAINT invites_hash_length CHECK (octet_length(code_hash) = 32),
    created_by BIGINT NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ,  -- NULL: never expires
    max_uses   INTEGER NOT NULL CONSTRAINT invites_max_uses_positive CHECK (max_uses >= 1),
    uses_left  INTEGER NOT NULL,
    CONSTRAINT invites_uses_left_range CHECK (uses_left BETWEEN 0 AND max_uses)
);

-- ---------------------------------------------------------------------------------
-- Rooms
-- ---------------------------------------------------------------------------------

CREATE TABLE rooms (
    id         BIGINT PRIMARY KEY,
    -- Shown as created; unique case-insensitively among live rooms (rooms_name_lower_key).
    name       TEXT NOT NULL
               CONSTRAINT rooms_name_format CHECK (name ~ '^[A-Za-z0-9_-]{1,32}$'),
    topic      TEXT NOT NULL DEFAULT '',  -- '' when no topic was set
    visibility TEXT NOT NULL
               CONSTRAINT rooms_visibility_check CHECK (visibility IN ('public', 'private')),
    created_by BIGINT NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at TIMESTAMPTZ,  -- soft delete (DELETE /api/rooms/{name}); frees the name
    -- seq of the room's newest event. Storing an event first runs
    -- UPDATE rooms SET last_seq = last_seq + 1 WHERE id = $1 RETURNING last_seq
    -- in the same transaction as the INSERT: seqs have no gaps, and the row lock
    -- makes a room's events commit in seq order. Never bump it for an event that
    -- ends up not stored (duplicate client_msg_id): roll back instead.
    last_seq   BIGINT NOT NULL DEFAULT 0
               CONSTRAINT rooms_last_seq_nonnegative CHECK (last_seq >= 0)
);

-- Case-insensitive uniqueness among live rooms, and the index behind every lookup by
-- name: query with `lower(name) = lower($1) AND deleted_at IS NULL`.
CREATE UNIQUE INDEX rooms_name_lower_key ON rooms (lower(name)) WHERE deleted_at IS NULL;

CREATE TABLE memberships (
    room_id      BIGINT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id      BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role         TEXT NOT NULL DEFAULT 'member'
                 CONSTRAINT memberships_role_check
                 CHECK (role IN ('owner', 'moderator', 'member')),
    joined_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen_at TIMESTAMPTZ DEFAULT now(),  -- for the members list; updated by presence
    -- Read marker: seq of the last event the user has read ("read" frame);
    -- unread = rooms.last_seq - read_seq.
    read_seq     BIGINT NOT NULL DEFAULT 0
                 CONSTRAINT memberships_read_seq_nonnegative CHECK (read_seq >= 0),
    PRIMARY KEY (room_id, user_id)
);

-- A user's rooms (GET /api/rooms, export). The primary key serves a room's members.
CREATE INDEX memberships_user_id_idx ON memberships (user_id);

-- Standing invitations into private rooms (POST /api/rooms/{name}/members, /invite):
-- the invited user may join. Kept after joining, so a user who parts can rejoin.
CREATE TABLE room_invitations (
    room_id    BIGINT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    invited_by BIGINT NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (room_id, user_id)
);

-- ---------------------------------------------------------------------------------
-- Room events: everything the contract calls a stored room event
-- ---------------------------------------------------------------------------------

CREATE TABLE room_events (
    id              BIGINT PRIMARY KEY,
    room_id         BIGINT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    seq             BIGINT NOT NULL CONSTRAINT room_events_seq_positive CHECK (seq >= 1),
    type            TEXT NOT NULL
                    CONSTRAINT room_events_type_check CHECK (type IN (
                        'message', 'message_deleted', 'member_joined', 'member_left',
                        'topic_changed', 'member_kicked', 'member_banned',
                        'member_unbanned', 'member_muted', 'member_unmuted',
                        'role_changed')),
    -- The event's `user`: author of a message, or the member the event is about / the
    -- actor. NULL for system events.
    user_id         BIGINT REFERENCES users (id) ON DELETE RESTRICT,
    -- The user acted upon (role_changed `target`; kick/ban/mute subject when the
    -- actor is in user_id).
    target_user_id  BIGINT REFERENCES users (id) ON DELETE RESTRICT,
    -- message_deleted `target`: id of the deleted message. No FK on purpose: retention
    -- may delete the message before the event that points at it.
    target_event_id BIGINT,
    body            TEXT,  -- message text; may be cleared when the message is deleted
    client_msg_id   TEXT,  -- sender's idempotency key, see room_events_client_msg_id_key
    action          BOOLEAN NOT NULL DEFAULT false,  -- true for /me
    -- Type-specific extras: topic, role, reason, duration_s, ...
    data            JSONB NOT NULL DEFAULT '{}'::jsonb,
    -- clock_timestamp(), not now(): taken at INSERT, after the rooms row lock, so `ts`
    -- does not go backwards as seq goes up within a room.
    created_at      TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    deleted_at      TIMESTAMPTZ,  -- set on the message when a message_deleted event is stored

    -- History ("?before=", "?after=", join "since", oldest kept seq for
    -- history_truncated) always goes by room and seq: this constraint's index serves it.
    CONSTRAINT room_events_room_seq_key UNIQUE (room_id, seq),
    -- A retried send with the same client_msg_id stores nothing new. NULLs are
    -- distinct, so events without a client_msg_id never collide.
    CONSTRAINT room_events_client_msg_id_key UNIQUE (room_id, user_id, client_msg_id),

    CONSTRAINT room_events_body_length
        CHECK (body IS NULL OR char_length(body) BETWEEN 1 AND 4000),
    -- No C0 control characters except \t and \n (NUL cannot be stored in text at all).
    CONSTRAINT room_events_body_no_control_chars
        CHECK (body IS NULL OR body !~ '[\x01-\x08\x0b-\x1f]'),
    CONSTRAINT room_events_client_msg_id_length
        CHECK (client_msg_id IS NULL OR char_length(client_msg_id) BETWEEN 1 AND 128),
    CONSTRAINT room_events_data_is_object CHECK (jsonb_typeof(data) = 'object'),
    CONSTRAINT room_events_message_fields
        CHECK (type = 'message'
               OR (body IS NULL AND client_msg_id IS NULL AND NOT action
                   AND deleted_at IS NULL)),
    CONSTRAINT room_events_message_has_body
        CHECK (type <> 'message' OR body IS NOT NULL OR deleted_at IS NOT NULL),
    CONSTRAINT room_events_message_deleted_has_target
        CHECK (type <> 'message_deleted' OR target_event_id IS NOT NULL),
    CONSTRAINT room_events_role_changed_has_target
        CHECK (type <> 'role_changed' OR target_user_id IS NOT NULL)
);

-- Retention deletes by age. B-tree rather than BRIN: BRIN relies on heap order
-- following time, but retention keeps deleting the oldest rows and new rows refill
-- that freed space, so block ranges would soon span all times and BRIN stop pruning.
CREATE INDEX room_events_created_at_idx ON room_events (created_at);
-- A user's messages (GET /api/auth/me/export).
CREATE INDEX room_events_user_id_idx ON room_events (user_id, id);

-- ---------------------------------------------------------------------------------
-- Moderation state
-- ---------------------------------------------------------------------------------

CREATE TABLE room_bans (
    room_id    BIGINT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    banned_by  BIGINT NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    reason     TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ,  -- NULL: until unbanned
    PRIMARY KEY (room_id, user_id)
);

-- Expiry sweep.
CREATE INDEX room_bans_expires_at_idx ON room_bans (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE room_mutes (
    room_id    BIGINT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    muted_by   BIGINT NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    reason     TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ,  -- NULL: until unmuted (/mute USER 10m sets it)
    PRIMARY KEY (room_id, user_id)
);

-- Expiry sweep.
CREATE INDEX room_mutes_expires_at_idx ON room_mutes (expires_at) WHERE expires_at IS NOT NULL;

-- ---------------------------------------------------------------------------------
-- Audit log (GET /api/admin/audit)
-- ---------------------------------------------------------------------------------

-- No foreign keys: the audit trail must outlive, and never block a purge of, what it
-- mentions.
CREATE TABLE audit_log (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    actor_id       BIGINT,  -- user who acted; NULL for the system
    action         TEXT NOT NULL,  -- e.g. 'user.register', 'room.delete', 'moderation.ban'
    target_user_id BIGINT,
    room_id        BIGINT,
    data           JSONB NOT NULL DEFAULT '{}'::jsonb
                   CONSTRAINT audit_log_data_is_object CHECK (jsonb_typeof(data) = 'object'),
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    request_id     TEXT  -- correlates with the request's log lines
);

-- Newest first, keyset cursor on (created_at, id). The cursor must carry created_at at
-- full (microsecond) precision, not the wire's milliseconds.
CREATE INDEX audit_log_created_at_id_idx ON audit_log (created_at DESC, id DESC);
-- Audit rows about a user (export): as target and as actor.
CREATE INDEX audit_log_target_user_id_idx ON audit_log (target_user_id)
    WHERE target_user_id IS NOT NULL;
CREATE INDEX audit_log_actor_id_idx ON audit_log (actor_id) WHERE actor_id IS NOT NULL;

-- ---------------------------------------------------------------------------------
-- Outbox for cross-instance delivery
-- ---------------------------------------------------------------------------------

-- Written in the transaction that stores the event; a publisher relays unpublished
-- rows to the bus and sets published_at. Redis only carries hints: instances catch up
-- from room_events by seq, so this only has to be at-least-once.
CREATE TABLE event_outbox (
    id           BIGSERIAL PRIMARY KEY,  -- relay order; may commit out of id order
    room_id      BIGINT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    event_id     BIGINT NOT NULL REFERENCES room_events (id) ON DELETE CASCADE,
    seq          BIGINT NOT NULL,  -- copy of room_events.seq, so a hint needs no join
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    published_at TIMESTAMPTZ,
    -- One outbox row per event; its index also serves the FK when retention deletes events.
    CONSTRAINT event_outbox_event_id_key UNIQUE (event_id)
);

-- The publisher's queue: what is still to be relayed, oldest first.
CREATE INDEX event_outbox_unpublished_idx ON event_outbox (id) WHERE published_at IS NULL;
