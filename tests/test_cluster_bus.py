"""
Two in-process instances on one database and one Redis: the cluster bus's fast path and
each of its fallbacks to PostgreSQL, and presence shared through Redis. (Real daemon
processes, kill -9 and Redis restarts are in test_cluster.)
"""

from __future__ import annotations

import pytest_twisted
import treq
from twisted.internet import reactor
from twisted.internet.defer import succeed
from twisted.internet.task import deferLater

from support import bearer, config_for, start
from termrooms.cluster.fanout import POLL_SECONDS
from termrooms.cluster.presence import RedisPresence
from termrooms.cluster.redis import RedisAddress, RedisClient
from test_rooms import close, connect, frames_until, make_room, messages, user_session


@pytest_twisted.async_yield_fixture
async def cluster(fresh_migrated_database_url, redis_url, tmp_path):
    """Instances a and b, both subscribed to Redis; ada (owner) and bob; ada's lobby."""
    common = dict(redis_url=redis_url, no_rate_limits=True)
    a = await start(config_for(fresh_migrated_database_url, tmp_path, node_id=1, **common))
    b = await start(config_for(fresh_migrated_database_url, tmp_path, node_id=2, **common))
    try:
        for server in (a, b):
            await wait_until(lambda s=server: s.server.cluster_bus.subscribed)
        ada, bob = await user_session(a, "ada"), await user_session(a, "bob")
        await make_room(a, ada)
        yield a, b, ada, bob
    finally:
        await b.stop()
        await a.stop()


async def wait_until(condition, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if condition():
            return
        await deferLater(reactor, 0.02)
    raise AssertionError("condition never held")


async def join(client, room: str = "lobby", since: int | None = None) -> dict:
    frame = {"type": "join", "room": room}
    if since is not None:
        frame["since"] = since
    client.send(frame)
    return (await frames_until(client, lambda f: f["type"] == "joined"))[-1]


async def send_all(client, count: int, prefix: str) -> None:
    for i in range(count):
        client.send(
            {
                "type": "send",
                "room": "lobby",
                "body": f"{prefix}{i}",
                "client_msg_id": f"{prefix}{i}",
            }
        )


async def received_messages(client, count: int) -> list[dict]:
    got: list[dict] = []
    while len(got) < count:
        got += messages([await client.next_frame(timeout=10)])
    return got


@pytest_twisted.ensureDeferred
async def test_messages_from_both_instances_reach_each_subscriber_once_in_seq_order(cluster):
    a, b, ada, bob = cluster
    on_a, on_b = await connect(a, ada), await connect(b, bob)
    await join(on_a)
    joined = await join(on_b)
    assert joined["online"] == ["ada", "bob"]  # ada is on the other instance
    await send_all(on_a, 40, "a")
    await send_all(on_b, 40, "b")
    for client in (on_a, on_b):
        got = await received_messages(client, 80)
        seqs = [m["seq"] for m in got]
        assert seqs == sorted(seqs) and len(set(seqs)) == 80
        assert {m["body"] for m in got} == {f"a{i}" for i in range(40)} | {
            f"b{i}" for i in range(40)
        }
    assert a.server.cluster_bus.counters.published_redis >= 40
    await close(on_a, on_b)


@pytest_twisted.ensureDeferred
async def test_without_its_redis_an_instance_reaches_the_others_through_postgres_hints(cluster):
    a, b, ada, bob = cluster
    on_a, on_b = await connect(a, ada), await connect(b, bob)
    await join(on_a)
    await join(on_b)
    await b.server.redis.stop()  # b can no longer publish to Redis
    assert not b.server.redis.connected
    status, body = (await b.health())[:2]
    assert (status, body["redis"]) == (200, "disconnected")
    await send_all(on_b, 20, "b")
    got = await received_messages(on_a, 20)
    assert [m["body"] for m in got] == [f"b{i}" for i in range(20)]
    assert b.server.cluster_bus.counters.published_postgres >= 20
    assert a.server.cluster_bus.counters.filled_events >= 1
    response = await treq.get(b.url + "/metrics")
    assert response.code == 200
    scraped = (await response.text()).splitlines()
    assert "termrooms_redis_connected 0.0" in scraped
    fallback = [
        line for line in scraped if line.startswith('termrooms_bus_published_total{via="postgres"}')
    ]
    assert float(fallback[0].split()[-1]) >= 20
    await close(on_a, on_b)


@pytest_twisted.ensureDeferred
async def test_an_event_committed_but_never_published_arrives_by_the_periodic_check(cluster):
    a, b, ada, bob = cluster
    on_a = await connect(a, ada)
    await join(on_a)
    # b dies between commit and publish, as far as anyone can tell: neither Redis
    # nor a PostgreSQL hint carries its event.
    status, _, _ = await b.request(
        "POST", "/api/rooms/lobby/join", headers=bearer(bob["access_token"])
    )
    assert status == 200
    await frames_until(on_a, lambda f: f.get("type") == "member_joined")
    await b.server.redis.stop()
    b.server.cluster_bus.hint = lambda room, seq: succeed(None)
    status, _, _ = await b.request(
        "POST",
        "/api/rooms/lobby/messages",
        json={"body": "lost in transit"},
        headers=bearer(bob["access_token"]),
    )
    assert status == 201
    started = reactor.seconds()
    got = await received_messages(on_a, 1)
    assert got[0]["body"] == "lost in transit"
    assert reactor.seconds() - started <= POLL_SECONDS + 1.0
    await close(on_a)


@pytest_twisted.ensureDeferred
async def test_a_ban_on_one_instance_ends_the_subscription_on_the_other_after_the_event(cluster):
    a, b, ada, bob = cluster
    on_b = await connect(b, bob)
    await join(on_b)
    status, _, _ = await a.request(
        "POST",
        "/api/rooms/lobby/moderation",
        json={"action": "ban", "username": "bob"},
        headers=bearer(ada["access_token"]),
    )
    assert status == 200
    banned = await frames_until(on_b, lambda f: f.get("type") == "member_banned")
    assert banned[-1]["target"] == "bob"
    await wait_until(lambda: not b.server.cluster_bus.heads)  # bob's was b's only socket
    on_b.send({"type": "send", "room": "lobby", "body": "still here?", "client_msg_id": "x"})
    error = (await frames_until(on_b, lambda f: f["type"] == "error"))[-1]
    assert error["error_code"] == "banned"
    await close(on_b)


@pytest_twisted.ensureDeferred
async def test_presence_counts_a_user_once_across_instances_and_expires_a_dead_one(redis_url):
    address = RedisAddress.from_url(redis_url)
    clients = [RedisClient(reactor, address), RedisClient(reactor, address)]
    gone: list[tuple] = []
    here = {1: [(9, "lobby", "ada")], 2: []}
    nodes = [
        RedisPresence(
            c,
            node,
            0.3,
            here=lambda n=node: here[n],
            announce_gone=lambda *e: gone.append(e),
            clock=reactor,
        )
        for c, node in zip(clients, (1, 2), strict=True)
    ]
    for client in clients:
        client.start()
    try:
        await wait_until(lambda: all(c.connected for c in clients))
        assert await nodes[0].arrive(9, "lobby", "ada") is True
        assert await nodes[1].arrive(9, "lobby", "ada") is False  # already online elsewhere
        assert await nodes[1].online_in([9, 10]) == {9: ["ada"], 10: []}
        assert await nodes[1].depart(9, "lobby", "ada") is False  # still on node 1
        # Node 1 stops refreshing (it "crashed"); node 2's heartbeat sweeps it out.
        await deferLater(reactor, 0.4)
        await nodes[1].heartbeat()
        assert gone == [(9, "lobby", "ada")]
        assert await nodes[1].online_in([9]) == {9: []}
    finally:
        for client in clients:
            await client.stop()
