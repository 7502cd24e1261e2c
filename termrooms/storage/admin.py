"""
What the operator's command (``termrooms users ...``, ``termrooms rooms ...``) reads and
changes. Each change and each listing writes its audit row in its own transaction; the
actor is NULL: the operator on the server, not an account.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import attrs

from termrooms.domain.errors import ApiError
from termrooms.storage.audit import insert_audit_txn
from termrooms.storage.moderation import delete_room_txn
from termrooms.storage.rooms import room_by_name_txn
from termrooms.storage.sessions import revoke_user_sessions_txn


@attrs.frozen
class UserRow:
    """An account as ``users list`` shows it; ``last_login_at`` is its newest session."""

    id: int
    username: str
    role: str
    created_at: datetime
    disabled_at: datetime | None
    deleted_at: datetime | None
    last_login_at: datetime | None


async def list_users_txn(cursor: Any, include_deleted: bool) -> list[UserRow]:
    """Every account, oldest first (deleted ones only when asked), with its audit row."""
    await cursor.execute(
        "SELECT u.id, u.username, u.role, u.created_at, u.disabled_at, u.deleted_at,"
        "       (SELECT max(f.created_at) FROM refresh_token_families f"
        "         WHERE f.user_id = u.id)"
        "  FROM users u WHERE %s OR u.deleted_at IS NULL ORDER BY u.created_at, u.id",
        (include_deleted,),
    )
    users = [UserRow(*row) for row in cursor.fetchall()]
    await insert_audit_txn(
        cursor, "user.list", data={"count": len(users), "include_deleted": include_deleted}
    )
    return users


async def set_password_txn(cursor: Any, username: str, password_hash: str) -> int | None:
    """Replace an account's password and end its sessions; its id, or None when unknown."""
    await cursor.execute(
        "UPDATE users SET password_hash = %s"
        " WHERE lower(username) = lower(%s) AND deleted_at IS NULL RETURNING id",
        (password_hash, username),
    )
    row = cursor.fetchone()
    if row is None:
        return None
    (user_id,) = row
    await revoke_user_sessions_txn(cursor, user_id, "password_changed")
    await insert_audit_txn(cursor, "user.password_set", target_user_id=user_id)
    return user_id


async def set_role_txn(cursor: Any, username: str, role: str) -> tuple[int, str] | None:
    """Make an account an admin or a user again: (id, previous role), or None when unknown."""
    await cursor.execute(
        "SELECT id, role FROM users"
        " WHERE lower(username) = lower(%s) AND deleted_at IS NULL FOR UPDATE",
        (username,),
    )
    row = cursor.fetchone()
    if row is None:
        return None
    user_id, previous = row
    if previous == "admin" and role != "admin":
        # Every admin row locked, so two revokes at once cannot both leave the other.
        await cursor.execute(
            "SELECT id FROM users WHERE role = 'admin' AND deleted_at IS NULL"
            " AND disabled_at IS NULL AND id <> %s FOR UPDATE",
            (user_id,),
        )
        if not cursor.fetchall():
            raise ApiError(
                "forbidden", f"{username} is the last active admin; make another admin first"
            )
    await cursor.execute("UPDATE users SET role = %s WHERE id = %s", (role, user_id))
    if previous == "admin" and role != "admin":
        # Open sockets hold the user as they were at the handshake: end the sessions
        # (4001 on every instance) rather than let them go on acting as an admin.
        await revoke_user_sessions_txn(cursor, user_id, "admin_revoked")
    await insert_audit_txn(
        cursor, "user.role", target_user_id=user_id, data={"role": role, "previous": previous}
    )
    return user_id, previous


@attrs.frozen
class RoomRow:
    """A room as ``rooms list`` shows it; ``last_event_at`` is when its newest event came."""

    id: int
    name: str
    visibility: str
    created_by: str
    created_at: datetime
    members: int
    last_seq: int
    last_event_at: datetime | None
    deleted_at: datetime | None


async def list_rooms_txn(cursor: Any, include_deleted: bool) -> list[RoomRow]:
    """Every room by name (deleted ones only when asked), with its audit row."""
    await cursor.execute(
        "SELECT r.id, r.name, r.visibility, u.username, r.created_at,"
        "       (SELECT count(*) FROM memberships m WHERE m.room_id = r.id),"
        "       r.last_seq, e.created_at, r.deleted_at"
        "  FROM rooms r JOIN users u ON u.id = r.created_by"
        "  LEFT JOIN room_events e ON e.room_id = r.id AND e.seq = r.last_seq"
        " WHERE %s OR r.deleted_at IS NULL ORDER BY lower(r.name), r.created_at",
        (include_deleted,),
    )
    rooms = [RoomRow(*row) for row in cursor.fetchall()]
    await insert_audit_txn(
        cursor, "room.list", data={"count": len(rooms), "include_deleted": include_deleted}
    )
    return rooms


async def delete_room_by_name_txn(cursor: Any, name: str) -> int | None:
    """Soft-delete a live room as ``DELETE /api/rooms/{name}`` does; its id, if any."""
    room = await room_by_name_txn(cursor, name)
    if room is None:
        return None
    await delete_room_txn(cursor, room.id, None, None)
    return room.id
