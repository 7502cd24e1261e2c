-- 0004_polls.sql -- polls in rooms (protocol v1.1, Polls). Queries live in
-- termrooms/storage/polls.py.

-- The room events polls store, beside those before.
ALTER TABLE room_events DROP CONSTRAINT room_events_type_check;
ALTER TABLE room_events ADD CONSTRAINT room_events_type_check CHECK (type IN (
    'message', 'message_deleted', 'member_joined', 'member_left',
    'topic_changed', 'member_kicked', 'member_banned',
    'member_unbanned', 'member_muted', 'member_unmuted',
    'role_changed',
    'task_created', 'task_updated', 'task_deleted',
    'poll_created', 'poll_closed'));

CREATE TABLE polls (
    id          BIGINT PRIMARY KEY,  -- a snowflake: ids order by creation
    room_id     BIGINT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    -- The creator; a deleted account's polls stay with the room, as its messages do.
    user_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    question    TEXT NOT NULL
                CONSTRAINT polls_question_length CHECK (char_length(question) BETWEEN 1 AND 300),
    multiple    BOOLEAN NOT NULL DEFAULT false,
    anonymous   BOOLEAN NOT NULL DEFAULT false,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    closes_at   TIMESTAMPTZ,  -- closes by itself then; votes after it are refused at once
    closed_at   TIMESTAMPTZ,  -- set once, by hand or by the closing timer of one instance
    CONSTRAINT polls_closes_after_creation CHECK (closes_at > created_at)
);

CREATE TABLE poll_options (
    poll_id       BIGINT NOT NULL REFERENCES polls (id) ON DELETE CASCADE,
    option_index  SMALLINT NOT NULL
                  CONSTRAINT poll_options_index_range CHECK (option_index BETWEEN 0 AND 9),
    text          TEXT NOT NULL
                  CONSTRAINT poll_options_text_length CHECK (char_length(text) BETWEEN 1 AND 100),
    PRIMARY KEY (poll_id, option_index)
);
CREATE UNIQUE INDEX poll_options_text_key ON poll_options (poll_id, lower(text));

-- One row per option a voter chose: replacing a vote deletes the voter's rows and
-- inserts the new ones in one transaction; an empty choice leaves none.
CREATE TABLE poll_votes (
    poll_id       BIGINT NOT NULL,
    user_id       BIGINT NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    option_index  SMALLINT NOT NULL,
    voted_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (poll_id, user_id, option_index),
    FOREIGN KEY (poll_id, option_index)
        REFERENCES poll_options (poll_id, option_index) ON DELETE CASCADE
);

-- The query paths: a room's polls newest first (open ones alone for ?open=true and for
-- /poll vote); the closing timer's next due poll; a user's votes for their export.
-- Results read poll_votes by its primary key's poll_id prefix.
CREATE INDEX polls_room_idx ON polls (room_id, id);
CREATE INDEX polls_open_room_idx ON polls (room_id, id) WHERE closed_at IS NULL;
CREATE INDEX polls_closing_idx ON polls (closes_at)
    WHERE closed_at IS NULL AND closes_at IS NOT NULL;
CREATE INDEX poll_votes_user_idx ON poll_votes (user_id);
CREATE INDEX polls_user_idx ON polls (user_id);
