"""The audit log: who did what to whom, kept for admins and for a user's data export."""

from __future__ import annotations

import json
from typing import Any, Mapping

# The columns of an audit row as every reader returns them (see http.auth.audit_json).
AUDIT_COLUMNS = "id, created_at, action, actor_id, target_user_id, room_id, data, request_id"


async def insert_audit_txn(
    cursor: Any,
    action: str,
    *,
    actor_id: int | None = None,
    target_user_id: int | None = None,
    room_id: int | None = None,
    data: Mapping[str, Any] | None = None,
    request_id: str | None = None,
) -> None:
    """Record one audit row inside the caller's transaction."""
    await cursor.execute(
        "INSERT INTO audit_log (actor_id, action, target_user_id, room_id, data, request_id)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        (actor_id, action, target_user_id, room_id, json.dumps(dict(data or {})), request_id),
    )


async def audit_page_txn(cursor: Any, before_id: int | None, limit: int) -> list[tuple[Any, ...]]:
    """Audit rows newest first, ``limit`` of them, older than ``before_id`` when given."""
    await cursor.execute(
        f"SELECT {AUDIT_COLUMNS} FROM audit_log"
        " WHERE (%s::bigint IS NULL OR id < %s) ORDER BY id DESC LIMIT %s",
        (before_id, before_id, limit),
    )
    return cursor.fetchall()
