-- 0005_mentions_edits.sql -- mentions and editing (protocol v1.1, Mentions, Editing).
-- Queries live in termrooms/storage/rooms.py.

ALTER TABLE room_events DROP CONSTRAINT room_events_type_check;
ALTER TABLE room_events ADD CONSTRAINT room_events_type_check CHECK (type IN (
    'message', 'message_deleted', 'member_joined', 'member_left',
    'topic_changed', 'member_kicked', 'member_banned',
    'member_unbanned', 'member_muted', 'member_unmuted',
    'role_changed',
    'task_created', 'task_updated', 'task_deleted',
    'poll_created', 'poll_closed',
    'message_edited'));

-- A message's last edit (NULL: never edited). Its body and data.mentions are the
-- current ones; each edit also stores a message_edited event pointing at it.
ALTER TABLE room_events ADD COLUMN edited_at TIMESTAMPTZ;

-- Who a message mentions now, for the unread mention counts of GET /api/rooms and the
-- list of GET /api/mentions. `seq` is the room seq of the event that brought the
-- mention: the message, or the edit that added it (read markers count from there).
CREATE TABLE message_mentions (
    event_id  BIGINT NOT NULL REFERENCES room_events (id) ON DELETE CASCADE,
    room_id   BIGINT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    seq       BIGINT NOT NULL,
    user_id   BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, event_id)
);
-- Counts after a read marker, by room; the message's own rows when it is edited, deleted
-- or removed by retention (the foreign key's cascade).
CREATE INDEX message_mentions_room_idx ON message_mentions (user_id, room_id, seq);
CREATE INDEX message_mentions_event_idx ON message_mentions (event_id);
-- An edit's event keeps only what it points at; read, it shows its message as it is.
ALTER TABLE room_events ADD CONSTRAINT room_events_message_edited_has_target
    CHECK (type <> 'message_edited' OR target_event_id IS NOT NULL);
