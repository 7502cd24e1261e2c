"""
Mentions and editing over real HTTP and WebSocket against a real daemon and PostgreSQL
(protocol v1.1, Mentions and Editing): who a message mentions as it is stored, edits
by route and by frame, every copy of a message showing it as it now is (history,
replays, live), and the refusals in the contract's order.
"""

from __future__ import annotations

import pytest_twisted
from test_moderation import api, drained, history, lobby_with, moderate, post
from test_tasks import field_of
from twisted.internet import defer, reactor
from twisted.internet.task import deferLater

from support import PASSWORD, bearer, config_for, start
from test_rooms import close, connect, frames_until, user_session


@pytest_twisted.async_yield_fixture
async def running(fresh_migrated_database_url, tmp_path):
    server = await start(config_for(fresh_migrated_database_url, tmp_path, no_rate_limits=True))
    yield server
    await server.stop()


async def posted(running, session, body: str, room="lobby") -> dict:
    status, event = await post(running, session, body, room)
    assert status == 201, event
    return event


async def edit(running, session, message, body, room="lobby"):
    path = f"/api/rooms/{room}/messages/{message['id']}"
    return await api(running, session, "PATCH", path, {"body": body})


def messages(events: list[dict]) -> list[dict]:
    return [e for e in events if e["type"] in ("message", "message_edited")]


@pytest_twisted.ensureDeferred
async def test_a_message_mentions_the_members_it_names(running):
    _, (ada, bob, carl) = await lobby_with(running, "ada", "bob", "carl")
    await user_session(running, "dave")  # a user, but no member of the lobby
    event = await posted(
        running, ada, "hi @Carl, @BOB. and @dave; mail x@bob.com, @ada @carl @nobody"
    )
    assert event["mentions"] == ["carl", "bob", "ada"]  # as stored, first written first
    assert event["edited_at"] is None
    assert messages(await history(running, bob))[-1]["mentions"] == ["carl", "bob", "ada"]
    assert (await posted(running, bob, "no one here"))["mentions"] == []
    # A deleted account's name goes from the mentions of the messages that named it.
    status, _, _ = await running.request(
        "DELETE", "/api/auth/me", json={"password": PASSWORD}, headers=bearer(carl["access_token"])
    )
    assert status == 204
    named = messages(await history(running, bob))[-2]
    assert named["mentions"] == [f"deleted-{carl['user']['id']}", "bob", "ada"]
    assert named["body"] == event["body"]  # what was written stays as written


@pytest_twisted.ensureDeferred
async def test_an_edit_changes_every_copy_of_the_message(running):
    _, (ada, bob) = await lobby_with(running, "ada", "bob")
    watcher = await connect(running, bob)
    watcher.send({"type": "join", "room": "lobby"})
    await drained(watcher)
    original = await posted(running, ada, "lunch at 12?")
    status, edited = await edit(running, ada, original, "lunch at 1, @bob?  ")
    assert status == 200
    assert edited == {
        **original,
        "body": "lunch at 1, @bob?",
        "mentions": ["bob"],
        "edited_at": edited["edited_at"],
    }
    assert edited["edited_at"] is not None and edited["seq"] == original["seq"]
    [live] = [f for f in await drained(watcher) if f["type"] == "message_edited"]
    assert live["target"] == original["id"] and live["user"] == "ada"
    assert (live["body"], live["mentions"], live["edited_at"]) == (
        "lunch at 1, @bob?",
        ["bob"],
        edited["edited_at"],
    )

    _, again = await edit(running, ada, original, "lunch at 2")
    shown = messages(await history(running, bob))
    assert [e["type"] for e in shown] == ["message", "message_edited", "message_edited"]
    # Every copy shows the message as it is now.
    assert {(e["body"], tuple(e["mentions"]), e["edited_at"]) for e in shown} == {
        ("lunch at 2", (), again["edited_at"])
    }
    # So does a replay after a reconnect.
    await close(watcher)
    watcher = await connect(running, bob)
    watcher.send({"type": "join", "room": "lobby", "since": original["seq"] - 1})
    replayed = [
        f
        for f in await frames_until(watcher, lambda f: f.get("seq") == shown[-1]["seq"])
        if f["type"] in ("message", "message_edited")
    ]
    assert replayed == shown

    # Deleted: every copy shows no body and names no one.
    assert (await api(running, ada, "DELETE", f"/api/rooms/lobby/messages/{original['id']}"))[
        0
    ] == 204
    after = messages(await history(running, bob))
    assert [(e["body"], e["mentions"]) for e in after] == [(None, [])] * 3
    assert field_of(await edit(running, ada, original, "back"))[:2] == (404, "not_found")
    await close(watcher)


@pytest_twisted.ensureDeferred
async def test_who_may_edit_and_in_which_order_refusals_come(running):
    admin, (ada, bob) = await lobby_with(running, "ada", "bob")
    message = await posted(running, bob, "bob's words")
    # Its author alone: a moderator, the owner and a server admin are refused too.
    assert (await moderate(running, ada, "op", "bob"))[0] == 200
    for other in (ada, admin):
        assert field_of(await edit(running, other, message, "not yours")) == (
            403,
            "forbidden",
            [],
        )
        # A bad body does not get past the 403 either.
        assert field_of(await edit(running, other, message, ""))[:2] == (403, "forbidden")
    for body in ("", "   ", "x" * 4001, "a\x00b"):
        assert field_of(await edit(running, bob, message, body)) == (
            422,
            "validation_error",
            ["body"],
        )
    assert field_of(await api(running, bob, "PATCH", f"/api/rooms/lobby/messages/{message['id']}",
                              {}))[:2] == (422, "validation_error")  # fmt: skip
    absent = await api(running, bob, "PATCH", "/api/rooms/lobby/messages/999999", {"body": "x"})
    assert absent[0] == 404
    for path in ("x", "0", "٣", str(2**63)):
        url = f"/api/rooms/lobby/messages/{path}"
        assert await api(running, bob, "PATCH", url, {"body": "x"}) == absent
    # Another room's message is no message of this one.
    await api(running, ada, "POST", "/api/rooms", {"name": "other", "visibility": "public"})
    assert (await api(running, bob, "POST", "/api/rooms/other/join"))[0] == 200
    elsewhere = await posted(running, bob, "elsewhere", room="other")
    assert await edit(running, bob, elsewhere, "x") == absent
    # Not a message: a join event's id.
    joined = [e for e in await history(running, bob) if e["type"] == "member_joined"][0]
    assert await edit(running, bob, joined, "x") == absent
    assert (await api(running, None, "PATCH", f"/api/rooms/lobby/messages/{message['id']}",
                      {"body": "x"}))[0] == 401  # fmt: skip
    # Unchanged by all of that.
    assert messages(await history(running, bob))[-1]["body"] == "bob's words"


@pytest_twisted.ensureDeferred
async def test_a_private_rooms_messages_are_not_edited_nor_confirmed_by_outsiders(running):
    _, (ada,) = await lobby_with(running, "ada", room="vault", visibility="private")
    eve = await user_session(running, "eve")
    message = await posted(running, ada, "secret", room="vault")
    hidden = await api(running, eve, "GET", "/api/rooms/vault")
    assert hidden[0] == 404
    assert await edit(running, eve, message, "mine", room="vault") == hidden
    assert await edit(running, eve, message, "", room="vault") == hidden


@pytest_twisted.ensureDeferred
async def test_the_edit_frame_does_what_the_route_does(running):
    _, (ada, bob) = await lobby_with(running, "ada", "bob")
    a = await connect(running, ada)
    a.send({"type": "join", "room": "lobby"})
    await drained(a)
    message = await posted(running, ada, "typo hree")
    a.send({"type": "edit", "room": "lobby", "id": message["id"], "body": "typo here", "ref": 7})
    frames = await frames_until(a, lambda f: f["type"] in ("reply", "error"))
    assert frames[-1] == {"type": "reply", "ref": 7, "ok": True, "text": "edited"}
    assert messages(await history(running, bob))[0]["body"] == "typo here"

    bobs = await posted(running, bob, "bob's")
    for frame, code, fields in (
        ({"id": bobs["id"], "body": "mine"}, "forbidden", []),
        ({"id": "999999", "body": "x"}, "not_found", []),
        ({"id": 5, "body": "x"}, "validation_error", ["id"]),
        ({"id": message["id"], "body": ""}, "validation_error", ["body"]),
        ({"id": message["id"]}, "validation_error", ["body"]),
    ):
        a.send({"type": "edit", "room": "lobby", "ref": "e", **frame})
        [error] = [
            f for f in await frames_until(a, lambda f: f["type"] == "error") if f["type"] == "error"
        ]
        assert (error["ref"], error["error_code"]) == ("e", code), (frame, error)
        assert [e["field"] for e in error.get("validation_errors", [])] == fields
    await close(a)


@pytest_twisted.ensureDeferred
async def test_an_edit_racing_a_delete_ends_deleted_and_never_fails(running):
    _, (ada,) = await lobby_with(running, "ada")
    for round in range(10):
        message = await posted(running, ada, f"round {round}")
        path = f"/api/rooms/lobby/messages/{message['id']}"
        edited, deleted = await defer.gatherResults(
            [
                defer.ensureDeferred(api(running, ada, "PATCH", path, {"body": "edited"})),
                defer.ensureDeferred(api(running, ada, "DELETE", path)),
            ]
        )
        assert edited[0] in (200, 404) and deleted[0] in (204, 404), (edited, deleted)
        assert (edited[0], deleted[0]) != (404, 404)
    assert {e["body"] for e in messages(await history(running, ada))} == {None}


@pytest_twisted.ensureDeferred
async def test_an_edit_mentions_again_and_drops_who_it_no_longer_names(
    running, fresh_migrated_database_url
):
    from test_retention_database import sql

    _, (ada, bob, carl) = await lobby_with(running, "ada", "bob", "carl")
    message = await posted(running, ada, "ask @bob")
    _, edited = await edit(running, ada, message, "ask @carl and @BOB")
    assert edited["mentions"] == ["carl", "bob"]
    rows = sql(
        fresh_migrated_database_url,
        "SELECT u.username, m.seq FROM message_mentions m JOIN users u ON u.id = m.user_id"
        " WHERE m.event_id = %s ORDER BY u.username",
        (int(message["id"]),),
    )
    edit_seq = messages(await history(running, ada))[-1]["seq"]
    # bob counts from the message, carl from the edit that named him.
    assert rows == [("bob", message["seq"]), ("carl", edit_seq)]
    await edit(running, ada, message, "never mind")
    assert sql(
        fresh_migrated_database_url,
        "SELECT count(*) FROM message_mentions WHERE event_id = %s",
        (int(message["id"]),),
    ) == [(0,)]
    # Thousands of @words: stored, named once each, never a 500.
    many = " ".join(["@bob", "@carl", *(f"@x{i:05}" for i in range(600))])
    assert (await posted(running, ada, many[:4000]))["mentions"] == ["bob", "carl"]


@pytest_twisted.ensureDeferred
async def test_a_mention_notifies_counts_and_lists(running):
    _, (ada, bob, carl) = await lobby_with(running, "ada", "bob", "carl")
    await api(running, ada, "POST", "/api/rooms", {"name": "elsewhere", "visibility": "public"})
    bob_socket = await connect(running, bob)  # subscribed to no room: notify reaches it
    ada_socket = await connect(running, ada)

    carl_socket = await connect(running, carl)

    async def next_notify(socket) -> dict:
        return (await frames_until(socket, lambda f: f["type"] == "notify"))[-1]

    first = await posted(running, ada, "@bob look, and @ada too")
    note = await next_notify(bob_socket)
    assert note == {"type": "notify", "reason": "mention", "room": "lobby", "event": first}

    # An edit notifies only whom it names anew, with the message_edited event.
    _, edited = await edit(running, ada, first, "@bob look, @carl, and @ada too")
    note = await next_notify(carl_socket)
    assert (note["reason"], note["event"]["type"], note["event"]["target"]) == (
        "mention",
        "message_edited",
        first["id"],
    )
    await edit(running, ada, first, "@bob look, @carl and @ada")  # both named already
    # A mention of bob alone, last: had the edits notified anyone again, it would not
    # be the next notify each socket gets.
    marker = await posted(running, carl, "@bob @carl marker")
    assert (await next_notify(bob_socket))["event"]["id"] == marker["id"]
    marker_too = await posted(running, bob, "@carl marker")
    assert (await next_notify(carl_socket))["event"]["id"] == marker_too["id"]
    # Nobody is notified of their own words.
    assert [f for f in await drained(ada_socket) if f["type"] == "notify"] == []

    async def counts(session) -> dict[str, int]:
        status, listed = await api(running, session, "GET", "/api/rooms")
        assert status == 200
        return {room["name"]: room["mentions"] for room in listed}

    assert await counts(bob) == {"elsewhere": 0, "lobby": 2}
    second = await posted(running, carl, "@bob again")
    assert (await counts(bob))["lobby"] == 3
    # Read up to the first: one left. Deleted: none.
    bob_socket.send({"type": "read", "room": "lobby", "seq": marker["seq"]})
    # A read frame has no answer (and a ping's pong may pass it): wait for its effect.
    for _ in range(50):
        if (await counts(bob))["lobby"] == 1:
            break
        await deferLater(reactor, 0.1, lambda: None)
    assert (await counts(bob))["lobby"] == 1
    status, page = await api(running, bob, "GET", "/api/mentions")
    assert status == 200
    assert [e["id"] for e in page["events"]] == [second["id"], marker["id"], first["id"]]
    assert page["has_more"] is False and page["events"][2]["body"] == "@bob look, @carl and @ada"
    status, older = await api(running, bob, "GET", f"/api/mentions?limit=1&before={marker['id']}")
    assert [e["id"] for e in older["events"]] == [first["id"]] and older["has_more"] is False
    status, newest = await api(running, bob, "GET", "/api/mentions?limit=1")
    assert newest["has_more"] is True
    assert (await api(running, carl, "DELETE", f"/api/rooms/lobby/messages/{second['id']}"))[
        0
    ] == 204
    assert (await counts(bob))["lobby"] == 0
    assert [e["id"] for e in (await api(running, bob, "GET", "/api/mentions"))[1]["events"]] == [
        marker["id"],
        first["id"],
    ]
    for bad in ("limit=0", "limit=101", "before=x"):
        assert field_of(await api(running, bob, "GET", f"/api/mentions?{bad}"))[0] == 422
    assert (await api(running, None, "GET", "/api/mentions"))[0] == 401
    await close(bob_socket, ada_socket, carl_socket)


@pytest_twisted.ensureDeferred
async def test_mentions_in_a_room_one_may_no_longer_read_are_not_listed(running):
    _, (ada, bob) = await lobby_with(running, "ada", "bob", room="vault", visibility="private")
    await posted(running, ada, "@bob the plan", room="vault")
    assert len((await api(running, bob, "GET", "/api/mentions"))[1]["events"]) == 1
    assert (await moderate(running, ada, "kick", "bob", room="vault"))[0] == 200
    assert (await api(running, bob, "GET", "/api/mentions"))[1] == {"events": [], "has_more": False}
