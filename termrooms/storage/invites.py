"""Server invites: a code lets its holder register while registration is closed."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import attrs

from termrooms.domain.invites import invite_code_hash
from termrooms.storage.audit import insert_audit_txn


@attrs.frozen
class Invite:
    code: str
    expires_at: datetime | None
    uses: int


async def create_invite_txn(
    cursor: Any,
    code: str,
    *,
    created_by: int,
    uses: int,
    expires_in: timedelta | None,
    request_id: str | None = None,
) -> Invite:
    """Store the invite's hash (never the code) and an audit row."""
    await cursor.execute(
        "INSERT INTO invites (code_hash, created_by, expires_at, max_uses, uses_left)"
        " VALUES (%s, %s, now() + %s, %s, %s) RETURNING expires_at",
        (invite_code_hash(code), created_by, expires_in, uses, uses),
    )
    (expires_at,) = cursor.fetchone()
    await insert_audit_txn(
        cursor,
        "invite.create",
        actor_id=created_by,
        data={"uses": uses, "expires_at": expires_at.isoformat() if expires_at else None},
        request_id=request_id,
    )
    return Invite(code, expires_at, uses)


async def redeem_invite_txn(cursor: Any, code: str) -> bool:
    """Use up one use of a live invite; False when it is unknown, spent or expired."""
    await cursor.execute(
        "UPDATE invites SET uses_left = uses_left - 1"
        " WHERE code_hash = %s AND uses_left > 0 AND (expires_at IS NULL OR expires_at > now())"
        " RETURNING 1",
        (invite_code_hash(code),),
    )
    return cursor.fetchone() is not None
