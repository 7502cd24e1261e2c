"""
Blocks between users (protocol v1.1, Direct messages): who blocks whom. What a block
does is checked where it matters, in the statements that act: opening and posting to a
direct room, storing mentions, sending notices.
"""

from __future__ import annotations

from typing import Any

from termrooms.domain.errors import ApiError
from termrooms.domain.rules import field_error


def blocks(blocker: str, blocked: str) -> str:
    """Whether the user ``blocker`` blocks the user ``blocked`` (SQL expressions of their
    ids), for a WHERE clause: the one way every statement asks."""
    return (
        f"EXISTS (SELECT 1 FROM user_blocks k"
        f" WHERE k.blocker_id = {blocker} AND k.blocked_id = {blocked})"
    )


# Whether %(blocker)s blocks %(blocked)s.
BLOCKS = blocks("%(blocker)s", "%(blocked)s")


async def other_user_id_txn(cursor: Any, user_id: int, username: str, *, lock: bool = False) -> int:
    """The live account called ``username`` (any case), someone other than the caller:
    ``not_found`` for nobody (or a deleted account), 422 on ``username`` for oneself.
    ``lock`` holds the account (FOR SHARE) so that it is not deleted before the caller's
    transaction commits what it writes about them."""
    await cursor.execute(
        "SELECT id FROM users WHERE lower(username) = lower(%s) AND deleted_at IS NULL"
        + (" FOR SHARE" if lock else ""),
        (username,),
    )
    row = cursor.fetchone()
    if row is None:
        raise ApiError("not_found", f"No user called {username!r}.")
    if row[0] == user_id:
        raise field_error("username", "must be someone other than you")
    return int(row[0])


async def block_txn(cursor: Any, blocker_id: int, username: str) -> None:
    """Block the user (again: nothing changes)."""
    blocked_id = await other_user_id_txn(cursor, blocker_id, username, lock=True)
    await cursor.execute(
        "INSERT INTO user_blocks (blocker_id, blocked_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
        (blocker_id, blocked_id),
    )


async def unblock_txn(cursor: Any, blocker_id: int, username: str) -> None:
    """Lift a block (none: nothing changes)."""
    blocked_id = await other_user_id_txn(cursor, blocker_id, username)
    await cursor.execute(
        "DELETE FROM user_blocks WHERE blocker_id = %s AND blocked_id = %s",
        (blocker_id, blocked_id),
    )


async def blocked_names_txn(cursor: Any, blocker_id: int) -> list[str]:
    """The usernames the user blocks, by name."""
    await cursor.execute(
        "SELECT u.username FROM user_blocks k JOIN users u ON u.id = k.blocked_id"
        " WHERE k.blocker_id = %s ORDER BY lower(u.username)",
        (blocker_id,),
    )
    return [username for (username,) in cursor.fetchall()]


async def delete_blocks_of_txn(cursor: Any, user_id: int) -> None:
    """A deleted account's blocks go, both ways: they were about a person who is gone."""
    await cursor.execute(
        "DELETE FROM user_blocks WHERE blocker_id = %(user)s OR blocked_id = %(user)s",
        {"user": user_id},
    )
