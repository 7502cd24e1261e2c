"""
Polls over real HTTP and WebSocket against a real daemon and PostgreSQL (protocol v1.1,
Polls): a poll's life, votes replaced and withdrawn, exact totals under concurrent
voters, anonymity in every answer, frame and stored event, coalesced live updates, the
closing timer (once, however many try), bad input, and the privacy matrix.
"""

from __future__ import annotations

import json

import pytest
import pytest_twisted
from test_moderation import api, audit, drained, history, lobby_with, moderate
from test_retention_database import sql
from test_tasks import field_of
from twisted.internet import defer, reactor
from twisted.internet.task import deferLater

from support import PASSWORD, bearer, config_for, start
from termrooms.handlers.polls import PollClosingService
from test_rooms import close, connect, make_room, user_session


@pytest_twisted.async_yield_fixture
async def running(fresh_migrated_database_url, tmp_path):
    server = await start(config_for(fresh_migrated_database_url, tmp_path, no_rate_limits=True))
    yield server
    await server.stop()


async def poll_of(running, session, room="lobby", **body) -> dict:
    body.setdefault("question", "Lunch?")
    body.setdefault("options", ["pizza", "salad", "soup"])
    status, poll = await api(running, session, "POST", f"/api/rooms/{room}/polls", body)
    assert status == 201, poll
    return poll


async def vote(running, session, poll, *choices, room="lobby"):
    path = f"/api/rooms/{room}/polls/{poll['id']}/vote"
    return await api(running, session, "POST", path, {"choices": list(choices)})


async def voted(running, session, poll, *choices, room="lobby") -> dict:
    status, answer = await vote(running, session, poll, *choices, room=room)
    assert status == 200, answer
    return answer


def results(poll) -> list[tuple[int, list[str] | None]]:
    return [(option["votes"], option["voters"]) for option in poll["options"]]


@pytest_twisted.ensureDeferred
async def test_a_poll_from_creation_to_close(running):
    admin, (ada, bob, carl) = await lobby_with(running, "ada", "bob", "carl")
    poll = await poll_of(running, bob, question="  Lunch?  ", options=["pizza", " salad "])
    assert poll == {
        "id": poll["id"],
        "room": "lobby",
        "question": "Lunch?",
        "options": [
            {"text": "pizza", "votes": 0, "voters": []},
            {"text": "salad", "votes": 0, "voters": []},
        ],
        "multiple": False,
        "anonymous": False,
        "closed": False,
        "closes_at": None,
        "created_by": "bob",
        "voters": 0,
        "mine": [],
    }
    assert (await voted(running, ada, poll, 1))["mine"] == [1]
    after_bob = await voted(running, bob, poll, 1)
    assert results(after_bob) == [(0, []), (2, ["ada", "bob"])] and after_bob["voters"] == 2
    # A new vote replaces the old; [] withdraws.
    changed = await voted(running, ada, poll, 0)
    assert results(changed) == [(1, ["ada"]), (1, ["bob"])] and changed["mine"] == [0]
    withdrawn = await voted(running, bob, poll)
    assert results(withdrawn) == [(1, ["ada"]), (0, [])] and withdrawn["mine"] == []
    assert withdrawn["voters"] == 1

    path = f"/api/rooms/lobby/polls/{poll['id']}"
    status, read = await api(running, carl, "GET", path)
    assert status == 200 and read["mine"] == [] and results(read) == results(withdrawn)
    assert (await api(running, ada, "GET", path))[1]["mine"] == [0]

    # Others may not close it; its creator may, once.
    assert field_of(await api(running, carl, "POST", path + "/close"))[:2] == (403, "forbidden")
    status, closed = await api(running, bob, "POST", path + "/close")
    assert status == 200 and closed["closed"] and closed["mine"] == []
    assert field_of(await api(running, bob, "POST", path + "/close"))[:2] == (409, "poll_closed")
    assert field_of(await vote(running, ada, poll, 1))[:2] == (409, "poll_closed")
    # 422 comes before 409: a bad vote on a closed poll is told what is wrong with it.
    assert field_of(await vote(running, ada, poll, 5))[:2] == (422, "validation_error")

    # A moderator closes anyone's poll.
    second = await poll_of(running, carl, question="Friday?")
    assert (await moderate(running, ada, "op", "bob"))[0] == 200
    assert (await api(running, bob, "POST", f"/api/rooms/lobby/polls/{second['id']}/close"))[
        0
    ] == 200

    # Stored: poll_created, then poll_closed with the final results, no one's `mine`.
    events = [e for e in await history(running, ada) if e["type"].startswith("poll")]
    assert [e["type"] for e in events] == [
        "poll_created",
        "poll_closed",
        "poll_created",
        "poll_closed",
    ]
    assert events[0]["user"] == "bob" and events[0]["poll"] == {**poll, "mine": None}
    assert events[1]["poll"] == {**closed, "mine": None} and events[1]["user"] == "bob"
    assert events[3]["user"] == "bob" and events[3]["poll"]["created_by"] == "carl"
    rows = [r for r in await audit(running, admin) if r["action"].startswith("poll.")]
    assert [(r["action"], r["data"]["poll"]) for r in rows] == [
        ("poll.close", second["id"]),
        ("poll.create", second["id"]),
        ("poll.close", poll["id"]),
        ("poll.create", poll["id"]),
    ]

    # Lists: newest first; ?open=true those still open.
    third = await poll_of(running, ada, question="Saturday?")
    status, listed = await api(running, carl, "GET", "/api/rooms/lobby/polls")
    assert status == 200 and [p["id"] for p in listed["polls"]] == [
        third["id"],
        second["id"],
        poll["id"],
    ]
    assert listed["has_more"] is False
    status, still_open = await api(running, carl, "GET", "/api/rooms/lobby/polls?open=true")
    assert [p["id"] for p in still_open["polls"]] == [third["id"]]
    status, page = await api(
        running, carl, "GET", f"/api/rooms/lobby/polls?limit=1&before={third['id']}"
    )
    assert [p["id"] for p in page["polls"]] == [second["id"]] and page["has_more"] is True


@pytest_twisted.ensureDeferred
async def test_an_anonymous_poll_names_no_voter_anywhere(running):
    _, (carl, ada, bob) = await lobby_with(running, "carl", "ada", "bob")
    watcher = await connect(running, carl)
    watcher.send({"type": "join", "room": "lobby"})
    await drained(watcher)
    poll = await poll_of(running, carl, anonymous=True, multiple=True, options=["a", "b", "c"])
    answers = [
        await voted(running, ada, poll, 0, 2),
        await voted(running, bob, poll, 2),
        await voted(running, ada, poll, 2),
    ]
    path = f"/api/rooms/lobby/polls/{poll['id']}"
    answers.append((await api(running, bob, "GET", path))[1])
    answers.append((await api(running, carl, "GET", "/api/rooms/lobby/polls"))[1])
    answers.append((await api(running, carl, "POST", path + "/close"))[1])
    await deferLater(reactor, 0.4, lambda: None)  # past the coalescing interval
    frames = [f for f in await drained(watcher) if f["type"] in ("poll_update", "poll_created",
                                                                 "poll_closed")]  # fmt: skip
    events = [e for e in await history(running, carl) if e["type"].startswith("poll")]
    assert answers[3]["mine"] == [2] and answers[3]["voters"] == 2
    assert results(answers[3]) == [(0, None), (0, None), (2, None)]
    assert {f["type"] for f in frames} == {"poll_created", "poll_update", "poll_closed"}
    for shown in answers + frames + events:
        text = json.dumps(shown)
        assert '"ada"' not in text and '"bob"' not in text, text
    assert all(f["poll"]["mine"] is None for f in frames if f["type"] == "poll_update")
    await close(watcher)


@pytest_twisted.ensureDeferred
async def test_poll_updates_are_coalesced_and_end_with_the_results(running):
    _, (ada, bob) = await lobby_with(running, "ada", "bob")
    watcher = await connect(running, ada)
    watcher.send({"type": "join", "room": "lobby"})
    await drained(watcher)
    poll = await poll_of(running, ada, options=["yes", "no"])
    started = reactor.seconds()
    for i in range(40):
        await voted(running, bob, poll, i % 2)
    elapsed = reactor.seconds() - started
    final = await voted(running, ada, poll, 0)
    await deferLater(reactor, 0.4, lambda: None)
    updates = [f for f in await drained(watcher) if f["type"] == "poll_update"]
    # At most one every 0.25 s (and the one the last vote owed), however fast they came.
    assert 1 <= len(updates) <= elapsed / 0.25 + 2, (len(updates), elapsed)
    assert updates[-1] == {"type": "poll_update", "room": "lobby",
                           "poll": {**final, "mine": None}}  # fmt: skip
    await close(watcher)


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"question": "", "options": ["a", "b"]}, ["question"]),
        ({"question": "   ", "options": ["a", "b"]}, ["question"]),
        ({"question": "q" * 301, "options": ["a", "b"]}, ["question"]),
        ({"question": 7, "options": ["a", "b"]}, ["question"]),
        ({"options": ["a", "b"]}, ["question"]),
        ({"question": "q", "options": ["a"]}, ["options"]),
        ({"question": "q", "options": [str(i) for i in range(11)]}, ["options"]),
        ({"question": "q", "options": ["a", " A "]}, ["options"]),
        ({"question": "q", "options": ["a", ""]}, ["options"]),
        ({"question": "q", "options": ["a", "b" * 101]}, ["options"]),
        ({"question": "q", "options": ["a", 2]}, ["options"]),
        ({"question": "q", "options": "a,b"}, ["options"]),
        ({"question": "q", "options": ["a", "b"], "multiple": "yes"}, ["multiple"]),
        ({"question": "q", "options": ["a", "b"], "anonymous": 1}, ["anonymous"]),
        ({"question": "q", "options": ["a", "b"], "closes_in_s": 59}, ["closes_in_s"]),
        ({"question": "q", "options": ["a", "b"], "closes_in_s": 2592001}, ["closes_in_s"]),
        ({"question": "q", "options": ["a", "b"], "closes_in_s": True}, ["closes_in_s"]),
        ({"question": "q", "options": ["a", "b"], "closes_in_s": 60.5}, ["closes_in_s"]),
        ({"question": "", "options": [], "closes_in_s": 0}, ["question", "options", "closes_in_s"]),
    ],
)
@pytest_twisted.ensureDeferred
async def test_bad_input_names_its_field_and_stores_nothing(
    running, fresh_migrated_database_url, body, fields
):
    _, (ada,) = await lobby_with(running, "ada")
    answer = await api(running, ada, "POST", "/api/rooms/lobby/polls", body)
    assert field_of(answer) == (422, "validation_error", fields)
    assert sql(fresh_migrated_database_url, "SELECT count(*) FROM polls") == [(0,)]


@pytest_twisted.ensureDeferred
async def test_bad_votes_are_refused_and_change_nothing(running):
    _, (ada, bob) = await lobby_with(running, "ada", "bob")
    single = await poll_of(running, ada, options=["a", "b", "c"])
    before = await voted(running, bob, single, 1)
    for choices in ([3], [-1], [0, 1], [1, 1], ["0"], [True], [0.0]):
        assert field_of(await vote(running, bob, single, *choices)) == (
            422,
            "validation_error",
            ["choices"],
        ), choices
    path = f"/api/rooms/lobby/polls/{single['id']}/vote"
    for body in ({}, {"choices": 1}, {"choices": None}):
        assert field_of(await api(running, bob, "POST", path, body))[0] == 422, body
    status, broken, _ = await running.request(
        "POST", path, data=b"{", headers=bearer(bob["access_token"])
    )
    assert (status, broken["error_code"]) == (400, "invalid_json")
    assert (await api(running, bob, "GET", path[: -len("/vote")]))[1] == before
    multiple = await poll_of(running, ada, multiple=True, options=["a", "b", "c"])
    assert results(await voted(running, bob, multiple, 2, 0)) == [(1, ["bob"]), (0, []),
                                                                   (1, ["bob"])]  # fmt: skip


@pytest_twisted.ensureDeferred
async def test_every_route_by_every_kind_of_caller(running):
    admin, (ada, bob, erin) = await lobby_with(
        running, "ada", "bob", "erin", room="crew", visibility="private"
    )
    dave = await user_session(running, "dave")  # never a member
    poll = await poll_of(running, bob, room="crew")
    assert (await moderate(running, ada, "ban", "erin", room="crew"))[0] == 200
    base = "/api/rooms/crew/polls"
    one = f"{base}/{poll['id']}"
    routes = [
        ("GET", base, None),
        ("GET", one, None),
        ("POST", base, {"question": "q", "options": ["a", "b"]}),
        ("POST", one + "/vote", {"choices": [0]}),
        ("POST", one + "/vote", {"choices": [99]}),  # a bad body says nothing either
        ("POST", one + "/close", None),
    ]
    hidden = await api(running, dave, "GET", "/api/rooms/crew")
    assert hidden[0] == 404
    for outsider in (dave, erin):  # a private room hides itself from the banned too
        for method, path, body in routes:
            assert await api(running, outsider, method, path, body) == hidden, (method, path)
    for method, path, body in routes:
        assert (await api(running, None, method, path, body))[0] == 401

    # Members read and vote; only the creator and moderator+ close.
    for member in (ada, bob, admin):
        assert (await api(running, member, "GET", one))[0] == 200
    assert (await vote(running, ada, poll, 0, room="crew"))[0] == 200
    status, mine = await api(running, admin, "GET", one)
    assert mine["mine"] == [] and results(mine)[0] == (1, ["ada"])

    # An absent poll, and a poll of another room, answer the same to a member.
    lobby_owner = await user_session(running, "olga")
    await make_room(running, lobby_owner, name="lobby")
    elsewhere = await poll_of(running, lobby_owner, room="lobby")
    absent = await api(running, bob, "GET", f"{base}/999999999999")
    assert absent[0] == 404
    for path in (f"{base}/{elsewhere['id']}", f"{base}/x", f"{base}/0"):
        assert await api(running, bob, "GET", path) == absent
        assert await api(running, bob, "POST", path + "/vote", {"choices": [0]}) == absent
        assert await api(running, bob, "POST", path + "/close") == absent

    # A public room: anyone signed in reads; only members vote, create and close.
    status, _ = await api(running, dave, "GET", f"/api/rooms/lobby/polls/{elsewhere['id']}")
    assert status == 200
    assert field_of(await vote(running, dave, elsewhere, 0))[:2] == (403, "forbidden")
    assert field_of(await api(running, dave, "POST", "/api/rooms/lobby/polls",
                              {"question": "q", "options": ["a", "b"]}))[:2] == (
        403, "forbidden")  # fmt: skip
    # Muted members vote but do not start polls.
    await api(running, lobby_owner, "POST", "/api/rooms/lobby/members", {"username": "bob"})
    assert (await api(running, bob, "POST", "/api/rooms/lobby/join"))[0] == 200
    assert (await moderate(running, lobby_owner, "mute", "bob"))[0] == 200
    assert (await vote(running, bob, elsewhere, 1))[0] == 200
    assert field_of(await api(running, bob, "POST", "/api/rooms/lobby/polls",
                              {"question": "q", "options": ["a", "b"]}))[:2] == (
        403, "muted")  # fmt: skip
    assert (await api(running, admin, "POST", one + "/close"))[0] == 200


@pytest_twisted.ensureDeferred
async def test_a_hundred_voters_at_once_leave_exact_totals(running):
    _, (ada,) = await lobby_with(running, "ada")
    voters = [await user_session(running, f"voter{i:03}") for i in range(100)]
    await defer.gatherResults(
        [defer.ensureDeferred(api(running, v, "POST", "/api/rooms/lobby/join")) for v in voters]
    )
    poll = await poll_of(running, ada, multiple=True, options=["a", "b", "c", "d"])

    def all_at_once(pairs):
        return defer.gatherResults(
            [defer.ensureDeferred(vote(running, v, poll, *choices)) for v, choices in pairs]
        )

    first = [(v, [i % 4]) for i, v in enumerate(voters)]
    # Then everyone again, at once: half change to two options, a fifth withdraw, the
    # rest vote the same again (and each voter's two tabs race each other, too).
    second = [
        (v, [] if i % 5 == 0 else [(i + 1) % 4, (i + 2) % 4] if i % 2 else [i % 4])
        for i, v in enumerate(voters)
    ]
    assert {status for status, _ in await all_at_once(first)} == {200}
    answers = await all_at_once(second + second)
    assert {status for status, _ in answers} == {200}

    expected = [0, 0, 0, 0]
    for _, choices in second:
        for choice in choices:
            expected[choice] += 1
    _, final = await api(running, ada, "GET", f"/api/rooms/lobby/polls/{poll['id']}")
    assert [option["votes"] for option in final["options"]] == expected
    assert final["voters"] == sum(1 for _, choices in second if choices)
    assert all(len(o["voters"]) == o["votes"] for o in final["options"])


@pytest_twisted.ensureDeferred
async def test_the_timer_closes_a_due_poll_once_however_many_try(
    running, fresh_migrated_database_url
):
    url = fresh_migrated_database_url
    _, (ada, bob) = await lobby_with(running, "ada", "bob")
    poll = await poll_of(running, ada, closes_in_s=60)
    assert poll["closes_at"] is not None and not poll["closed"]
    later = await poll_of(running, ada, question="later?", closes_in_s=3600)

    def come_due(poll_id: str) -> None:
        sql(
            url,
            "UPDATE polls SET created_at = now() - interval '2 minutes',"
            " closes_at = now() - interval '1 second' WHERE id = %s",
            (int(poll_id),),
        )

    # Its time passed while no timer ran (a restart): votes are refused at once...
    come_due(poll["id"])
    assert field_of(await vote(running, bob, poll, 0))[:2] == (409, "poll_closed")
    path = f"/api/rooms/lobby/polls/{poll['id']}"
    assert (await api(running, bob, "GET", path))[1]["closed"] is True

    # ...and the first timers to run (two instances' worth, at once) close it once.
    closers = [
        PollClosingService(running.server.get_poll_handler, reactor, running.startup.ready)
        for _ in range(2)
    ]
    for closer in closers:
        closer.startService()

    async def closed_events() -> list[dict]:
        return [e for e in await history(running, ada) if e["type"] == "poll_closed"]

    for _ in range(100):
        if await closed_events():
            break
        await deferLater(reactor, 0.05, lambda: None)
    await deferLater(reactor, 0.3, lambda: None)
    [event] = await closed_events()
    assert event["poll"]["id"] == poll["id"] and event["user"] is None
    assert event["poll"]["closed"] is True

    # A poll made on any instance is heard of by all: its due time wakes the timer.
    come_due(later["id"])
    sql(url, "SELECT pg_notify('termrooms_polls_closing', '0')")
    for _ in range(100):
        if len(await closed_events()) == 2:
            break
        await deferLater(reactor, 0.05, lambda: None)
    assert [e["poll"]["id"] for e in await closed_events()] == [poll["id"], later["id"]]
    for closer in closers:
        await closer.stopService()
    assert sql(url, "SELECT count(*) FROM polls WHERE closed_at IS NULL") == [(0,)]


@pytest_twisted.ensureDeferred
async def test_export_holds_my_polls_and_votes(running):
    _, (ada, bob) = await lobby_with(running, "ada", "bob")
    poll = await poll_of(running, ada, options=["tea", "coffee"])
    await voted(running, bob, poll, 1)
    status, export, _ = await running.request(
        "GET", "/api/auth/me/export", headers=bearer(bob["access_token"])
    )
    assert status == 200 and export["polls"]["created"] == []
    [choice] = export["polls"]["votes"]
    assert choice["poll"] == poll["id"] and choice["room"] == "lobby"
    assert (choice["option"], choice["text"]) == (1, "coffee")
    status, export, _ = await running.request(
        "GET", "/api/auth/me/export", headers=bearer(ada["access_token"])
    )
    assert [p["id"] for p in export["polls"]["created"]] == [poll["id"]]
    assert export["polls"]["votes"] == []

    # A deleted account's vote still counts, shown by the deleted user's name: in the
    # poll, and in the final results poll_closed stored before the account went.
    await api(running, ada, "POST", f"/api/rooms/lobby/polls/{poll['id']}/close")
    stored = [e for e in await history(running, ada) if e["type"] == "poll_closed"]
    assert results(stored[0]["poll"]) == [(0, []), (1, ["bob"])]
    status, _, _ = await running.request(
        "DELETE", "/api/auth/me", json={"password": PASSWORD}, headers=bearer(bob["access_token"])
    )
    assert status == 204
    gone = [(0, []), (1, [f"deleted-{bob['user']['id']}"])]
    _, kept = await api(running, ada, "GET", f"/api/rooms/lobby/polls/{poll['id']}")
    assert results(kept) == gone
    stored = [e for e in await history(running, ada) if e["type"] == "poll_closed"]
    assert results(stored[0]["poll"]) == gone
    assert stored[0]["poll"]["options"][1]["text"] == "coffee"  # nothing else changed


@pytest_twisted.ensureDeferred
async def test_the_openapi_document_lists_the_poll_routes(running):
    status, document, _ = await running.request("GET", "/api/openapi.json")
    assert status == 200
    paths = document["paths"]
    base = "/api/rooms/{name}/polls"
    assert set(paths[base]) == {"get", "post"}
    assert set(paths[base + "/{poll_id}"]) == {"get"}
    assert set(paths[base + "/{poll_id}/vote"]) == {"post"}
    assert set(paths[base + "/{poll_id}/close"]) == {"post"}
    created = paths[base]["post"]["responses"]["201"]["content"]["application/json"]["schema"]
    assert set(created["required"]) == {
        "id", "room", "question", "options", "multiple", "anonymous", "closed", "closes_at",
        "created_by", "voters", "mine",
    }  # fmt: skip
    assert "409" in paths[base + "/{poll_id}/vote"]["post"]["responses"]
