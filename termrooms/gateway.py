"""
The WebSocket gateway at ``/ws``: authentication in the handshake, the connection's
token lifetime, and the registry that lets the rest of the server close a user's
sockets (logout, account deletion, a revoked session) with 4001.

Frames are JSON objects dispatched to ``handle_<type>``; the room frames of the
contract are added by the rooms work on this same protocol.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable, Protocol

import attrs
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny, ConnectionRequest
from twisted.internet.defer import Deferred, DeferredLock, ensureDeferred
from twisted.internet.task import deferLater
from twisted.logger import Logger

from termrooms.browser_session import request_origin_allowed
from termrooms.bus import EventBus, LocalBus, Subscriber
from termrooms.database import DatabaseUnavailable
from termrooms.errors import ApiError
from termrooms.events import (
    AuthFrame,
    CommandFrame,
    JoinFrame,
    LeaveFrame,
    PingFrame,
    ReadFrame,
    SendFrame,
    TypingFrame,
    ack_frame,
    authed_frame,
    error_frame,
    event_json,
    frame_ref,
    history_truncated_frame,
    joined_frame,
    parse_client_frame,
    pong_frame,
    presence_frame,
    reply_frame,
    typing_frame,
    welcome_frame,
)
from termrooms.metrics import Meters
from termrooms.ratelimit import Bucket, RateLimit, take
from termrooms.store.rooms import Removal
from termrooms.wire import decode_json, encode_json

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
TYPING_EVERY_SECONDS = 2.0  # at most one typing frame per user, room and this interval
TYPING_RECORDS_BEFORE_SWEEP = 10_000
DRAIN_POLL_SECONDS = 0.01
REPLAY_PAGE = 200  # events read from PostgreSQL at a time when catching a client up
# How long a seq gap may wait for the bus before this socket reads it from PostgreSQL;
# longer than the cluster bus's own grace, so one read per instance fills a gap, not one
# per socket.
REFILL_DELAY_SECONDS = 0.25


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
    feeds: dict[int, "RoomFeed"]
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
            self.transport.resumeProducing()

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
            self.transport.write(preparedMsg.payloadHybi)

    def send_error(self, error: ApiError, ref: Any = None) -> None:
        self.factory.meters.error(error.error_code, "websocket")
        self.send_frame(error_frame(error, ref))

    def onPing(self, payload: bytes) -> None:
        # A ping control frame costs a frame of the budget too: else a client that never
        # reads could have pongs written for it at line rate, piling up unsent.
        if self.factory.frame_limit is not None and not self._within_frame_limit():
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
        if self.factory.frame_limit is not None and not self._within_frame_limit():
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
                self.transport.pauseProducing()

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
                self.transport.resumeProducing()

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

    def _within_frame_limit(self) -> bool:
        """The connection's token bucket: errors while over it, 4008 for a client that persists."""
        self._bucket, decision = take(
            self._bucket, self.factory.frame_limit, self.factory.clock.seconds()
        )
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
        if arriving:
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


@attrs.define(eq=False)
class RoomFeed:
    """
    One connection's view of one room: stored events go out exactly once and in seq
    order. Live events that arrive early (during a replay, or ahead of a missing seq) wait
    in ``pending``; a gap that the bus does not fill soon is read from PostgreSQL.
    """

    connection: GatewayProtocol
    room_id: int
    room_name: str
    next_seq: int = 1
    catching_up: bool = True
    pending: dict[int, Any] = attrs.field(factory=dict)
    refilling: bool = False
    announced: bool = False  # counted in the room's presence
    leave_after: int | None = None  # unsubscribe once this seq has gone out
    left: bool = False  # it has: nothing more goes out

    def _sent_upto(self) -> None:
        if self.leave_after is not None and self.next_seq > self.leave_after and not self.left:
            self.left = True
            self.pending.clear()
            # Not from inside the publish that delivered the removing event: the others
            # must get that event before the offline presence frame this leave sends.
            self.connection.factory.clock.callLater(
                0, self.connection.leave_room, self.room_id, self.leave_after
            )

    def offer(self, seq: int, prepared: Any) -> None:
        if seq < self.next_seq or self.left:
            return  # seen already, or no longer ours
        if self.catching_up or seq > self.next_seq:
            self.pending[seq] = prepared
            if not self.catching_up:
                self._schedule_refill()
            return
        self.connection.sendPreparedMessage(prepared)
        self.next_seq += 1
        if self.pending or self.leave_after is not None:
            self._drain()

    def _drain(self) -> None:
        while self.next_seq in self.pending:
            self.connection.sendPreparedMessage(self.pending.pop(self.next_seq))
            self.next_seq += 1
        for stale in [s for s in self.pending if s < self.next_seq]:
            del self.pending[stale]
        self._sent_upto()

    async def replay_from(self, since: int, last_seq: int) -> None:
        """Every event after ``since`` up to ``last_seq``, a page at a time."""
        rooms = self.connection.factory.rooms()
        self.next_seq = since + 1
        while self.next_seq <= last_seq:
            page = await rooms.events_after(self.room_id, self.next_seq - 1, REPLAY_PAGE)
            if not page:
                # Retention removed every event up to last_seq: say so, and go on from
                # the next one (left at a removed seq, the feed would wait for it forever).
                self.connection.send_frame(history_truncated_frame(self.room_name, last_seq + 1))
                self.next_seq = last_seq + 1
                break
            if page[0].seq > self.next_seq:
                self.connection.send_frame(history_truncated_frame(self.room_name, page[0].seq))
            for event in page:
                self.connection.send_frame(event_json(event))
                self.next_seq = event.seq + 1
            await self._until_sent()

    async def _until_sent(self) -> None:
        """Let a long replay go out page by page instead of piling up in memory."""
        connection = self.connection
        limit = connection.factory.slow_consumer_bytes // 2
        while connection._unsent_bytes() > limit and connection.state == connection.STATE_OPEN:
            await deferLater(connection.factory.clock, 0.01)

    def go_live(self) -> None:
        self.catching_up = False
        self._drain()
        if self.pending:
            self._schedule_refill()

    def _schedule_refill(self) -> None:
        if not self.refilling:
            self.refilling = True
            clock = self.connection.factory.clock
            clock.callLater(REFILL_DELAY_SECONDS, lambda: ensureDeferred(self._refill()))

    async def _refill(self) -> None:
        """Read the events the bus skipped, then deliver what waited behind them."""
        try:
            while self.pending and not self.catching_up:
                upto = min(self.pending)
                if upto <= self.next_seq:
                    self._drain()
                    continue
                rooms = self.connection.factory.rooms()
                page = await rooms.events_after(
                    self.room_id, self.next_seq - 1, min(REPLAY_PAGE, upto - self.next_seq)
                )
                if not page:
                    break
                for event in page:
                    if event.seq == self.next_seq:
                        self.connection.send_frame(event_json(event))
                        self.next_seq += 1
                self._drain()
        finally:
            self.refilling = False


class SharedPresence(Protocol):
    """Presence kept for every instance together (see ``termrooms.cluster``)."""

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
            shared = self.shared and self.shared.arrive
            self._tell(shared, room_id, room_name, username, "online", skip)

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
            shared = self.shared and self.shared.depart
            self._tell(shared, room_id, room_name, username, "offline")

    def _tell(
        self,
        shared: Callable[[int, str, str], Deferred] | None,
        room_id: int,
        room_name: str,
        username: str,
        status: str,
        skip: Subscriber | None = None,
    ) -> None:
        """Announce, unless another of the user's sockets elsewhere already stands for it."""
        if shared is None or not self.shared.connected:
            self.announce(room_id, room_name, username, status, skip)
            return
        shared(room_id, room_name, username).addCallbacks(
            lambda changed: changed and self.announce(room_id, room_name, username, status, skip),
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


class GatewayFactory(WebSocketServerFactory):
    """Builds connections; holds what they share."""

    protocol = GatewayProtocol

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
        self.bus: EventBus = LocalBus(self.prepareMessage)
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
                connection.transport.pauseProducing()
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

    def remove_from_room(self, removal: Removal) -> None:
        """A user's sockets (or every socket) stop receiving the room after its event."""
        if removal.user_id is None:
            connections = self.bus.subscribers(removal.room_id)
        else:
            connections = frozenset(self.registry.by_user.get(removal.user_id, ()))
        for connection in connections:
            connection.leave_room(removal.room_id, removal.after_seq)
