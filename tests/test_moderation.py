"""
Moderation over real HTTP and real WebSockets: kick, ban, unban, mute, unmute, op and
deop, the topic, deleting messages and rooms, invitations into private rooms, and the
audit rows each of them leaves. Every action is checked for its effect, its stored room
event, its audit row and who may not take it.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import deferLater

from support import bearer, config_for, start
from termrooms.domain.events import Removal
from test_rooms import close, connect, frames_until, make_room, user_session

ISO_MS_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


@pytest_twisted.async_yield_fixture
async def running(fresh_migrated_database_url, tmp_path):
    server = await start(config_for(fresh_migrated_database_url, tmp_path, no_rate_limits=True))
    yield server
    await server.stop()


# --------------------------------------------------------------------------- helpers


async def api(running, session, method: str, path: str, body=None) -> tuple[int, dict | None]:
    """One authenticated request: (status, decoded body)."""
    headers = bearer(session["access_token"]) if session is not None else None
    status, answer, _ = await running.request(method, path, json=body, headers=headers)
    return status, answer


async def moderate(running, session, action: str, username: str, room="lobby", **extra):
    body = {"action": action, "username": username, **extra}
    return await api(running, session, "POST", f"/api/rooms/{room}/moderation", body)


async def join(running, session, room="lobby") -> tuple[int, dict | None]:
    return await api(running, session, "POST", f"/api/rooms/{room}/join")


async def post(running, session, body: str, room="lobby") -> tuple[int, dict | None]:
    return await api(running, session, "POST", f"/api/rooms/{room}/messages", {"body": body})


async def history(running, session, room="lobby") -> list[dict]:
    status, page = await api(running, session, "GET", f"/api/rooms/{room}/messages?limit=200")
    assert status == 200, page
    return page["events"]


async def members(running, session, room="lobby") -> dict[str, str]:
    """username -> room role."""
    status, listed = await api(running, session, "GET", f"/api/rooms/{room}/members")
    assert status == 200, listed
    return {m["username"]: m["role"] for m in listed}


async def subscribed(running, session, room="lobby"):
    """A socket of the user subscribed to ``room``, past its joined frame."""
    client = await connect(running, session)
    client.send({"type": "join", "room": room})
    await frames_until(client, lambda f: f["type"] == "joined")
    return client


async def next_event(client, event_type: str) -> dict:
    return (await frames_until(client, lambda f: f.get("type") == event_type))[-1]


async def drained(client) -> list[dict]:
    """Everything the socket has been sent so far: a ping's pong comes after all of it."""
    client.send({"type": "ping"})
    return (await frames_until(client, lambda f: f["type"] == "pong"))[:-1]


def room_events(frames: list[dict], room="lobby") -> list[dict]:
    return [f for f in frames if "seq" in f and f.get("room") == room]


def error_of(status_and_body: tuple[int, dict | None]) -> tuple[int, str]:
    status, body = status_and_body
    return status, body["error_code"]


async def audit(running, admin) -> list[dict]:
    status, page = await api(running, admin, "GET", "/api/admin/audit?limit=200")
    assert status == 200, page
    return page["entries"]


def audit_row(rows: list[dict], action: str, actor, target=None) -> dict:
    """The newest audit row of ``action`` by ``actor`` (on ``target``)."""
    for row in rows:
        if row["action"] != action or row["actor_id"] != actor["user"]["id"]:
            continue
        if target is None or row["target_user_id"] == target["user"]["id"]:
            return row
    raise AssertionError(f"no {action} audit row by {actor['user']['username']}: {rows[:5]}")


async def lobby_with(running, *names: str, room="lobby", visibility="public"):
    """An owner (the first name) and members (the rest) of a fresh room, and an admin."""
    admin = await user_session(running, "root", role="admin")
    sessions = [await user_session(running, name) for name in names]
    await make_room(running, sessions[0], name=room, visibility=visibility)
    for session in sessions[1:]:
        if visibility == "private":
            status, _ = await api(
                running,
                sessions[0],
                "POST",
                f"/api/rooms/{room}/members",
                {"username": session["user"]["username"]},
            )
            assert status == 204
        assert (await join(running, session, room))[0] == 200
    return admin, sessions


# --------------------------------------------------------------------------- kick


@pytest_twisted.ensureDeferred
async def test_kick_ends_the_membership_and_the_kicked_socket_stops_receiving_at_once(running):
    admin, (ada, bob, carl) = await lobby_with(running, "ada", "bob", "carl")
    watcher = await subscribed(running, ada)
    kicked = await subscribed(running, bob)
    await drained(watcher)

    status, event = await moderate(running, ada, "kick", "bob", reason="flooding")
    assert status == 200, event
    assert event["type"] == "member_kicked"
    assert (event["user"], event["target"], event["reason"]) == ("ada", "bob", "flooding")
    assert event["room"] == "lobby" and ISO_MS_Z.fullmatch(event["ts"])

    # The kicked user saw their kick, and then nothing more of the room.
    assert (await next_event(kicked, "member_kicked")) == event
    assert (await next_event(watcher, "member_kicked")) == event
    offline = await next_event(watcher, "presence")
    assert (offline["user"], offline["status"]) == ("bob", "offline")
    assert (await post(running, carl, "after the kick"))[0] == 201
    assert (await next_event(watcher, "message"))["body"] == "after the kick"
    assert room_events(await drained(kicked)) == []
    kicked.send({"type": "typing", "room": "lobby", "ref": "t"})
    refused = await next_event(kicked, "error")
    assert (refused["error_code"], refused["ref"]) == ("not_found", "t")

    assert "bob" not in await members(running, ada)
    assert error_of(await post(running, bob, "still here?")) == (403, "forbidden")
    stored = [e for e in await history(running, ada) if e["type"] == "member_kicked"]
    assert stored == [event]
    row = audit_row(await audit(running, admin), "moderation.kick", ada, bob)
    assert row["data"] == {"reason": "flooding"}
    assert row["room_id"] == (await api(running, ada, "GET", "/api/rooms/lobby"))[1]["id"]

    # A kick is not a ban: bob may come back; kicking a non-member is not_found.
    assert (await join(running, bob))[0] == 200
    await user_session(running, "eve")
    assert error_of(await moderate(running, ada, "kick", "eve")) == (404, "not_found")
    await close(watcher, kicked)


@pytest_twisted.ensureDeferred
async def test_a_removal_heard_before_its_event_still_shows_everyone_the_event_first(running):
    """Another instance's NOTIFY can beat the event it removes for: the kicked socket
    leaves only once the kick went out, and the others see the kick before the offline."""
    admin, (ada, bob) = await lobby_with(running, "ada", "bob")
    kicked = await subscribed(running, bob)  # first: the bus delivers to it first
    watcher = await subscribed(running, ada)
    await drained(watcher)
    status, room = await api(running, ada, "GET", "/api/rooms/lobby")
    gateway = running.server.get_gateway()
    gateway.remove_from_room(Removal(int(room["id"]), int(bob["user"]["id"]), room["last_seq"] + 1))
    assert room_events(await drained(kicked)) == []  # still subscribed until the kick

    status, event = await moderate(running, ada, "kick", "bob")
    assert status == 200, event
    assert (await next_event(kicked, "member_kicked"))["seq"] == event["seq"]
    seen = [f for f in await drained(watcher) if f["type"] in ("member_kicked", "presence")]
    assert [(f["type"], f.get("status")) for f in seen] == [
        ("member_kicked", None),
        ("presence", "offline"),
    ]
    assert (await post(running, ada, "after the kick"))[0] == 201
    assert room_events(await drained(kicked)) == []
    await close(watcher, kicked)


# --------------------------------------------------------------------------- ban


@pytest_twisted.ensureDeferred
async def test_ban_removes_and_keeps_out_until_unban(running):
    admin, (ada, bob) = await lobby_with(running, "ada", "bob")
    watcher = await subscribed(running, ada)
    banned = await subscribed(running, bob)

    before = datetime.now(timezone.utc)
    status, event = await moderate(running, ada, "ban", "bob", reason="spam", duration_s=3600)
    assert status == 200, event
    assert (event["type"], event["user"], event["target"]) == ("member_banned", "ada", "bob")
    assert event["reason"] == "spam"
    assert (await next_event(banned, "member_banned")) == event
    assert (await next_event(watcher, "member_banned")) == event

    assert "bob" not in await members(running, ada)
    assert error_of(await join(running, bob)) == (403, "banned")
    status, _ = await post(running, bob, "let me in")
    assert status == 403
    banned.send({"type": "join", "room": "lobby", "ref": "j"})
    refused = await next_event(banned, "error")
    assert (refused["error_code"], refused["ref"]) == ("banned", "j")
    assert (await post(running, ada, "bob is gone"))[0] == 201
    assert room_events(await drained(banned)) == []

    rows = await audit(running, admin)
    row = audit_row(rows, "moderation.ban", ada, bob)
    assert row["data"]["reason"] == "spam"
    expires = datetime.fromisoformat(row["data"]["expires_at"].replace("Z", "+00:00"))
    assert timedelta(minutes=59) < expires - before < timedelta(minutes=61)

    status, lifted = await moderate(running, ada, "unban", "bob")
    assert status == 200, lifted
    assert (lifted["type"], lifted["user"], lifted["target"]) == ("member_unbanned", "ada", "bob")
    assert lifted["seq"] == event["seq"] + 2  # the ban, ada's message, the unban
    assert (await next_event(watcher, "member_unbanned")) == lifted
    assert (await join(running, bob))[0] == 200
    assert (await post(running, bob, "thanks"))[0] == 201
    audit_row(await audit(running, admin), "moderation.unban", ada, bob)

    stored = [e for e in await history(running, ada) if e["type"].startswith("member_")]
    assert [e["type"] for e in stored][-3:] == ["member_banned", "member_unbanned", "member_joined"]
    assert stored[-3] == event and stored[-2] == lifted
    await close(watcher, banned)


@pytest_twisted.ensureDeferred
async def test_ban_and_mute_events_show_expires_at_as_the_contract_writes_times(running):
    _, (ada, bob, carl) = await lobby_with(running, "ada", "bob", "carl")
    _, banned = await moderate(running, ada, "ban", "bob", duration_s=600)
    _, muted = await moderate(running, ada, "mute", "carl", duration_s=600)
    stored = {e["type"]: e for e in await history(running, ada)}
    for event in (banned, muted, stored["member_banned"], stored["member_muted"]):
        assert ISO_MS_Z.fullmatch(event["expires_at"]), event["expires_at"]


# --------------------------------------------------------------------------- mute


@pytest_twisted.ensureDeferred
async def test_mute_stops_sending_over_both_transports_until_unmute(running):
    admin, (ada, bob) = await lobby_with(running, "ada", "bob")
    watcher = await subscribed(running, ada)
    muted = await subscribed(running, bob)

    status, event = await moderate(running, ada, "mute", "bob", reason="calm down")
    assert status == 200, event
    assert (event["type"], event["user"], event["target"]) == ("member_muted", "ada", "bob")
    assert event["reason"] == "calm down" and "expires_at" not in event
    assert (await next_event(watcher, "member_muted")) == event
    assert (await next_event(muted, "member_muted")) == event

    muted.send({"type": "send", "room": "lobby", "body": "hey", "client_msg_id": "m1", "ref": 7})
    refused = await next_event(muted, "error")
    assert (refused["error_code"], refused["ref"]) == ("muted", 7)
    assert error_of(await post(running, bob, "hey")) == (403, "muted")
    # Muted, not removed: bob is still a member and still reads the room live.
    assert (await members(running, ada))["bob"] == "member"
    assert (await post(running, ada, "you can still read"))[0] == 201
    assert (await next_event(muted, "message"))["body"] == "you can still read"
    audit_row(await audit(running, admin), "moderation.mute", ada, bob)

    status, lifted = await moderate(running, ada, "unmute", "bob")
    assert status == 200, lifted
    assert (lifted["type"], lifted["user"], lifted["target"]) == ("member_unmuted", "ada", "bob")
    assert (await next_event(muted, "member_unmuted")) == lifted
    muted.send({"type": "send", "room": "lobby", "body": "hey", "client_msg_id": "m2"})
    ack = await next_event(muted, "ack")
    assert ack["client_msg_id"] == "m2"
    assert (await post(running, bob, "over http too"))[0] == 201
    audit_row(await audit(running, admin), "moderation.unmute", ada, bob)
    kinds = [e["type"] for e in await history(running, ada)]
    assert kinds.count("member_muted") == 1 and kinds.count("member_unmuted") == 1
    await close(watcher, muted)


# --------------------------------------------------------------------------- expiry


@pytest_twisted.ensureDeferred
async def test_a_ban_and_a_mute_of_one_second_lapse_by_themselves(running):
    _, (ada, bob, carl) = await lobby_with(running, "ada", "bob", "carl")
    assert (await moderate(running, ada, "ban", "bob", duration_s=1))[0] == 200
    assert (await moderate(running, ada, "mute", "carl", duration_s=1))[0] == 200
    assert error_of(await join(running, bob)) == (403, "banned")
    assert error_of(await post(running, carl, "too soon")) == (403, "muted")

    await deferLater(reactor, 1.5)

    assert (await join(running, bob))[0] == 200
    assert (await post(running, bob, "back"))[0] == 201
    assert (await post(running, carl, "free"))[0] == 201


@pytest_twisted.ensureDeferred
async def test_a_user_banned_from_a_private_room_can_neither_read_nor_join_it(running):
    _, (ada, bob) = await lobby_with(running, "ada", "bob", room="secret", visibility="private")
    assert (await post(running, ada, "before the ban", room="secret"))[0] == 201
    assert (await moderate(running, ada, "ban", "bob", room="secret"))[0] == 200

    for path in ("/api/rooms/secret", "/api/rooms/secret/messages"):
        assert error_of(await api(running, bob, "GET", path)) == (404, "not_found"), path
    # As for any room the user may not see (docs/protocol.md): it does not exist for bob.
    assert error_of(await join(running, bob, "secret")) == (404, "not_found")
    _, listed = await api(running, bob, "GET", "/api/rooms")
    assert "secret" not in [r["name"] for r in listed]

    assert (await moderate(running, ada, "unban", "bob", room="secret"))[0] == 200
    assert (await join(running, bob, "secret"))[0] == 200  # the invitation still stands
    assert (await history(running, bob, "secret"))[-1]["user"] == "bob"


# --------------------------------------------------------------------------- op / deop


@pytest_twisted.ensureDeferred
async def test_op_makes_a_moderator_who_may_kick_and_deop_takes_it_back(running):
    admin, (ada, bob, carl, dan) = await lobby_with(running, "ada", "bob", "carl", "dan")
    watcher = await subscribed(running, carl)
    # A member kicks nobody.
    assert error_of(await moderate(running, bob, "kick", "carl")) == (403, "forbidden")

    status, event = await moderate(running, ada, "op", "bob")
    assert status == 200, event
    assert event["type"] == "role_changed"
    assert (event["user"], event["target"], event["role"]) == ("ada", "bob", "moderator")
    assert (await next_event(watcher, "role_changed")) == event
    assert (await members(running, ada))["bob"] == "moderator"
    _, room = await api(running, bob, "GET", "/api/rooms/lobby")
    assert room["role"] == "moderator"
    audit_row(await audit(running, admin), "moderation.op", ada, bob)

    status, kicked = await moderate(running, bob, "kick", "carl")
    assert status == 200 and (kicked["user"], kicked["target"]) == ("bob", "carl")
    assert (await next_event(watcher, "member_kicked")) == kicked

    status, event = await moderate(running, ada, "deop", "bob")
    assert status == 200, event
    assert (event["type"], event["target"], event["role"]) == ("role_changed", "bob", "member")
    assert (await members(running, ada))["bob"] == "member"
    audit_row(await audit(running, admin), "moderation.deop", ada, bob)
    assert error_of(await moderate(running, bob, "kick", "dan")) == (403, "forbidden")
    # Op a moderator twice, or deop a member: no role changes, no event.
    last = (await history(running, ada))[-1]
    assert (await moderate(running, ada, "deop", "bob"))[0] == 422
    assert (await history(running, ada))[-1] == last
    await close(watcher)


# --------------------------------------------------------------------------- who may not


@pytest_twisted.ensureDeferred
async def test_who_may_act_on_whom(running):
    _, (ada, bob, carl, dan) = await lobby_with(running, "ada", "bob", "carl", "dan")
    assert (await moderate(running, ada, "op", "bob"))[0] == 200
    assert (await moderate(running, ada, "op", "carl"))[0] == 200
    before = await history(running, ada)

    forbidden = (403, "forbidden")
    # A member acts on nobody.
    for action in ("kick", "ban", "unban", "mute", "unmute", "op", "deop"):
        assert error_of(await moderate(running, dan, action, "ada")) == forbidden, action
    assert error_of(await moderate(running, dan, "kick", "dan")) == forbidden
    # A moderator acts on members only: not on the owner, not on another moderator.
    for action in ("kick", "ban", "mute"):
        assert error_of(await moderate(running, bob, action, "ada")) == forbidden, action
        assert error_of(await moderate(running, bob, action, "carl")) == forbidden, action
    # Nobody acts on themselves.
    assert error_of(await moderate(running, ada, "kick", "ada")) == forbidden
    assert error_of(await moderate(running, ada, "deop", "ada")) == forbidden
    assert error_of(await moderate(running, bob, "mute", "bob")) == forbidden
    # Op and deop are the owner's alone.
    assert error_of(await moderate(running, bob, "op", "dan")) == forbidden
    assert error_of(await moderate(running, bob, "deop", "carl")) == forbidden
    # Not an action, not a user.
    assert error_of(await moderate(running, ada, "smite", "dan")) == (422, "validation_error")
    assert error_of(await moderate(running, ada, "kick", "nobody")) == (404, "not_found")
    for duration_s in (0, -5, "60", 1.5, True, 3650 * 86400 + 1):
        answer = await moderate(running, ada, "ban", "dan", duration_s=duration_s)
        assert error_of(answer) == (422, "validation_error"), duration_s
    answer = await moderate(running, ada, "mute", "dan", reason="two\nlines")
    assert error_of(answer) == (422, "validation_error")
    assert (await history(running, ada)) == before, "a refused action stored an event"

    # What a moderator may do to a member, it does.
    assert (await moderate(running, bob, "mute", "dan"))[0] == 200
    assert (await moderate(running, bob, "unmute", "dan"))[0] == 200
    assert (await moderate(running, bob, "ban", "dan"))[0] == 200


@pytest_twisted.ensureDeferred
async def test_a_server_admin_acts_as_owner_in_a_room_they_do_not_own(running):
    admin, (ada, bob) = await lobby_with(running, "ada", "bob")
    assert "root" not in await members(running, ada)

    status, event = await moderate(running, admin, "op", "bob")
    assert status == 200 and (event["user"], event["role"]) == ("root", "moderator")
    assert (await moderate(running, admin, "deop", "bob"))[0] == 200
    status, room = await api(running, admin, "PATCH", "/api/rooms/lobby", {"topic": "by root"})
    assert status == 200 and room["topic"] == "by root"
    # Even the owner: only an admin acts on an owner.
    status, event = await moderate(running, admin, "kick", "ada")
    assert status == 200 and (event["user"], event["target"]) == ("root", "ada")
    assert "ada" not in await members(running, bob)
    audit_row(await audit(running, admin), "moderation.kick", admin, ada)


@pytest_twisted.ensureDeferred
async def test_moderation_in_a_private_room_by_a_non_member_is_not_found(running):
    _, (ada, bob) = await lobby_with(running, "ada", "bob", room="secret", visibility="private")
    eve = await user_session(running, "eve")
    _, message = await post(running, bob, "hidden", room="secret")
    for room in ("secret", "nowhere"):
        for method, path, body in [
            ("POST", "/api/rooms/{}/moderation", {"action": "kick", "username": "bob"}),
            ("POST", "/api/rooms/{}/moderation", {"action": "op", "username": "bob"}),
            ("PATCH", "/api/rooms/{}", {"topic": "mine now"}),
            ("DELETE", "/api/rooms/{}", None),
            ("POST", "/api/rooms/{}/members", {"username": "eve"}),
            ("DELETE", "/api/rooms/{}/messages/" + message["id"], None),
        ]:
            answer = await api(running, eve, method, path.format(room), body)
            assert error_of(answer) == (404, "not_found"), (method, path, room)
    assert (await members(running, ada, "secret")) == {"ada": "owner", "bob": "member"}


# --------------------------------------------------------------------------- topic


@pytest_twisted.ensureDeferred
async def test_topic_is_set_by_moderators_and_reaches_subscribers(running):
    _, (ada, bob, carl) = await lobby_with(running, "ada", "bob", "carl")
    assert (await moderate(running, ada, "op", "bob"))[0] == 200
    watcher = await subscribed(running, carl)

    status, room = await api(running, bob, "PATCH", "/api/rooms/lobby", {"topic": "rust vs go"})
    assert status == 200, room
    assert room["topic"] == "rust vs go" and room["name"] == "lobby"
    event = await next_event(watcher, "topic_changed")
    assert (event["user"], event["topic"], event["room"]) == ("bob", "rust vs go", "lobby")
    assert (await history(running, ada))[-1] == event

    assert error_of(await api(running, carl, "PATCH", "/api/rooms/lobby", {"topic": "mine"})) == (
        403,
        "forbidden",
    )
    _, room = await api(running, carl, "GET", "/api/rooms/lobby")
    assert room["topic"] == "rust vs go"
    late = await connect(running, carl)
    late.send({"type": "join", "room": "lobby"})
    assert (await next_event(late, "joined"))["topic"] == "rust vs go"
    await close(watcher, late)


# --------------------------------------------------------------------------- messages


@pytest_twisted.ensureDeferred
async def test_deleting_messages_authors_and_moderators_only(running):
    _, (ada, bob, carl) = await lobby_with(running, "ada", "bob", "carl")
    watcher = await subscribed(running, ada)
    _, own = await post(running, bob, "oops")
    _, other = await post(running, carl, "carl's words")
    _, owners = await post(running, ada, "owner's words")

    status, _ = await api(running, bob, "DELETE", f"/api/rooms/lobby/messages/{own['id']}")
    assert status == 204
    deleted = await next_event(watcher, "message_deleted")
    assert (deleted["user"], deleted["target"], deleted["room"]) == ("bob", own["id"], "lobby")
    events = {e["id"]: e for e in await history(running, ada)}
    assert events[own["id"]]["body"] is None and events[own["id"]]["seq"] == own["seq"]
    assert events[deleted["id"]] == deleted
    # Deleted once; a second time it is gone.
    again = await api(running, bob, "DELETE", f"/api/rooms/lobby/messages/{own['id']}")
    assert error_of(again) == (404, "not_found")

    # A member deletes nobody else's message, the owner's least of all.
    for message in (other, owners):
        answer = await api(running, bob, "DELETE", f"/api/rooms/lobby/messages/{message['id']}")
        assert error_of(answer) == (403, "forbidden")
    assert (await moderate(running, ada, "op", "bob"))[0] == 200
    status, _ = await api(running, bob, "DELETE", f"/api/rooms/lobby/messages/{other['id']}")
    assert status == 204
    deleted = await next_event(watcher, "message_deleted")
    assert (deleted["user"], deleted["target"]) == ("bob", other["id"])
    events = {e["id"]: e for e in await history(running, carl)}
    assert events[other["id"]]["body"] is None
    assert events[owners["id"]]["body"] == "owner's words"
    # Not a message id of this room.
    missing = await api(running, ada, "DELETE", f"/api/rooms/lobby/messages/{deleted['id']}")
    assert error_of(missing) == (404, "not_found")
    # Owning another room gives no say over this one's messages.
    await make_room(running, carl, name="carls")
    elsewhere = await api(running, carl, "DELETE", f"/api/rooms/carls/messages/{owners['id']}")
    assert error_of(elsewhere) == (404, "not_found")
    assert error_of(await moderate(running, bob, "op", "carl", room="carls")) == (
        403,
        "forbidden",
    )
    events = {e["id"]: e for e in await history(running, ada)}
    assert events[owners["id"]]["body"] == "owner's words"
    await close(watcher)


# --------------------------------------------------------------------------- rooms


@pytest_twisted.ensureDeferred
async def test_deleting_a_room_owner_only_then_gone_and_its_name_free(running):
    admin, (ada, bob) = await lobby_with(running, "ada", "bob")
    assert (await moderate(running, ada, "op", "bob"))[0] == 200
    watcher = await subscribed(running, bob)
    old_id = (await api(running, ada, "GET", "/api/rooms/lobby"))[1]["id"]

    assert error_of(await api(running, bob, "DELETE", "/api/rooms/lobby")) == (403, "forbidden")
    assert (await api(running, ada, "GET", "/api/rooms/lobby"))[0] == 200

    assert (await api(running, ada, "DELETE", "/api/rooms/lobby"))[0] == 204
    for session in (ada, bob, None):
        answer = await api(running, session, "GET", "/api/rooms/lobby")
        assert error_of(answer) == (404, "not_found")
    assert error_of(await post(running, ada, "anyone?")) == (404, "not_found")
    _, listed = await api(running, bob, "GET", "/api/rooms")
    assert "lobby" not in [r["name"] for r in listed]
    # The subscriber was dropped from the room at once.
    watcher.send({"type": "typing", "room": "lobby", "ref": "t"})
    assert (await next_event(watcher, "error"))["error_code"] == "not_found"
    audit_row(await audit(running, admin), "room.delete", ada)

    # The name is free again: a new room, with a new id and its own history.
    reborn = await make_room(running, bob, name="LOBBY")
    assert reborn["id"] != old_id and reborn["last_seq"] == 1
    assert (await post(running, bob, "fresh start"))[0] == 201
    assert room_events(await drained(watcher), room="LOBBY") == []
    assert [e["type"] for e in await history(running, bob)] == ["member_joined", "message"]
    await close(watcher)


@pytest_twisted.ensureDeferred
async def test_a_server_admin_deletes_any_room(running):
    admin, (ada,) = await lobby_with(running, "ada")
    assert (await api(running, admin, "DELETE", "/api/rooms/lobby"))[0] == 204
    assert (await api(running, ada, "GET", "/api/rooms/lobby"))[0] == 404


# --------------------------------------------------------------------------- invitations


@pytest_twisted.ensureDeferred
async def test_a_moderator_invites_into_a_private_room_and_only_invitees_get_in(running):
    admin, (ada, bob) = await lobby_with(running, "ada", "bob", room="secret", visibility="private")
    carl = await user_session(running, "carl")
    eve = await user_session(running, "eve")
    assert (await moderate(running, ada, "op", "bob", room="secret"))[0] == 200

    assert error_of(await join(running, carl, "secret")) == (404, "not_found")
    status, _ = await api(running, bob, "POST", "/api/rooms/secret/members", {"username": "CARL"})
    assert status == 204
    audit_row(await audit(running, admin), "room.invite", bob, carl)
    # Invited is not yet a member: the room stays hidden until carl joins.
    assert (await api(running, carl, "GET", "/api/rooms/secret"))[0] == 404

    status, room = await join(running, carl, "secret")
    assert status == 200 and room["name"] == "secret" and room["role"] == "member"
    assert (await api(running, carl, "GET", "/api/rooms/secret"))[0] == 200
    _, listed = await api(running, carl, "GET", "/api/rooms")
    assert "secret" in [r["name"] for r in listed]
    assert (await history(running, carl, "secret"))[-1]["user"] == "carl"

    # Nobody else got in, and a plain member invites nobody.
    assert error_of(await join(running, eve, "secret")) == (404, "not_found")
    invite = await api(running, carl, "POST", "/api/rooms/secret/members", {"username": "eve"})
    assert error_of(invite) == (403, "forbidden")
    assert error_of(await join(running, eve, "secret")) == (404, "not_found")
    invite = await api(running, bob, "POST", "/api/rooms/secret/members", {"username": "ghost"})
    assert error_of(invite) == (404, "not_found")


# --------------------------------------------------------------------------- audit


@pytest_twisted.ensureDeferred
async def test_the_audit_log_lists_every_moderation_action_newest_first_for_admins_only(running):
    admin, (ada, bob) = await lobby_with(running, "ada", "bob")
    for action in ("op", "deop", "mute", "unmute", "ban", "unban", "kick"):
        if action == "kick":
            assert (await join(running, bob))[0] == 200
        assert (await moderate(running, ada, action, "bob", reason=f"{action}!"))[0] == 200

    rows = await audit(running, admin)
    moderation = [r for r in rows if r["action"].startswith("moderation.")]
    assert [r["action"] for r in moderation] == [
        "moderation.kick",
        "moderation.unban",
        "moderation.ban",
        "moderation.unmute",
        "moderation.mute",
        "moderation.deop",
        "moderation.op",
    ]
    room_id = (await api(running, ada, "GET", "/api/rooms/lobby"))[1]["id"]
    for row in moderation:
        assert row["actor_id"] == ada["user"]["id"]
        assert row["target_user_id"] == bob["user"]["id"]
        assert row["room_id"] == room_id
        assert row["data"]["reason"] == row["action"].split(".")[1] + "!"
        assert ISO_MS_Z.fullmatch(row["ts"])
    assert error_of(await api(running, ada, "GET", "/api/admin/audit")) == (403, "forbidden")
