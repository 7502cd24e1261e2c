"""
Retrospectives over real HTTP and WebSocket against a real daemon and PostgreSQL
(protocol v1.1, Retrospectives): a retro's life from start to summary; the secrecy
matrix (every phase, three readers, every answer, frame and stored event); the isolation
matrix (another room's retro, another retro's entries and groups: 404, byte for byte the
404 of nothing); every route in every phase; votes spent at once within the budget;
races that leave the board consistent; bad input naming the field with nothing stored;
and the privacy matrix of the routes.
"""

from __future__ import annotations

import pytest_twisted
from test_moderation import api, audit, history, lobby_with, moderate
from test_tasks import field_of

from support import config_for, start

ROOM = "/api/rooms/lobby/retros"


@pytest_twisted.async_yield_fixture
async def running(fresh_migrated_database_url, tmp_path):
    server = await start(config_for(fresh_migrated_database_url, tmp_path, no_rate_limits=True))
    yield server
    await server.stop()


async def started(running, session, room="lobby", **body) -> dict:
    status, board = await api(running, session, "POST", f"/api/rooms/{room}/retros", body)
    assert status == 201, board
    return board


def path_of(board: dict, tail: str = "") -> str:
    return f"/api/rooms/{board['room']}/retros/{board['id']}{tail}"


async def read(running, session, board) -> dict:
    status, current = await api(running, session, "GET", path_of(board))
    assert status == 200, current
    return current


async def ok(running, session, method, board, tail, body=None, status=200) -> dict:
    got, answer = await api(running, session, method, path_of(board, tail), body)
    assert got == status, (method, tail, body, got, answer)
    return answer


async def entry(running, session, board, column, text) -> dict:
    return await ok(
        running, session, "POST", board, "/entries", {"column": column, "text": text}, 201
    )


async def phase(running, session, board, to) -> dict:
    return await ok(running, session, "POST", board, "/phase", {"phase": to})


async def markdown(running, session, board) -> tuple[int, str, str]:
    headers = {"Authorization": [f"Bearer {session['access_token']}".encode()]}
    import treq

    response = await treq.get(running.url + path_of(board, "/summary"), headers=headers)
    body = await response.text("utf-8")
    return response.code, response.headers.getRawHeaders("content-type")[0], body


def group_of(board: dict, entry_id: str) -> dict:
    return next(g for g in board["groups"] if entry_id in g["entries"])


@pytest_twisted.ensureDeferred
async def test_a_retro_from_start_to_summary(running):
    admin, (ada, bob, carl) = await lobby_with(running, "ada", "bob", "carl")
    assert (await moderate(running, ada, "op", "bob"))[0] == 200
    board = await started(running, bob, title="Sprint 12", anonymous=False)
    assert board == {
        "id": board["id"],
        "room": "lobby",
        "title": "Sprint 12",
        "phase": "collect",
        "facilitator": "bob",
        "columns": ["went well", "to improve", "ideas"],
        "votes_per_participant": 3,
        "anonymous": False,
        "participants": ["bob"],
        "entries": [],
        "groups": [],
        "my_votes": {},
        "votes_left": 3,
        "focus": None,
        "happiness": {"count": 0, "histogram": None, "mine": None},
        "actions": [],
        "carried_over": [],
        "created_at": board["created_at"],
        "closed_at": None,
    }
    # Members only start one when they are moderators; one open retro per room.
    assert field_of(await api(running, carl, "POST", ROOM, {}))[:2] == (403, "forbidden")
    assert field_of(await api(running, ada, "POST", ROOM, {}))[:2] == (409, "retro_open")

    joined = await ok(running, carl, "POST", board, "/join")
    assert joined["participants"] == ["bob", "carl"]
    fast = await entry(running, ada, board, "went well", "  Deploys got fast  ")
    assert fast == {
        "id": fast["id"],
        "column": "went well",
        "text": "Deploys got fast",
        "mine": True,
        "author": "ada",
        "group": None,
    }
    ci = await entry(running, carl, board, "Went Well", "CI is green")
    flaky = await entry(running, carl, board, "to improve", "Flaky tests")
    seen = await read(running, bob, board)
    assert [(e["text"], e["author"], e["mine"]) for e in seen["entries"]] == [
        (None, "ada", False),
        (None, "carl", False),
        (None, "carl", False),
    ]
    assert seen["participants"] == ["bob", "carl", "ada"]  # a named entry takes part

    grouped = await phase(running, bob, board, "group")
    assert [e["text"] for e in grouped["entries"]] == [
        "Deploys got fast",
        "CI is green",
        "Flaky tests",
    ]
    assert [g["entries"] for g in grouped["groups"]] == [[fast["id"]], [ci["id"]], [flaky["id"]]]
    merged = await ok(
        running, ada, "POST", board, f"/groups/{fast['id']}/entries", {"entry": ci["id"]}
    )
    assert [g["entries"] for g in merged["groups"]] == [[fast["id"], ci["id"]], [flaky["id"]]]
    titled = await ok(running, carl, "PATCH", board, f"/groups/{fast['id']}", {"title": "Speed"})
    assert titled["groups"][0]["title"] == "Speed"

    await phase(running, bob, board, "vote")
    path = path_of(board, "/votes")
    for voter, group in ((ada, fast), (ada, fast), (carl, flaky), (bob, fast)):
        status, votes = await api(running, voter, "POST", path, {"group": group["id"]})
        assert status == 200, votes
    assert votes == {"my_votes": {fast["id"]: 1}, "votes_left": 2}
    back = await api(running, ada, "DELETE", path_of(board, f"/votes/{fast['id']}"))
    assert back == (200, {"my_votes": {fast["id"]: 1}, "votes_left": 2})
    voting = await read(running, ada, board)
    assert [g["votes"] for g in voting["groups"]] == [None, None]

    discussed = await phase(running, bob, board, "discuss")
    assert [(g["title"], g["votes"]) for g in discussed["groups"]] == [("Speed", 2), ("", 1)]
    focused = await ok(running, bob, "POST", board, "/focus", {"group": flaky["id"]})
    assert focused["focus"] == flaky["id"]
    action = await ok(
        running,
        carl,
        "POST",
        board,
        "/actions",
        {"title": "Quarantine flaky tests", "assignee": "ada"},
        201,
    )
    assert action["source"] == {"retro": board["id"]} and action["assignee"] == "ada"
    for voter, score in ((ada, 4), (bob, 2), (carl, 4)):
        await ok(running, voter, "POST", board, "/happiness", {"score": score})
    scored = await read(running, ada, board)
    assert scored["happiness"] == {
        "count": 3,
        "histogram": {"1": 0, "2": 1, "3": 0, "4": 2, "5": 0},
        "mine": 4,
    }
    assert [task["title"] for task in scored["actions"]] == ["Quarantine flaky tests"]

    closed = await phase(running, bob, board, "closed")
    assert closed["phase"] == "closed" and closed["closed_at"] is not None
    assert field_of(
        await api(running, bob, "POST", path_of(board, "/phase"), {"phase": "discuss"})
    )[:2] == (409, "retro_closed")

    code, kind, text = await markdown(running, carl, board)
    assert code == 200 and kind == "text/markdown; charset=utf-8"
    assert text.startswith("# Sprint 12\n")
    assert "### 1. Speed (went well, 2 votes)" in text
    assert "- Deploys got fast (ada)" in text and "- CI is green (carl)" in text
    assert "### 2. Flaky tests (to improve, 1 vote)" in text
    assert "- [ ] #1 Quarantine flaky tests (@ada)" in text
    assert "- 4/5: 2" in text

    # The next retro carries the open action over.
    second = await started(running, ada)
    assert [task["title"] for task in second["carried_over"]] == ["Quarantine flaky tests"]
    assert second["title"].startswith("Retro ") and second["anonymous"] is True

    events = [e for e in await history(running, carl) if e["type"].startswith("retro_")]
    assert [(e["type"], e["user"]) for e in events] == [
        ("retro_started", "bob"),
        ("retro_phase_changed", "bob"),
        ("retro_phase_changed", "bob"),
        ("retro_phase_changed", "bob"),
        ("retro_closed", "bob"),
        ("retro_started", "ada"),
    ]
    assert events[0]["retro"] == board["id"] and events[0]["title"] == "Sprint 12"
    assert [e.get("phase") for e in events[1:4]] == ["group", "vote", "discuss"]
    assert events[4]["top"] == [
        {"title": "Speed", "votes": 2},
        {"title": "Flaky tests", "votes": 1},
    ]
    rows = [r["action"] for r in await audit(running, admin) if r["action"].startswith("retro.")]
    assert rows.count("retro.start") == 2 and rows.count("retro.phase") == 4
