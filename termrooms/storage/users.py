"""Users: accounts and their server role."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import attrs
from psycopg2 import errors as pg_errors

from termrooms.domain.errors import ApiError
from termrooms.storage.audit import AUDIT_COLUMNS, insert_audit_txn
from termrooms.storage.blocks import blocked_names_txn, delete_blocks_of_txn
from termrooms.storage.invites import redeem_invite_txn
from termrooms.storage.polls import polls_of_user_txn
from termrooms.storage.retros import retros_of_user_txn
from termrooms.storage.rooms import rename_in_events_txn
from termrooms.storage.sessions import (
    revoke_user_sessions_txn,
    session_is_live_txn,
    start_family_txn,
)
from termrooms.storage.tasks import delete_personal_tasks_txn, tasks_of_user_txn


@attrs.frozen
class User:
    id: int
    username: str
    display_name: str
    role: str
    created_at: datetime


async def create_user_txn(
    cursor: Any,
    user_id: int,
    username: str,
    password_hash: str,
    *,
    role: str = "user",
    actor_id: int | None = None,
    request_id: str | None = None,
) -> User:
    """Insert a user and its audit row; ``name_taken`` when the name is in use in any case."""
    try:
        await cursor.execute(
            "INSERT INTO users (id, username, display_name, password_hash, role)"
            " VALUES (%s, %s, %s, %s, %s) RETURNING created_at",
            (user_id, username, username, password_hash, role),
        )
    except pg_errors.UniqueViolation:
        raise ApiError("name_taken", f"The username {username!r} is taken.") from None
    (created_at,) = cursor.fetchone()
    await insert_audit_txn(
        cursor,
        "user.create",
        actor_id=actor_id,
        target_user_id=user_id,
        data={"username": username, "role": role},
        request_id=request_id,
    )
    return User(user_id, username, username, role, created_at)


async def oldest_admin_id_txn(cursor: Any) -> int | None:
    """The first admin still active: who invites made from the command line come from."""
    await cursor.execute(
        "SELECT id FROM users WHERE role = 'admin' AND deleted_at IS NULL"
        " AND disabled_at IS NULL ORDER BY created_at, id LIMIT 1"
    )
    row = cursor.fetchone()
    return row[0] if row else None


async def admin_id_by_name_txn(cursor: Any, username: str) -> int | None:
    """The id of the active admin named ``username`` (any case), if there is one."""
    await cursor.execute(
        "SELECT id FROM users WHERE lower(username) = lower(%s) AND role = 'admin'"
        " AND deleted_at IS NULL AND disabled_at IS NULL",
        (username,),
    )
    row = cursor.fetchone()
    return row[0] if row else None


_USER_COLUMNS = "id, username, display_name, role, created_at"


@attrs.frozen
class LoginRecord:
    """What a login needs to know about an account."""

    user: User
    password_hash: str


async def _active_login_record(cursor: Any, match: str, value: Any) -> LoginRecord | None:
    await cursor.execute(
        f"SELECT {_USER_COLUMNS}, password_hash FROM users"
        f" WHERE {match} AND deleted_at IS NULL AND disabled_at IS NULL",
        (value,),
    )
    row = cursor.fetchone()
    return LoginRecord(User(*row[:5]), row[5]) if row else None


async def login_record_txn(cursor: Any, username: str) -> LoginRecord | None:
    """The active account called ``username`` (any case), with its password hash."""
    return await _active_login_record(cursor, "lower(username) = lower(%s)", username)


async def login_record_by_id_txn(cursor: Any, user_id: int) -> LoginRecord | None:
    """The active account ``user_id`` with its password hash (to confirm a deletion)."""
    return await _active_login_record(cursor, "id = %s", user_id)


async def register_user_txn(
    cursor: Any,
    user_id: int,
    username: str,
    password_hash: str,
    *,
    invite_code: str | None,
    token_hash: bytes,
    refresh_expires_at: datetime,
    request_id: str | None,
) -> tuple[User, str]:
    """
    A new account and its first session. One transaction: a taken name does not use up
    the invite, and a spent invite creates no account. Returns the user and session id.
    """
    if invite_code is not None and not await redeem_invite_txn(cursor, invite_code):
        raise ApiError("invite_invalid", "The invite code is unknown, used up or expired.")
    user = await create_user_txn(
        cursor, user_id, username, password_hash, actor_id=user_id, request_id=request_id
    )
    family_id = await start_family_txn(cursor, user_id, token_hash, refresh_expires_at)
    return user, family_id


async def user_by_id_txn(cursor: Any, user_id: int) -> User | None:
    """An active account by id."""
    await cursor.execute(
        f"SELECT {_USER_COLUMNS} FROM users"
        " WHERE id = %s AND deleted_at IS NULL AND disabled_at IS NULL",
        (user_id,),
    )
    row = cursor.fetchone()
    return User(*row) if row else None


async def replace_password_hash_txn(cursor: Any, user_id: int, password_hash: str) -> None:
    """Store a re-hash made with the current parameters."""
    await cursor.execute(
        "UPDATE users SET password_hash = %s WHERE id = %s AND deleted_at IS NULL",
        (password_hash, user_id),
    )


async def delete_user_txn(cursor: Any, user_id: int, request_id: str | None = None) -> None:
    """
    Delete an account, keeping its row as a tombstone so its messages keep an author and
    room histories keep their seqs: the name is freed (in the events that copied it too:
    mentions, tasks, polls), the password, memberships and
    blocks (theirs and on them) go, every session is revoked. Their direct rooms stay
    with the other member, who keeps the history and sees the tombstone's name as peer.
    """
    await cursor.execute(
        "SELECT username FROM users WHERE id = %s AND deleted_at IS NULL FOR UPDATE",
        (user_id,),
    )
    row = cursor.fetchone()
    if row is not None:
        await cursor.execute(
            "UPDATE users SET username = 'deleted-' || id, display_name = 'deleted user',"
            " password_hash = NULL, deleted_at = now() WHERE id = %s RETURNING username",
            (user_id,),
        )
        await rename_in_events_txn(cursor, row[0], cursor.fetchone()[0])
    await cursor.execute("DELETE FROM memberships WHERE user_id = %s", (user_id,))
    await delete_blocks_of_txn(cursor, user_id)
    await delete_personal_tasks_txn(cursor, user_id)
    await revoke_user_sessions_txn(cursor, user_id, "account_deleted")
    await insert_audit_txn(
        cursor, "user.delete", actor_id=user_id, target_user_id=user_id, request_id=request_id
    )


async def set_disabled_txn(
    cursor: Any, username: str, disabled: bool, request_id: str | None = None
) -> int | None:
    """Disable (sessions revoked, sockets closed) or re-enable an account; its id, if any."""
    await cursor.execute(
        "UPDATE users SET disabled_at = CASE WHEN %s THEN coalesce(disabled_at, now()) END"
        " WHERE lower(username) = lower(%s) AND deleted_at IS NULL RETURNING id",
        (disabled, username),
    )
    row = cursor.fetchone()
    if row is None:
        return None
    (user_id,) = row
    if disabled:
        await revoke_user_sessions_txn(cursor, user_id, "disabled")
    await insert_audit_txn(
        cursor,
        "user.disable" if disabled else "user.enable",
        target_user_id=user_id,
        request_id=request_id,
    )
    return user_id


async def export_user_txn(cursor: Any, user_id: int) -> dict[str, Any]:
    """Everything stored about a user, for GDPR access requests (raw values): their own
    data, and nothing of others' beyond the names their rows point at (their direct
    rooms' peers, whom they block; not who blocks them)."""
    await cursor.execute(f"SELECT {_USER_COLUMNS} FROM users WHERE id = %s", (user_id,))
    profile = User(*cursor.fetchone())
    await cursor.execute(
        "SELECT r.name, m.role, m.joined_at, m.last_seen_at, m.read_seq"
        "  FROM memberships m JOIN rooms r ON r.id = m.room_id"
        " WHERE m.user_id = %s AND r.deleted_at IS NULL ORDER BY r.name",
        (user_id,),
    )
    memberships = cursor.fetchall()
    await cursor.execute(
        "SELECT r.name, p.username, r.created_at"
        "  FROM memberships m JOIN rooms r ON r.id = m.room_id"
        "  JOIN users p ON p.id = CASE WHEN r.direct_low = m.user_id"
        "                         THEN r.direct_high ELSE r.direct_low END"
        " WHERE m.user_id = %s AND r.kind = 'direct' ORDER BY r.id",
        (user_id,),
    )
    direct_rooms = cursor.fetchall()
    await cursor.execute(
        "SELECT e.id, r.name, e.seq, e.created_at, e.body, e.action, e.client_msg_id,"
        "       e.deleted_at"
        "  FROM room_events e JOIN rooms r ON r.id = e.room_id"
        " WHERE e.user_id = %s AND e.type = 'message' ORDER BY e.id",
        (user_id,),
    )
    messages = cursor.fetchall()
    await cursor.execute(
        f"SELECT {AUDIT_COLUMNS} FROM audit_log"
        " WHERE target_user_id = %s OR actor_id = %s ORDER BY id",
        (user_id, user_id),
    )
    audit = cursor.fetchall()
    return {
        "profile": profile,
        "memberships": memberships,
        "direct_rooms": direct_rooms,
        "blocks": await blocked_names_txn(cursor, user_id),
        "messages": messages,
        "tasks": await tasks_of_user_txn(cursor, user_id),
        "polls": await polls_of_user_txn(cursor, user_id),
        "retros": await retros_of_user_txn(cursor, user_id),
        "audit": audit,
    }


async def live_session_user_txn(cursor: Any, user_id: int, family_id: str) -> User | None:
    """The user behind an access token, if its session still stands and the user is active."""
    if not await session_is_live_txn(cursor, user_id, family_id):
        return None
    return await user_by_id_txn(cursor, user_id)


async def set_display_name_txn(cursor: Any, user_id: int, display_name: str) -> None:
    """/nick: how the user is shown; the username stays."""
    await cursor.execute(
        "UPDATE users SET display_name = %s WHERE id = %s AND deleted_at IS NULL",
        (display_name, user_id),
    )
