"""
The WebSocket gateway at ``/ws``: authentication in the handshake, the connection's
token lifetime, and the registry that lets the rest of the server close a user's
sockets (logout, account deletion, a revoked session) with 4001.

Frames are JSON objects dispatched to ``handle_<type>``; the room frames of the
contract are added by the rooms work on this same protocol.
"""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable
from urllib.parse import urlsplit

import attrs
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny, ConnectionRequest
from twisted.internet.defer import ensureDeferred
from twisted.logger import Logger

from termrooms.database import DatabaseUnavailable
from termrooms.errors import ApiError
from termrooms.wire import user_json

_log = Logger()

HEARTBEAT_SECONDS = 25
MAX_FRAME_BYTES = 64 * 1024
BAD_FRAMES_BEFORE_CLOSE = 5
CLOSE_TOKEN_ENDED = 4001
CLOSE_POLICY = 1008
# Frames of the contract that the rooms work implements; until then they get an error.
ROOM_FRAMES = frozenset({"join", "leave", "send", "command", "typing", "read"})


def origin_allowed(origin: str, host: str | None, allowed: frozenset[str]) -> bool:
    """A browser Origin is allowed when it is this server's own or configured."""
    parts = urlsplit(origin.strip().lower())
    if not parts.scheme or not parts.netloc:
        return False
    normalised = f"{parts.scheme}://{parts.netloc}"
    if normalised in allowed:
        return True
    return host is not None and parts.scheme in ("http", "https") and parts.netloc == host.lower()


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


_UNAVAILABLE = ApiError(
    "unavailable", "The database is unavailable; try again shortly.", retry_after=5
)


class GatewayProtocol(WebSocketServerProtocol):
    """One client connection."""

    factory: "GatewayFactory"
    user: Any = None
    family_id: str | None = None
    _token_expires_at: float = 0.0
    _registered = False
    _expiry: Any = None
    _bad_frames = 0
    _denial: ApiError | None = None

    # ------------------------------------------------------------------ handshake

    def onConnect(self, request: ConnectionRequest) -> Any:
        origin = request.headers.get("origin")
        # request.host has lost its port; the Host header as sent has it.
        host = request.headers.get("host")
        if origin is not None and not self.factory.origin_allowed(origin, host):
            self._deny(ApiError("forbidden", "This Origin may not open a WebSocket here."))
        token = (request.params.get("token") or [None])[0]
        if not token:
            self._deny(ApiError("unauthorized", "Pass the access token as ?token=."))
        return ensureDeferred(self._authenticate(token))

    async def _authenticate(self, token: str) -> None:
        try:
            requester = await self.factory.auth().requester_for_token(token)
        except ApiError as e:
            self._deny(e)
        except DatabaseUnavailable:
            self._deny(_UNAVAILABLE)
        self.user = requester.user
        self.family_id = requester.family_id
        self._token_expires_at = requester.token_expires_at
        return None

    @property
    def user_id(self) -> int:
        return self.user.id

    def _deny(self, error: ApiError) -> None:
        self._denial = error
        raise ConnectionDeny(error.status, error.detail)

    def sendHttpErrorResponse(self, code: int, reason: str, responseHeaders: Any = None) -> None:
        # The contract's error body on a refused handshake, not an empty response.
        error = self._denial or ApiError("bad_request", reason)
        body = json.dumps(error.body()).encode("utf-8")
        retry_after = f"Retry-After: {error.retry_after}\r\n" if error.retry_after else ""
        head = (
            f"HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{retry_after}Connection: close\r\n\r\n"
        )
        self.sendData(head.encode("latin-1") + body)

    # ------------------------------------------------------------------ lifetime

    def onOpen(self) -> None:
        self._registered = True
        self.factory.registry.add(self)
        self._schedule_expiry()
        self.send_frame(
            {
                "type": "welcome",
                "user": user_json(self.user),
                "server_id": self.factory.server_id,
                "heartbeat_s": HEARTBEAT_SECONDS,
            }
        )

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        if self._expiry is not None and self._expiry.active():
            self._expiry.cancel()
        if self._registered:
            self._registered = False
            self.factory.registry.discard(self)

    def _schedule_expiry(self) -> None:
        if self._expiry is not None and self._expiry.active():
            self._expiry.cancel()
        delay = max(0.0, self._token_expires_at - self.factory.clock.seconds())
        self._expiry = self.factory.clock.callLater(
            delay, self.close_for_token, "the access token expired"
        )

    def close_for_token(self, reason: str) -> None:
        """4001: refresh the token, then reconnect."""
        self.sendClose(CLOSE_TOKEN_ENDED, reason)

    # ------------------------------------------------------------------ frames

    def send_frame(self, frame: dict[str, Any]) -> None:
        self.sendMessage(json.dumps(frame, separators=(",", ":")).encode("utf-8"))

    def send_error(self, error: ApiError, ref: Any = None) -> None:
        self.send_frame({"type": "error", **error.body(), "ref": ref})

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        frame = None
        if not isBinary:
            try:
                frame = json.loads(payload)
            except ValueError:
                pass
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            self._bad_frame(ApiError("invalid_json", "A frame is a JSON object with a type."))
            return
        handler = getattr(self, f"handle_{frame['type']}", None)
        ref = frame.get("ref")
        if handler is None:
            if frame["type"] in ROOM_FRAMES:
                self.send_error(
                    ApiError("bad_request", f"{frame['type']} frames are not served yet."), ref
                )
            else:
                self._bad_frame(ApiError("bad_request", f"Unknown frame type {frame['type']!r}."))
            return
        ensureDeferred(self._dispatch(handler, frame, ref))

    async def _dispatch(self, handler: Callable[..., Any], frame: dict[str, Any], ref: Any) -> None:
        try:
            await handler(frame)
        except ApiError as e:
            self.send_error(e, ref)
        except DatabaseUnavailable:
            self.send_error(_UNAVAILABLE, ref)
        except Exception:
            _log.failure("{type} frame failed", type=frame.get("type"))
            self.send_error(ApiError("internal_error", "Something went wrong on our side."), ref)

    def _bad_frame(self, error: ApiError) -> None:
        self._bad_frames += 1
        if self._bad_frames >= BAD_FRAMES_BEFORE_CLOSE:
            # sendClose() only takes 1000 and 3000-4999; 1008 is the contract's code here.
            self.sendCloseFrame(code=CLOSE_POLICY, reasonUtf8=b"too many bad frames")
        else:
            self.send_error(error)

    async def handle_ping(self, frame: dict[str, Any]) -> None:
        self.send_frame({"type": "pong"})

    async def handle_auth(self, frame: dict[str, Any]) -> None:
        """Renew the connection's token before it expires."""
        token = frame.get("token")
        if not isinstance(token, str) or not token:
            raise ApiError("unauthorized", "An auth frame carries the new access token.")
        requester = await self.factory.auth().requester_for_token(token)
        if requester.user_id != self.user_id:
            raise ApiError("forbidden", "The token is another user's.")
        self.family_id = requester.family_id
        self._token_expires_at = requester.token_expires_at
        self._schedule_expiry()
        expires_in = int(self._token_expires_at - self.factory.clock.seconds())
        self.send_frame({"type": "authed", "expires_in": max(0, expires_in)})


class GatewayFactory(WebSocketServerFactory):
    """Builds connections; holds what they share."""

    protocol = GatewayProtocol

    def __init__(
        self,
        *,
        auth: Callable[[], Any],
        clock: Any,
        server_id: str,
        allowed_origins: frozenset[str],
    ) -> None:
        super().__init__()
        self.auth = auth
        self.clock = clock
        self.server_id = server_id
        self.allowed_origins = allowed_origins
        self.registry = ConnectionRegistry()
        self.setProtocolOptions(
            maxMessagePayloadSize=MAX_FRAME_BYTES,
            maxFramePayloadSize=MAX_FRAME_BYTES,
            autoPingInterval=HEARTBEAT_SECONDS,
            autoPingTimeout=HEARTBEAT_SECONDS,
            openHandshakeTimeout=10,
            closeHandshakeTimeout=5,
            perMessageCompressionAccept=lambda offers: None,
        )

    def origin_allowed(self, origin: str, host: str | None) -> bool:
        return origin_allowed(origin, host, self.allowed_origins)
