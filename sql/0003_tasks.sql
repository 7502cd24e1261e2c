-- 0003_tasks.sql -- room and personal tasks (protocol v1.1, Tasks). Queries live in
-- termrooms/storage/tasks.py.

-- The room events tasks store, beside v1's.
ALTER TABLE room_events DROP CONSTRAINT room_events_type_check;
ALTER TABLE room_events ADD CONSTRAINT room_events_type_check CHECK (type IN (
    'message', 'message_deleted', 'member_joined', 'member_left',
    'topic_changed', 'member_kicked', 'member_banned',
    'member_unbanned', 'member_muted', 'member_unmuted',
    'role_changed',
    'task_created', 'task_updated', 'task_deleted'));

-- A task's `number` counts up per room, or per user for personal tasks. The counter
-- sits on the row that owns the numbers: taking one is an UPDATE ... RETURNING, whose
-- row lock makes two tasks created at once get two numbers, with no gap on rollback.
ALTER TABLE rooms ADD COLUMN last_task_number INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN last_task_number INTEGER NOT NULL DEFAULT 0;

CREATE TABLE tasks (
    id           BIGINT PRIMARY KEY,  -- a snowflake: ids order by creation
    -- NULL: a personal task, seen by its creator (user_id) alone. Room tasks go with
    -- their room when retention removes it for good.
    room_id      BIGINT REFERENCES rooms (id) ON DELETE CASCADE,
    -- The creator. Deleting an account deletes its personal tasks in the same
    -- transaction; its room tasks stay with the room, shown by the deleted user's name.
    user_id      BIGINT NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    number       INTEGER NOT NULL CONSTRAINT tasks_number_positive CHECK (number >= 1),
    title        TEXT NOT NULL
                 CONSTRAINT tasks_title_length CHECK (char_length(title) BETWEEN 1 AND 200),
    description  TEXT NOT NULL DEFAULT ''
                 CONSTRAINT tasks_description_length CHECK (char_length(description) <= 2000),
    status       TEXT NOT NULL DEFAULT 'pending'
                 CONSTRAINT tasks_status_check
                 CHECK (status IN ('pending', 'in_progress', 'completed')),
    assignee_id  BIGINT REFERENCES users (id) ON DELETE RESTRICT,
    source       JSONB,  -- null, or {"retro": id} for a retro's action item
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at   TIMESTAMPTZ,  -- soft delete; the retention pass purges after 7 days
    CONSTRAINT tasks_personal_assignee
        CHECK (room_id IS NOT NULL OR assignee_id IS NULL OR assignee_id = user_id)
);

-- Numbers are unique per room, and per user among personal tasks (deleted ones keep
-- theirs: /todo N never names a different task later).
CREATE UNIQUE INDEX tasks_room_number_key ON tasks (room_id, number) WHERE room_id IS NOT NULL;
CREATE UNIQUE INDEX tasks_personal_number_key ON tasks (user_id, number) WHERE room_id IS NULL;
-- The query paths: a room's list, paged by id; "my tasks" (personal ones, and room tasks
-- assigned to me); the retention pass's purge of old soft-deleted rows.
CREATE INDEX tasks_room_idx ON tasks (room_id, id) WHERE deleted_at IS NULL;
CREATE INDEX tasks_personal_idx ON tasks (user_id, id)
    WHERE room_id IS NULL AND deleted_at IS NULL;
CREATE INDEX tasks_assignee_idx ON tasks (assignee_id, id)
    WHERE assignee_id IS NOT NULL AND deleted_at IS NULL;
CREATE INDEX tasks_deleted_idx ON tasks (deleted_at) WHERE deleted_at IS NOT NULL;
