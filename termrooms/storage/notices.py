"""Notices to a user's sockets, sent with PostgreSQL NOTIFY so every instance hears them
when the transaction that caused them commits (see termrooms.domain.notices). Nobody
hears of their own actions, nor of those of a user they block (v1.1, Notifications to a
user): checked here, in the statement that sends."""

from __future__ import annotations

from typing import Any

from termrooms.domain.notices import UserNotice
from termrooms.storage.blocks import BLOCKS, blocks

USER_NOTICES_CHANNEL = "termrooms_user_notices"


async def notify_user_txn(cursor: Any, notice: UserNotice, sender_id: int | None = None) -> None:
    """Every instance hears of it when the transaction commits (a hint: no payload text),
    unless the user blocks ``sender_id``, whose action it tells of."""
    await cursor.execute(
        f"SELECT pg_notify(%(channel)s, %(payload)s) WHERE NOT {BLOCKS}",
        {
            "channel": USER_NOTICES_CHANNEL,
            "payload": notice.payload(),
            "blocker": notice.user_id,
            "blocked": sender_id,
        },
    )


async def notify_message_txn(
    cursor: Any, event_id: int, room_id: int, seq: int, author_id: int
) -> None:
    """The notices a new message sends: ``dm`` to the other member of a direct room, and
    ``mention`` to each member it mentions (message_mentions), one a user, ``dm`` first;
    none to its author, nor to a user who blocks them."""
    await cursor.execute(
        "SELECT pg_notify(%(channel)s, t.user_id || ' ' || t.reason || ' ' || %(room)s"
        "                 || ' ' || %(seq)s)"
        "  FROM (SELECT DISTINCT ON (c.user_id) c.user_id, c.reason FROM ("
        "          SELECT m.user_id, 'dm' AS reason, 0 AS rank"
        "            FROM rooms r JOIN memberships m ON m.room_id = r.id"
        "           WHERE r.id = %(room)s AND r.kind = 'direct'"
        "          UNION ALL"
        "          SELECT x.user_id, 'mention', 1 FROM message_mentions x"
        "           WHERE x.event_id = %(event)s) c"
        "         WHERE c.user_id <> %(sender)s"
        f"          AND NOT {blocks('c.user_id', '%(sender)s')}"
        "         ORDER BY c.user_id, c.rank) t",
        {
            "channel": USER_NOTICES_CHANNEL,
            "room": room_id,
            "seq": seq,
            "event": event_id,
            "sender": author_id,
        },
    )
