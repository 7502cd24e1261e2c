"""
Retention's SQL: counting and deleting old and expired rows a batch at a time, the lock
that lets one instance at a time do it, and the audit row of a pass.

Each batch is one short transaction of at most ``limit`` rows, found through an index
on the column the cutoff applies to, so no table is locked for long.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

from termrooms.storage.audit import insert_audit_txn
from termrooms.storage.moderation import delete_room_txn

# A session-level advisory lock ("termret"), held by the pass's own connection for the
# whole pass; any constant works as long as every termrooms process uses the same one.
RETENTION_LOCK_KEY = 0x7465726D726574
RETENTION_AUDIT_ACTION = "retention.run"

# (count, delete one batch) for the kinds that are a plain delete; placeholders are
# the cutoff, then (deletes only) the batch size.
_PLAIN = {
    "messages": (
        "SELECT count(*) FROM room_events WHERE created_at < %s",
        "DELETE FROM room_events WHERE id IN"
        " (SELECT id FROM room_events WHERE created_at < %s ORDER BY created_at LIMIT %s)",
    ),
    "audit_rows": (
        "SELECT count(*) FROM audit_log WHERE created_at < %s",
        "DELETE FROM audit_log WHERE id IN"
        " (SELECT id FROM audit_log WHERE created_at < %s ORDER BY created_at LIMIT %s)",
    ),
    "invites": (
        "SELECT count(*) FROM invites WHERE expires_at < %s",
        "DELETE FROM invites WHERE code_hash IN"
        " (SELECT code_hash FROM invites WHERE expires_at < %s LIMIT %s)",
    ),
    "bans": (
        "SELECT count(*) FROM room_bans WHERE expires_at < %s",
        "DELETE FROM room_bans WHERE (room_id, user_id) IN"
        " (SELECT room_id, user_id FROM room_bans WHERE expires_at < %s LIMIT %s)",
    ),
    "mutes": (
        "SELECT count(*) FROM room_mutes WHERE expires_at < %s",
        "DELETE FROM room_mutes WHERE (room_id, user_id) IN"
        " (SELECT room_id, user_id FROM room_mutes WHERE expires_at < %s LIMIT %s)",
    ),
    "deleted_tasks": (
        "SELECT count(*) FROM tasks WHERE deleted_at < %s",
        "DELETE FROM tasks WHERE id IN"
        " (SELECT id FROM tasks WHERE deleted_at < %s ORDER BY deleted_at LIMIT %s)",
    ),
}
_COUNT_SPECIAL = {
    # A direct room is a conversation, not an abandoned room: never idle (docs/protocol.md).
    "idle_rooms": "SELECT count(*) FROM rooms WHERE deleted_at IS NULL AND kind = 'room'"
    " AND last_event_at < %s",
    "deleted_rooms": "SELECT count(*) FROM rooms WHERE deleted_at < %s",
    "refresh_tokens": "SELECT count(*) FROM refresh_tokens WHERE expires_at < %s",
    # Sessions whose every token goes in this pass.
    "sessions": "SELECT count(*) FROM refresh_token_families f"
    " WHERE EXISTS (SELECT 1 FROM refresh_tokens t WHERE t.family_id = f.id)"
    "   AND NOT EXISTS (SELECT 1 FROM refresh_tokens t"
    "                    WHERE t.family_id = f.id AND t.expires_at >= %s)",
}


async def try_lock(connection: Any) -> bool:
    """Take the retention lock on this session, unless another session holds it."""
    rows = await connection.runQuery("SELECT pg_try_advisory_lock(%s)", (RETENTION_LOCK_KEY,))
    return bool(rows[0][0])


async def unlock(connection: Any) -> None:
    await connection.runQuery("SELECT pg_advisory_unlock(%s)", (RETENTION_LOCK_KEY,))


async def count_due_txn(cursor: Any, cutoffs: Mapping[str, datetime]) -> dict[str, int]:
    """How many rows of each kind a pass with these cutoffs would remove."""
    counts = {}
    for kind, cutoff in cutoffs.items():
        statement = _PLAIN[kind][0] if kind in _PLAIN else _COUNT_SPECIAL[kind]
        await cursor.execute(statement, (cutoff,))
        counts[kind] = cursor.fetchone()[0]
    return counts


async def remove_batch_txn(
    cursor: Any, kind: str, cutoff: datetime, limit: int
) -> tuple[dict[str, int], bool]:
    """
    Remove up to ``limit`` rows of ``kind`` from before ``cutoff``; returns the counts
    per kind removed (a refresh-token batch also removes the sessions it emptied), and
    whether the batch was full, so that more may be left.
    """
    if kind in _PLAIN:
        await cursor.execute(_PLAIN[kind][1], (cutoff, limit))
        return {kind: cursor.rowcount}, cursor.rowcount >= limit
    if kind == "idle_rooms":
        rooms = await _delete_idle_rooms_txn(cursor, cutoff, limit)
        return {kind: rooms}, rooms >= limit
    if kind == "deleted_rooms":
        return await _purge_deleted_rooms_txn(cursor, cutoff, limit)
    if kind == "refresh_tokens":
        removed = await _delete_refresh_tokens_txn(cursor, cutoff, limit)
        return removed, removed[kind] >= limit
    raise ValueError(f"no batch delete for {kind!r}")


async def _delete_idle_rooms_txn(cursor: Any, cutoff: datetime, limit: int) -> int:
    """Soft-delete idle rooms as an owner's DELETE does: audit row, members removed."""
    # The row lock re-checks last_event_at against an event committed meanwhile.
    await cursor.execute(
        "SELECT id FROM rooms WHERE deleted_at IS NULL AND kind = 'room' AND last_event_at < %s"
        " ORDER BY last_event_at LIMIT %s FOR UPDATE SKIP LOCKED",
        (cutoff, limit),
    )
    rooms = [room_id for (room_id,) in cursor.fetchall()]
    for room_id in rooms:
        await delete_room_txn(cursor, room_id, None, None)
    return len(rooms)


async def _purge_deleted_rooms_txn(
    cursor: Any, cutoff: datetime, limit: int
) -> tuple[dict[str, int], bool]:
    """
    Remove rooms deleted before ``cutoff`` for good, ``limit`` rows at a time: first
    their events (a room's history may be long: batches keep each transaction short),
    then, once a room has none left, the room, whose members, invitations, bans, mutes,
    mentions, tasks, polls and retros go with it (ON DELETE CASCADE), each with an audit
    row ``room.purge`` naming it (the audit log keeps no foreign key, so it outlives them).
    """
    await cursor.execute(
        "DELETE FROM room_events WHERE id IN"
        " (SELECT e.id FROM rooms r JOIN room_events e ON e.room_id = r.id"
        "   WHERE r.deleted_at < %s ORDER BY r.deleted_at, e.room_id, e.seq LIMIT %s)",
        (cutoff, limit),
    )
    events = cursor.rowcount
    if events >= limit:
        return {"deleted_rooms": 0}, True
    await cursor.execute(
        "WITH purged AS ("
        "   DELETE FROM rooms WHERE id IN"
        "    (SELECT r.id FROM rooms r WHERE r.deleted_at < %s"
        "        AND NOT EXISTS (SELECT 1 FROM room_events e WHERE e.room_id = r.id)"
        "      ORDER BY r.deleted_at LIMIT %s FOR UPDATE SKIP LOCKED)"
        "   RETURNING id, name, deleted_at)"
        " INSERT INTO audit_log (action, room_id, data)"
        " SELECT 'room.purge', id, jsonb_build_object('name', name, 'deleted_at', deleted_at)"
        "   FROM purged",
        (cutoff, limit - events),
    )
    rooms = cursor.rowcount
    return {"deleted_rooms": rooms}, events + rooms >= limit


async def _delete_refresh_tokens_txn(cursor: Any, cutoff: datetime, limit: int) -> dict[str, int]:
    await cursor.execute(
        "DELETE FROM refresh_tokens WHERE token_hash IN"
        " (SELECT token_hash FROM refresh_tokens WHERE expires_at < %s"
        "   ORDER BY expires_at LIMIT %s)"
        " RETURNING family_id::text",
        (cutoff, limit),
    )
    rows = cursor.fetchall()
    families = sorted({family_id for (family_id,) in rows})
    # A family left without tokens can never be refreshed again; its access tokens
    # expired with the grace period (see retention.REFRESH_TOKEN_GRACE).
    await cursor.execute(
        "DELETE FROM refresh_token_families f WHERE f.id = ANY(%s::uuid[])"
        "   AND NOT EXISTS (SELECT 1 FROM refresh_tokens t WHERE t.family_id = f.id)",
        (families,),
    )
    return {"refresh_tokens": len(rows), "sessions": cursor.rowcount}


async def last_expired_purge_txn(cursor: Any) -> datetime | None:
    """When a pass last purged expired rows (by its audit row), or None."""
    await cursor.execute(
        "SELECT created_at FROM audit_log WHERE action = %s"
        "   AND (data ->> 'purged_expired')::boolean"
        " ORDER BY created_at DESC LIMIT 1",
        (RETENTION_AUDIT_ACTION,),
    )
    row = cursor.fetchone()
    return row[0] if row else None


async def record_pass_txn(cursor: Any, data: Mapping[str, Any]) -> None:
    await insert_audit_txn(cursor, RETENTION_AUDIT_ACTION, data=data)
