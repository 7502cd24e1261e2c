"""
One WebSocket connection at ``/ws``: authentication in the handshake, the token's
lifetime on the connection, and its frames, decoded once and dispatched to
``handle_<type>`` in the order they were sent (pings and typing aside).
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any, Callable, Protocol, cast

from autobahn.twisted.websocket import WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny, ConnectionRequest
from twisted.internet.defer import DeferredLock, ensureDeferred
from twisted.logger import Logger

from termrooms.domain.errors import RETRY_AFTER_SECONDS, ApiError, DatabaseUnavailable
from termrooms.domain.events import (
    AuthFrame,
    CommandFrame,
    EditFrame,
    JoinFrame,
    LeaveFrame,
    PingFrame,
    ReadFrame,
    SendFrame,
    TypingFrame,
    ack_frame,
    authed_frame,
    error_frame,
    frame_ref,
    joined_frame,
    parse_client_frame,
    pong_frame,
    reply_frame,
    typing_frame,
    welcome_frame,
)
from termrooms.domain.ratelimit import Bucket, RateLimit, take
from termrooms.domain.wire import decode_json, encode_json
from termrooms.transport.gateway.feeds import RoomFeed

if TYPE_CHECKING:
    from termrooms.transport.gateway.factory import GatewayFactory

_log = Logger()

HEARTBEAT_SECONDS = 25
MAX_FRAME_BYTES = 64 * 1024
BAD_FRAMES_BEFORE_CLOSE = 5
CLOSE_GOING_AWAY = 1001
CLOSE_TOKEN_ENDED = 4001
CLOSE_POLICY = 1008
CLOSE_RATE_LIMIT = 4008
CLOSE_TOO_SLOW = 4009
FLOODED_FRAMES_BEFORE_CLOSE = 50  # refused frames in a row before a flooder is closed
_UNORDERED_FRAMES = frozenset({"ping", "typing"})  # cheap, and order-free
QUEUED_FRAMES_LIMIT = 64  # a connection's frames waiting for an answer before it is not read


_UNAVAILABLE = ApiError(
    "unavailable",
    "The database is unavailable; try again shortly.",
    retry_after=RETRY_AFTER_SECONDS,
)


class Stream(Protocol):
    """What a connection asks of its TCP or TLS transport: writes, and reads paused
    and resumed (ITransport and IPushProducer together, which zope cannot spell)."""

    def write(self, data: bytes) -> None: ...

    def pauseProducing(self) -> None: ...

    def resumeProducing(self) -> None: ...


class GatewayProtocol(WebSocketServerProtocol):
    """One client connection."""

    factory: GatewayFactory
    autoPingTimeout: float  # one of Autobahn's CONFIG_ATTRS, copied from the factory
    feeds: dict[int, RoomFeed]
    user: Any = None
    family_id: str | None = None
    _token_expires_at: float = 0.0
    _registered = False
    _expiry: Any = None
    _bad_frames = 0
    _denial: ApiError | None = None
    _holds_slot = False  # counted in factory.opening while the handshake is under way
    _reading_paused = False  # too many of its frames wait for an answer

    # ------------------------------------------------------------------ handshake

    def __init__(self) -> None:
        super().__init__()
        self.feeds = {}
        self._in_order = DeferredLock()
        self._bucket: Bucket | None = None
        self._refused_in_a_row = 0

    def onConnect(self, request: ConnectionRequest) -> Any:
        # Handshakes still authenticating count: a burst of them would all find room.
        if len(self.factory.registry) + self.factory.opening >= self.factory.max_connections:
            self._deny(ApiError("unavailable", "This server is full; try another.", retry_after=5))
        self._holds_slot = True
        self.factory.opening += 1
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

    def succeedHandshake(self, res: Any) -> None:
        if self.state == self.STATE_CLOSED:
            # The client left while its token was checked. Autobahn would still open
            # the connection (onOpen, pings) and it would stay registered for ever,
            # holding a slot of --max-connections and the shutdown's drain.
            return None
        return super().succeedHandshake(res)

    @property
    def user_id(self) -> int:
        return self.user.id

    def _release_slot(self) -> None:
        """The handshake is over: open (counted in the registry now) or failed."""
        if self._holds_slot:
            self._holds_slot = False
            self.factory.opening -= 1

    def _deny(self, error: ApiError) -> None:
        self._release_slot()
        self._denial = error
        raise ConnectionDeny(error.status, error.detail)

    def sendHttpErrorResponse(self, code: int, reason: str, responseHeaders: Any = None) -> None:
        # The contract's error body on a refused handshake, not an empty response.
        error = self._denial or ApiError("bad_request", reason)
        self.factory.meters.error(error.error_code, "websocket")
        self.factory.meters.handshake_refused(error.error_code)
        _log.info(
            "websocket refused ({peer}): {status} {error_code}",
            peer=self.peer,
            status=code,
            error_code=error.error_code,
        )
        body = json.dumps(error.body()).encode("utf-8")
        retry_after = f"Retry-After: {error.retry_after}\r\n" if error.retry_after else ""
        head = (
            f"HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{retry_after}Connection: close\r\n\r\n"
        )
        self.sendData(head.encode("latin-1") + body)

    # ------------------------------------------------------------------ lifetime

    def onOpen(self) -> None:
        self._release_slot()
        self._registered = True
        self.factory.registry.add(self)
        _log.info(
            "websocket opened by {username} ({peer})",
            username=self.user.username,
            user_id=self.user_id,
            peer=self.peer,
        )
        self._schedule_expiry()
        self.send_frame(welcome_frame(self.user, self.factory.server_id, HEARTBEAT_SECONDS))
        if self.factory.draining:  # its handshake was under way when the drain began
            self.close_for_shutdown()

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self._release_slot()
        if self._expiry is not None and self._expiry.active():
            self._expiry.cancel()
        for room_id in list(self.feeds):
            self._unsubscribe(room_id)
        if self._registered:
            self._registered = False
            self.factory.registry.discard(self)
            if self.closedByMe and self.localCloseCode is not None:
                # Ours (4001, 4009, 1001...), not the code the client echoed back.
                code, reason = self.localCloseCode, self.localCloseReason
                self.factory.meters.server_closed(code)
            if isinstance(reason, bytes):
                reason = reason.decode("utf-8", "replace")
            _log.info(
                "websocket of {username} closed by the {closed_by}: {code} {reason}",
                username=self.user.username,
                user_id=self.user_id,
                peer=self.peer,
                code=code,
                reason=reason or "",
                closed_by="server" if self.closedByMe else "client",
                clean=wasClean,
            )

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

    def close_for_shutdown(self) -> None:
        """1001 behind every frame already written; read again to hear the close reply."""
        # sendClose() only takes 1000 and 3000-4999.
        self.sendCloseFrame(code=CLOSE_GOING_AWAY, reasonUtf8=b"server shutting down")
        if self.transport is not None:
            self.stream.resumeProducing()

    @property
    def stream(self) -> Stream:
        """The transport, while connected: a TCP or TLS one."""
        return cast(Stream, self.transport)

    # ------------------------------------------------------------------ frames

    def send_frame(self, frame: dict[str, Any]) -> None:
        if self.state != self.STATE_OPEN:
            # Closing or closed: nothing may follow a close frame (a late ack, a refusal).
            return
        self.factory.meters.frame_sent(frame["type"])
        self.sendPreparedMessage(self.factory.prepareMessage(encode_json(frame)))

    def sendPreparedMessage(self, preparedMsg: Any) -> None:
        # Autobahn's sendData formats a debug line for every write whatever the log level
        # (its arguments go through click's styling): a quarter of a busy room's CPU.
        # Compression is never negotiated here, so the framed bytes can go straight out,
        # unless Autobahn queued something of its own (a close) that they must follow.
        if self.send_queue:
            super().sendPreparedMessage(preparedMsg)
        else:
            self.stream.write(preparedMsg.payloadHybi)

    def send_error(self, error: ApiError, ref: Any = None) -> None:
        self.factory.meters.error(error.error_code, "websocket")
        self.send_frame(error_frame(error, ref))

    def onPing(self, payload: bytes) -> None:
        # A ping control frame costs a frame of the budget too: else a client that never
        # reads could have pongs written for it at line rate, piling up unsent.
        limit = self.factory.frame_limit
        if limit is not None and not self._within_frame_limit(limit):
            self.factory.meters.refused("ws-frames")
            return
        super().onPing(payload)

    def onAutoPingTimeout(self) -> None:
        if self._reading_paused:
            # The pong is most likely unread behind the frames we stopped reading: give
            # it another period once reading resumes, rather than drop a busy client.
            self.autoPingTimeoutCall = self.factory._batched_timer.call_later(
                self.autoPingTimeout, self.onAutoPingTimeout
            )
            return
        super().onAutoPingTimeout()

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if self.factory.draining:
            return  # unanswered, so the client sends it again after reconnecting
        if self.state != self.STATE_OPEN:
            return  # what a client sent after we closed (a flooder's backlog): dropped
        received = time.monotonic()
        limit = self.factory.frame_limit
        if limit is not None and not self._within_frame_limit(limit):
            self.factory.meters.refused("ws-frames")
            return
        raw = None
        if not isBinary:
            try:
                raw = decode_json(payload)
            except ValueError:
                pass
        if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
            self.factory.meters.frame_received("invalid")
            error = ApiError("invalid_json", "A frame is a JSON object with a type.")
            self._bad_frame(error, frame_ref(raw))
            return
        try:
            frame = parse_client_frame(raw)
        except ApiError as e:
            self.factory.meters.frame_received("invalid")
            if e.error_code == "bad_request":
                self._bad_frame(e, frame_ref(raw))
            else:
                self.send_error(e, frame_ref(raw))
            return
        self.factory.meters.frame_received(frame.type)
        handler = getattr(self, f"handle_{frame.type}")
        self.factory.in_flight += 1  # until _dispatch is done: the drain waits for it
        if frame.type in _UNORDERED_FRAMES:
            ensureDeferred(self._dispatch(handler, frame, received))
        else:
            # A connection's room frames run one after another, in the order sent: a send
            # right after a join finds the membership, and one client's messages are
            # stored in the order it sent them.
            self._in_order.run(lambda: ensureDeferred(self._dispatch(handler, frame, received)))
            if len(self._in_order.waiting) >= QUEUED_FRAMES_LIMIT and not self._reading_paused:
                # A client sending faster than its frames are answered: stop reading it
                # until they catch up, so it is TCP that holds the backlog, not our memory
                # (and CPU spent on frames whose answers come too late to matter).
                self._reading_paused = True
                self.stream.pauseProducing()

    async def _dispatch(self, handler: Callable[..., Any], frame: Any, received: float) -> None:
        try:
            await self._answer(handler, frame, received)
        finally:
            self.factory.in_flight -= 1
            if (
                self._reading_paused
                and len(self._in_order.waiting) <= QUEUED_FRAMES_LIMIT // 2
                and not self.factory.draining
            ):
                self._reading_paused = False
                self.stream.resumeProducing()

    async def _answer(self, handler: Callable[..., Any], frame: Any, received: float) -> None:
        try:
            await handler(frame)
            if frame.type == "send":  # answered with its ack
                self.factory.meters.ack_seconds.observe(time.monotonic() - received)
        except ApiError as e:
            self.send_error(e, frame.ref)
        except DatabaseUnavailable:
            self.send_error(_UNAVAILABLE, frame.ref)
        except Exception:
            _log.failure("{type} frame failed", type=frame.type)
            self.send_error(
                ApiError("internal_error", "Something went wrong on our side."), frame.ref
            )

    def _within_frame_limit(self, limit: RateLimit) -> bool:
        """The connection's token bucket: errors while over it, 4008 for a client that persists."""
        self._bucket, decision = take(self._bucket, limit, self.factory.clock.seconds())
        if decision.allowed:
            self._refused_in_a_row = 0
            return True
        self._refused_in_a_row += 1
        if self._refused_in_a_row >= FLOODED_FRAMES_BEFORE_CLOSE:
            self.sendClose(CLOSE_RATE_LIMIT, "rate limit abuse")
        elif self._refused_in_a_row == 1 or self._refused_in_a_row % 10 == 0:
            error = ApiError(
                "rate_limited", "Too many frames; slow down.", retry_after=decision.retry_after
            )
            self.send_error(error)
        return False

    def _bad_frame(self, error: ApiError, ref: Any = None) -> None:
        self._bad_frames += 1
        if self._bad_frames >= BAD_FRAMES_BEFORE_CLOSE:
            # sendClose() only takes 1000 and 3000-4999; 1008 is the contract's code here.
            self.sendCloseFrame(code=CLOSE_POLICY, reasonUtf8=b"too many bad frames")
        else:
            self.send_error(error, ref)

    async def handle_ping(self, frame: PingFrame) -> None:
        self.send_frame(pong_frame())

    async def handle_auth(self, frame: AuthFrame) -> None:
        """Renew the connection's token before it expires."""
        requester = await self.factory.auth().requester_for_token(frame.token)
        if requester.user_id != self.user_id:
            raise ApiError("forbidden", "The token is another user's.")
        self.user = requester.user  # as the database has it now (role, display name)
        self.family_id = requester.family_id
        self._token_expires_at = requester.token_expires_at
        self._schedule_expiry()
        expires_in = int(self._token_expires_at - self.factory.clock.seconds())
        self.send_frame(authed_frame(max(0, expires_in)))

    # ------------------------------------------------------------------ rooms

    async def handle_join(self, frame: JoinFrame) -> None:
        """Subscribe (joining a public room as member), then replay and go live in order."""
        rooms = self.factory.rooms()
        view = await rooms.join(frame.room, self.user)
        room = view.room
        feed = self.feeds.get(room.id)
        arriving = feed is None
        if feed is None:
            feed = self.feeds[room.id] = RoomFeed(self, room.id, room.name)
            self.factory.bus.subscribe(room.id, self)
        feed.catching_up = True
        try:
            # Subscribed first, so nothing committed from here on is missed; the replay
            # below and the live events buffered meanwhile are merged by seq.
            fresh = await rooms.view(room.name, self.user)
            last_seq = fresh.room.last_seq
            self.factory.bus.anchor(room.id, last_seq)
            online_now = await self.factory.presence.online_in([room.id])
            online = sorted({*online_now.get(room.id, ()), self.user.username})
            self.send_frame(joined_frame(room.name, fresh.room.topic, last_seq, online))
            if arriving:
                self.factory.presence.arrive(room.id, room.name, self.user.username, skip=self)
                feed.announced = True
            if frame.since is None:
                feed.next_seq = max(feed.next_seq, last_seq + 1)
            else:
                await feed.replay_from(frame.since, last_seq)
        except BaseException:
            # A half-made subscription would buffer live events forever: drop it, and
            # let the client join again (with since) once the error frame reaches it.
            self._unsubscribe(room.id)
            raise
        feed.go_live()

    async def handle_leave(self, frame: LeaveFrame) -> None:
        view = await self.factory.rooms().view(frame.room, self.user)
        self._unsubscribe(view.room.id)

    async def handle_send(self, frame: SendFrame) -> None:
        event, _ = await self.factory.rooms().post(
            frame.room, self.user, frame.body, frame.client_msg_id
        )
        # After the commit, and the same ack for a retried client_msg_id.
        self.send_frame(ack_frame(frame.client_msg_id, event.id, event.seq))

    async def handle_edit(self, frame: EditFrame) -> None:
        """As PATCH .../messages/{id}: the edit's event reaches the room's subscribers."""
        await self.factory.rooms().edit_message(frame.room, self.user, frame.id, lambda: frame.body)
        self.send_frame(reply_frame(frame.ref, True, "edited"))

    async def handle_read(self, frame: ReadFrame) -> None:
        await self.factory.rooms().mark_read(frame.room, self.user, frame.seq)

    async def handle_typing(self, frame: TypingFrame) -> None:
        feed = self._feed_named(frame.room)
        if not self.factory.typing_allowed(feed.room_id, self.user_id):
            return
        payload = encode_json(typing_frame(feed.room_name, self.user.username))
        self.factory.bus.publish(feed.room_id, None, payload, skip=self)

    async def handle_command(self, frame: CommandFrame) -> None:
        outcome = await self.factory.commands().run(frame.room, self.user, frame.line)
        self.send_frame(reply_frame(frame.ref, outcome.ok, outcome.text))
        if outcome.subscribe is not None:
            await self.handle_join(JoinFrame(room=outcome.subscribe))
        if outcome.unsubscribe is not None:
            for feed in list(self.feeds.values()):
                if feed.room_name.lower() == outcome.unsubscribe.lower():
                    self._unsubscribe(feed.room_id)

    def _feed_named(self, name: str) -> "RoomFeed":
        for feed in self.feeds.values():
            if feed.room_name.lower() == name.lower():
                return feed
        raise ApiError("not_found", f"Join {name} on this connection first.")

    def deliver(self, room_id: int, seq: int | None, prepared: Any) -> None:
        """From the bus: an ephemeral frame goes out; a stored event goes through its feed."""
        feed = self.feeds.get(room_id)
        if feed is None or self.state != WebSocketServerProtocol.STATE_OPEN:
            return
        self.factory.meters.deliveries += 1
        if seq is None:
            self.sendPreparedMessage(prepared)
        else:
            feed.offer(seq, prepared)
        if self._unsent_bytes() > self.factory.slow_consumer_bytes:
            # Rather than buffer without bound for a client that stopped reading.
            self.sendClose(CLOSE_TOO_SLOW, "too slow to keep up")

    def _unsent_bytes(self) -> int:
        transport = self.transport
        return len(getattr(transport, "dataBuffer", b"")) + getattr(transport, "_tempDataLen", 0)

    def leave_room(self, room_id: int, after_seq: int = 0) -> None:
        """Stop receiving a room (kicked, banned, the room deleted) once the event that
        says so, ``after_seq``, has gone out: at once if it has."""
        feed = self.feeds.get(room_id)
        if feed is None:
            return
        if feed.next_seq > after_seq:
            self._unsubscribe(room_id)
        else:
            feed.leave_after = after_seq
            self.factory.bus.anchor(room_id, after_seq)  # make sure it comes

    def _unsubscribe(self, room_id: int) -> None:
        feed = self.feeds.pop(room_id, None)
        if feed is None:
            return
        self.factory.bus.unsubscribe(room_id, self)
        if feed.announced:
            self.factory.presence.depart(room_id, feed.room_name, self.user.username)
        self.factory.departed(room_id, self.user_id)
