"""
Slash commands over a real WebSocket: every command of the contract, run as a
``command`` frame and answered with a ``reply``, with the same effects (and the same
stored events) as the REST routes that do the same thing.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone
from unittest.mock import ANY

import pytest
import pytest_twisted
from test_moderation import (
    api,
    audit,
    drained,
    history,
    join,
    members,
    moderate,
    next_event,
    post,
    room_events,
    subscribed,
)

from support import config_for, start
from termrooms.domain.commands import USAGE
from test_rooms import close, connect, frames_until, make_room, user_session

_refs = itertools.count(1)


@pytest_twisted.async_yield_fixture
async def running(fresh_migrated_database_url, tmp_path):
    server = await start(config_for(fresh_migrated_database_url, tmp_path, no_rate_limits=True))
    yield server
    await server.stop()


async def command(client, line: str, room: str = "lobby") -> dict:
    """Run ``line`` in ``room``; the reply, whose ref must be the one sent."""
    ref = f"r{next(_refs)}"
    client.send({"type": "command", "room": room, "line": line, "ref": ref})
    seen = await frames_until(client, lambda f: f["type"] in ("reply", "error"))
    reply = seen.pop()
    assert reply["type"] == "reply", reply
    # Room events that came before the reply (the command's own among them) stay queued.
    client.frames.pending[0:0] = seen
    assert reply["ref"] == ref and isinstance(reply["ok"], bool) and isinstance(reply["text"], str)
    return reply


async def ok(client, line: str, room: str = "lobby") -> str:
    reply = await command(client, line, room)
    assert reply["ok"] is True, (line, reply)
    return reply["text"]


async def refused(client, line: str, room: str = "lobby") -> str:
    reply = await command(client, line, room)
    assert reply["ok"] is False, (line, reply)
    return reply["text"]


async def room_of(running, *names: str, room="lobby", visibility="public"):
    """Sessions for ``names``: the first owns ``room``, the others are its members."""
    sessions = [await user_session(running, name) for name in names]
    await make_room(running, sessions[0], name=room, visibility=visibility)
    for session in sessions[1:]:
        if visibility == "private":
            body = {"username": session["user"]["username"]}
            status, _ = await api(running, sessions[0], "POST", f"/api/rooms/{room}/members", body)
            assert status == 204
        assert (await join(running, session, room))[0] == 200
    return sessions


def shape(event: dict) -> dict:
    """An event without what differs between two stores of the same thing."""
    return {k: v for k, v in event.items() if k not in ("id", "seq", "ts")}


def expires_in(event: dict) -> timedelta:
    stamp = datetime.fromisoformat(event["expires_at"].replace("Z", "+00:00"))
    return stamp - datetime.now(timezone.utc)


# --------------------------------------------------------------------------- /help


@pytest_twisted.ensureDeferred
async def test_help_lists_the_commands_the_caller_may_use_here(running):
    ada, bob = await room_of(running, "ada", "bob")
    owner = await subscribed(running, ada)
    member = await subscribed(running, bob)

    def commands_in(text: str) -> set[str]:
        return {line.split()[0] for line in text.splitlines()}

    as_member = commands_in(await ok(member, "/help"))
    member_commands = {"/help", "/join", "/part", "/me", "/who", "/rooms", "/nick", "/delete"}
    assert member_commands | {"/todo", "/poll"} <= as_member
    assert not as_member & {"/kick", "/ban", "/mute", "/topic", "/invite", "/op", "/deop"}

    assert (await moderate(running, ada, "op", "bob"))[0] == 200
    as_moderator = commands_in(await ok(member, "/HELP"))
    assert {"/kick", "/ban", "/unban", "/mute", "/unmute", "/topic", "/invite"} <= as_moderator
    assert not as_moderator & {"/op", "/deop"}

    as_owner = commands_in(await ok(owner, "/help"))
    assert {"/op", "/deop", "/kick"} <= as_owner and as_moderator < as_owner
    assert "usage:" in await refused(owner, "/help me please")
    await close(owner, member)


@pytest_twisted.ensureDeferred
async def test_help_outside_any_room_lists_the_commands_that_need_none(running):
    (ada,) = await room_of(running, "ada", room="secret", visibility="private")
    carl = await user_session(running, "carl")
    c = await connect(running, carl)

    def commands_in(text: str) -> list[str]:
        return [line.split()[0] for line in text.splitlines()]

    everywhere = ["/help", "/join", "/part", "/rooms", "/nick"]
    everywhere += ["/msg", "/query", "/ignore", "/unignore", "/search"]  # v1.1
    assert commands_in(await ok(c, "/help", room="nowhere")) == everywhere
    # A private room carl may not see is no room to him either, and says nothing of it.
    assert commands_in(await ok(c, "/help", room="secret")) == everywhere
    # Only /help changes: the other commands still find no such room.
    assert "No room called" in await refused(c, "/who", room="nowhere")

    owner = await subscribed(running, ada, room="secret")
    assert "/op" in commands_in(await ok(owner, "/help", room="secret"))
    await close(c, owner)


# --------------------------------------------------------------------------- /join /part


@pytest_twisted.ensureDeferred
async def test_join_creates_a_missing_room_or_joins_an_existing_one_and_subscribes(running):
    ada, bob = await room_of(running, "ada", "bob")
    carl = await user_session(running, "carl")
    a = await subscribed(running, ada)
    c = await connect(running, carl)

    assert await ok(c, "/join newroom") == "joined newroom"
    joined = await c.next_frame()
    assert joined == {
        "type": "joined",
        "room": "newroom",
        "topic": "",
        "last_seq": 1,
        "online": ["carl"],
    }
    _, room = await api(running, carl, "GET", "/api/rooms/newroom")
    assert (room["visibility"], room["role"]) == ("public", "owner")

    # An existing room: joined as member, and the room's subscribers see it.
    assert await ok(c, "/join LOBBY") == "joined LOBBY"
    joined = await next_event(c, "joined")
    assert joined["room"] == "lobby" and set(joined["online"]) == {"ada", "carl"}
    arrived = await next_event(a, "member_joined")
    assert arrived["user"] == "carl" and arrived["seq"] == joined["last_seq"]
    assert (await members(running, ada))["carl"] == "member"
    assert (await post(running, ada, "welcome carl"))[0] == 201
    assert (await next_event(c, "message"))["body"] == "welcome carl"

    # A private room is not there for an outsider, and /join does not take its name.
    await make_room(running, bob, name="hideout", visibility="private")
    assert "No room called" in await refused(c, "/join hideout")
    assert (await api(running, carl, "GET", "/api/rooms/hideout"))[0] == 404
    assert room_events(await drained(c), room="hideout") == []
    await close(a, c)


@pytest_twisted.ensureDeferred
async def test_part_ends_the_membership_and_the_subscription(running):
    ada, bob = await room_of(running, "ada", "bob")
    await make_room(running, ada, name="other")
    assert (await join(running, bob, "other"))[0] == 200
    a = await subscribed(running, ada)
    b = await subscribed(running, bob)
    b.send({"type": "join", "room": "other"})
    await next_event(b, "joined")

    assert await ok(b, "/part") == "left lobby"
    assert [e["type"] for e in room_events(await drained(b))] == ["member_left"]  # its own
    left = await next_event(a, "member_left")
    assert left["user"] == "bob" and left["room"] == "lobby"
    assert "bob" not in await members(running, ada)
    assert (await post(running, ada, "gone?"))[0] == 201
    assert room_events(await drained(b)) == []

    # /part ROOM leaves that room, whichever room the command was sent in.
    assert await ok(b, "/part other", room="lobby") == "left other"
    assert [e["type"] for e in room_events(await drained(b), room="other")] == ["member_left"]
    assert "bob" not in await members(running, ada, "other")
    assert (await post(running, ada, "still?", room="other"))[0] == 201
    assert room_events(await drained(b), room="other") == []
    assert "usage:" in await refused(b, "/part two rooms")
    await close(a, b)


@pytest.mark.parametrize("how", ["/part", "POST leave"])
@pytest_twisted.ensureDeferred
async def test_leaving_a_private_room_stops_the_users_other_sockets_too(running, how):
    ada, bob = await room_of(running, "ada", "bob", room="secret", visibility="private")
    here = await subscribed(running, bob, "secret")
    elsewhere = await subscribed(running, bob, "secret")  # another tab of bob's

    if how == "/part":
        assert await ok(here, "/part", room="secret") == "left secret"
    else:
        assert (await api(running, bob, "POST", "/api/rooms/secret/leave"))[0] == 204
    assert (await api(running, bob, "GET", "/api/rooms/secret"))[0] == 404
    assert (await post(running, ada, "after bob left", room="secret"))[0] == 201
    # Bob is no member of the private room any more: no socket of his may read it.
    for client in (here, elsewhere):
        seen = [e.get("body") for e in room_events(await drained(client), room="secret")]
        assert "after bob left" not in seen
    await close(here, elsewhere)


# --------------------------------------------------------------------------- /me /topic


@pytest_twisted.ensureDeferred
async def test_me_posts_an_action_message_to_the_room(running):
    ada, bob = await room_of(running, "ada", "bob")
    a = await subscribed(running, ada)
    b = await subscribed(running, bob)

    await ok(b, "/me waves   ")
    for client in (a, b):
        message = await next_event(client, "message")
        assert (message["user"], message["body"], message["action"]) == ("bob", "waves", True)
    assert (await history(running, ada))[-1] == message
    assert "usage: /me ACTION" in await refused(b, "/me")
    await close(a, b)


@pytest_twisted.ensureDeferred
async def test_topic_by_command_and_by_patch_store_the_same_event(running):
    ada, bob = await room_of(running, "ada", "bob")
    a = await subscribed(running, ada)
    b = await subscribed(running, bob)

    assert await ok(a, "/topic  all about  tea") == "topic set to 'all about  tea'"
    by_command = await next_event(b, "topic_changed")
    assert (by_command["user"], by_command["topic"]) == ("ada", "all about  tea")
    status, room = await api(running, ada, "PATCH", "/api/rooms/lobby", {"topic": "all about  tea"})
    assert status == 200 and room["topic"] == "all about  tea"
    by_rest = await next_event(b, "topic_changed")
    assert shape(by_command) == shape(by_rest)
    assert by_rest["seq"] == by_command["seq"] + 1
    stored = [e for e in await history(running, bob) if e["type"] == "topic_changed"]
    assert stored == [by_command, by_rest]

    assert "not allow" in await refused(b, "/topic mine now")
    await ok(a, "/topic")  # no text clears it
    assert (await next_event(b, "topic_changed"))["topic"] == ""
    assert (await api(running, bob, "GET", "/api/rooms/lobby"))[1]["topic"] == ""
    await close(a, b)


# --------------------------------------------------------------------------- /who /rooms /nick


@pytest_twisted.ensureDeferred
async def test_who_rooms_and_nick(running):
    ada, bob, carl = await room_of(running, "ada", "bob", "carl")
    await make_room(running, ada, name="Zeta")
    await make_room(running, carl, name="carls-den", visibility="private")
    await make_room(running, ada, name="adas-den", visibility="private")
    a = await subscribed(running, ada)
    b = await subscribed(running, bob)

    assert await ok(b, "/who") == "online: ada, bob"  # carl is a member, but not online
    assert await ok(a, "/rooms") == "rooms: adas-den, lobby, Zeta"
    assert await ok(b, "/rooms") == "rooms: lobby, Zeta"

    assert await ok(b, "/nick Bobby Tables") == "you are now shown as Bobby Tables"
    _, me = await api(running, bob, "GET", "/api/auth/me")
    assert (me["username"], me["display_name"]) == ("bob", "Bobby Tables")
    status, listed = await api(running, ada, "GET", "/api/rooms/lobby/members")
    assert {m["username"]: m["display_name"] for m in listed}["bob"] == "Bobby Tables"
    assert "usage: /nick" in await refused(b, "/nick")
    assert "usage: /who" in await refused(b, "/who is there")
    await close(a, b)


# --------------------------------------------------------------------------- /invite


@pytest_twisted.ensureDeferred
async def test_invite_lets_the_invitee_join_a_private_room(running):
    (ada,) = await room_of(running, "ada", room="secret", visibility="private")
    carl = await user_session(running, "carl")
    eve = await user_session(running, "eve")
    a = await subscribed(running, ada, "secret")

    assert await ok(a, "/invite carl", room="secret") == "invited carl to secret"
    status, room = await join(running, carl, "secret")
    assert status == 200 and room["name"] == "secret"
    c = await connect(running, carl)
    assert "not allow" in await refused(c, "/invite eve", room="secret")
    assert (await join(running, eve, "secret"))[0] == 404
    assert "No user called" in await refused(a, "/invite nobody", room="secret")
    assert "usage: /invite USER" in await refused(a, "/invite", room="secret")
    await close(a, c)


# --------------------------------------------------------------------------- moderation


@pytest_twisted.ensureDeferred
async def test_kick_by_command_is_the_kick_of_the_rest_route(running):
    ada, bob, carl, dan = await room_of(running, "ada", "bob", "carl", "dan")
    a = await subscribed(running, ada)
    b = await subscribed(running, bob)
    watcher = await subscribed(running, dan)

    assert await ok(a, "/kick bob too loud, sorry") == "kick: bob"
    by_command = await next_event(b, "member_kicked")
    assert (by_command["user"], by_command["target"]) == ("ada", "bob")
    assert by_command["reason"] == "too loud, sorry"
    assert (await next_event(watcher, "member_kicked")) == by_command
    assert (await post(running, ada, "bob is out"))[0] == 201
    assert room_events(await drained(b)) == []
    assert "bob" not in await members(running, ada)
    assert await ok(a, "/who") == "online: ada, dan"

    status, by_rest = await moderate(running, ada, "kick", "carl", reason="too loud, sorry")
    assert status == 200
    assert shape(by_rest) == {**shape(by_command), "target": "carl"}
    assert "not in lobby" in await refused(a, "/kick bob")
    await close(a, b, watcher)


@pytest_twisted.ensureDeferred
async def test_ban_with_a_duration_and_a_reason_then_unban(running):
    ada, bob, carl = await room_of(running, "ada", "bob", "carl")
    a = await subscribed(running, ada)
    b = await subscribed(running, bob)

    assert await ok(a, "/ban bob 1h spamming links") == "ban: bob"
    banned = await next_event(a, "member_banned")
    assert (banned["user"], banned["target"], banned["reason"]) == ("ada", "bob", "spamming links")
    assert timedelta(minutes=59) < expires_in(banned) <= timedelta(hours=1)
    assert (await next_event(b, "member_banned")) == banned
    b.send({"type": "join", "room": "lobby", "ref": "j"})
    assert (await next_event(b, "error"))["error_code"] == "banned"
    assert "banned" in await refused(b, "/join lobby")

    # Without a duration the ban lasts until lifted.
    assert await ok(a, "/ban carl for ever") == "ban: carl"
    forever = await next_event(a, "member_banned")
    assert forever["reason"] == "for ever" and "expires_at" not in forever
    _, by_rest = await moderate(running, ada, "ban", "carl", reason="for ever")
    assert shape(by_rest) == shape(forever)

    assert await ok(a, "/unban bob") == "unban: bob"
    unbanned = await next_event(a, "member_unbanned")
    assert (unbanned["user"], unbanned["target"]) == ("ada", "bob")
    assert await ok(b, "/join lobby") == "joined lobby"
    assert (await next_event(b, "joined"))["room"] == "lobby"
    assert "usage: /unban USER" in await refused(a, "/unban bob carl")
    await close(a, b)


@pytest_twisted.ensureDeferred
async def test_mute_for_ten_minutes_then_unmute(running):
    ada, bob = await room_of(running, "ada", "bob")
    a = await subscribed(running, ada)
    b = await subscribed(running, bob)

    assert await ok(a, "/mute bob 10m") == "mute: bob"
    muted = await next_event(b, "member_muted")
    assert (muted["user"], muted["target"]) == ("ada", "bob") and "reason" not in muted
    assert timedelta(minutes=9) < expires_in(muted) <= timedelta(minutes=10)
    b.send({"type": "send", "room": "lobby", "body": "hi", "client_msg_id": "x", "ref": 3})
    error = await next_event(b, "error")
    assert (error["error_code"], error["ref"]) == ("muted", 3)
    assert "muted" in await refused(b, "/me tries to talk")
    status, by_rest = await moderate(running, ada, "mute", "bob", duration_s=600)
    assert status == 200 and shape(by_rest).keys() == shape(muted).keys()

    assert await ok(a, "/unmute bob") == "unmute: bob"
    assert (await next_event(b, "member_unmuted"))["target"] == "bob"
    await ok(b, "/me is back")
    assert (await next_event(a, "message"))["body"] == "is back"
    assert "usage: /mute" in await refused(a, "/mute bob for-a-while")
    await close(a, b)


@pytest_twisted.ensureDeferred
async def test_op_and_deop_change_the_room_role(running):
    ada, bob, carl = await room_of(running, "ada", "bob", "carl")
    a = await subscribed(running, ada)
    b = await subscribed(running, bob)

    assert "not allow" in await refused(b, "/kick carl")
    assert await ok(a, "/op bob") == "op: bob"
    opped = await next_event(b, "role_changed")
    assert (opped["user"], opped["target"], opped["role"]) == ("ada", "bob", "moderator")
    assert (await members(running, ada))["bob"] == "moderator"
    assert await ok(b, "/mute carl") == "mute: carl"  # a moderator now

    assert await ok(a, "/deop BOB") == "deop: BOB"  # usernames match in any case
    deopped = await next_event(b, "role_changed")
    assert (deopped["target"], deopped["role"]) == ("bob", "member")
    status, by_rest = await moderate(running, ada, "op", "bob")
    assert status == 200 and shape(by_rest) == shape(opped)
    assert "cannot op" in await refused(a, "/op bob")
    await close(a, b)


# --------------------------------------------------------------------------- /delete


@pytest_twisted.ensureDeferred
async def test_delete_removes_a_message_by_its_id(running):
    ada, bob = await room_of(running, "ada", "bob")
    a = await subscribed(running, ada)
    b = await subscribed(running, bob)
    _, mine = await post(running, bob, "typo")
    _, hers = await post(running, ada, "the owner speaks")

    assert await ok(b, f"/delete {mine['id']}") == f"deleted {mine['id']}"
    deleted = await next_event(a, "message_deleted")
    assert (deleted["user"], deleted["target"]) == ("bob", mine["id"])
    events = {e["id"]: e for e in await history(running, ada)}
    assert events[mine["id"]]["body"] is None

    assert "Only moderators" in await refused(b, f"/delete {hers['id']}")
    assert await ok(a, f"/delete {hers['id']}") == f"deleted {hers['id']}"
    assert "No such message" in await refused(a, f"/delete {hers['id']}")
    assert "usage: /delete EVENT_ID" in await refused(a, "/delete the-last-one")
    await close(a, b)


# --------------------------------------------------------------------------- /todo


async def room_tasks(running, session, room="lobby") -> list[dict]:
    """GET /api/tasks?room=: what the routes say the room's tasks are."""
    status, page = await api(running, session, "GET", f"/api/tasks?room={room}")
    assert status == 200, page
    return page["tasks"]


def open_lines(tasks: list[dict]) -> str:
    """/todo's answer for these tasks, as the REST list shows them."""
    lines = [
        f"#{t['number']} [{t['status']}] {t['title']}"
        + (f" (@{t['assignee']})" if t["assignee"] else "")
        for t in tasks
        if t["status"] != "completed"
    ]
    return "\n".join(lines) or "no open tasks"


@pytest_twisted.ensureDeferred
async def test_every_todo_form_does_what_the_task_routes_do(running):
    ada, bob = await room_of(running, "ada", "bob")
    root = await user_session(running, "root", role="admin")
    a = await subscribed(running, ada)
    b = await subscribed(running, bob)

    assert await ok(a, "/todo") == "no open tasks"
    assert await ok(a, "/todo add  buy  oat milk ") == "added #1 buy  oat milk"
    created = await next_event(b, "task_created")
    [milk] = await room_tasks(running, bob)
    assert created["user"] == "ada" and created["task"] == milk
    assert (milk["title"], milk["status"], milk["assignee"]) == ("buy  oat milk", "pending", None)

    assert await ok(a, "/TODO ADD call the venue @Bob") == "added #2 call the venue"
    assert (await next_event(b, "task_created"))["task"]["assignee"] == "bob"
    assert await ok(b, "/todo start 2") == "started #2 call the venue"  # bob, its assignee
    started = await next_event(a, "task_updated")
    assert started["user"] == "bob" and started["changes"] == ["status"]
    assert started["task"]["status"] == "in_progress"
    assert await next_event(b, "task_updated") == started
    tasks = await room_tasks(running, ada)
    assert [t["status"] for t in tasks] == ["pending", "in_progress"]
    assert await ok(b, "/todo") == open_lines(tasks)
    assert open_lines(tasks) == "#1 [pending] buy  oat milk\n#2 [in_progress] call the venue (@bob)"

    assert await ok(a, "/todo done 1") == "done #1 buy  oat milk"
    done = await next_event(b, "task_updated")
    assert done["task"]["status"] == "completed"
    assert await ok(a, "/todo") == "#2 [in_progress] call the venue (@bob)"
    # The same change by PATCH stores the same event.
    path = f"/api/tasks/{milk['id']}"
    assert (await api(running, ada, "PATCH", path, {"status": "pending"}))[0] == 200
    assert (await api(running, ada, "PATCH", path, {"status": "completed"}))[0] == 200
    assert (await next_event(b, "task_updated"))["task"]["status"] == "pending"
    by_rest = await next_event(b, "task_updated")
    assert shape(by_rest) == {**shape(done), "task": {**done["task"], "updated_at": ANY}}
    assert await ok(a, "/todo reopen 1") == "reopened #1 buy  oat milk"
    assert (await next_event(b, "task_updated"))["task"]["status"] == "pending"

    assert await ok(a, "/todo assign 1 @bob") == "assigned #1 buy  oat milk to @bob"
    assert await ok(a, "/todo del 2") == "deleted #2 call the venue"
    deleted = await next_event(b, "task_deleted")
    assert (deleted["user"], deleted["target"]) == ("ada", tasks[1]["id"])
    [left] = await room_tasks(running, bob)
    assert (left["number"], left["status"], left["assignee"]) == (1, "pending", "bob")
    assert await ok(a, "/todo") == open_lines([left]) == "#1 [pending] buy  oat milk (@bob)"
    assert "No such task" in await refused(a, "/todo done 2")  # deleted: 2 names nothing now
    assert "No such task" in await refused(a, "/todo done 3")

    # /todo mine: bob's personal tasks and the room tasks assigned to him, open ones.
    status, own = await api(running, bob, "POST", "/api/tasks", {"title": "dentist"})
    assert status == 201
    await ok(b, "/todo add nobody's @ada")
    assert (
        await ok(b, "/todo mine")
        == "lobby #1 [pending] buy  oat milk (@bob)\npersonal #1 [pending] dentist"
    )
    status, mine = await api(running, bob, "GET", "/api/tasks")
    assert [t["id"] for t in mine["tasks"]] == [left["id"], own["id"]]
    assert await ok(a, "/todo mine") == "lobby #3 [pending] nobody's (@ada)"
    await api(running, bob, "PATCH", f"/api/tasks/{own['id']}", {"status": "completed"})
    assert await ok(b, "/todo mine") == "lobby #1 [pending] buy  oat milk (@bob)"

    # A title may hold line breaks, as the route allows; a list still shows a task a line.
    assert await ok(a, "/todo add one\ntwo") == "added #4 one two"
    assert (await room_tasks(running, ada))[-1]["title"] == "one\ntwo"
    assert (await ok(a, "/todo")).splitlines()[-1] == "#4 [pending] one two"

    # Every change wrote its audit row, as the routes' do.
    rows = [r for r in await audit(running, root) if r["data"].get("task") == milk["id"]]
    by_command = [r["action"] for r in rows if r["actor_id"] == ada["user"]["id"]]
    assert by_command.count("task.update") == 5 and by_command[-1] == "task.create"
    rows = [r for r in await audit(running, root) if r["data"].get("task") == tasks[1]["id"]]
    assert [(r["action"], r["actor_id"]) for r in rows][0] == ("task.delete", ada["user"]["id"])
    await close(a, b)


TODO_LINES = [
    "/todo",
    "/todo add sneak in",
    "/todo start 1",
    "/todo done 1",
    "/todo reopen 1",
    "/todo assign 1 @carl",
    "/todo del 1",
    "/todo done 2",
]
POLL_LINES = ["/poll", "/poll new Q | a | b", "/poll vote 1", "/poll close"]


@pytest.mark.parametrize(
    ("lines", "made_by_the_owner"),
    [(TODO_LINES, "/todo add plan the heist"), (POLL_LINES, "/poll new Heist? | yes | no")],
    ids=["todo", "poll"],
)
@pytest_twisted.ensureDeferred
async def test_a_private_room_answers_an_outsider_as_a_room_that_does_not_exist(
    running, lines, made_by_the_owner
):
    ada = await user_session(running, "ada")
    carl = await user_session(running, "carl")
    c = await connect(running, carl)
    before = [await command(c, line, room="secret") for line in lines]
    assert {(r["ok"], r["text"]) for r in before} == {(False, "No room called 'secret'.")}

    await make_room(running, ada, name="secret", visibility="private")
    a = await subscribed(running, ada, room="secret")
    await ok(a, made_by_the_owner, room="secret")
    history_before = await history(running, ada, room="secret")
    after = [await command(c, line, room="secret") for line in lines]
    assert [r["text"] for r in after] == [r["text"] for r in before]
    assert await history(running, ada, room="secret") == history_before
    assert (await api(running, carl, "GET", "/api/tasks?room=secret"))[0] == 404
    assert (await api(running, carl, "GET", "/api/rooms/secret/polls"))[0] == 404
    await close(a, c)


@pytest_twisted.ensureDeferred
async def test_who_may_change_and_delete_a_task_by_command(running):
    ada, bob, carl = await room_of(running, "ada", "bob", "carl")
    dan = await user_session(running, "dan")
    a = await subscribed(running, ada)
    b = await subscribed(running, bob)
    c = await subscribed(running, carl)
    d = await connect(running, dan)  # signed in, no member of the public lobby
    await ok(a, "/todo add the owner's task")
    await ok(c, "/todo add carl's task @bob")
    before = await room_tasks(running, ada)

    # A plain member may not delete or change another member's task: 403, as DELETE says.
    refusal = await refused(b, "/todo del 1")
    status, body = await api(running, bob, "DELETE", f"/api/tasks/{before[0]['id']}")
    assert status == 403 and body["error_code"] == "forbidden" and refusal == body["detail"]
    assert refusal == "Only its creator and moderators delete this task."
    assert (
        await refused(b, "/todo done 1")
        == "Only its creator, its assignee and moderators change this task."
    )
    # Its assignee changes it, but only its creator and moderators delete it.
    assert await ok(b, "/todo done 2") == "done #2 carl's task"
    assert await refused(b, "/todo del 2") == refusal

    # Anyone who reads the public room lists its tasks; only members change them.
    assert await ok(d, "/todo") == await ok(a, "/todo") == "#1 [pending] the owner's task"
    assert await refused(d, "/todo add mine too") == "Join lobby first."
    assert (
        await refused(d, "/todo reopen 2")
        == "Only its creator, its assignee and moderators change this task."
    )
    assert "No such task" in await refused(d, "/todo reopen 9")
    assert [t["status"] for t in await room_tasks(running, ada)] == ["pending", "completed"]

    # A moderator deletes anyone's.
    assert (await moderate(running, ada, "op", "bob"))[0] == 200
    assert await ok(b, "/todo del 1") == "deleted #1 the owner's task"
    assert await ok(c, "/todo del 2") == "deleted #2 carl's task"  # and a creator their own
    assert await room_tasks(running, ada) == []
    await close(a, b, c, d)


@pytest_twisted.ensureDeferred
async def test_todo_assign_stores_a_task_updated_event_and_notifies_the_assignee(running):
    ada, bob, carl = await room_of(running, "ada", "bob", "carl")
    await user_session(running, "eve")
    a = await subscribed(running, ada)
    b = await connect(running, bob)  # subscribed to no room: the notice still reaches him

    await ok(a, "/todo add write the minutes")
    assert await ok(a, "/todo assign 1 @bob") == "assigned #1 write the minutes to @bob"
    assigned = await next_event(a, "task_updated")
    assert assigned["user"] == "ada" and assigned["changes"] == ["assignee"]
    assert assigned["task"]["assignee"] == "bob"
    assert (await history(running, ada))[-1] == assigned
    notify = await next_event(b, "notify")
    assert (notify["reason"], notify["room"], notify["event"]) == (
        "task_assigned",
        "lobby",
        assigned,
    )
    [task] = await room_tasks(running, ada)
    assert task == assigned["task"]

    # /todo add @user assigns as it creates: the assignee hears of the task_created.
    await ok(a, "/todo add book a room @bob")
    notify = await next_event(b, "notify")
    assert notify["event"]["type"] == "task_created" and notify["event"]["task"]["number"] == 2

    # Only a member is assigned, as the route's 422 says; nothing is stored.
    history_before = await history(running, ada)
    assert await refused(a, "/todo assign 1 @eve") == "assignee must be a member of the room"
    assert await refused(a, "/todo add pay @eve") == "assignee must be a member of the room"
    assert await refused(a, "/todo assign 1 @nobody") == "assignee must be a member of the room"
    assert await history(running, ada) == history_before
    assert [f["type"] for f in await drained(b)] == []
    await close(a, b)


@pytest_twisted.ensureDeferred
async def test_todo_says_when_older_open_tasks_are_left_out(running):
    (ada,) = await room_of(running, "ada")
    a = await subscribed(running, ada)
    for n in range(1, 53):
        status, _ = await api(
            running, ada, "POST", "/api/tasks", {"title": f"t{n}", "room": "lobby"}
        )
        assert status == 201
    await ok(a, "/todo start 52")
    lines = (await ok(a, "/todo")).splitlines()
    # The newest 50 pending ones (#2-#51) and the one in progress, oldest first.
    pending = [f"#{n} [pending] t{n}" for n in range(2, 52)]
    assert lines[:-1] == [*pending, "#52 [in_progress] t52"]
    assert lines[-1] == "(older open tasks not shown: the newest 50 of each status)"
    await ok(a, "/todo done 2")
    lines = (await ok(a, "/todo")).splitlines()
    assert (lines[0], lines[-1], len(lines)) == ("#1 [pending] t1", "#52 [in_progress] t52", 51)
    await close(a)


# --------------------------------------------------------------------------- refusals


# A line the parser refuses, and the usage line its reply ends with.
BAD_LINES = [
    ("/frobnicate now", "usage: /help"),
    ("no slash at all", "usage: /help"),
    ("/join", "usage: /join ROOM"),
    ("/join bad!name", "usage: /join ROOM"),
    ("/part a b", "usage: /part [ROOM]"),
    ("/kick", "usage: /kick USER [REASON]"),
    ("/kick x", "usage: /kick USER [REASON]"),
    ("/ban bob 99999d", "usage: /ban USER [DURATION like 1d] [REASON]"),
    ("/mute bob 10m extra", "usage: /mute USER [DURATION like 10m]"),
    ("/op", "usage: /op USER"),
    ("/deop a b", "usage: /deop USER"),
    ("/unmute", "usage: /unmute USER"),
    ("/delete 0", "usage: /delete EVENT_ID"),
    ("/rooms all", "usage: /rooms"),
    ("/topic two\nlines", "usage: /topic TEXT"),
    ("/todo list", "usage: " + USAGE["todo"]),
    ("/todo add", "usage: /todo add TEXT [@user]"),
    ("/todo add x @b", "usage: /todo add TEXT [@user]"),
    ("/todo start", "usage: /todo start N"),
    ("/todo done 0", "usage: /todo done N"),
    ("/todo reopen x", "usage: /todo reopen N"),
    ("/todo assign 1 bob", "usage: /todo assign N @user"),
    ("/todo del 1 2", "usage: /todo del N"),
    ("/todo mine all", "usage: /todo mine"),
]


@pytest_twisted.ensureDeferred
async def test_unknown_commands_and_wrong_arguments_answer_with_a_usage_line(running):
    (ada,) = await room_of(running, "ada")
    await user_session(running, "bob")
    a = await subscribed(running, ada)
    before = await history(running, ada)
    for line, usage in BAD_LINES:
        text = await refused(a, line)
        assert text.splitlines()[-1] == usage, (line, text)
    assert await history(running, ada) == before
    await close(a)


@pytest_twisted.ensureDeferred
async def test_refused_commands_answer_not_ok_and_store_nothing(running):
    ada, bob, carl = await room_of(running, "ada", "bob", "carl")
    eve = await user_session(running, "eve")
    assert (await moderate(running, ada, "op", "bob"))[0] == 200
    b = await subscribed(running, bob)
    c = await subscribed(running, carl)
    e = await connect(running, eve)
    before = await history(running, ada)

    for line in ("/kick bob", "/ban bob", "/mute bob", "/topic mine", "/op carl", "/invite eve"):
        assert await refused(c, line), line  # a member
    for line in ("/kick ada", "/ban ada", "/op carl", "/deop bob", "/kick bob", "/mute bob"):
        assert await refused(b, line), line  # a moderator: not the owner, not themselves
    for line in ("/who", "/me lurks", "/kick carl", "/part"):
        assert await refused(e, line), line  # not a member
    assert "No room called" in await refused(e, "/who", room="nowhere")
    assert await history(running, ada) == before
    await close(b, c, e)


# --------------------------------------------------------------------------- /poll


@pytest_twisted.ensureDeferred
async def test_every_poll_form_does_what_the_poll_routes_do(running):
    ada, bob, carl = await room_of(running, "ada", "bob", "carl")
    dan = await user_session(running, "dan")
    a = await subscribed(running, ada)
    b = await subscribed(running, bob)
    d = await connect(running, dan)  # signed in, no member of the public lobby
    assert await refused(a, "/poll") == "no poll here"
    assert await refused(a, "/poll vote 1") == "no open poll here"

    started = await ok(a, "/poll new -m Which days? | Mon | Tue | Wed")
    assert started == "started poll: Which days? (open, several choices, 0 voters)\n" + (
        "  1. Mon: 0\n  2. Tue: 0\n  3. Wed: 0"
    )
    status, listed = await api(running, ada, "GET", "/api/rooms/lobby/polls")
    [poll] = listed["polls"]
    assert poll["question"] == "Which days?" and poll["multiple"] is True
    assert [o["text"] for o in poll["options"]] == ["Mon", "Tue", "Wed"]

    # Options from 1 in commands, from 0 in the API.
    assert await ok(b, "/poll vote 3 1") == "voted in poll: Which days? (open, several" + (
        " choices, 1 voter)\n* 1. Mon: 1 (bob)\n  2. Tue: 0\n* 3. Wed: 1 (bob)"
    )
    status, voted = await api(running, bob, "GET", f"/api/rooms/lobby/polls/{poll['id']}")
    assert voted["mine"] == [0, 2]
    assert await refused(b, "/poll vote 4") == "the poll has options 1-3"
    assert "usage: /poll vote N [N ...]" in await refused(b, "/poll vote 0")
    # Anyone who reads the room sees results; only members vote and start polls.
    assert (await ok(d, "/poll")).startswith("poll: Which days? (open, several choices, 1 voter)")
    assert await refused(d, "/poll vote 1") == "Join lobby first."
    assert await refused(d, "/poll new Q | a | b") == "Join lobby first."

    # A single-choice poll is newer: /poll vote and /poll close act on it.
    await ok(b, "/poll new Lunch? | pizza | soup")
    assert (
        await refused(a, "/poll vote 1 2") == "choices must be one option: this poll takes a"
        " single choice"
    )
    await ok(a, "/poll vote 2")
    c = await subscribed(running, carl)
    assert await refused(c, "/poll close") == "Only its creator and moderators close this poll."
    assert await ok(b, "/poll close") == "closed poll: Lunch? (closed, 1 voter)\n" + (
        "  1. pizza: 0\n  2. soup: 1 (ada)"
    )
    # The newest open poll is the first one again; /poll shows the newest of all.
    assert (await ok(a, "/poll")).startswith("poll: Lunch? (closed, 1 voter)")
    assert (await ok(a, "/poll vote 2")).startswith("voted in poll: Which days?")
    assert (await ok(a, "/poll close")).startswith("closed poll: Which days? (closed, 2 voters)")
    assert await refused(a, "/poll close") == "no open poll here"

    events = [e["type"] for e in await history(running, ada) if e["type"].startswith("poll")]
    assert events == ["poll_created", "poll_created", "poll_closed", "poll_closed"]
    await close(a, b, c, d)
