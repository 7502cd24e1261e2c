"""The protocol through a second, independent WebSocket library (``websockets``)."""

from __future__ import annotations

import json

import pytest_twisted
from twisted.internet.threads import deferToThread
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from support import config_for, start
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
