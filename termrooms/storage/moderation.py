"""
Changing a room: topic, deletion, invitations, message deletion and moderation. Each
change is one transaction that also stores its room event (next seq) and an audit row.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import attrs

from termrooms.domain.events import Removal, RoomEvent
from termrooms.domain.wire import iso_time
from termrooms.storage.audit import insert_audit_txn
from termrooms.storage.rooms import append_event_txn, notify_removal_txn


@attrs.frozen
class Target:
    """A user a moderator names, and where they stand in the room."""

    id: int
    username: str
    server_admin: bool
    room_role: str | None
    banned: bool
    muted: bool


# Of users u: whether a server admin, the role in %(room)s, and whether banned and muted
# there now (bans and mutes still in force); the select list's end, then FROM and JOIN.
STANDING_OF_USER = (
    "u.role = 'admin', m.role,"
    " EXISTS (SELECT 1 FROM room_bans b WHERE b.room_id = %(room)s AND b.user_id = u.id"
    "         AND (b.expires_at IS NULL OR b.expires_at > now())),"
    " EXISTS (SELECT 1 FROM room_mutes x WHERE x.room_id = %(room)s AND x.user_id = u.id"
    "         AND (x.expires_at IS NULL OR x.expires_at > now()))"
    " FROM users u"
    " LEFT JOIN memberships m ON m.room_id = %(room)s AND m.user_id = u.id"
)


async def target_txn(cursor: Any, room_id: int, username: str) -> Target | None:
    """An active user by name (any case) with their role, ban and mute in the room."""
    await cursor.execute(
        f"SELECT u.id, u.username, {STANDING_OF_USER}"
        " WHERE lower(u.username) = lower(%(name)s) AND u.deleted_at IS NULL",
        {"room": room_id, "name": username},
    )
    row = cursor.fetchone()
    return Target(*row) if row else None


async def set_topic_txn(
    cursor: Any, room_id: int, topic: str, actor_id: int, event_id: int
) -> RoomEvent:
    await cursor.execute("UPDATE rooms SET topic = %s WHERE id = %s", (topic, room_id))
    return await append_event_txn(
        cursor, event_id, room_id, "topic_changed", user_id=actor_id, data={"topic": topic}
    )


async def delete_room_txn(
    cursor: Any, room_id: int, actor_id: int | None, request_id: str | None
) -> None:
    """Soft delete: the name is free again, the history stays in the database. No actor:
    retention deleted the room for being idle."""
    await cursor.execute(
        "UPDATE rooms SET deleted_at = now() WHERE id = %s AND deleted_at IS NULL", (room_id,)
    )
    await insert_audit_txn(
        cursor, "room.delete", actor_id=actor_id, room_id=room_id, request_id=request_id
    )
    await notify_removal_txn(cursor, Removal(room_id, None, 0))


async def invite_txn(
    cursor: Any, room_id: int, user_id: int, actor_id: int, request_id: str | None
) -> None:
    """Let a user join a private room."""
    await cursor.execute(
        "INSERT INTO room_invitations (room_id, user_id, invited_by) VALUES (%s, %s, %s)"
        " ON CONFLICT DO NOTHING",
        (room_id, user_id, actor_id),
    )
    await insert_audit_txn(
        cursor,
        "room.invite",
        actor_id=actor_id,
        target_user_id=user_id,
        room_id=room_id,
        request_id=request_id,
    )


async def message_author_txn(cursor: Any, room_id: int, event_id: int) -> tuple[int, bool] | None:
    """(author id, already deleted) of a message in this room, or None."""
    await cursor.execute(
        "SELECT user_id, deleted_at IS NOT NULL FROM room_events"
        " WHERE id = %s AND room_id = %s AND type = 'message'",
        (event_id, room_id),
    )
    row = cursor.fetchone()
    return (row[0], row[1]) if row else None


async def delete_message_txn(
    cursor: Any, room_id: int, message_id: int, actor_id: int, event_id: int
) -> RoomEvent:
    """Blank the message (its seq stays), forget who it named, and store message_deleted
    pointing at it."""
    await cursor.execute(
        "UPDATE room_events SET body = NULL, deleted_at = now()"
        " WHERE id = %s AND room_id = %s AND deleted_at IS NULL",
        (message_id, room_id),
    )
    await cursor.execute("DELETE FROM message_mentions WHERE event_id = %s", (message_id,))
    return await append_event_txn(
        cursor, event_id, room_id, "message_deleted", user_id=actor_id, target_event_id=message_id
    )


async def moderate_txn(
    cursor: Any,
    room_id: int,
    action: str,
    actor_id: int,
    target_id: int,
    event_id: int,
    *,
    reason: str | None = None,
    expires_at: datetime | None = None,
    new_role: str | None = None,
    duration_s: int | None = None,
    request_id: str | None = None,
) -> RoomEvent:
    """Apply one moderation action with its room event and audit row."""
    data: dict[str, Any] = {}
    if reason:
        data["reason"] = reason
    if expires_at is not None:
        data["expires_at"] = iso_time(expires_at)  # stored as the wire shows it
        if duration_s is not None:
            data["duration_s"] = duration_s
    if action == "kick":
        await _remove_membership(cursor, room_id, target_id)
        # Kicked out of a private room, a user needs a new invitation to come back (a ban
        # keeps it: lifting the ban restores the access the user had).
        await cursor.execute(
            "DELETE FROM room_invitations WHERE room_id = %s AND user_id = %s",
            (room_id, target_id),
        )
        event_type = "member_kicked"
    elif action == "ban":
        await cursor.execute(
            "INSERT INTO room_bans (room_id, user_id, banned_by, reason, expires_at)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (room_id, user_id) DO UPDATE"
            " SET banned_by = excluded.banned_by, reason = excluded.reason,"
            "     expires_at = excluded.expires_at, created_at = now()",
            (room_id, target_id, actor_id, reason, expires_at),
        )
        await _remove_membership(cursor, room_id, target_id)
        event_type = "member_banned"
    elif action == "unban":
        await cursor.execute(
            "DELETE FROM room_bans WHERE room_id = %s AND user_id = %s", (room_id, target_id)
        )
        event_type = "member_unbanned"
    elif action == "mute":
        await cursor.execute(
            "INSERT INTO room_mutes (room_id, user_id, muted_by, reason, expires_at)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (room_id, user_id) DO UPDATE"
            " SET muted_by = excluded.muted_by, reason = excluded.reason,"
            "     expires_at = excluded.expires_at, created_at = now()",
            (room_id, target_id, actor_id, reason, expires_at),
        )
        event_type = "member_muted"
    elif action == "unmute":
        await cursor.execute(
            "DELETE FROM room_mutes WHERE room_id = %s AND user_id = %s", (room_id, target_id)
        )
        event_type = "member_unmuted"
    elif action in ("op", "deop"):
        await cursor.execute(
            "UPDATE memberships SET role = %s WHERE room_id = %s AND user_id = %s",
            (new_role, room_id, target_id),
        )
        data["role"] = new_role
        event_type = "role_changed"
    else:
        raise ValueError(f"unknown moderation action {action!r}")
    event = await append_event_txn(
        cursor,
        event_id,
        room_id,
        event_type,
        user_id=actor_id,
        target_user_id=target_id,
        data=data,
    )
    if action in ("kick", "ban"):
        await notify_removal_txn(cursor, Removal(room_id, target_id, event.seq))
    await insert_audit_txn(
        cursor,
        f"moderation.{action}",
        actor_id=actor_id,
        target_user_id=target_id,
        room_id=room_id,
        data=data,
        request_id=request_id,
    )
    return event


async def _remove_membership(cursor: Any, room_id: int, user_id: int) -> None:
    await cursor.execute(
        "DELETE FROM memberships WHERE room_id = %s AND user_id = %s", (room_id, user_id)
    )
