"""Rate limits in Redis: the same bucket as take(), one budget for every instance."""

from __future__ import annotations

import time
from typing import Any

import attrs
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock, deferLater
from twisted.logger import capturedLogs
from txredisapi import ResponseError

from support import add_user, bearer, config_for, free_port, login, start
from termrooms.cluster.limits import KEY_PREFIX, RedisRateLimiter
from termrooms.cluster.redis import RedisAddress, RedisClient
from termrooms.domain.ratelimit import Bucket, Decision, RateLimit, take
from test_rooms import make_room, user_session

READ_BUCKET = "return redis.call('HMGET', KEYS[1], 'tokens', 'updated')"


async def connected_client(url: str) -> RedisClient:
    client = RedisClient(reactor, RedisAddress.from_url(url))
    client.start()
    await until(lambda: client.connected, "Redis never connected")
    return client


async def until(condition: Any, message: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(message)
        await deferLater(reactor, 0.02)


async def stored_bucket(client: RedisClient, key: str) -> Bucket | None:
    tokens, updated = await client.eval(READ_BUCKET, [KEY_PREFIX + key], [])
    return None if tokens is None else Bucket(float(tokens), float(updated))


@pytest_twisted.ensureDeferred
async def test_the_lua_bucket_makes_the_same_decisions_as_take(redis_url):
    """Each hit, replayed through take() at the time Redis used, gives the same bucket."""
    client = await connected_client(redis_url)
    limiter = RedisRateLimiter(client, reactor)
    try:
        decisions = []
        for limit, pauses in [
            (RateLimit(3, 0.2), [0, 0, 0, 0, 0, 0.25, 0, 0]),  # burst, refusals, refill
            (RateLimit(2, 20.0), [0, 0, 0]),  # a refusal waits a whole period
        ]:
            key = f"agree:{limit}"
            for pause in pauses:
                if pause:
                    await deferLater(reactor, pause)
                before = await stored_bucket(client, key)
                decision = await limiter.hit(key, limit)
                after = await stored_bucket(client, key)
                assert (after, decision) == take(before, limit, now=after.updated)
                decisions.append(decision)
        assert decisions == [
            *[Decision(True)] * 3,
            Decision(False, 1),
            Decision(False, 1),
            Decision(True),  # 0.25 s later: one token back, not two
            Decision(False, 1),
            Decision(False, 1),
            Decision(True),
            Decision(True),
            Decision(False, 20),
        ]
    finally:
        await client.stop()


@pytest_twisted.ensureDeferred
async def test_two_instances_share_one_budget(redis_url):
    first, second = await connected_client(redis_url), await connected_client(redis_url)
    limiters = [RedisRateLimiter(first, reactor), RedisRateLimiter(second, reactor)]
    try:
        limit = RateLimit(5, 60.0)
        allowed = [(await limiters[i % 2].hit("login-user:ada", limit)).allowed for i in range(10)]
        assert allowed == [True] * 5 + [False] * 5  # five in all, not five each
    finally:
        await first.stop()
        await second.stop()


@pytest_twisted.ensureDeferred
async def test_a_bucket_key_expires_when_the_bucket_would_be_full_again(redis_url):
    client = await connected_client(redis_url)
    try:
        await RedisRateLimiter(client, reactor).hit("send:1", RateLimit(5, 20.0))
        ttl = await client.eval("return redis.call('PTTL', KEYS[1])", [KEY_PREFIX + "send:1"], [])
        assert 19_000 < ttl <= 20_000  # one token spent: full again one period later
    finally:
        await client.stop()


@pytest_twisted.ensureDeferred
async def test_unreachable_redis_falls_back_to_memory_and_logs_once():
    client = RedisClient(reactor, RedisAddress.from_url(f"redis://127.0.0.1:{free_port()}"))
    client.start()
    limiter = RedisRateLimiter(client, reactor)
    try:
        with capturedLogs() as events:
            allowed = [(await limiter.hit("k", RateLimit(2, 60.0))).allowed for _ in range(3)]
        assert allowed == [True, True, False]  # still limited, by this instance alone
        warnings = [e for e in events if e.get("log_namespace") == "termrooms.cluster.limits"]
        assert len(warnings) == 1 and warnings[0]["reason"] == "not connected"
    finally:
        await client.stop()


@attrs.define
class SilentRedis:
    """Connected, but every script hangs or fails as told."""

    answer: Any
    connected: bool = True

    def eval(self, script: str, keys: list, args: list) -> Deferred:
        return self.answer()


def test_a_redis_that_does_not_answer_in_time_leaves_the_decision_to_memory():
    clock = Clock()
    limiter = RedisRateLimiter(SilentRedis(Deferred), clock)
    d = limiter.hit("k", RateLimit(1, 60.0))
    assert not d.called
    clock.advance(limiter.timeout)
    assert d.result == Decision(True)
    d = limiter.hit("k", RateLimit(1, 60.0))
    clock.advance(limiter.timeout)
    assert d.result == Decision(False, 60)


def test_a_failing_script_leaves_the_decision_to_memory_once_per_outage():
    limiter = RedisRateLimiter(SilentRedis(lambda: fail(ResponseError("ERR boom"))), Clock())
    with capturedLogs() as events:
        decisions = [limiter.hit("k", RateLimit(1, 60.0)).result for _ in range(3)]
    assert decisions == [Decision(True), Decision(False, 60), Decision(False, 60)]
    warnings = [e for e in events if e.get("log_namespace") == "termrooms.cluster.limits"]
    assert len(warnings) == 1 and "boom" in warnings[0]["reason"]


# --------------------------------------------------------------------------- two servers


async def two_instances(database_url, redis_url, tmp_path, **overrides):
    servers = []
    for node_id in (1, 2):
        config = config_for(
            database_url, tmp_path, redis_url=redis_url, node_id=node_id, **overrides
        )
        servers.append(await start(config))
    await until(
        lambda: all(s.server.get_redis().connected for s in servers), "Redis never connected"
    )
    return servers


@pytest_twisted.ensureDeferred
async def test_login_attempts_split_over_two_instances_share_one_limit(
    fresh_migrated_database_url, redis_url, tmp_path
):
    servers = await two_instances(
        fresh_migrated_database_url, redis_url, tmp_path, login_rate_limit=RateLimit(4, 60.0)
    )
    try:
        await add_user(servers[0], "ada")
        statuses = [(await login(servers[i % 2], "ada"))[0] for i in range(6)]
        assert statuses == [200] * 4 + [429] * 2
    finally:
        for server in servers:
            await server.stop()


@pytest_twisted.ensureDeferred
async def test_messages_split_over_two_instances_share_one_send_limit(
    fresh_migrated_database_url, redis_url, tmp_path
):
    servers = await two_instances(
        fresh_migrated_database_url, redis_url, tmp_path, send_rate_limit=RateLimit(4, 60.0)
    )
    try:
        ada = await user_session(servers[0], "ada")
        await make_room(servers[0], ada)
        statuses = []
        for i in range(6):
            status, _, _ = await servers[i % 2].request(
                "POST",
                "/api/rooms/lobby/messages",
                json={"body": f"hello {i}"},
                headers=bearer(ada["access_token"]),
            )
            statuses.append(status)
        assert statuses == [201] * 4 + [429] * 2
    finally:
        for server in servers:
            await server.stop()
