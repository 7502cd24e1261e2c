"""
Polls over real HTTP and WebSocket against a real daemon and PostgreSQL (protocol v1.1,
Polls): a poll's life, votes replaced and withdrawn, exact totals under concurrent
voters, anonymity in every answer, frame and stored event, coalesced live updates, the
closing timer (once, however many try), bad input, and the privacy matrix.
"""

from __future__ import annotations

import pytest_twisted
from test_moderation import api, audit, history, lobby_with, moderate
from test_tasks import field_of, running  # noqa: F401  (the fixture)


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
