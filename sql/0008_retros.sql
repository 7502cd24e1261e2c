-- 0008_retros.sql -- retrospectives run inside a room (protocol v1.1, Retrospectives).
-- Queries live in termrooms/storage/retros.py.
--
-- Every child row is keyed by its retro, and every child that points at another child
-- (an entry's group, a vote's group and voter) does so through a foreign key that
-- includes the retro: a row can never join rows of another retro, whatever a query says.

ALTER TABLE room_events DROP CONSTRAINT room_events_type_check;
ALTER TABLE room_events ADD CONSTRAINT room_events_type_check CHECK (type IN (
    'message', 'message_deleted', 'member_joined', 'member_left',
    'topic_changed', 'member_kicked', 'member_banned',
    'member_unbanned', 'member_muted', 'member_unmuted',
    'role_changed',
    'task_created', 'task_updated', 'task_deleted',
    'poll_created', 'poll_closed',
    'message_edited',
    'retro_started', 'retro_phase_changed', 'retro_closed'));

CREATE TABLE retros (
    id              BIGINT PRIMARY KEY,  -- a snowflake: ids order by creation
    room_id         BIGINT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    -- Whoever started it; a deleted account's retros stay with the room.
    facilitator_id  BIGINT NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    title           TEXT NOT NULL
                    CONSTRAINT retros_title_length CHECK (char_length(title) BETWEEN 1 AND 100),
    columns         TEXT[] NOT NULL
                    CONSTRAINT retros_columns_count CHECK (cardinality(columns) BETWEEN 1 AND 6),
    votes_per_participant SMALLINT NOT NULL
                    CONSTRAINT retros_votes_range CHECK (votes_per_participant BETWEEN 1 AND 20),
    anonymous       BOOLEAN NOT NULL,
    phase           TEXT NOT NULL DEFAULT 'collect'
                    CONSTRAINT retros_phase_check
                    CHECK (phase IN ('collect', 'group', 'vote', 'discuss', 'closed')),
    focus_group_id  BIGINT,  -- the group under discussion (same retro: checked on write)
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    closed_at       TIMESTAMPTZ,
    CONSTRAINT retros_closed_at CHECK ((phase = 'closed') = (closed_at IS NOT NULL))
);
-- One open retro per room: starting another is INSERT ... ON CONFLICT DO NOTHING.
CREATE UNIQUE INDEX retros_open_room_key ON retros (room_id) WHERE phase <> 'closed';
CREATE INDEX retros_room_idx ON retros (room_id, id);

-- Who takes part, in the order they joined; their happiness score, which is never shown
-- beside their name (only the caller's own, and a histogram from 3 answers).
CREATE TABLE retro_participants (
    retro_id   BIGINT NOT NULL REFERENCES retros (id) ON DELETE CASCADE,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    joined_at  TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (retro_id, user_id)
);

CREATE TABLE retro_groups (
    id            BIGINT NOT NULL,  -- the id of the entry it was made from
    retro_id      BIGINT NOT NULL REFERENCES retros (id) ON DELETE CASCADE,
    column_index  SMALLINT NOT NULL,
    title         TEXT NOT NULL DEFAULT ''
                  CONSTRAINT retro_groups_title_length CHECK (char_length(title) <= 100),
    PRIMARY KEY (id),
    UNIQUE (retro_id, id)
);
ALTER TABLE retros ADD CONSTRAINT retros_focus_group_fkey
    FOREIGN KEY (focus_group_id) REFERENCES retro_groups (id) ON DELETE SET NULL;

CREATE TABLE retro_entries (
    id            BIGINT PRIMARY KEY,
    retro_id      BIGINT NOT NULL REFERENCES retros (id) ON DELETE CASCADE,
    -- The author, even in an anonymous retro: they alone see and change it as theirs.
    user_id       BIGINT NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    column_index  SMALLINT NOT NULL CONSTRAINT retro_entries_column CHECK (column_index >= 0),
    text          TEXT NOT NULL
                  CONSTRAINT retro_entries_text_length CHECK (char_length(text) BETWEEN 1 AND 500),
    group_id      BIGINT,  -- NULL until collecting ends
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    FOREIGN KEY (retro_id, group_id) REFERENCES retro_groups (retro_id, id)
);
CREATE INDEX retro_entries_retro_idx ON retro_entries (retro_id, column_index, id);
CREATE INDEX retro_entries_group_idx ON retro_entries (retro_id, group_id);
CREATE INDEX retro_entries_user_idx ON retro_entries (user_id);

-- One row per voter and group, with how many of their votes they put there. An emptied
-- group takes its votes with it (they return to their voters).
CREATE TABLE retro_votes (
    retro_id  BIGINT NOT NULL,
    group_id  BIGINT NOT NULL,
    user_id   BIGINT NOT NULL,
    count     SMALLINT NOT NULL CONSTRAINT retro_votes_count_positive CHECK (count >= 1),
    PRIMARY KEY (retro_id, user_id, group_id),
    FOREIGN KEY (retro_id, group_id) REFERENCES retro_groups (retro_id, id) ON DELETE CASCADE,
    FOREIGN KEY (retro_id, user_id)
        REFERENCES retro_participants (retro_id, user_id) ON DELETE CASCADE
);
CREATE INDEX retro_votes_group_idx ON retro_votes (retro_id, group_id);

CREATE TABLE retro_happiness (
    retro_id  BIGINT NOT NULL,
    user_id   BIGINT NOT NULL,
    score     SMALLINT NOT NULL CONSTRAINT retro_happiness_score CHECK (score BETWEEN 1 AND 5),
    PRIMARY KEY (retro_id, user_id),
    FOREIGN KEY (retro_id, user_id)
        REFERENCES retro_participants (retro_id, user_id) ON DELETE CASCADE
);

-- A retro's actions and a room's actions carried over from earlier retros.
CREATE INDEX tasks_retro_idx ON tasks (room_id, ((source->>'retro')::bigint))
    WHERE source IS NOT NULL AND deleted_at IS NULL;
