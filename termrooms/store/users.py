"""Users: accounts and their server role."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import attrs
from psycopg2 import errors as pg_errors

from termrooms.errors import ApiError
from termrooms.store.audit import insert_audit_txn


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
