"""
Direct rooms and blocks over real HTTP and WebSocket against a real daemon and
PostgreSQL (protocol v1.1, Direct messages; Notifications to a user): one room per pair
however it is opened, invisible to everyone else on every route and frame (a server
admin included, byte for byte as an absent room), what its members may and may not do
in it, ``notify`` (``dm``), blocks, the commands, and account deletion and export.
"""

from __future__ import annotations

import json

import pytest_twisted
import treq
from test_moderation import api, drained, join, lobby_with, moderate, post
from test_retention_database import sql
from test_tasks import field_of
from twisted.internet import defer

from support import PASSWORD, bearer, config_for, start
from test_rooms import close, connect, frames_until, user_session


@pytest_twisted.async_yield_fixture
async def running(fresh_migrated_database_url, tmp_path):
    server = await start(config_for(fresh_migrated_database_url, tmp_path, no_rate_limits=True))
    yield server
    await server.stop()


async def open_dm(running, session, username: str) -> tuple[int, dict]:
    return await api(running, session, "POST", "/api/dms", {"username": username})


async def dm_of(running, session, username: str) -> dict:
    status, room = await open_dm(running, session, username)
    assert status in (200, 201), room
    return room


async def block(running, session, username: str) -> int:
    status, _ = await api(running, session, "POST", "/api/blocks", {"username": username})
    return status


async def listed(running, session) -> dict[str, dict]:
    status, rooms = await api(running, session, "GET", "/api/rooms")
    assert status == 200, rooms
    return {room["name"]: room for room in rooms}


async def command(client, line: str, room: str | None = None) -> dict:
    frame = {"type": "command", "line": line, "ref": line}
    if room is not None:
        frame["room"] = room
    client.send(frame)
    return (await frames_until(client, lambda f: f.get("ref") == line))[-1]


async def next_notify(client) -> dict:
    return (await frames_until(client, lambda f: f["type"] == "notify"))[-1]


def notifies(frames: list[dict]) -> list[dict]:
    return [f for f in frames if f["type"] == "notify"]


@pytest_twisted.ensureDeferred
async def test_each_pair_has_one_direct_room_whoever_opens_it(running):
    _, (ada, bob, carl) = await lobby_with(running, "ada", "bob", "carl")
    status, room = await open_dm(running, ada, "BOB")
    assert status == 201, room
    assert room["kind"] == "direct" and room["peer"] == "bob" and room["visibility"] == "private"
    assert room["name"].startswith("dm-") and room["member_count"] == 2
    again = await open_dm(running, ada, "bob")
    assert again[0] == 200 and again[1]["id"] == room["id"]
    status, theirs = await open_dm(running, bob, "ada")
    assert status == 200 and theirs["id"] == room["id"] and theirs["peer"] == "ada"
    # Both list it, with the other as peer; ordinary rooms say they are rooms.
    mine = await listed(running, ada)
    assert mine[room["name"]]["peer"] == "bob" and mine[room["name"]]["kind"] == "direct"
    assert mine["lobby"]["kind"] == "room" and "peer" not in mine["lobby"]
    assert (await listed(running, bob))[room["name"]]["peer"] == "ada"
    assert room["name"] not in await listed(running, carl)

    # Opened from both sides at once, many times over: still one room per pair.
    dave, erin = await user_session(running, "dave"), await user_session(running, "erin")
    answers = await defer.gatherResults(
        [
            defer.ensureDeferred(open_dm(running, *pair))
            for pair in [(dave, "erin"), (erin, "dave")] * 5
        ]
    )
    assert sorted(status for status, _ in answers) == [200] * 9 + [201]
    assert len({room["id"] for _, room in answers}) == 1
    pairs = sql(
        running.server.config.database_url,
        "SELECT count(*) FROM rooms WHERE kind = 'direct'",
    )
    assert pairs == [(2,)]


@pytest_twisted.ensureDeferred
async def test_opening_refuses_oneself_nobody_the_deleted_and_blockers(running):
    _, (ada, bob, carl) = await lobby_with(running, "ada", "bob", "carl")
    assert field_of(await open_dm(running, ada, "Ada")) == (422, "validation_error", ["username"])
    assert field_of(await open_dm(running, ada, "x")) == (422, "validation_error", ["username"])
    assert field_of(await api(running, ada, "POST", "/api/dms", {})) == (
        422,
        "validation_error",
        ["username"],
    )
    assert (await open_dm(running, ada, "nobody"))[1]["error_code"] == "not_found"
    # A deleted account: 404 by its old name and by its tombstone's, nothing written.
    status, _, _ = await running.request(
        "DELETE", "/api/auth/me", json={"password": PASSWORD}, headers=bearer(carl["access_token"])
    )
    assert status == 204
    tombstone = f"deleted-{carl['user']['id']}"
    for name in ("carl", tombstone):
        status, body = await open_dm(running, ada, name)
        assert (status, body["error_code"]) == (404, "not_found")
    url = running.server.config.database_url
    assert sql(url, "SELECT count(*) FROM rooms WHERE kind = 'direct'") == [(0,)]
    # A peer who blocks you: 403, also once the room exists; not the other way round.
    await dm_of(running, ada, "bob")
    assert await block(running, bob, "ada") == 204
    status, body = await open_dm(running, ada, "bob")
    assert (status, body["error_code"]) == (403, "forbidden")
    assert (await open_dm(running, bob, "ada"))[0] == 200


@pytest_twisted.ensureDeferred
async def test_nobody_creates_a_room_named_like_a_direct_room(running):
    _, (ada,) = await lobby_with(running, "ada")
    for name in ("dm-x", "DM-1", "Dm-"):
        body = {"name": name, "visibility": "public"}
        answer = await api(running, ada, "POST", "/api/rooms", body)
        assert field_of(answer) == (422, "validation_error", ["name"])
    assert (await api(running, ada, "POST", "/api/rooms", {"name": "dmx", "visibility": "public"}))[
        0
    ] == 201
    client = await connect(running, ada)
    reply = await command(client, "/join DM-talk")
    assert reply["ok"] is False and "dm-" in reply["text"]
    await close(client)


# --------------------------------------------------------------------------- privacy matrix


async def raw(running, session, method: str, path: str, body=None) -> tuple[int, bytes]:
    """Status and the response's bytes, exactly."""
    headers = bearer(session["access_token"]) if session is not None else {}
    data = None if body is None else json.dumps(body).encode()
    response = await treq.request(method, running.url + path, data=data, headers=headers)
    return response.code, await response.content()


def routes(room: str, message_id: str, poll_id: str, task_id: str) -> list[tuple]:
    """Every route about a room or what is in it, with a body it would take from a member."""
    base = f"/api/rooms/{room}"
    return [
        ("GET", base, None),
        ("PATCH", base, {"topic": "t"}),
        ("DELETE", base, None),
        ("POST", f"{base}/join", None),
        ("POST", f"{base}/leave", None),
        ("GET", f"{base}/members", None),
        ("POST", f"{base}/members", {"username": "carl"}),
        ("GET", f"{base}/messages", None),
        ("GET", f"{base}/messages?after=0", None),
        ("POST", f"{base}/messages", {"body": "hi"}),
        ("DELETE", f"{base}/messages/{message_id}", None),
        ("PATCH", f"{base}/messages/{message_id}", {"body": "hi"}),
        ("POST", f"{base}/moderation", {"action": "kick", "username": "bob"}),
        ("GET", f"{base}/polls", None),
        ("POST", f"{base}/polls", {"question": "q?", "options": ["a", "b"]}),
        ("GET", f"{base}/polls/{poll_id}", None),
        ("POST", f"{base}/polls/{poll_id}/vote", {"choices": [0]}),
        ("POST", f"{base}/polls/{poll_id}/close", None),
        ("GET", f"/api/tasks?room={room}", None),
        ("POST", "/api/tasks", {"title": "t", "room": room}),
        ("GET", f"/api/tasks/{task_id}", None),
        ("PATCH", f"/api/tasks/{task_id}", {"status": "completed"}),
        ("DELETE", f"/api/tasks/{task_id}", None),
    ]


def frames(room: str, message_id: str) -> list[dict]:
    return [
        {"type": "join", "room": room, "since": 0},
        {"type": "send", "room": room, "body": "hi", "client_msg_id": "c1"},
        {"type": "edit", "room": room, "id": message_id, "body": "hi"},
        {"type": "read", "room": room, "seq": 1},
        {"type": "typing", "room": room},
        {"type": "leave", "room": room},
        {"type": "command", "room": room, "line": "/who"},
        {"type": "command", "room": room, "line": "/topic t"},
        {"type": "command", "room": room, "line": "/part"},
        {"type": "command", "room": room, "line": "/kick bob"},
        {"type": "command", "room": room, "line": "/todo"},
        {"type": "command", "room": room, "line": "/poll"},
        {"type": "command", "line": f"/part {room}"},
    ]


async def answer_to(client, frame: dict, ref: str) -> list[dict]:
    """What the socket got up to the frame's answer (its ref echoed), ref left out."""
    client.send({**frame, "ref": ref})
    seen = await frames_until(client, lambda f: f.get("ref") == ref)
    return [{k: v for k, v in f.items() if k != "ref"} for f in seen]


@pytest_twisted.ensureDeferred
async def test_a_direct_room_is_absent_for_everyone_but_its_two_members(running):
    admin, (ada, bob, carl, eve) = await lobby_with(running, "ada", "bob", "carl", "eve")
    room = await dm_of(running, ada, "bob")
    status, message = await post(running, ada, "just us", room["name"])
    assert status == 201
    path = f"/api/rooms/{room['name']}/polls"
    status, poll = await api(running, ada, "POST", path, {"question": "q?", "options": ["a", "b"]})
    assert status == 201
    status, task = await api(
        running, ada, "POST", "/api/tasks", {"title": "t", "room": room["name"]}
    )
    assert status == 201
    assert (await moderate(running, ada, "ban", "eve"))[0] == 200  # banned from the lobby
    # An absent room's name of the same length, so that the answers compare byte for byte;
    # a poll and a task that are not there.
    absent = "dm-" + "9" * (len(room["name"]) - 3)
    ours = routes(room["name"], message["id"], poll["id"], task["id"])
    nowhere = routes(absent, message["id"], "1" + poll["id"][1:], "1" + task["id"][1:])
    for who in (carl, admin, eve, None):
        for (method, path, body), (_, absent_path, _) in zip(ours, nowhere, strict=True):
            if who is None and method != "GET":
                continue  # anonymous: 401 before anything, for both
            got = await raw(running, who, method, path, body)
            want = await raw(running, who, method, absent_path, body)
            want = (want[0], want[1].replace(absent.encode(), room["name"].encode()))
            assert got == want, (who and who["user"]["username"], method, path)
            assert got[0] in (401, 404) or path.startswith("/api/tasks?"), (method, path, got)
        if who is not None:
            assert room["name"] not in await listed(running, who)
            client = await connect(running, who)
            for n, (frame, absent_frame) in enumerate(
                zip(frames(room["name"], message["id"]), frames(absent, message["id"]), strict=True)
            ):
                got = await answer_to(client, frame, f"r{n}")
                want = await answer_to(client, absent_frame, f"a{n}")
                want = json.loads(json.dumps(want).replace(absent, room["name"]))
                assert got == want, (who["user"]["username"], frame, got)
            await close(client)


@pytest_twisted.ensureDeferred
async def test_members_of_a_direct_room_talk_but_do_not_run_it(running):
    _, (ada, bob, carl) = await lobby_with(running, "ada", "bob", "carl")
    room = await dm_of(running, ada, "bob")
    name = room["name"]
    forbidden = [
        ("PATCH", f"/api/rooms/{name}", {"topic": "ours"}),
        ("PATCH", f"/api/rooms/{name}", {"topic": "two\nlines"}),  # 403 before 422
        ("DELETE", f"/api/rooms/{name}", None),
        ("POST", f"/api/rooms/{name}/leave", None),
        ("POST", f"/api/rooms/{name}/members", {"username": "carl"}),
        ("POST", f"/api/rooms/{name}/moderation", {"action": "mute", "username": "bob"}),
        ("POST", f"/api/rooms/{name}/moderation", {"action": "op", "username": "bob"}),
    ]
    for method, path, body in forbidden:
        status, answer = await api(running, ada, method, path, body)
        assert (status, answer["error_code"]) == (403, "forbidden"), (method, path, body)
    # What any member does: post, edit and delete their own, read, mark read, tasks, polls.
    status, message = await post(running, ada, "hello @bob", name)
    assert status == 201 and message["mentions"] == ["bob"]
    status, _ = await api(
        running, ada, "PATCH", f"/api/rooms/{name}/messages/{message['id']}", {"body": "hey"}
    )
    assert status == 200
    assert (await api(running, bob, "POST", f"/api/rooms/{name}/join"))[0] == 200
    status, _ = await api(running, bob, "DELETE", f"/api/rooms/{name}/messages/{message['id']}")
    assert status == 403  # not bob's
    status, _ = await api(running, ada, "DELETE", f"/api/rooms/{name}/messages/{message['id']}")
    assert status == 204
    task = {"title": "call mum", "room": name, "assignee": "bob"}
    assert (await api(running, ada, "POST", "/api/tasks", task))[0] == 201
    poll = {"question": "when?", "options": ["now", "later"]}
    assert (await api(running, bob, "POST", f"/api/rooms/{name}/polls", poll))[0] == 201
    members = await api(running, bob, "GET", f"/api/rooms/{name}/members")
    assert sorted(m["username"] for m in members[1]) == ["ada", "bob"]
    client = await connect(running, bob)
    client.send({"type": "join", "room": name, "since": 0})
    await frames_until(client, lambda f: f["type"] == "joined")
    for line in ("/part", "/topic x", "/invite carl", "/kick ada"):
        reply = await command(client, line, name)
        assert reply["ok"] is False, (line, reply)
    help_text = (await command(client, "/help", name))["text"]
    assert "/topic" not in help_text and "/kick" not in help_text and "/me" in help_text
    client.send({"type": "read", "room": name, "seq": 3})
    await command(client, "/who", name)  # frames run in order: the read is stored
    shown = (await listed(running, bob))[name]
    last_seq = (await api(running, bob, "GET", f"/api/rooms/{name}"))[1]["last_seq"]
    assert shown["unread"] == last_seq - 3 and last_seq == 7
    await close(client)


# --------------------------------------------------------------------------- notify, blocks


@pytest_twisted.ensureDeferred
async def test_a_direct_message_notifies_the_peer_once_and_a_block_silences_them(running):
    _, (ada, bob, carl) = await lobby_with(running, "ada", "bob", "carl")
    room = await dm_of(running, ada, "bob")
    name = room["name"]
    ada_socket, bob_socket = await connect(running, ada), await connect(running, bob)
    bob_sockets = [bob_socket, await connect(running, bob)]
    # dm wins over mention: one notify per event, to every socket of the peer.
    status, message = await post(running, ada, "hi @bob", name)
    for socket in bob_sockets:
        note = await next_notify(socket)
        assert note == {"type": "notify", "reason": "dm", "room": name, "event": message}
    assert notifies(await drained(ada_socket)) == []  # nobody hears of their own
    assert [notifies(await drained(s)) for s in bob_sockets] == [[], []]

    # Bob blocks ada: she cannot post to him, her mentions neither notify nor count,
    # and in the lobby her messages still reach him.
    assert await block(running, bob, "ada") == 204
    assert await block(running, bob, "Ada") == 204  # again: 204
    assert (await api(running, bob, "GET", "/api/blocks"))[1] == {"blocks": ["ada"]}
    status, body = await post(running, ada, "please", name)
    assert (status, body["error_code"]) == (403, "forbidden")
    ada_socket.send({"type": "send", "room": name, "body": "please", "client_msg_id": "x"})
    refused = await frames_until(ada_socket, lambda f: f["type"] == "error")
    assert refused[-1]["error_code"] == "forbidden"
    lobby_socket = await connect(running, bob)
    lobby_socket.send({"type": "join", "room": "lobby"})
    await frames_until(lobby_socket, lambda f: f["type"] == "joined")
    before = (await listed(running, bob))["lobby"]["mentions"]
    status, ignored = await post(running, ada, "@bob hello?", "lobby")
    assert status == 201 and ignored["mentions"] == ["bob"]
    delivered = await frames_until(lobby_socket, lambda f: f.get("id") == ignored["id"])
    assert notifies(delivered) == []
    assert (await listed(running, bob))["lobby"]["mentions"] == before
    assert ignored["id"] not in [
        e["id"] for e in (await api(running, bob, "GET", "/api/mentions"))[1]["events"]
    ]
    # Bob still writes to ada, and she is told; carl's mention of bob still tells him.
    status, reply = await post(running, bob, "no", name)
    assert (await next_notify(ada_socket))["event"] == reply
    _, marker = await post(running, carl, "@bob marker", "lobby")
    assert (await next_notify(bob_socket))["event"]["id"] == marker["id"]

    # Unblocked: ada posts again, and is heard.
    status, _ = await api(running, bob, "DELETE", "/api/blocks/ADA")
    assert status == 204
    assert (await api(running, bob, "DELETE", "/api/blocks/ada"))[0] == 204  # not blocked
    assert (await api(running, bob, "GET", "/api/blocks"))[1] == {"blocks": []}
    status, again = await post(running, ada, "ok", name)
    assert status == 201 and (await next_notify(bob_socket))["event"] == again
    await close(ada_socket, lobby_socket, *bob_sockets)


@pytest_twisted.ensureDeferred
async def test_a_blocked_user_notifies_of_nothing_neither_by_edit_nor_by_task(running):
    _, (ada, bob, carl) = await lobby_with(running, "ada", "bob", "carl")
    bob_socket = await connect(running, bob)
    assert await block(running, bob, "ada") == 204
    status, message = await post(running, ada, "hello", "lobby")
    path = f"/api/rooms/lobby/messages/{message['id']}"
    status, edited = await api(running, ada, "PATCH", path, {"body": "hello @bob"})
    assert status == 200 and edited["mentions"] == ["bob"]
    task = {"title": "yours", "room": "lobby", "assignee": "bob"}
    assert (await api(running, ada, "POST", "/api/tasks", task))[0] == 201
    assert (await listed(running, bob))["lobby"]["mentions"] == 0
    _, marker = await post(running, carl, "@bob marker", "lobby")
    assert (await next_notify(bob_socket))["event"]["id"] == marker["id"]
    await close(bob_socket)


@pytest_twisted.ensureDeferred
async def test_block_routes_refuse_oneself_and_nobody(running):
    _, (ada,) = await lobby_with(running, "ada")
    assert field_of(await api(running, ada, "POST", "/api/blocks", {"username": "ADA"})) == (
        422,
        "validation_error",
        ["username"],
    )
    assert field_of(await api(running, ada, "POST", "/api/blocks", {"username": 5})) == (
        422,
        "validation_error",
        ["username"],
    )
    for method, path, body in [
        ("POST", "/api/blocks", {"username": "nobody"}),
        ("DELETE", "/api/blocks/nobody", None),
    ]:
        status, answer = await api(running, ada, method, path, body)
        assert (status, answer["error_code"]) == (404, "not_found")
    assert (await api(running, None, "GET", "/api/blocks"))[0] == 401


@pytest_twisted.ensureDeferred
async def test_msg_query_ignore_and_unignore_work_without_a_room(running):
    _, (ada, bob) = await lobby_with(running, "ada", "bob")
    ada_socket, bob_socket = await connect(running, ada), await connect(running, bob)
    help_text = (await command(ada_socket, "/help"))["text"]
    assert all(f"/{name} " in help_text for name in ("msg", "query", "ignore", "unignore"))
    assert "/topic" not in help_text
    assert (await command(ada_socket, "/topic x"))["ok"] is False
    reply = await command(ada_socket, "/msg Bob lunch?")
    assert reply["ok"] is True, reply
    joined = await frames_until(ada_socket, lambda f: f["type"] == "joined")
    name = joined[-1]["room"]
    assert name.startswith("dm-")
    note = await next_notify(bob_socket)
    assert (note["reason"], note["room"], note["event"]["body"]) == ("dm", name, "lunch?")
    reply = await command(bob_socket, "/query ada", "lobby")
    assert reply["ok"] is True and name in reply["text"]
    assert (await frames_until(bob_socket, lambda f: f["type"] == "joined"))[-1]["room"] == name
    assert f"{name} (with ada)" in (await command(bob_socket, "/rooms"))["text"]
    assert (await command(bob_socket, "/ignore ada"))["ok"] is True
    refused = await command(ada_socket, "/msg bob still?")
    assert refused["ok"] is False and "bob" in refused["text"]
    assert (await command(bob_socket, "/unignore ada"))["ok"] is True
    assert (await command(ada_socket, "/msg bob still?"))["ok"] is True
    assert (await command(ada_socket, "/msg ada me?"))["ok"] is False
    assert (await command(ada_socket, "/ignore nobody"))["ok"] is False
    await close(ada_socket, bob_socket)


# --------------------------------------------------------------------------- accounts


@pytest_twisted.ensureDeferred
async def test_account_deletion_leaves_the_peer_the_history_and_export_lists_dms(running):
    _, (ada, bob, carl) = await lobby_with(running, "ada", "bob", "carl")
    room = await dm_of(running, ada, "bob")
    await post(running, bob, "bye", room["name"])
    assert await block(running, ada, "carl") == 204
    assert await block(running, carl, "ada") == 204
    status, export, _ = await running.request(
        "GET", "/api/auth/me/export", headers=bearer(ada["access_token"])
    )
    assert status == 200
    assert [(d["room"], d["peer"]) for d in export["direct_rooms"]] == [(room["name"], "bob")]
    assert export["blocks"] == ["carl"]  # whom she blocks; not who blocks her
    assert room["name"] in [m["room"] for m in export["memberships"]]

    status, _, _ = await running.request(
        "DELETE", "/api/auth/me", json={"password": PASSWORD}, headers=bearer(bob["access_token"])
    )
    assert status == 204
    tombstone = f"deleted-{bob['user']['id']}"
    mine = (await listed(running, ada))[room["name"]]
    assert (mine["peer"], mine["member_count"]) == (tombstone, 1)
    status, page = await api(running, ada, "GET", f"/api/rooms/{room['name']}/messages")
    assert status == 200 and [e["body"] for e in page["events"] if e["type"] == "message"] == [
        "bye"
    ]
    assert page["events"][-1]["user"] == tombstone
    url = running.server.config.database_url
    bob_id = int(bob["user"]["id"])
    assert sql(
        url, "SELECT count(*) FROM user_blocks WHERE %s IN (blocker_id, blocked_id)", (bob_id,)
    ) == [(0,)]
    assert (await join(running, carl, room["name"]))[0] == 404
