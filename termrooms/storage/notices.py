"""Notices to a user's sockets, sent with PostgreSQL NOTIFY so every instance hears them
when the transaction that caused them commits (see termrooms.domain.notices)."""

from __future__ import annotations

from typing import Any

from termrooms.domain.notices import UserNotice

USER_NOTICES_CHANNEL = "termrooms_user_notices"


async def notify_user_txn(cursor: Any, notice: UserNotice) -> None:
    """Every instance hears of it when the transaction commits (a hint: no payload text)."""
    await cursor.execute("SELECT pg_notify(%s, %s)", (USER_NOTICES_CHANNEL, notice.payload()))


async def notify_mentioned_txn(
    cursor: Any, event_id: int, room_id: int, seq: int, author_id: int
) -> None:
    """A ``mention`` notice to each member a message names, but its author."""
    await cursor.execute(
        "SELECT pg_notify(%s, m.user_id || ' mention ' || %s || ' ' || %s)"
        "  FROM message_mentions m WHERE m.event_id = %s AND m.user_id <> %s",
        (USER_NOTICES_CHANNEL, room_id, seq, event_id, author_id),
    )
