"""Who is online in each room, counted per user across tabs and, through the cluster's
shared presence, across instances; presence frames when that changes."""

from __future__ import annotations

from typing import Callable, Protocol

import attrs
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from termrooms.cluster.bus import EventBus, Subscriber
from termrooms.domain.events import presence_frame
from termrooms.domain.wire import encode_json

_log = Logger()


class SharedPresence(Protocol):
    """Presence kept for every instance together (``termrooms.cluster.presence`` in a cluster)."""

    @property
    def connected(self) -> bool: ...

    def arrive(self, room_id: int, room_name: str, username: str) -> Deferred: ...

    def depart(self, room_id: int, room_name: str, username: str) -> Deferred: ...

    def online_in(self, room_ids: list[int]) -> Deferred: ...


@attrs.define(eq=False)
class Presence:
    """
    Who is online in each room: users with at least one socket subscribed. Several tabs
    (and, with ``shared``, several instances) count as one; presence frames go out when
    the first socket opens and when the last closes. While the shared store is away,
    this instance's own sockets decide alone.
    """

    bus: EventBus
    shared: SharedPresence | None = None
    _rooms: dict[int, dict[str, int]] = attrs.field(factory=dict)
    _names: dict[int, str] = attrs.field(factory=dict)

    def arrive(
        self, room_id: int, room_name: str, username: str, skip: Subscriber | None = None
    ) -> None:
        counts = self._rooms.setdefault(room_id, {})
        self._names[room_id] = room_name
        counts[username] = counts.get(username, 0) + 1
        if counts[username] == 1:
            self._tell(
                lambda shared: shared.arrive(room_id, room_name, username),
                room_id,
                room_name,
                username,
                "online",
                skip,
            )

    def depart(self, room_id: int, room_name: str, username: str) -> None:
        counts = self._rooms.get(room_id, {})
        if username not in counts:
            return
        counts[username] -= 1
        if counts[username] == 0:
            del counts[username]
            if not counts:
                del self._rooms[room_id]
                del self._names[room_id]
            self._tell(
                lambda shared: shared.depart(room_id, room_name, username),
                room_id,
                room_name,
                username,
                "offline",
            )

    def _tell(
        self,
        change: Callable[[SharedPresence], Deferred],
        room_id: int,
        room_name: str,
        username: str,
        status: str,
        skip: Subscriber | None = None,
    ) -> None:
        """Announce, unless another of the user's sockets elsewhere already stands for it."""
        shared = self.shared
        if shared is None or not shared.connected:
            self.announce(room_id, room_name, username, status, skip)
            return

        def announce_if_changed(changed: bool) -> None:
            if changed:
                self.announce(room_id, room_name, username, status, skip)

        change(shared).addCallbacks(
            announce_if_changed,
            lambda failure: self.announce(room_id, room_name, username, status, skip),
        )

    def announce(
        self,
        room_id: int,
        room_name: str,
        username: str,
        status: str,
        skip: Subscriber | None = None,
    ) -> None:
        frame = presence_frame(room_name, username, status)
        self.bus.publish(room_id, None, encode_json(frame), skip=skip)

    def here(self) -> list[tuple[int, str, str]]:
        """(room, room name, username) of every user with a socket on this instance."""
        return [
            (room_id, self._names[room_id], username)
            for room_id, counts in self._rooms.items()
            for username in counts
        ]

    async def online_in(self, room_ids: list[int]) -> dict[int, list[str]]:
        """Usernames online in each of the rooms (rooms with nobody are left out)."""
        online = {rid: set(self._rooms[rid]) for rid in room_ids if rid in self._rooms}
        if self.shared is not None and self.shared.connected:
            try:
                everywhere = await self.shared.online_in(room_ids)
            except Exception:
                _log.warn("presence from Redis failed; showing this instance's only")
            else:
                for room_id, usernames in everywhere.items():
                    if usernames:
                        online.setdefault(room_id, set()).update(usernames)
        return {room_id: sorted(usernames) for room_id, usernames in online.items()}
