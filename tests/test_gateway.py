"""The /ws handshake and token lifetime, with real WebSocket clients over TCP."""

from __future__ import annotations

import secrets
import time

import psycopg2
import pytest
import pytest_twisted
from twisted.internet.task import Clock
from twisted.internet.threads import deferToThread
from twisted.logger import globalLogPublisher

from support import add_user, config_for, login, start, websocket_handshake_status, ws_connect
from termrooms.domain.browser_session import origin_allowed


@pytest_twisted.async_yield_fixture
async def running(fresh_migrated_database_url, tmp_path):
    server = await start(
        config_for(
            fresh_migrated_database_url,
            tmp_path,
            allowed_origins=("https://chat.example",),
        )
    )
    yield server
    await server.stop()


@pytest.fixture
def captured_log():
    events: list[dict] = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


@pytest_twisted.ensureDeferred
async def test_a_refused_handshake_is_logged_with_its_status_but_not_its_token(
    running, captured_log
):
    status, _ = await websocket_handshake_status(running.url, "?token=secret-looking-token")
    assert status == 401
    (refused,) = [e for e in captured_log if e.get("error_code") == "token_invalid"]
    assert refused["status"] == 401
    assert "secret-looking-token" not in repr(captured_log)


def ws_url(running, token: str) -> str:
    return running.url.replace("http://", "ws://") + f"/ws?token={token}"


async def session_for(running, name: str = "ada") -> dict:
    await add_user(running, name)
    status, session = await login(running, name)
    assert status == 200
    return session


@pytest_twisted.ensureDeferred
async def test_no_bad_or_expired_token_is_401_before_the_upgrade(running):
    status, body = await websocket_handshake_status(running.url, "")
    assert (status, body["error_code"]) == (401, "unauthorized")
    status, body = await websocket_handshake_status(running.url, "?token=nonsense")
    assert (status, body["error_code"]) == (401, "token_invalid")

    session = await session_for(running)
    handler = running.server.get_auth_handler()
    real_clock = handler.clock
    handler.clock = lambda: real_clock() + 3600
    try:
        status, body = await websocket_handshake_status(
            running.url, f"?token={session['access_token']}"
        )
    finally:
        handler.clock = real_clock
    assert (status, body["error_code"]) == (401, "token_expired")


@pytest_twisted.ensureDeferred
async def test_a_foreign_origin_is_403_and_allowed_or_absent_origins_connect(running):
    session = await session_for(running)
    query = f"?token={session['access_token']}"
    status, body = await websocket_handshake_status(
        running.url, query, origin="https://evil.example"
    )
    assert (status, body["error_code"]) == (403, "forbidden")

    for origin in (None, "https://chat.example", running.url):
        client = await ws_connect(ws_url(running, session["access_token"]), origin=origin)
        assert (await client.next_frame())["type"] == "welcome"
        client.protocol.sendClose(1000)
        await client.close_code()


@pytest_twisted.ensureDeferred
async def test_welcome_frame_carries_the_user_server_id_and_heartbeat(running):
    session = await session_for(running)
    client = await ws_connect(ws_url(running, session["access_token"]))
    welcome = await client.next_frame()
    assert welcome == {
        "type": "welcome",
        "user": session["user"],
        "server_id": "0",
        "heartbeat_s": 25,
    }
    client.send({"type": "ping"})
    assert await client.next_frame() == {"type": "pong"}
    client.protocol.sendClose(1000)
    await client.close_code()


@pytest_twisted.ensureDeferred
async def test_auth_frame_renews_the_token_and_expiry_closes_4001(running):
    session = await session_for(running)
    gateway = running.server.get_gateway()
    gateway.clock = clock = Clock()
    clock.advance(time.time())
    client = await ws_connect(ws_url(running, session["access_token"]))
    await client.next_frame()  # welcome

    # Just before the first token expires, renew it with a token issued later.
    clock.advance(800)
    handler = running.server.get_auth_handler()
    real_clock = handler.clock
    handler.clock = lambda: real_clock() + 800
    try:
        renewed = handler.tokens.issue(
            handler.keys.ring(),
            int(session["user"]["id"]),
            connection_family(gateway),
            handler.clock(),
        )
        client.send({"type": "auth", "token": renewed})
        authed = await client.next_frame()
    finally:
        handler.clock = real_clock
    assert authed["type"] == "authed" and 890 <= authed["expires_in"] <= 900

    clock.advance(200)  # past the first token's expiry: still open
    client.send({"type": "ping"})
    assert await client.next_frame() == {"type": "pong"}

    clock.advance(800)  # past the renewed token's expiry
    assert await client.close_code() == 4001


def connection_family(gateway) -> str:
    (connections,) = gateway.registry.by_user.values()
    (connection,) = connections
    return connection.family_id


@pytest_twisted.ensureDeferred
async def test_logout_closes_every_socket_of_the_user_with_4001(running):
    session = await session_for(running)
    first = await ws_connect(ws_url(running, session["access_token"]))
    second = await ws_connect(ws_url(running, session["access_token"]))
    status, _, _ = await running.request(
        "POST", "/api/auth/logout", headers={"Authorization": f"Bearer {session['access_token']}"}
    )
    assert status == 204
    assert await first.close_code() == 4001
    assert await second.close_code() == 4001


@pytest_twisted.ensureDeferred
async def test_garbage_frames_get_errors_then_a_1008_close(running):
    session = await session_for(running)
    client = await ws_connect(ws_url(running, session["access_token"]))
    await client.next_frame()
    client.protocol.sendMessage(b"not json")
    error = await client.next_frame()
    assert error["type"] == "error" and error["error_code"] == "invalid_json"
    for _ in range(4):
        client.protocol.sendMessage(b"[]")
    assert await client.close_code() == 1008


@pytest.mark.parametrize(
    "origin, host, allowed",
    [
        ("https://chat.example", "other:8080", True),
        ("http://localhost:8080", "localhost:8080", True),
        ("https://LOCALHOST:8080", "localhost:8080", True),
        ("https://evil.example", "localhost:8080", False),
        ("null", "localhost:8080", False),
        ("", "localhost:8080", False),
        ("https://chat.example/../evil", "localhost:8080", False),
        ("http://evil.example@localhost:8080", "localhost:8080", False),
        ("http://localhost:8080@evil.example", "localhost:8080", False),
        ("http://localhost:8080?x", "localhost:8080", False),
    ],
)
def test_origin_rules(origin, host, allowed):
    assert origin_allowed(origin, host, frozenset({"https://chat.example"})) is allowed


@pytest_twisted.ensureDeferred
async def test_refresh_reuse_closes_the_sockets_of_that_session_only(running):
    stolen = await session_for(running)
    _, other = await login(running, "ada")
    victim = await ws_connect(ws_url(running, stolen["access_token"]))
    bystander = await ws_connect(ws_url(running, other["access_token"]))
    await victim.next_frame()
    await bystander.next_frame()
    for _ in range(2):  # the second use of the same refresh token is the reuse
        await running.request(
            "POST", "/api/auth/refresh", json={"refresh_token": stolen["refresh_token"]}
        )
    assert await victim.close_code() == 4001
    bystander.send({"type": "ping"})
    assert await bystander.next_frame() == {"type": "pong"}
    bystander.protocol.sendClose(1000)
    await bystander.close_code()


@pytest_twisted.ensureDeferred
async def test_deleting_the_account_closes_its_sockets_with_4001(running):
    session = await session_for(running)
    client = await ws_connect(ws_url(running, session["access_token"]))
    await client.next_frame()
    status, _, _ = await running.request(
        "DELETE",
        "/api/auth/me",
        json={"password": "correct horse battery"},
        headers={"Authorization": f"Bearer {session['access_token']}"},
    )
    assert status == 204
    assert await client.close_code() == 4001


@pytest_twisted.ensureDeferred
async def test_disabling_a_user_from_the_command_line_closes_their_sockets_at_once(
    running, termrooms
):
    session = await session_for(running, "quinn")
    client = await ws_connect(ws_url(running, session["access_token"]))
    await client.next_frame()
    result = await deferToThread(
        termrooms,
        ["disable-user", "quinn", "--database-url", running.server.config.database_url],
    )
    assert result.returncode == 0, result.stderr
    assert await client.close_code() == 4001
    status, error, _ = await running.request(
        "GET", "/api/auth/me", headers={"Authorization": f"Bearer {session['access_token']}"}
    )
    assert (status, error["error_code"]) == (401, "token_invalid")
    assert (await login(running, "quinn"))[0] == 401
    result = await deferToThread(
        termrooms, ["enable-user", "quinn", "--database-url", running.server.config.database_url]
    )
    assert result.returncode == 0, result.stderr
    assert (await login(running, "quinn"))[0] == 200


@pytest_twisted.ensureDeferred
async def test_logout_on_one_instance_closes_the_users_sockets_on_another(
    running, fresh_migrated_database_url, tmp_path
):
    # Instances of one deployment share the signing keys (the key file, here).
    other = await start(
        config_for(
            fresh_migrated_database_url,
            tmp_path / "other",
            node_id=1,
            signing_key_file=tmp_path / "signing-keys.json",
        )
    )
    try:
        session = await session_for(running)
        client = await ws_connect(ws_url(other, session["access_token"]))
        assert (await client.next_frame())["server_id"] == "1"
        status, _, _ = await running.request(
            "POST",
            "/api/auth/logout",
            headers={"Authorization": f"Bearer {session['access_token']}"},
        )
        assert status == 204
        assert await client.close_code() == 4001
    finally:
        await other.stop()


@pytest_twisted.ensureDeferred
async def test_sessions_ended_while_the_listener_was_cut_off_are_closed_when_it_returns(
    database_proxy, tmp_path
):
    server = await start(config_for(database_proxy.url, tmp_path))
    try:
        session = await session_for(server, f"ruth{secrets.token_hex(3)}")
        client = await ws_connect(ws_url(server, session["access_token"]))
        await client.next_frame()
        await database_proxy.cut()
        # Revoked behind the instance's back: its NOTIFY reaches nobody.
        revoke_directly(database_proxy.target_database_url, int(session["user"]["id"]))
        await database_proxy.restore()
        assert await client.close_code(timeout=20) == 4001
    finally:
        await server.stop()


def revoke_directly(url: str, user_id: int) -> None:
    connection = psycopg2.connect(url)
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute(
                "UPDATE refresh_token_families SET revoked_at = now(), revoked_reason = 'test'"
                " WHERE user_id = %s",
                (user_id,),
            )
    finally:
        connection.close()


@pytest_twisted.ensureDeferred
async def test_handshake_while_the_database_is_away_is_503_with_retry_after(
    database_proxy, tmp_path
):
    server = await start(config_for(database_proxy.url, tmp_path))
    try:
        session = await session_for(server, f"sam{secrets.token_hex(3)}")
        await database_proxy.cut()
        status, body = await websocket_handshake_status(
            server.url, f"?token={session['access_token']}"
        )
        assert (status, body["error_code"]) == (503, "unavailable")
    finally:
        await database_proxy.restore()
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_a_client_far_ahead_of_its_answers_is_not_read_until_they_catch_up(
    fresh_migrated_database_url, tmp_path
):
    # 300 sends in one burst: the connection stops being read while 64 of its frames
    # wait, and every one is still stored and acknowledged once, in order.
    running = await start(config_for(fresh_migrated_database_url, tmp_path, no_rate_limits=True))
    try:
        session = await session_for(running)
        headers = {"Authorization": f"Bearer {session['access_token']}"}
        await running.request(
            "POST", "/api/rooms", json={"name": "burst", "visibility": "public"}, headers=headers
        )
        client = await ws_connect(ws_url(running, session["access_token"]))
        await client.next_frame()  # welcome
        client.send({"type": "join", "room": "burst"})
        assert (await client.next_frame())["type"] == "joined"
        for n in range(300):
            client.send(
                {"type": "send", "room": "burst", "body": f"m{n}", "client_msg_id": f"c{n}"}
            )
        (connection,) = list(running.server.gateway._connections())
        paused_at_some_point = False
        acks = []
        while len(acks) < 300:
            paused_at_some_point |= connection._reading_paused
            frame = await client.next_frame()
            if frame["type"] == "ack":
                acks.append(frame)
        assert paused_at_some_point
        assert not connection._reading_paused
        assert [a["client_msg_id"] for a in acks] == [f"c{n}" for n in range(300)]
        assert [a["seq"] for a in acks] == sorted(a["seq"] for a in acks)
        client.protocol.sendClose(1000)
        await client.close_code()
    finally:
        await running.stop()
