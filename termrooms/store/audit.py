"""The audit log: who did what to whom, kept for admins and for a user's data export."""

from __future__ import annotations

import json
from typing import Any, Mapping


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
