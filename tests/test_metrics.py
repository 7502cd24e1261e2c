"""/metrics: the figures move with real traffic, and only allowed networks may read them."""

from __future__ import annotations

import ipaddress
import socket

import pytest
import pytest_twisted
import treq
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred, gatherResults, succeed

from support import (
    add_user,
    bearer,
    config_for,
    login,
    start,
    websocket_handshake_status,
    ws_connect,
)
from termrooms.domain.ratelimit import Decision, RateLimit
from termrooms.operations.metrics import Histogram, MeteredLimiter, Meters, address_allowed
from termrooms.transport.gateway.protocol import BAD_FRAMES_BEFORE_CLOSE, CLOSE_POLICY

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1"))


def test_address_allowed_matches_networks_and_ipv4_mapped_addresses():
    assert address_allowed("127.0.0.1", LOOPBACK)
    assert address_allowed("127.8.9.10", LOOPBACK)
    assert address_allowed("::1", LOOPBACK)
    assert address_allowed("::ffff:127.0.0.1", LOOPBACK)
    assert not address_allowed("192.0.2.2", LOOPBACK)
    assert not address_allowed("fd00::2", LOOPBACK)
    assert not address_allowed("not an address", LOOPBACK)
    assert not address_allowed(None, LOOPBACK)
    assert address_allowed("192.0.2.2", (ipaddress.ip_network("192.0.2.0/24"),))


def test_histogram_buckets_are_cumulative_with_sum_and_count():
    histogram = Histogram(bounds=(0.1, 1.0))
    for seconds in (0.05, 0.1, 0.5, 3.0):
        histogram.observe(seconds)
    family = histogram.family("x_seconds", "x")
    samples = {(s.name, s.labels.get("le")): s.value for s in family.samples}
    assert samples[("x_seconds_bucket", "0.1")] == 2  # le is inclusive
    assert samples[("x_seconds_bucket", "1.0")] == 3
    assert samples[("x_seconds_bucket", "+Inf")] == 4
    assert samples[("x_seconds_count", None)] == 4
    assert samples[("x_seconds_sum", None)] == pytest.approx(3.65)


def test_metered_limiter_counts_refusals_by_the_limit_name_before_the_colon():
    decisions = iter([Decision(True), Decision(False, 3), Decision(False, 3)])

    class Scripted:
        def hit(self, key, limit):
            return succeed(next(decisions))

    meters = Meters()
    limiter = MeteredLimiter(Scripted(), meters)
    for key in ("login-address:1.2.3.4", "login-address:1.2.3.4", "send:42"):
        limiter.hit(key, RateLimit(1, 1.0))
    assert meters.rate_limited == {"login-address": 1, "send": 1}


def scraped(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def scrape(url: str) -> dict[tuple[str, tuple], float]:
    response = await treq.get(url + "/metrics")
    assert response.code == 200
    return scraped(await response.text())


@pytest_twisted.ensureDeferred
async def test_metrics_move_with_http_and_websocket_traffic(fresh_migrated_database_url, tmp_path):
    running = await start(config_for(fresh_migrated_database_url, tmp_path, no_rate_limits=True))
    try:
        before = await scrape(running.url)
        assert before[("termrooms_websocket_connections", ())] == 0
        await add_user(running, "ada")
        status, session = await login(running, "ada")
        assert status == 200
        token = session["access_token"]
        status, _, _ = await running.request(
            "POST",
            "/api/rooms",
            json={"name": "lobby", "visibility": "public"},
            headers=bearer(token),
        )
        assert status == 201
        assert (await running.request("GET", "/api/rooms/nowhere", headers=bearer(token)))[0] == 404
        client = await ws_connect(running.url.replace("http", "ws") + f"/ws?token={token}")
        await client.next_frame()  # welcome
        client.send({"type": "join", "room": "lobby"})
        assert (await client.next_frame())["type"] == "joined"
        client.send({"type": "send", "room": "lobby", "body": "hi", "client_msg_id": "m1"})
        client.send({"type": "command", "room": "lobby", "line": "/who", "ref": "c1"})
        client.send({"type": "bogus"})
        seen: set[str] = set()
        while not {"ack", "reply", "error", "message"} <= seen:
            seen.add((await client.next_frame())["type"])

        after = await scrape(running.url)
        assert after[("termrooms_websocket_connections", ())] == 1
        assert after[("termrooms_websocket_frames_received_total", (("type", "send"),))] == 1
        assert after[("termrooms_websocket_frames_received_total", (("type", "invalid"),))] == 1
        assert after[("termrooms_websocket_frames_sent_total", (("type", "ack"),))] == 1
        assert after[("termrooms_websocket_frames_sent_total", (("type", "welcome"),))] == 1
        assert after[("termrooms_deliveries_total", ())] >= 1
        assert after[("termrooms_ack_latency_seconds_count", ())] == 1
        assert after[("termrooms_commands_total", (("command", "who"),))] == 1
        assert (
            after[("termrooms_errors_total", (("error_code", "bad_request"), ("via", "websocket")))]
            == 1
        )
        assert (
            after[("termrooms_errors_total", (("error_code", "not_found"), ("via", "http")))] == 1
        )
        rooms_created = (("method", "POST"), ("route", "/api/rooms"), ("status", "201"))
        assert after[("termrooms_http_requests_total", rooms_created)] == 1
        not_found = (("method", "GET"), ("route", "/api/rooms/<name>"), ("status", "404"))
        assert after[("termrooms_http_requests_total", not_found)] == 1
        assert after[("termrooms_database_query_duration_seconds_count", ())] > before.get(
            ("termrooms_database_query_duration_seconds_count", ()), 0
        )
        assert ("termrooms_database_connections_in_use", ()) in after
        assert ("termrooms_database_waits_total", ()) in after
        client.protocol.sendClose(1000)
        await client.close_code()
    finally:
        await running.stop()


@pytest_twisted.ensureDeferred
async def test_rate_limit_refusals_are_counted_by_limit(fresh_migrated_database_url, tmp_path):
    running = await start(
        config_for(fresh_migrated_database_url, tmp_path, login_rate_limit=RateLimit(1, 60.0))
    )
    try:
        for _ in range(3):
            await login(running, "nobody", "wrong password")
        after = await scrape(running.url)
        assert after[("termrooms_rate_limited_total", (("limit", "login-address"),))] == 2
    finally:
        await running.stop()


@pytest_twisted.ensureDeferred
async def test_websocket_frame_and_http_limit_refusals_are_counted(
    fresh_migrated_database_url, tmp_path
):
    config = config_for(
        fresh_migrated_database_url,
        tmp_path,
        ws_rate_limit=RateLimit(1, 60.0),
        http_rate_limit=RateLimit(2, 60.0),
    )
    running = await start(config)
    try:
        await add_user(running, "ada")
        token = (await login(running, "ada"))[1]["access_token"]
        client = await ws_connect(running.url.replace("http", "ws") + f"/ws?token={token}")
        await client.next_frame()  # welcome
        for _ in range(3):
            client.send({"type": "ping"})
        assert (await client.next_frame())["type"] == "pong"
        assert (await client.next_frame())["error_code"] == "rate_limited"
        for _ in range(3):
            await running.request("GET", "/api/rooms/lobby")
        after = await scrape(running.url)
        assert after[("termrooms_rate_limited_total", (("limit", "ws-frames"),))] == 2
        assert after[("termrooms_rate_limited_total", (("limit", "http-address"),))] >= 1
        limited = (("method", "GET"), ("route", "/api/rooms/<name>"), ("status", "429"))
        assert after[("termrooms_http_requests_total", limited)] >= 1
        client.protocol.sendClose(1000)
        await client.close_code()
    finally:
        await running.stop()


@pytest_twisted.ensureDeferred
async def test_refused_handshakes_and_server_closes_are_counted(
    fresh_migrated_database_url, tmp_path
):
    running = await start(config_for(fresh_migrated_database_url, tmp_path, no_rate_limits=True))
    try:
        assert (await websocket_handshake_status(running.url, ""))[0] == 401
        assert (await websocket_handshake_status(running.url, "?token=forged"))[0] == 401
        await add_user(running, "ada")
        token = (await login(running, "ada"))[1]["access_token"]
        client = await ws_connect(running.url.replace("http", "ws") + f"/ws?token={token}")
        await client.next_frame()  # welcome
        for _ in range(BAD_FRAMES_BEFORE_CLOSE):
            client.send({"type": "bogus"})
        assert await client.close_code() == CLOSE_POLICY
        after = await scrape(running.url)
        refused = (
            "termrooms_websocket_handshakes_refused_total",
            (("error_code", "unauthorized"),),
        )
        assert after[refused] == 1
        forged = (
            "termrooms_websocket_handshakes_refused_total",
            (("error_code", "token_invalid"),),
        )
        assert after[forged] == 1
        closed = ("termrooms_websocket_closed_by_server_total", (("code", str(CLOSE_POLICY)),))
        assert after[closed] == 1
        # A client's own close is not the server's doing.
        client = await ws_connect(running.url.replace("http", "ws") + f"/ws?token={token}")
        await client.next_frame()
        client.protocol.sendClose(1000)
        await client.close_code()
        again = await scrape(running.url)
        assert [k for k in again if k[0] == "termrooms_websocket_closed_by_server_total"] == [
            closed
        ]
    finally:
        await running.stop()


@pytest_twisted.ensureDeferred
async def test_a_busy_pool_counts_waits(fresh_migrated_database_url, tmp_path):
    config = config_for(
        fresh_migrated_database_url, tmp_path, database_pool_size=1, no_rate_limits=True
    )
    running = await start(config)
    try:
        before = await scrape(running.url)
        assert before[("termrooms_database_connections", ())] == 1
        await gatherResults(
            [ensureDeferred(running.request("GET", "/api/rooms/lobby")) for _ in range(10)]
        )
        after = await scrape(running.url)
        waits = ("termrooms_database_waits_total", ())
        assert after[waits] > before[waits]
    finally:
        await running.stop()


def non_loopback_address() -> str:
    """An address of this machine's that is not loopback (skip where there is none)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # no packet is sent; picks the outgoing address
            address = probe.getsockname()[0]
    except OSError:
        address = ""
    if not address or address.startswith("127."):
        pytest.skip("this machine has no non-loopback IPv4 address")
    return address


@pytest_twisted.ensureDeferred
async def test_metrics_are_refused_to_addresses_outside_metrics_allow(
    fresh_migrated_database_url, tmp_path
):
    address = non_loopback_address()
    running = await start(config_for(fresh_migrated_database_url, tmp_path))
    outside = reactor.listenTCP(0, running.server.get_site(), interface=address)
    try:
        url = f"http://{address}:{outside.getHost().port}"
        response = await treq.get(url + "/metrics")
        assert response.code == 403
        assert (await response.json())["error_code"] == "forbidden"
        assert (await treq.get(running.url + "/metrics")).code == 200  # loopback still may
    finally:
        await outside.stopListening()
        await running.stop()


@pytest_twisted.ensureDeferred
async def test_metrics_allow_lets_a_configured_network_scrape(
    fresh_migrated_database_url, tmp_path
):
    address = non_loopback_address()
    network = ipaddress.ip_network(f"{address}/32")
    running = await start(
        config_for(fresh_migrated_database_url, tmp_path, metrics_allow=(network,))
    )
    outside = reactor.listenTCP(0, running.server.get_site(), interface=address)
    try:
        assert (await treq.get(f"http://{address}:{outside.getHost().port}/metrics")).code == 200
        assert (await treq.get(running.url + "/metrics")).code == 403  # loopback is not listed
    finally:
        await outside.stopListening()
        await running.stop()
