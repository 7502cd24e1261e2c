"""What the gateway's connections share: limits, the bus, presence, the registry, typing
throttles, and the drain at shutdown."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable, cast

from autobahn.twisted.websocket import WebSocketServerFactory
from twisted.internet.task import deferLater

from termrooms.cluster.bus import EventBus, LocalBus
from termrooms.domain.browser_session import request_origin_allowed
from termrooms.domain.errors import ApiError
from termrooms.domain.events import Removal
from termrooms.domain.ratelimit import RateLimit
from termrooms.operations.metrics import Meters
from termrooms.transport.gateway.presence import Presence
from termrooms.transport.gateway.protocol import HEARTBEAT_SECONDS, MAX_FRAME_BYTES, GatewayProtocol
from termrooms.transport.gateway.registry import ConnectionRegistry

TYPING_EVERY_SECONDS = 2.0  # at most one typing frame per user, room and this interval
TYPING_RECORDS_BEFORE_SWEEP = 10_000
DRAIN_POLL_SECONDS = 0.01


class GatewayFactory(WebSocketServerFactory):
    """Builds connections; holds what they share."""

    protocol = GatewayProtocol  # type: ignore[assignment]  # Autobahn's factory is not generic

    def __init__(
        self,
        *,
        auth: Callable[[], Any],
        rooms: Callable[[], Any],
        commands: Callable[[], Any],
        clock: Any,
        server_id: str,
        allowed_origins: frozenset[str],
        max_connections: int = 10_000,
        max_message_bytes: int = MAX_FRAME_BYTES,
        frame_limit: RateLimit | None = None,
        slow_consumer_bytes: int = 1024 * 1024,
        meters: Meters | None = None,
    ) -> None:
        super().__init__()
        self.meters = meters or Meters()
        self.auth = auth
        self.rooms = rooms
        self.commands = commands
        # This instance's subscribers; in a cluster ``bus`` is a ClusterBus in front of it.
        self.local_bus = LocalBus(self.prepareMessage)
        self.bus: EventBus = self.local_bus
        self.presence = Presence(self.bus)
        self.clock = clock
        self.server_id = server_id
        self.allowed_origins = allowed_origins
        self.registry = ConnectionRegistry()
        self._departed: dict[tuple[int, int], datetime] = {}
        self._typing: dict[tuple[int, int], float] = {}
        self.max_connections = max_connections
        self.opening = 0  # handshakes admitted but not yet open
        self.draining = False
        self.in_flight = 0  # frames read whose answer is not written yet
        self.frame_limit = frame_limit
        self.slow_consumer_bytes = slow_consumer_bytes
        # Every limit of a connection, in one place.
        self.setProtocolOptions(
            maxMessagePayloadSize=max_message_bytes,
            maxFramePayloadSize=max_message_bytes,
            autoPingInterval=HEARTBEAT_SECONDS,
            autoPingTimeout=HEARTBEAT_SECONDS,
            openHandshakeTimeout=10,
            closeHandshakeTimeout=5,
            perMessageCompressionAccept=lambda offers: None,
            # Close a misbehaving client with its close code (1009, 1008) and a close
            # handshake, rather than a bare TCP drop the client would see as 1006.
            failByDrop=False,
        )

    def check_origin(self, origins: list[bytes] | None, host: bytes | None) -> None:
        """
        Refuse (403) a handshake from a browser page that is not ours. Checked on the
        HTTP request, before Autobahn parses it: Autobahn would answer 400 to ``null``
        and to Origins it cannot parse, and sees two Origin headers as one joined value.
        """
        if not request_origin_allowed(origins, host, self.allowed_origins):
            raise ApiError("forbidden", "This Origin may not open a WebSocket here.")

    async def drain(self) -> None:
        """
        The shutdown: read no more frames, let those read finish (a send's ack is
        written once its message is committed), then close every socket with 1001
        behind the frames already queued for it. Done once every socket is closed.
        """
        self.draining = True
        for connection in self._connections():
            if connection.transport is not None:
                connection.stream.pauseProducing()
        while self.in_flight:
            await deferLater(self.clock, DRAIN_POLL_SECONDS)
        for connection in self._connections():
            connection.close_for_shutdown()
        while len(self.registry):
            await deferLater(self.clock, DRAIN_POLL_SECONDS)

    def _connections(self) -> list[GatewayProtocol]:
        return [c for group in self.registry.by_user.values() for c in group]

    def typing_allowed(self, room_id: int, user_id: int) -> bool:
        """At most one typing frame per user and room every TYPING_EVERY_SECONDS, tabs
        together; the record of who typed is dropped once it can no longer matter."""
        now = self.clock.seconds()
        if now - self._typing.get((room_id, user_id), float("-inf")) < TYPING_EVERY_SECONDS:
            return False
        if len(self._typing) > TYPING_RECORDS_BEFORE_SWEEP:
            cutoff = now - TYPING_EVERY_SECONDS
            self._typing = {key: at for key, at in self._typing.items() if at > cutoff}
        self._typing[(room_id, user_id)] = now
        return True

    def seen_now(self) -> list[tuple[int, int, datetime]]:
        """(room, user, when) for every member seen since the last call: all subscribed
        sockets now, and those that left meanwhile."""
        now = datetime.now(timezone.utc)
        seen = {(room_id, user_id): when for (room_id, user_id), when in self._departed.items()}
        self._departed = {}
        for connections in self.registry.by_user.values():
            for connection in connections:
                for room_id in connection.feeds:
                    seen[(room_id, connection.user_id)] = now
        return [(room_id, user_id, when) for (room_id, user_id), when in seen.items()]

    def departed(self, room_id: int, user_id: int) -> None:
        self._departed[(room_id, user_id)] = datetime.now(timezone.utc)

    def has_user(self, user_id: int) -> bool:
        """Whether the user has a socket open on this instance."""
        return user_id in self.registry.by_user

    def send_to_user(self, user_id: int, frame: dict[str, Any]) -> None:
        """A frame to every open socket of the user here, subscribed to a room or not."""
        for connection in list(self.registry.by_user.get(user_id, ())):
            connection.send_frame(frame)

    def remove_from_room(self, removal: Removal) -> None:
        """A user's sockets (or every socket) stop receiving the room after its event."""
        if removal.user_id is None:
            # This factory's connections are the only subscribers of its bus.
            connections = cast(frozenset[GatewayProtocol], self.bus.subscribers(removal.room_id))
        else:
            connections = frozenset(self.registry.by_user.get(removal.user_id, ()))
        for connection in connections:
            connection.leave_room(removal.room_id, removal.after_seq)
