"""The protocol through a second, independent WebSocket library (``websockets``)."""

from __future__ import annotations

import json
import urllib.request

import pytest_twisted
from twisted.internet.threads import deferToThread
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from support import config_for, start
from test_daemon import wait_for_health
from test_rooms import make_room, user_session


def chat_session(ws_url: str, token: str) -> list[dict]:
    """In a thread: join, send twice with one client_msg_id, and collect what comes back."""
    received = []
    with connect(f"{ws_url}?token={token}", open_timeout=10) as socket:
        received.append(json.loads(socket.recv(timeout=10)))
        socket.send(json.dumps({"type": "join", "room": "lobby", "since": 0}))
        for _ in range(2):
            socket.send(
                json.dumps({"type": "send", "room": "lobby", "body": "hi", "client_msg_id": "w-1"})
            )
        acks = 0
        while acks < 2:
            frame = json.loads(socket.recv(timeout=10))
            received.append(frame)
            acks += frame["type"] == "ack"
    return received


def refused_status(ws_url: str) -> int:
    try:
        with connect(f"{ws_url}?token=nonsense", open_timeout=10):
            return 101
    except InvalidStatus as e:
        return e.response.status_code
    except ConnectionClosed:
        return -1


@pytest_twisted.ensureDeferred
async def test_join_replay_send_and_ack_through_the_websockets_library(
    fresh_migrated_database_url, tmp_path
):
    server = await start(config_for(fresh_migrated_database_url, tmp_path, no_rate_limits=True))
    try:
        ada = await user_session(server, "ada")
        await make_room(server, ada)
        ws_url = server.url.replace("http://", "ws://") + "/ws"
        frames = await deferToThread(chat_session, ws_url, ada["access_token"])
        assert frames[0]["type"] == "welcome"
        kinds = [f["type"] for f in frames]
        assert kinds[1] == "joined"
        assert "member_joined" in kinds  # replayed from since=0
        acks = [f for f in frames if f["type"] == "ack"]
        assert acks[0] == acks[1]
        assert [f["seq"] for f in frames if f["type"] == "message"] == [acks[0]["seq"]]
        assert await deferToThread(refused_status, ws_url) == 401
    finally:
        await server.stop()


def register(base_url: str, username: str) -> str:
    request = urllib.request.Request(
        base_url + "/api/auth/register",
        data=json.dumps({"username": username, "password": "correct horse battery"}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["access_token"]


def create_room(base_url: str, token: str, name: str) -> None:
    request = urllib.request.Request(
        base_url + "/api/rooms",
        data=json.dumps({"name": name, "visibility": "public"}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        method="POST",
    )
    urllib.request.urlopen(request, timeout=10).close()


def test_a_real_daemon_process_serves_the_room_protocol(daemons, database_url):
    daemon = daemons(
        ["--database-url", database_url, "--open-registration", "--argon2-memory-kib", "8192"]
    )
    wait_for_health(daemon.base_url, 200)
    token = register(daemon.base_url, "ada")
    create_room(daemon.base_url, token, "lobby")
    frames = chat_session(daemon.base_url.replace("http://", "ws://") + "/ws", token)
    acks = [f for f in frames if f["type"] == "ack"]
    assert len(acks) == 2 and acks[0] == acks[1]
    assert daemon.stop() == 0
