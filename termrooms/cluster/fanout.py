"""
Many instances on one PostgreSQL and one Redis.

Fan-out: each room has a Redis channel (``bus.room_channel``); an instance subscribes to
the rooms it has sockets in, so a room event crosses to each interested instance once,
not once per subscriber, and an instance never hears rooms nobody on it follows. Redis
pub/sub delivers at most once, so it is only the fast path. PostgreSQL is the truth:

- an instance tracks, per room, the seqs it has handed out (``bus.RoomHead``) and reads
  from PostgreSQL whatever a gap, a hint or a periodic last-seq check shows missing;
- a publisher whose Redis is away NOTIFYs a hint instead (``hint_event_txn``), so other
  instances keep receiving, at PostgreSQL's pace;
- an event whose publisher died between commit and publish is found by the periodic
  check of the rooms' ``last_seq`` (every ``POLL_SECONDS``, faster while Redis is away);
- after its subscription comes back, an instance checks every room at once.

Presence lives in Redis too: ``termrooms.cluster.presence``.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Coroutine

import attrs
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from termrooms.cluster.bus import (
    LocalBus,
    RoomHead,
    Subscriber,
    channel_room,
    decode_envelope,
    encode_envelope,
    room_channel,
)
from termrooms.cluster.redis import RedisAddress, RedisClient, Subscription
from termrooms.domain.events import RoomEvent

_log = Logger()

POLL_SECONDS = 2.0  # the periodic last-seq check: the bound on an unpublished event
POLL_SECONDS_WITHOUT_REDIS = 0.5
GAP_GRACE_SECONDS = 0.05  # how long a gap may wait for Redis before PostgreSQL fills it
FILL_PAGE = 500
FILL_RETRY_SECONDS = 1.0


@attrs.define
class BusCounters:
    """What the fallbacks did: the operator's view of how often PostgreSQL stood in."""

    published_redis: int = 0
    published_postgres: int = 0  # hints NOTIFYed because Redis could not carry the event
    filled_events: int = 0  # events read from PostgreSQL that Redis had not brought
    fills: int = 0
    polls: int = 0  # periodic last-seq checks run


@attrs.define(eq=False)
class ClusterBus:
    """The EventBus of an instance among several; see the module docstring."""

    local: LocalBus
    node_id: int
    redis: RedisClient
    address: RedisAddress
    clock: Any
    # (room, after seq, limit) -> events, oldest first
    events_after: Callable[[int, int, int], Awaitable[list[RoomEvent]]]
    # rooms -> their last committed seq
    last_seqs: Callable[[list[int]], Awaitable[dict[int, int]]]
    # (room, seq): NOTIFY the other instances through PostgreSQL
    hint: Callable[[int, int], Deferred[Any] | Coroutine[Any, Any, None]]
    encode: Callable[[RoomEvent], bytes]
    counters: BusCounters = attrs.field(factory=BusCounters)
    heads: dict[int, RoomHead] = attrs.field(factory=dict, init=False)
    subscription: Subscription | None = attrs.field(default=None, init=False)
    _poll: LoopingCall | None = attrs.field(default=None, init=False)
    _ticks: int = attrs.field(default=0, init=False)

    # ------------------------------------------------------------------ lifetime

    def start(self) -> None:
        self.subscription = Subscription(
            self.clock, self.address, on_message=self.received, on_ready=self._resubscribed
        )
        self.subscription.start()
        self._poll = LoopingCall(self._poll_rooms)
        self._poll.clock = self.clock
        self._poll.start(POLL_SECONDS_WITHOUT_REDIS, now=False)

    def stop(self) -> Deferred | None:
        if self._poll is not None and self._poll.running:
            self._poll.stop()
        if self.subscription is not None:
            return self.subscription.stop()
        return None

    @property
    def subscribed(self) -> bool:
        return self.subscription is not None and self.subscription.connected

    # ------------------------------------------------------------------ EventBus

    def subscribe(self, room_id: int, subscriber: Subscriber) -> None:
        self.local.subscribe(room_id, subscriber)
        if room_id not in self.heads:
            self.heads[room_id] = RoomHead()
            if self.subscription is not None:
                self.subscription.add(self._channel(room_id))

    def unsubscribe(self, room_id: int, subscriber: Subscriber) -> None:
        self.local.unsubscribe(room_id, subscriber)
        if not self.local.subscribers(room_id) and self.heads.pop(room_id, None) is not None:
            if self.subscription is not None:
                self.subscription.remove(self._channel(room_id))

    def subscribers(self, room_id: int) -> frozenset[Subscriber]:
        return self.local.subscribers(room_id)

    def publish(
        self, room_id: int, seq: int | None, payload: bytes, skip: Subscriber | None = None
    ) -> None:
        """Deliver here at once, then to the other instances: by Redis, or by a hint."""
        self._deliver(room_id, seq, payload, skip)
        if self.redis.connected:
            self.counters.published_redis += 1
            envelope = encode_envelope(self.node_id, seq, payload)
            d = self.redis.publish(self._channel(room_id), envelope)
            if seq is not None:
                d.addErrback(lambda _: self._hint(room_id, seq))
            else:
                d.addErrback(lambda _: None)  # ephemeral: best effort by definition
        elif seq is not None:
            self._hint(room_id, seq)

    def anchor(self, room_id: int, last_seq: int) -> None:
        head = self.heads.get(room_id)
        if head is not None:
            head.anchor(last_seq)
            self._check(room_id, head)

    # ------------------------------------------------------------------ arriving

    def received(self, channel: bytes, message: bytes) -> None:
        """A frame published by an instance (our own come back too: they are skipped)."""
        try:
            room_id = channel_room(channel)
            node_id, seq, payload = decode_envelope(message)
        except ValueError:
            _log.warn("ignoring a malformed message on {channel!r}", channel=channel)
            return
        if node_id != self.node_id:
            self._deliver(room_id, seq, payload)

    def hinted(self, room_id: int, seq: int) -> None:
        """PostgreSQL says the room has events up to ``seq`` (a NOTIFY, or the poll)."""
        head = self.heads.get(room_id)
        if head is not None and head.seen is not None and seq > head.known:
            head.known = seq
            self._check(room_id, head)

    def _deliver(
        self, room_id: int, seq: int | None, payload: bytes, skip: Subscriber | None = None
    ) -> None:
        self.local.publish(room_id, seq, payload, skip)
        if seq is not None:
            head = self.heads.get(room_id)
            if head is not None:
                head.saw(seq)
                if head.ahead:
                    self._check(room_id, head)

    # ------------------------------------------------------------------ filling from PostgreSQL

    def _check(self, room_id: int, head: RoomHead) -> None:
        if head.missing and not head.filling:
            head.filling = True
            self.clock.callLater(GAP_GRACE_SECONDS, lambda: ensureDeferred(self._fill(room_id)))

    async def _fill(self, room_id: int) -> None:
        """Read what this instance has not seen, until it has (or the room is left)."""
        head = self.heads.get(room_id)
        try:
            while head is not None and head is self.heads.get(room_id) and head.missing:
                upto = max(head.known, *head.ahead) if head.ahead else head.known
                after = head.seen
                assert after is not None  # a room with missing events is anchored
                page = await self.events_after(room_id, after, min(FILL_PAGE, upto - after))
                self.counters.fills += 1
                if head is not self.heads.get(room_id):
                    return
                for event in page:
                    if not head.handed_out(event.seq):
                        self.counters.filled_events += 1
                        self.local.publish(room_id, event.seq, self.encode(event))
                # PostgreSQL holds every event of the room after ``after``, in order.
                head.caught_up_to(page[-1].seq if page else upto)
        except Exception:
            _log.failure("reading missed events of room {room} failed; retrying", room=room_id)
            self.clock.callLater(FILL_RETRY_SECONDS, self._retry_fill, room_id, head)
            return
        if head is not None:
            head.filling = False

    def _retry_fill(self, room_id: int, head: RoomHead) -> None:
        head.filling = False
        if head is self.heads.get(room_id):
            self._check(room_id, head)

    def _poll_rooms(self) -> Deferred | None:
        """The periodic last-seq check; every ``POLL_SECONDS`` while Redis is up."""
        self._ticks += 1
        if self.subscribed and self._ticks % round(POLL_SECONDS / POLL_SECONDS_WITHOUT_REDIS):
            return None
        self.counters.polls += 1
        return ensureDeferred(self.check_rooms())

    async def check_rooms(self) -> None:
        """Compare each followed room's last committed seq with what went out here."""
        rooms = [room_id for room_id, head in self.heads.items() if head.seen is not None]
        if not rooms:
            return
        try:
            last = await self.last_seqs(rooms)
        except Exception as e:
            _log.debug("last-seq check skipped: {error}", error=str(e))
            return
        for room_id, seq in last.items():
            self.hinted(room_id, seq)

    def _resubscribed(self) -> None:
        """Back on Redis: whatever was published meanwhile was lost to us; look it up."""
        ensureDeferred(self.check_rooms())

    def _hint(self, room_id: int, seq: int) -> None:
        self.counters.published_postgres += 1
        ensureDeferred(self.hint(room_id, seq)).addErrback(
            lambda f: _log.warn(
                "could not hint room {room} to the others: {error}",
                room=room_id,
                error=f.getErrorMessage(),
            )
        )

    def _channel(self, room_id: int) -> bytes:
        return room_channel(self.address.namespace, room_id)
