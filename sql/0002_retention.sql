-- 0002_retention.sql -- what retention (termrooms/retention.py) needs from the schema.

-- When a room last had an event: "idle" rooms are soft-deleted by this. It cannot be
-- read from room_events, because message retention deletes old events: a room whose
-- events are all gone would look idle since its creation. Set by the statement that
-- takes an event's seq (store/rooms.py append_event_txn), on a row it updates anyway.
ALTER TABLE rooms ADD COLUMN last_event_at TIMESTAMPTZ;
UPDATE rooms r
   SET last_event_at = coalesce(
       (SELECT e.created_at FROM room_events e WHERE e.room_id = r.id
         ORDER BY e.seq DESC LIMIT 1),
       r.created_at);
ALTER TABLE rooms ALTER COLUMN last_event_at SET DEFAULT now(),
                  ALTER COLUMN last_event_at SET NOT NULL;

-- No index on it: every stored event updates it, and an indexed column would turn that
-- update from HOT into one that writes every index of rooms. The idle-room sweep reads
-- the (small) rooms table once a pass instead.

-- The newest retention pass that purged expired rows, which decides whether the daily
-- purge is due; a handful of rows a day among every audit row.
CREATE INDEX audit_log_retention_idx ON audit_log (created_at)
    WHERE action = 'retention.run';
