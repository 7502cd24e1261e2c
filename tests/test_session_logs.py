"""
The logs of a whole session on a real daemon: every request and every WebSocket open and
close is there with who, where and how it ended, and no secret or message body is.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest_twisted
import treq

from support import run_termrooms, ws_connect

ADMIN_PASSWORD = "admin-pw-Zebra-41-quartz"
PASSWORD = "bob-pw-Marmalade-77-tundra"
HTTP_BODY = "http-body-Gooseberry-8810"
WS_BODY = "ws-body-Lighthouse-2202"
FAST_HASHES = ["--argon2-memory-kib", "8192", "--argon2-time-cost", "1"]


async def call(base: str, method: str, path: str, token: str | None = None, **kwargs: Any):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await treq.request(method, base + path, headers=headers, **kwargs)
    content = await response.content()
    return response.code, json.loads(content) if content else None


def records(log: str) -> list[dict]:
    """The complete lines: a running daemon may be half-way through writing the last."""
    complete = log.split("\n")[:-1]
    return [json.loads(line) for line in complete if line.startswith("{")]


async def until_logged(daemon, predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not any(predicate(r) for r in records(daemon.log())):
        assert time.monotonic() < deadline, "the line never came"
        await treq.get(daemon.base_url + "/health")  # lets the reactor turn meanwhile


@pytest_twisted.ensureDeferred
async def test_a_whole_session_is_logged_without_a_secret_or_a_body(
    daemons, fresh_migrated_database_url
):
    url = fresh_migrated_database_url
    run_termrooms(
        ["create-user", "root", "--admin", "--password-stdin", "--database-url", url],
        input=ADMIN_PASSWORD + "\n",
        check=True,
    )
    invite = run_termrooms(["invite", "--database-url", url], check=True).stdout.split()[0]
    daemon = daemons(["--database-url", url, *FAST_HASHES])
    base = daemon.base_url
    secrets = [ADMIN_PASSWORD, PASSWORD, invite, HTTP_BODY, WS_BODY]

    status, session = await call(
        base,
        "POST",
        "/api/auth/register",
        json={"username": "bob", "password": PASSWORD, "invite_code": invite},
    )
    assert status == 201, session
    secrets += [session["access_token"], session["refresh_token"]]
    status, admin = await call(
        base, "POST", "/api/auth/login", json={"username": "root", "password": ADMIN_PASSWORD}
    )
    assert status == 200
    secrets += [admin["access_token"], admin["refresh_token"]]
    status, session = await call(
        base, "POST", "/api/auth/refresh", json={"refresh_token": session["refresh_token"]}
    )
    assert status == 200
    token = session["access_token"]
    secrets += [token, session["refresh_token"]]
    body = {"name": "lobby", "visibility": "public"}
    assert (await call(base, "POST", "/api/rooms", token, json=body))[0] == 201
    message = {"body": HTTP_BODY, "client_msg_id": "h-1"}
    assert (await call(base, "POST", "/api/rooms/lobby/messages", token, json=message))[0] == 201
    assert (await call(base, "GET", "/api/rooms/lobby/messages", token))[0] == 200

    client = await ws_connect(base.replace("http", "ws") + f"/ws?token={token}")
    await client.next_frame()  # welcome
    client.send({"type": "join", "room": "lobby"})
    client.send({"type": "send", "room": "lobby", "body": WS_BODY, "client_msg_id": "w-1"})
    while (await client.next_frame())["type"] != "ack":
        pass
    assert (await call(base, "POST", "/api/auth/logout", token))[0] == 204
    assert await client.close_code() == 4001
    await until_logged(daemon, lambda r: r.get("code") == 4001)
    daemon.stop()

    log = daemon.log()
    leaked = [secret for secret in secrets if secret in log]
    leaked += [
        s.rsplit(".", 1)[-1] for s in secrets if s.count(".") == 2 and s.rsplit(".", 1)[-1] in log
    ]
    assert leaked == []

    lines = records(log)
    posted = [r for r in lines if r.get("route") == "/api/rooms/<name>/messages"]
    assert {(r["method"], r["status"], r["room"]) for r in posted} == {
        ("POST", 201, "lobby"),
        ("GET", 200, "lobby"),
    }
    bob_id = int(session["user"]["id"])
    for line in posted:
        assert line["user_id"] == bob_id and line["request_id"] and line["duration_ms"] >= 0
    (opened,) = [r for r in lines if "websocket opened" in r["message"]]
    (closed,) = [r for r in lines if "websocket of" in r["message"]]
    assert opened["user_id"] == closed["user_id"] == bob_id
    assert (closed["code"], closed["closed_by"], closed["username"]) == (4001, "server", "bob")
    assert closed["reason"]
