"""HTTP rate limits per address and per user: 429 with Retry-After, exemptions, budgets."""

from __future__ import annotations

import ipaddress

import pytest_twisted

from support import add_user, bearer, config_for, login, start
from termrooms.domain.ratelimit import RateLimit
from termrooms.transport.http.limits import exempt

BURST = 3
TIGHT = RateLimit(BURST, 60.0)
ROOMS = "/api/rooms/lobby"  # public read: counted per address, found or not


def test_admins_and_listed_bots_are_exempt_and_others_are_not():
    bots = frozenset({"ci-bot"})
    assert exempt("root", "admin", bots)
    assert exempt("CI-Bot", "user", bots)
    assert not exempt("ada", "user", bots)


def assert_rate_limited(status: int, body: dict, headers) -> None:
    assert status == 429
    assert body["error_code"] == "rate_limited"
    assert body["detail"]
    assert int(headers.getRawHeaders("retry-after")[0]) >= 1


@pytest_twisted.ensureDeferred
async def test_the_request_after_an_address_burst_is_429_with_retry_after(
    fresh_migrated_database_url, tmp_path
):
    running = await start(config_for(fresh_migrated_database_url, tmp_path, http_rate_limit=TIGHT))
    try:
        for _ in range(BURST):
            assert (await running.request("GET", ROOMS))[0] == 404
        assert_rate_limited(*await running.request("GET", ROOMS))
        assert (await running.health())[0] == 200  # probes are never limited
    finally:
        await running.stop()


@pytest_twisted.ensureDeferred
async def test_addresses_behind_a_trusted_proxy_have_budgets_of_their_own(
    fresh_migrated_database_url, tmp_path
):
    config = config_for(
        fresh_migrated_database_url,
        tmp_path,
        http_rate_limit=TIGHT,
        trusted_proxies=(ipaddress.ip_network("127.0.0.0/8"),),
    )
    running = await start(config)
    try:

        async def from_client(address: str) -> int:
            headers = {"X-Forwarded-For": f"203.0.113.77, {address}"}
            return (await running.request("GET", ROOMS, headers=headers))[0]

        for _ in range(BURST):
            assert await from_client("198.51.100.1") == 404
        assert await from_client("198.51.100.1") == 429
        assert await from_client("198.51.100.2") == 404  # another client, its own budget
    finally:
        await running.stop()


@pytest_twisted.ensureDeferred
async def test_x_forwarded_for_is_ignored_from_an_untrusted_peer(
    fresh_migrated_database_url, tmp_path
):
    running = await start(config_for(fresh_migrated_database_url, tmp_path, http_rate_limit=TIGHT))
    try:
        for number in range(BURST):
            headers = {"X-Forwarded-For": f"198.51.100.{number}"}
            assert (await running.request("GET", ROOMS, headers=headers))[0] == 404
        headers = {"X-Forwarded-For": "198.51.100.99"}
        assert (await running.request("GET", ROOMS, headers=headers))[0] == 429
    finally:
        await running.stop()


@pytest_twisted.ensureDeferred
async def test_users_have_budgets_of_their_own_and_admins_and_bots_have_none(
    fresh_migrated_database_url, tmp_path
):
    config = config_for(
        fresh_migrated_database_url, tmp_path, user_rate_limit=TIGHT, rate_limit_exempt=("bot",)
    )
    running = await start(config)
    try:
        tokens = {}
        for name, role in (("ada", "user"), ("bob", "user"), ("root", "admin"), ("bot", "user")):
            await add_user(running, name, role=role)
            tokens[name] = (await login(running, name))[1]["access_token"]

        async def me(name: str) -> tuple:
            return await running.request("GET", "/api/auth/me", headers=bearer(tokens[name]))

        for _ in range(BURST):
            assert (await me("ada"))[0] == 200
        assert_rate_limited(*await me("ada"))
        assert (await me("bob"))[0] == 200
        for _ in range(BURST * 3):
            assert (await me("root"))[0] == 200
            assert (await me("bot"))[0] == 200
    finally:
        await running.stop()


@pytest_twisted.ensureDeferred
async def test_a_bad_token_costs_the_address(fresh_migrated_database_url, tmp_path):
    running = await start(config_for(fresh_migrated_database_url, tmp_path, http_rate_limit=TIGHT))
    try:
        for _ in range(BURST):
            status, _, _ = await running.request("GET", "/api/auth/me", headers=bearer("forged"))
            assert status == 401
        status, _, _ = await running.request("GET", "/api/auth/me", headers=bearer("forged"))
        assert status == 429
    finally:
        await running.stop()


@pytest_twisted.ensureDeferred
async def test_no_rate_limits_switches_the_http_limits_off(fresh_migrated_database_url, tmp_path):
    config = config_for(
        fresh_migrated_database_url, tmp_path, http_rate_limit=TIGHT, no_rate_limits=True
    )
    running = await start(config)
    try:
        for _ in range(BURST * 2):
            assert (await running.request("GET", ROOMS))[0] == 404
    finally:
        await running.stop()


@pytest_twisted.ensureDeferred
async def test_instances_sharing_redis_share_one_user_budget(
    fresh_migrated_database_url, redis_url, tmp_path
):
    def config(node_id: int):
        return config_for(
            fresh_migrated_database_url,
            tmp_path,  # one signing key file: a token from one is good on the other
            redis_url=redis_url,
            node_id=node_id,
            user_rate_limit=TIGHT,
        )

    first = await start(config(1))
    second = await start(config(2))
    try:
        await add_user(first, "ada")
        token = (await login(first, "ada"))[1]["access_token"]
        statuses = []
        for running in (first, second, first, second):
            response = await running.request("GET", "/api/auth/me", headers=bearer(token))
            statuses.append(response[0])
        assert statuses == [200, 200, 200, 429]
    finally:
        await second.stop()
        await first.stop()


@pytest_twisted.ensureDeferred
async def test_openapi_documents_429_on_every_limited_route(fresh_migrated_database_url, tmp_path):
    running = await start(config_for(fresh_migrated_database_url, tmp_path))
    try:
        status, document, _ = await running.request("GET", "/api/openapi.json")
        assert status == 200
        operations = {
            (path, method): operation
            for path, methods in document["paths"].items()
            for method, operation in methods.items()
        }
        assert "429" in operations[("/api/rooms/{name}", "get")]["responses"]
        assert "429" in operations[("/api/auth/me", "get")]["responses"]
        assert "429" not in operations[("/health", "get")]["responses"]
    finally:
        await running.stop()
