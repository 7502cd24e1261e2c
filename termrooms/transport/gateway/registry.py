"""Open connections by user, so that a session's end (logout, account deletion, a
revoked session) reaches its sockets at once, on this instance."""

from __future__ import annotations

from typing import Any, Awaitable, Callable

import attrs


@attrs.define(eq=False)
class ConnectionRegistry:
    """Open connections by user, so a session's end reaches its sockets at once."""

    by_user: dict[int, set[Any]] = attrs.field(factory=dict)

    def add(self, connection: Any) -> None:
        self.by_user.setdefault(connection.user_id, set()).add(connection)

    def discard(self, connection: Any) -> None:
        connections = self.by_user.get(connection.user_id)
        if connections is not None:
            connections.discard(connection)
            if not connections:
                del self.by_user[connection.user_id]

    def end_sessions(self, user_id: int, family_id: str | None, reason: str) -> int:
        """Close (4001) the user's connections, or only those of one session."""
        closed = 0
        for connection in list(self.by_user.get(user_id, ())):
            if family_id is None or connection.family_id == family_id:
                connection.close_for_token(reason)
                closed += 1
        return closed

    async def recheck(self, session_is_live: Callable[[int, str], Awaitable[bool]]) -> int:
        """Close the sockets whose sessions ended while nobody could tell us; how many."""
        closed = 0
        for connection in [c for group in self.by_user.values() for c in group]:
            if not await session_is_live(connection.user_id, connection.family_id):
                connection.close_for_token("session ended")
                closed += 1
        return closed

    def __len__(self) -> int:
        return sum(len(c) for c in self.by_user.values())
