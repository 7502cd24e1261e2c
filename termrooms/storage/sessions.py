"""
Login sessions: refresh-token families. Every login starts a family; every refresh spends
its token and issues the next in the same family; presenting a spent token again means
it was stolen or replayed, so the whole family is revoked (RFC 9700 refresh rotation).
Only SHA-256 hashes of tokens are stored.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any, Literal

import attrs

from termrooms.storage.audit import insert_audit_txn

RefreshKind = Literal["rotated", "reused", "expired", "invalid"]


@attrs.frozen
class RefreshOutcome:
    """What presenting a refresh token led to; only ``rotated`` carries a new session."""

    kind: RefreshKind
    user_id: int | None = None
    family_id: str | None = None


async def start_family_txn(
    cursor: Any, user_id: int, token_hash: bytes, expires_at: datetime
) -> str:
    """A new session for ``user_id`` with its first refresh token; returns the family id."""
    await cursor.execute(
        "INSERT INTO refresh_token_families (user_id) VALUES (%s) RETURNING id::text",
        (user_id,),
    )
    (family_id,) = cursor.fetchone()
    await cursor.execute(
        "INSERT INTO refresh_tokens (token_hash, family_id, expires_at) VALUES (%s, %s, %s)",
        (token_hash, family_id, expires_at),
    )
    return family_id


async def rotate_refresh_txn(
    cursor: Any,
    token_hash: bytes,
    next_hash: bytes,
    next_expires_at: datetime,
    request_id: str | None = None,
) -> RefreshOutcome:
    """
    Spend the presented token and issue the next one, or revoke its family when it was
    spent already. Rows are locked so two refreshes with one token cannot both win.
    """
    await cursor.execute(
        "SELECT t.family_id::text, t.spent_at IS NOT NULL, t.expires_at <= now(),"
        "       f.revoked_at IS NOT NULL, f.user_id,"
        "       u.deleted_at IS NOT NULL OR u.disabled_at IS NOT NULL"
        "  FROM refresh_tokens t"
        "  JOIN refresh_token_families f ON f.id = t.family_id"
        "  JOIN users u ON u.id = f.user_id"
        " WHERE t.token_hash = %s"
        "   FOR UPDATE OF t, f",
        (token_hash,),
    )
    row = cursor.fetchone()
    if row is None:
        return RefreshOutcome("invalid")
    family_id, spent, expired, revoked, user_id, user_gone = row
    if revoked or user_gone:
        return RefreshOutcome("invalid", user_id, family_id)
    if spent:
        await _revoke_families_txn(cursor, "family_id", family_id, "reused")
        await insert_audit_txn(
            cursor,
            "auth.refresh_reused",
            actor_id=user_id,
            target_user_id=user_id,
            data={"family": family_id},
            request_id=request_id,
        )
        return RefreshOutcome("reused", user_id, family_id)
    if expired:
        return RefreshOutcome("expired", user_id, family_id)
    await cursor.execute(
        "UPDATE refresh_tokens SET spent_at = now() WHERE token_hash = %s", (token_hash,)
    )
    await cursor.execute(
        "INSERT INTO refresh_tokens (token_hash, family_id, expires_at) VALUES (%s, %s, %s)",
        (next_hash, family_id, next_expires_at),
    )
    return RefreshOutcome("rotated", user_id, family_id)


async def revoke_user_sessions_txn(cursor: Any, user_id: int, reason: str) -> list[str]:
    """Revoke every live family of a user (logout, deletion, disabling); returns their ids."""
    return await _revoke_families_txn(cursor, "user_id", user_id, reason)


async def _revoke_families_txn(cursor: Any, column: str, value: Any, reason: str) -> list[str]:
    where = {"user_id": "user_id = %s", "family_id": "id = %s::uuid"}[column]
    await cursor.execute(
        "UPDATE refresh_token_families SET revoked_at = now(), revoked_reason = %s"
        f" WHERE {where} AND revoked_at IS NULL RETURNING id::text, user_id",
        (reason, value),
    )
    revoked = cursor.fetchall()
    if revoked:
        user_id = revoked[0][1]
        family_id = revoked[0][0] if column == "family_id" else None
        await notify_sessions_ended_txn(cursor, SessionsEnded(user_id, family_id, reason))
    return [family_id for family_id, _ in revoked]


SESSIONS_ENDED_CHANNEL = "termrooms_sessions_ended"


@attrs.frozen
class SessionsEnded:
    """A user's sessions (all, or one family) ended: their sockets close with 4001."""

    user_id: int
    family_id: str | None
    reason: str

    def payload(self) -> str:
        return json.dumps(
            {"user_id": str(self.user_id), "family_id": self.family_id, "reason": self.reason}
        )

    @classmethod
    def from_payload(cls, payload: str) -> "SessionsEnded":
        data = json.loads(payload)
        return cls(int(data["user_id"]), data["family_id"], str(data["reason"]))


async def notify_sessions_ended_txn(cursor: Any, ended: SessionsEnded) -> None:
    """Tell every instance, when this transaction commits (NOTIFY waits for the commit)."""
    await cursor.execute("SELECT pg_notify(%s, %s)", (SESSIONS_ENDED_CHANNEL, ended.payload()))


async def logout_txn(cursor: Any, user_id: int, request_id: str | None = None) -> None:
    """Revoke every session of the user, with its audit row."""
    await revoke_user_sessions_txn(cursor, user_id, "logout")
    await insert_audit_txn(
        cursor, "auth.logout", actor_id=user_id, target_user_id=user_id, request_id=request_id
    )


def is_family_id(family_id: str) -> bool:
    """Whether the text can name a family (a UUID): any other ``sid`` names none, and
    must not reach the ``::uuid`` cast, which would fail the whole request."""
    try:
        uuid.UUID(family_id)
    except (TypeError, ValueError, AttributeError):
        return False
    return True


async def session_is_live_txn(cursor: Any, user_id: int, family_id: str) -> bool:
    """Whether an access token's session still stands: family unrevoked, user active."""
    if not is_family_id(family_id):
        return False
    await cursor.execute(
        "SELECT 1 FROM refresh_token_families f JOIN users u ON u.id = f.user_id"
        " WHERE f.id = %s::uuid AND f.user_id = %s AND f.revoked_at IS NULL"
        "   AND u.deleted_at IS NULL AND u.disabled_at IS NULL",
        (family_id, user_id),
    )
    return cursor.fetchone() is not None
