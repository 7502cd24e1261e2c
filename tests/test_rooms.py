"""Rooms over real HTTP and real WebSockets: sequencing, acks, catch-up and visibility."""

from __future__ import annotations

import psycopg2
import pytest
import pytest_twisted
from twisted.internet.defer import ensureDeferred, gatherResults

from support import add_user, bearer, config_for, login, start, ws_connect
from termrooms.domain.errors import DatabaseUnavailable
from termrooms.transport.gateway.feeds import RoomFeed


@pytest_twisted.async_yield_fixture
async def running(fresh_migrated_database_url, tmp_path):
    server = await start(config_for(fresh_migrated_database_url, tmp_path, no_rate_limits=True))
    yield server
    await server.stop()


async def user_session(running, name: str, role: str = "user") -> dict:
    await add_user(running, name, role=role)
    status, session = await login(running, name)
    assert status == 200
    return session


async def make_room(running, session, name="lobby", visibility="public", topic=None) -> dict:
    body = {"name": name, "visibility": visibility}
    if topic is not None:
        body["topic"] = topic
    status, room, _ = await running.request(
        "POST", "/api/rooms", json=body, headers=bearer(session["access_token"])
    )
    assert status == 201, room
    return room


async def connect(running, session):
    url = running.url.replace("http://", "ws://") + f"/ws?token={session['access_token']}"
    client = await ws_connect(url)
    assert (await client.next_frame())["type"] == "welcome"
    return client


async def frames_until(client, predicate, limit: int = 2000) -> list[dict]:
    """Frames up to and including the first that satisfies ``predicate``."""
    seen = []
    for _ in range(limit):
        frame = await client.next_frame()
        seen.append(frame)
        if predicate(frame):
            return seen
    raise AssertionError(f"never saw the frame; last: {seen[-3:]}")


def messages(frames: list[dict]) -> list[dict]:
    return [f for f in frames if f.get("type") == "message"]


async def close(*clients) -> None:
    for client in clients:
        client.protocol.sendClose(1000)
        await client.close_code()


@pytest_twisted.ensureDeferred
async def test_two_users_exchange_messages_with_acks_presence_and_typing(running):
    ada = await user_session(running, "ada")
    bob = await user_session(running, "bob")
    await make_room(running, ada, topic="general chat")
    a = await connect(running, ada)
    b = await connect(running, bob)

    a.send({"type": "join", "room": "lobby"})
    joined = await a.next_frame()
    assert joined == {
        "type": "joined",
        "room": "lobby",
        "topic": "general chat",
        "last_seq": 1,
        "online": ["ada"],
    }
    b.send({"type": "join", "room": "LOBBY"})  # names match in any case
    bob_joined = await frames_until(b, lambda f: f["type"] == "joined")
    assert bob_joined[-1]["online"] == ["ada", "bob"]
    seen_by_ada = await frames_until(a, lambda f: f.get("type") == "presence")
    assert seen_by_ada[-1] == {
        "type": "presence",
        "room": "lobby",
        "user": "bob",
        "status": "online",
    }
    assert any(f["type"] == "member_joined" and f["user"] == "bob" for f in seen_by_ada)

    b.send({"type": "typing", "room": "lobby"})
    typing = await frames_until(a, lambda f: f["type"] == "typing")
    assert typing[-1] == {"type": "typing", "room": "lobby", "user": "bob"}

    b.send({"type": "send", "room": "lobby", "body": "hello ada  ", "client_msg_id": "b-1"})
    at_bob = await frames_until(b, lambda f: f["type"] == "ack")
    ack = at_bob[-1]
    at_ada = await frames_until(a, lambda f: f["type"] == "message")
    message = at_ada[-1]
    assert ack == {
        "type": "ack",
        "client_msg_id": "b-1",
        "id": message["id"],
        "seq": message["seq"],
    }
    assert message["body"] == "hello ada" and message["user"] == "bob"
    assert message["action"] is False and message["ts"].endswith("Z")

    await close(b)
    offline = await frames_until(a, lambda f: f.get("type") == "presence")
    assert offline[-1]["status"] == "offline" and offline[-1]["user"] == "bob"
    await close(a)


@pytest_twisted.ensureDeferred
async def test_retried_send_gives_the_original_ack_and_stores_one_event(running):
    ada = await user_session(running, "ada")
    await make_room(running, ada)
    client = await connect(running, ada)
    client.send({"type": "join", "room": "lobby"})
    await frames_until(client, lambda f: f["type"] == "joined")
    frame = {"type": "send", "room": "lobby", "body": "once", "client_msg_id": "c-1"}
    client.send(frame)
    first = (await frames_until(client, lambda f: f["type"] == "ack"))[-1]
    await close(client)

    again = await connect(running, ada)  # a reconnect, then the retry
    again.send(frame)
    second = (await frames_until(again, lambda f: f["type"] == "ack"))[-1]
    assert first == second
    status, page, _ = await running.request(
        "POST",
        "/api/rooms/lobby/messages",
        json={"body": "once", "client_msg_id": "c-1"},
        headers=bearer(ada["access_token"]),
    )
    assert status == 201 and page["id"] == first["id"] and page["seq"] == first["seq"]
    assert count_messages(running) == 1
    await close(again)


def count_messages(running) -> int:
    connection = psycopg2.connect(running.server.config.database_url)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM room_events WHERE type = 'message'")
            return cursor.fetchone()[0]
    finally:
        connection.close()


@pytest_twisted.ensureDeferred
async def test_rejoin_with_since_gets_exactly_the_missed_events_in_order_while_a_sender_continues(
    running,
):
    ada = await user_session(running, "ada")
    bob = await user_session(running, "bob")
    await make_room(running, ada)
    await running.request("POST", "/api/rooms/lobby/join", headers=bearer(bob["access_token"]))

    reader = await connect(running, bob)
    reader.send({"type": "join", "room": "lobby"})
    last_seen = (await frames_until(reader, lambda f: f["type"] == "joined"))[-1]["last_seq"]
    await close(reader)

    writer = await connect(running, ada)
    for i in range(50):
        writer.send({"type": "send", "room": "lobby", "body": f"m{i}", "client_msg_id": f"a{i}"})
    await frames_until(writer, lambda f: f.get("type") == "ack" and f["client_msg_id"] == "a49")

    async def keep_sending() -> None:
        for i in range(50, 80):
            writer.send(
                {"type": "send", "room": "lobby", "body": f"m{i}", "client_msg_id": f"a{i}"}
            )

    reader = await connect(running, bob)
    sending = ensureDeferred(keep_sending())
    reader.send({"type": "join", "room": "lobby", "since": last_seen})
    await sending
    frames = await frames_until(reader, lambda f: f.get("type") == "message" and f["body"] == "m79")
    seqs = [f["seq"] for f in frames if "seq" in f]
    assert seqs == list(range(last_seen + 1, seqs[-1] + 1)), "a gap or a duplicate"
    assert [m["body"] for m in messages(frames)] == [f"m{i}" for i in range(80)]
    await close(reader, writer)


@pytest_twisted.ensureDeferred
async def test_twenty_concurrent_senders_1000_messages_gapless_and_delivered_once_in_order(running):
    owner = await user_session(running, "owner")
    await make_room(running, owner)
    senders = []
    for i in range(20):
        session = await user_session(running, f"sender{i:02d}")
        client = await connect(running, session)
        client.send({"type": "join", "room": "lobby"})
        await frames_until(client, lambda f: f["type"] == "joined")
        senders.append(client)
    watcher = await connect(running, owner)
    watcher.send({"type": "join", "room": "lobby"})
    start_seq = (await frames_until(watcher, lambda f: f["type"] == "joined"))[-1]["last_seq"]

    async def send_fifty(index: int, client) -> None:
        for n in range(50):
            client.send(
                {"type": "send", "room": "lobby", "body": f"{index}:{n}", "client_msg_id": f"{n}"}
            )
        await frames_until(client, lambda f: f.get("type") == "ack" and f["client_msg_id"] == "49")

    await gatherResults([ensureDeferred(send_fifty(i, c)) for i, c in enumerate(senders)])
    received = messages(await collect_messages(watcher, 1000))
    seqs = [m["seq"] for m in received]
    assert seqs == list(range(start_seq + 1, start_seq + 1001)), "not once each, in order"
    stored = stored_seqs(running)
    assert stored == list(range(1, len(stored) + 1)), "the room's seqs have a gap"
    await close(watcher, *senders)


async def collect_messages(client, count: int) -> list[dict]:
    frames = []
    while len(messages(frames)) < count:
        frames.append(await client.next_frame(timeout=20))
    return frames


def stored_seqs(running) -> list[int]:
    connection = psycopg2.connect(running.server.config.database_url)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT seq FROM room_events ORDER BY seq")
            return [seq for (seq,) in cursor.fetchall()]
    finally:
        connection.close()


@pytest_twisted.ensureDeferred
async def test_history_pages_with_before_and_after_across_500_events(running):
    ada = await user_session(running, "ada")
    await make_room(running, ada)
    await gatherResults(
        [
            ensureDeferred(
                running.request(
                    "POST",
                    "/api/rooms/lobby/messages",
                    json={"body": f"n{i}", "client_msg_id": f"h{i}"},
                    headers=bearer(ada["access_token"]),
                )
            )
            for i in range(499)
        ]
    )
    headers = bearer(ada["access_token"])
    status, newest, _ = await running.request("GET", "/api/rooms/lobby/messages", headers=headers)
    assert status == 200 and len(newest["events"]) == 50 and newest["has_more"]
    assert [e["seq"] for e in newest["events"]] == list(range(451, 501))

    collected, before = [], None
    while True:
        query = "?limit=200" + (f"&before={before}" if before else "")
        _, page, _ = await running.request(
            "GET", f"/api/rooms/lobby/messages{query}", headers=headers
        )
        collected = page["events"] + collected
        if not page["has_more"]:
            break
        before = page["events"][0]["seq"]
    assert [e["seq"] for e in collected] == list(range(1, 501))

    forward, after = [], 0
    while True:
        _, page, _ = await running.request(
            "GET", f"/api/rooms/lobby/messages?after={after}&limit=200", headers=headers
        )
        forward += page["events"]
        if not page["has_more"]:
            break
        after = page["events"][-1]["seq"]
    assert forward == collected
    # Public rooms are readable without a token.
    status, anonymous, _ = await running.request("GET", "/api/rooms/lobby/messages?limit=1")
    assert status == 200 and anonymous["events"][0]["seq"] == 500


@pytest_twisted.ensureDeferred
async def test_private_rooms_answer_as_if_they_did_not_exist(running):
    ada = await user_session(running, "ada")
    eve = await user_session(running, "eve")
    await make_room(running, ada, name="secret", visibility="private")
    headers = bearer(eve["access_token"])
    missing = {}
    for method, path, body in [
        ("GET", "/api/rooms/{}", None),
        ("POST", "/api/rooms/{}/join", None),
        ("POST", "/api/rooms/{}/leave", None),
        ("GET", "/api/rooms/{}/members", None),
        ("GET", "/api/rooms/{}/messages", None),
        ("POST", "/api/rooms/{}/messages", {"body": "hi"}),
    ]:
        for room in ("secret", "nonexistent"):
            status, error, _ = await running.request(
                method, path.format(room), json=body, headers=headers
            )
            missing[(method, path, room)] = (status, error)
    for (method, path, _), (status, error) in missing.items():
        assert (status, error["error_code"]) == (404, "not_found"), (method, path)
    for method, path, _ in missing:
        secret = missing[(method, path, "secret")][1]
        nonexistent = missing[(method, path, "nonexistent")][1]
        assert secret["detail"].replace("secret", "X") == nonexistent["detail"].replace(
            "nonexistent", "X"
        ), "the answers differ: the room's existence leaks"
    _, listed, _ = await running.request("GET", "/api/rooms", headers=headers)
    assert "secret" not in [room["name"] for room in listed]

    client = await connect(running, eve)
    for frame in (
        {"type": "join", "room": "secret", "ref": 1},
        {"type": "join", "room": "secret", "since": 0, "ref": 2},
        {"type": "send", "room": "secret", "body": "x", "client_msg_id": "1", "ref": 3},
        {"type": "read", "room": "secret", "seq": 1, "ref": 4},
    ):
        client.send(frame)
        error = await client.next_frame()
        assert (error["type"], error["error_code"], error["ref"]) == (
            "error",
            "not_found",
            frame["ref"],
        )
    await close(client)


@pytest_twisted.ensureDeferred
async def test_room_list_has_unread_counts_that_read_markers_clear(running):
    ada = await user_session(running, "ada")
    bob = await user_session(running, "bob")
    await make_room(running, ada)
    await running.request("POST", "/api/rooms/lobby/join", headers=bearer(bob["access_token"]))
    for i in range(3):
        await running.request(
            "POST",
            "/api/rooms/lobby/messages",
            json={"body": f"x{i}"},
            headers=bearer(ada["access_token"]),
        )
    _, listed, _ = await running.request("GET", "/api/rooms", headers=bearer(bob["access_token"]))
    (lobby,) = listed
    assert lobby["unread"] == 5  # ada's and bob's joins, then three messages
    client = await connect(running, bob)
    client.send({"type": "read", "room": "lobby", "seq": 5})
    client.send({"type": "join", "room": "lobby"})  # handled after the read, in order
    await frames_until(client, lambda f: f["type"] == "joined")
    _, listed, _ = await running.request("GET", "/api/rooms", headers=bearer(bob["access_token"]))
    assert listed[0]["unread"] == 0
    await close(client)


@pytest_twisted.ensureDeferred
async def test_bad_frames_and_oversized_frames(running):
    ada = await user_session(running, "ada")
    client = await connect(running, ada)
    client.protocol.sendMessage(b"{not json")
    error = await client.next_frame()
    assert (error["type"], error["error_code"]) == ("error", "invalid_json")
    client.send({"type": "send", "room": "lobby", "body": 5, "client_msg_id": "x", "ref": "r1"})
    error = await client.next_frame()
    assert (error["error_code"], error["ref"]) == ("validation_error", "r1")
    client.protocol.sendMessage(b"x" * (65 * 1024))
    assert await client.close_code() == 1009


@pytest_twisted.ensureDeferred
async def test_last_seen_is_written_in_batches_not_per_message(running):
    ada = await user_session(running, "ada")
    await make_room(running, ada)
    headers = bearer(ada["access_token"])
    _, before, _ = await running.request("GET", "/api/rooms/lobby/members", headers=headers)
    client = await connect(running, ada)
    client.send({"type": "join", "room": "lobby"})
    await frames_until(client, lambda f: f["type"] == "joined")
    for i in range(5):
        client.send({"type": "send", "room": "lobby", "body": f"b{i}", "client_msg_id": f"s{i}"})
    await frames_until(client, lambda f: f.get("type") == "ack" and f["client_msg_id"] == "s4")
    _, unchanged, _ = await running.request("GET", "/api/rooms/lobby/members", headers=headers)
    assert unchanged[0]["last_seen_at"] == before[0]["last_seen_at"]  # no write per message
    assert unchanged[0]["online"] is True

    await running.server.record_last_seen()  # what the 30 s timer runs
    _, after, _ = await running.request("GET", "/api/rooms/lobby/members", headers=headers)
    assert after[0]["last_seen_at"] > before[0]["last_seen_at"]
    await close(client)


@pytest_twisted.ensureDeferred
async def test_typing_is_passed_on_once_per_user_and_room_whatever_the_tabs(running):
    ada = await user_session(running, "ada")
    bob = await user_session(running, "bob")
    await make_room(running, ada)
    watcher = await connect(running, ada)
    watcher.send({"type": "join", "room": "lobby"})
    await frames_until(watcher, lambda f: f["type"] == "joined")
    tabs = [await connect(running, bob) for _ in range(2)]
    for tab in tabs:
        tab.send({"type": "join", "room": "lobby"})
        await frames_until(tab, lambda f: f["type"] == "joined")
    for tab in tabs:
        tab.send({"type": "typing", "room": "lobby"})
        tab.send({"type": "typing", "room": "lobby"})
    watcher.send({"type": "join", "room": "lobby"})  # an answer that comes after them
    seen = await frames_until(watcher, lambda f: f["type"] == "joined")
    assert [f for f in seen if f["type"] == "typing"] == [
        {"type": "typing", "room": "lobby", "user": "bob"}
    ]
    await close(watcher, *tabs)


@pytest_twisted.ensureDeferred
async def test_a_join_that_fails_halfway_leaves_no_subscription_behind(running):
    ada = await user_session(running, "ada")
    room = await make_room(running, ada)
    client = await connect(running, ada)

    async def database_gone(self, *args):
        raise DatabaseUnavailable("PostgreSQL is not reachable")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(RoomFeed, "replay_from", database_gone)  # fails after subscribing
        client.send({"type": "join", "room": "lobby", "since": 0, "ref": "j1"})
        frames = await frames_until(client, lambda f: f["type"] == "error")
        error = frames[-1]
    assert (error["type"], error["error_code"], error["ref"]) == ("error", "unavailable", "j1")
    gateway = running.server.get_gateway()
    assert gateway.bus.subscribers(int(room["id"])) == frozenset()
    assert await gateway.presence.online_in([int(room["id"])]) == {}

    client.send({"type": "join", "room": "lobby"})
    assert (await frames_until(client, lambda f: f["type"] == "joined"))[-1]["room"] == "lobby"
    await close(client)
