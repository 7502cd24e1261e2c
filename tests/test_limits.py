"""The limits that keep one instance alive: frame rate, messages per user, connection
count, slow readers."""

from __future__ import annotations

import pytest_twisted
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import deferLater

from support import bearer, config_for, start, websocket_handshake_status
from termrooms.domain.ratelimit import RateLimit
from test_rooms import close, connect, count_messages, frames_until, make_room, user_session


@pytest_twisted.ensureDeferred
async def test_a_flooding_client_gets_rate_limited_then_4008(fresh_migrated_database_url, tmp_path):
    server = await start(
        config_for(fresh_migrated_database_url, tmp_path, ws_rate_limit=RateLimit(5, 1.0))
    )
    try:
        ada = await user_session(server, "ada")
        client = await connect(server, ada)
        for _ in range(80):
            client.send({"type": "ping"})
        code = await client.close_code()
        frames = list(client.frames.pending)
        assert [f["type"] for f in frames[:5]] == ["pong"] * 5
        limited = [f for f in frames if f["type"] == "error"]
        assert limited and limited[0]["error_code"] == "rate_limited"
        assert limited[0]["retry_after"] >= 1
        assert code == 4008
    finally:
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_messages_over_the_send_limit_are_refused_429_and_never_stored(
    fresh_migrated_database_url, tmp_path
):
    server = await start(
        config_for(fresh_migrated_database_url, tmp_path, send_rate_limit=RateLimit(3, 60.0))
    )
    try:
        ada = await user_session(server, "ada")
        await make_room(server, ada)

        async def post(body: str) -> tuple[int, dict, object]:
            return await server.request(
                "POST",
                "/api/rooms/lobby/messages",
                json={"body": body},
                headers=bearer(ada["access_token"]),
            )

        for i in range(3):
            status, _, _ = await post(f"hello {i}")
            assert status == 201
        status, error, headers = await post("one too many")
        assert (status, error["error_code"]) == (429, "rate_limited")
        assert 1 <= int(headers.getRawHeaders("retry-after")[0]) <= 60

        # The same budget over the WebSocket, for sends and for /me alike.
        client = await connect(server, ada)
        client.send({"type": "join", "room": "lobby"})
        await frames_until(client, lambda f: f["type"] == "joined")
        client.send(
            {"type": "send", "room": "lobby", "body": "still", "client_msg_id": "m1", "ref": "s1"}
        )
        refused = (await frames_until(client, lambda f: f["type"] == "error"))[-1]
        assert (refused["error_code"], refused["ref"]) == ("rate_limited", "s1")
        assert 1 <= refused["retry_after"] <= 60
        client.send({"type": "command", "room": "lobby", "line": "/me waves", "ref": "c1"})
        reply = (await frames_until(client, lambda f: f["type"] == "reply"))[-1]
        assert reply["ok"] is False and "Too many messages" in reply["text"]
        await close(client)

        assert count_messages(server) == 3
    finally:
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_connections_beyond_the_maximum_are_refused_with_503(
    fresh_migrated_database_url, tmp_path
):
    server = await start(config_for(fresh_migrated_database_url, tmp_path, max_connections=2))
    try:
        ada = await user_session(server, "ada")
        first = await connect(server, ada)
        second = await connect(server, ada)
        status, body = await websocket_handshake_status(server.url, f"?token={ada['access_token']}")
        assert (status, body["error_code"]) == (503, "unavailable")
        first.send({"type": "ping"})
        assert await first.next_frame() == {"type": "pong"}  # the others are still served
        await close(first, second)
    finally:
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_a_reader_that_stops_reading_is_closed_4009_while_others_keep_receiving(
    fresh_migrated_database_url, tmp_path
):
    server = await start(
        config_for(
            fresh_migrated_database_url, tmp_path, no_rate_limits=True, slow_consumer_bytes=65536
        )
    )
    try:
        ada = await user_session(server, "ada")
        bob = await user_session(server, "bob")
        await make_room(server, ada)
        await server.request(
            "POST",
            "/api/rooms/lobby/join",
            headers={"Authorization": f"Bearer {bob['access_token']}"},
        )
        sleepy = await connect(server, bob)
        sleepy.send({"type": "join", "room": "lobby"})
        await frames_until(sleepy, lambda f: f["type"] == "joined")
        awake = await connect(server, bob)
        awake.send({"type": "join", "room": "lobby"})
        await frames_until(awake, lambda f: f["type"] == "joined")
        sleepy.protocol.transport.pauseProducing()  # stops reading its socket
        bob_id = int(bob["user"]["id"])
        registry = server.server.get_gateway().registry

        async def resume_once_the_server_gives_up() -> None:
            # The server's close frame waits behind the unsent data: reading again, the
            # client drains that data and finds the 4009 close.
            while all(c.state == c.STATE_OPEN for c in registry.by_user.get(bob_id, ())):
                await deferLater(server.server.reactor, 0.01)
            sleepy.protocol.transport.resumeProducing()

        watching = ensureDeferred(resume_once_the_server_gives_up())
        writer = await connect(server, ada)
        body = "x" * 3900
        for i in range(2500):
            writer.send({"type": "send", "room": "lobby", "body": body, "client_msg_id": str(i)})
        await frames_until(
            writer, lambda f: f.get("type") == "ack" and f["client_msg_id"] == "2499", limit=10000
        )
        received = await frames_until(
            awake,
            lambda f: f.get("type") == "message" and f["client_msg_id"] == "2499",
            limit=10000,
        )
        assert len([f for f in received if f["type"] == "message"]) == 2500
        await watching
        assert await sleepy.close_code(timeout=30) == 4009
        await close(awake, writer)
    finally:
        await server.stop()
