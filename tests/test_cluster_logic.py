"""
The cluster bus's decisions with a Clock and stand-ins for Redis and PostgreSQL: when
it reads from PostgreSQL, how often, and that it hands each seq out once. (The same bus
against real Redis and PostgreSQL: test_cluster_bus and test_cluster.)
"""

from __future__ import annotations

from datetime import datetime, timezone

import attrs
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock

from termrooms.cluster.bus import LocalBus, encode_envelope
from termrooms.cluster.fanout import (
    GAP_GRACE_SECONDS,
    POLL_SECONDS,
    POLL_SECONDS_WITHOUT_REDIS,
    ClusterBus,
)
from termrooms.cluster.redis import RedisAddress
from termrooms.domain.events import RoomEvent

ROOM = 77


@attrs.define
class FakeRedis:
    connected: bool = True
    published: list = attrs.field(factory=list)
    fail_publish: bool = False

    def publish(self, channel: bytes, message: bytes) -> Deferred:
        if self.fail_publish:
            return fail(ConnectionError("lost"))
        self.published.append((channel, message))
        return succeed(1)


@attrs.define
class FakeSubscription:
    connected: bool = True
    channels: set = attrs.field(factory=set)

    def add(self, channel: bytes) -> None:
        self.channels.add(channel)

    def remove(self, channel: bytes) -> None:
        self.channels.discard(channel)


@attrs.define(eq=False)
class Sink:
    got: list = attrs.field(factory=list)

    def deliver(self, room_id: int, seq: int | None, prepared: bytes) -> None:
        self.got.append(seq)


def event(seq: int) -> RoomEvent:
    return RoomEvent(
        id=1000 + seq,
        room_id=ROOM,
        room_name="lobby",
        seq=seq,
        type="message",
        created_at=datetime(2026, 1, 1, tzinfo=timezone.utc),
        user="ada",
        body=f"m{seq}",
    )


@attrs.define
class World:
    clock: Clock = attrs.field(factory=Clock)
    redis: FakeRedis = attrs.field(factory=FakeRedis)
    committed: int = 0  # the room's last_seq in "PostgreSQL"
    reads: list = attrs.field(factory=list)
    polls: int = 0
    hints: list = attrs.field(factory=list)

    async def events_after(self, room_id: int, after: int, limit: int) -> list[RoomEvent]:
        self.reads.append((after, limit))
        return [event(s) for s in range(after + 1, min(self.committed, after + limit) + 1)]

    async def last_seqs(self, rooms: list[int]) -> dict[int, int]:
        self.polls += 1
        return {ROOM: self.committed}

    async def hint(self, room_id: int, seq: int) -> None:
        self.hints.append((room_id, seq))

    def bus(self) -> ClusterBus:
        bus = ClusterBus(
            local=LocalBus(lambda payload: payload),
            node_id=1,
            redis=self.redis,
            address=RedisAddress(),
            clock=self.clock,
            events_after=self.events_after,
            last_seqs=self.last_seqs,
            hint=self.hint,
            encode=lambda e: e.body.encode(),
        )
        bus.subscription = FakeSubscription()
        return bus


def joined(world: World, bus: ClusterBus, last_seq: int) -> Sink:
    sink = Sink()
    bus.subscribe(ROOM, sink)
    world.committed = max(world.committed, last_seq)
    bus.anchor(ROOM, last_seq)
    return sink


def from_node_2(bus: ClusterBus, seq: int) -> None:
    bus.received(b"termrooms:0:room:%d" % ROOM, encode_envelope(2, seq, b"m%d" % seq))


def test_events_in_order_from_redis_need_no_database_read() -> None:
    world = World()
    bus = world.bus()
    sink = joined(world, bus, 5)
    for seq in (6, 7, 8):
        world.committed = seq
        from_node_2(bus, seq)
    world.clock.advance(1)
    assert sink.got == [6, 7, 8]
    assert world.reads == []


def test_own_messages_coming_back_from_redis_are_not_delivered_twice() -> None:
    world = World()
    bus = world.bus()
    sink = joined(world, bus, 0)
    bus.publish(ROOM, 1, b"m1")
    channel, message = world.redis.published[0]
    bus.received(channel, message)
    assert sink.got == [1]


def test_a_gap_redis_fills_within_the_grace_costs_no_read() -> None:
    world = World(committed=8)
    bus = world.bus()
    sink = joined(world, bus, 5)
    from_node_2(bus, 7)
    world.clock.advance(GAP_GRACE_SECONDS / 2)
    from_node_2(bus, 6)
    world.clock.advance(GAP_GRACE_SECONDS)
    assert sink.got == [7, 6]  # the sockets' feeds put them in order
    assert world.reads == []


def test_a_gap_redis_never_fills_is_read_once_from_the_database() -> None:
    world = World(committed=9)
    bus = world.bus()
    sink = joined(world, bus, 5)
    from_node_2(bus, 9)  # 6, 7 and 8 were lost on the way
    world.clock.advance(GAP_GRACE_SECONDS)
    assert world.reads == [(5, 4)]
    assert sink.got == [9, 6, 7, 8]
    assert bus.counters.filled_events == 3
    world.clock.advance(10)
    assert len(world.reads) == 1  # caught up: nothing more to read


def test_a_postgres_hint_makes_the_instance_read_the_hinted_events() -> None:
    world = World()
    bus = world.bus()
    sink = joined(world, bus, 3)
    world.committed = 5
    bus.hinted(ROOM, 5)
    world.clock.advance(GAP_GRACE_SECONDS)
    assert sink.got == [4, 5]


def test_an_unpublished_last_event_is_found_by_the_periodic_check() -> None:
    world = World()
    bus = world.bus()
    sink = joined(world, bus, 2)
    world.committed = 3  # committed, then its publisher died
    for _ in range(round(POLL_SECONDS / POLL_SECONDS_WITHOUT_REDIS)):
        bus._poll_rooms()
    world.clock.advance(GAP_GRACE_SECONDS)
    assert sink.got == [3]


def test_the_periodic_check_runs_every_poll_interval_and_faster_without_redis() -> None:
    world = World()
    bus = world.bus()
    joined(world, bus, 0)
    ticks_per_check = round(POLL_SECONDS / POLL_SECONDS_WITHOUT_REDIS)
    for _ in range(ticks_per_check * 3):
        bus._poll_rooms()
    assert world.polls == 3
    bus.subscription.connected = False
    for _ in range(4):
        bus._poll_rooms()
    assert world.polls == 3 + 4


def test_without_redis_a_publisher_hints_through_postgres_and_still_delivers_locally() -> None:
    world = World(redis=FakeRedis(connected=False))
    bus = world.bus()
    sink = joined(world, bus, 0)
    bus.publish(ROOM, 1, b"m1")
    bus.publish(ROOM, None, b"typing")  # ephemeral: not hinted
    assert sink.got == [1, None]
    assert world.hints == [(ROOM, 1)]
    assert bus.counters.published_postgres == 1


def test_a_failed_redis_publish_falls_back_to_a_hint() -> None:
    world = World(redis=FakeRedis(fail_publish=True))
    bus = world.bus()
    joined(world, bus, 0)
    bus.publish(ROOM, 1, b"m1")
    assert world.hints == [(ROOM, 1)]


def test_a_failed_read_is_retried_later() -> None:
    world = World(committed=4)
    bus = world.bus()
    sink = joined(world, bus, 2)
    calls = []

    async def flaky(room_id: int, after: int, limit: int) -> list[RoomEvent]:
        calls.append(after)
        if len(calls) == 1:
            raise ConnectionError("database away")
        return await world.events_after(room_id, after, limit)

    bus.events_after = flaky
    bus.hinted(ROOM, 4)
    world.clock.advance(GAP_GRACE_SECONDS)
    assert sink.got == []
    world.clock.advance(1)  # FILL_RETRY_SECONDS
    world.clock.advance(GAP_GRACE_SECONDS)
    assert sink.got == [3, 4]


def test_leaving_a_room_forgets_it() -> None:
    world = World()
    bus = world.bus()
    sink = joined(world, bus, 0)
    assert bus.subscription.channels == {b"termrooms:0:room:%d" % ROOM}
    bus.unsubscribe(ROOM, sink)
    assert (bus.heads, bus.subscription.channels) == ({}, set())
    bus.hinted(ROOM, 9)
    world.clock.advance(1)
    assert world.reads == []


def test_redis_replies_are_parsed_by_hiredis():
    # txredisapi's own parser pauses the socket and schedules a reactor call after every
    # bulk string: hearing a message through Redis cost 1-2 ms of CPU with it (S4).
    import txredisapi

    from termrooms.cluster.redis import _ChannelProtocol

    assert txredisapi.RedisProtocol is txredisapi.HiredisProtocol
    assert issubclass(_ChannelProtocol, txredisapi.HiredisProtocol)
