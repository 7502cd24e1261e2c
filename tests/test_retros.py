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

import json

import pytest_twisted
import treq
from test_moderation import api, audit, drained, history, lobby_with, moderate, subscribed
from test_retention_database import sql
from test_slash_commands import command
from test_tasks import field_of
from twisted.internet import defer, reactor
from twisted.internet.task import deferLater

from support import bearer, config_for, start
from test_rooms import close, connect, make_room, user_session

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


# --------------------------------------------------------------------------- secrecy

SECRETS = {"ada": "ada-wrote-this", "bob": "bob-wrote-this", "carl": "carl-wrote-this"}


def texts_in(value) -> set[str]:
    """Which of the secret entry texts a JSON value holds, anywhere in it."""
    dumped = json.dumps(value)
    return {name for name, text in SECRETS.items() if text in dumped}


@pytest_twisted.ensureDeferred
async def test_the_secrecy_matrix_every_phase_three_readers_answers_frames_and_events(running):
    """Hidden entry text, anyone's votes and anyone's happiness score never reach
    another reader: not in a board, a list, a summary, a frame or a stored event."""
    _, (ada, bob, carl) = await lobby_with(running, "ada", "bob", "carl")
    readers = {"ada": ada, "bob": bob, "carl": carl}
    sockets = {name: await subscribed(running, session) for name, session in readers.items()}
    board = await started(running, ada, title="Secrets")
    for name, session in readers.items():
        await ok(running, session, "POST", board, "/join")
        await entry(running, session, board, "ideas", SECRETS[name])
    votes = {"ada": 2, "bob": 1, "carl": 3}
    scores = {"ada": 5, "bob": 1, "carl": 3}

    async def views(name: str) -> list:
        session = readers[name]
        listed = (await api(running, session, "GET", ROOM))[1]
        return [
            await read(running, session, board),
            listed,
            (await markdown(running, session, board))[2],
        ]

    frames: dict[str, list] = {name: [] for name in readers}
    for step in ("collect", "group", "vote", "discuss", "closed"):
        if step != "collect":
            await phase(running, ada, board, step)
        if step == "vote":
            current = await read(running, ada, board)
            groups = {e["text"]: e["group"] for e in current["entries"]}
            for name, n in votes.items():
                for _ in range(n):  # each on their own entry's group
                    await ok(
                        running,
                        readers[name],
                        "POST",
                        board,
                        "/votes",
                        {"group": groups[SECRETS[name]]},
                    )
        if step in ("vote", "discuss"):
            for name in ("ada", "bob") if step == "vote" else ("carl",):
                await ok(
                    running, readers[name], "POST", board, "/happiness", {"score": scores[name]}
                )
        for name in readers:
            seen = await views(name)
            shown = seen[0]
            # Entry text: one's own while collecting, everyone's from grouping on.
            expected = {name} if step == "collect" else set(SECRETS)
            assert texts_in(seen) == expected, (step, name)
            assert [e["author"] for e in shown["entries"]] == [None] * 3
            # Votes: only one's own; totals only once voting ended.
            mine = {} if step in ("collect", "group") else {groups[SECRETS[name]]: votes[name]}
            assert shown["my_votes"] == mine, (step, name)
            totals = [g["votes"] for g in shown["groups"]]
            if step in ("discuss", "closed"):
                assert totals == [3, 2, 1]
            else:
                assert set(totals) <= {None}
            # Happiness: one's own score; a histogram from the discussion on, from 3.
            happiness = shown["happiness"]
            assert happiness["mine"] == (
                scores[name]
                if step != "collect"
                and (step != "group")
                and (name != "carl" or step in ("discuss", "closed"))
                else None
            )
            if step in ("discuss", "closed"):
                assert happiness["histogram"] == {"1": 1, "2": 0, "3": 1, "4": 0, "5": 1}
            else:
                assert happiness["histogram"] is None
            frames[name] += await drained(sockets[name])

    for name, got in frames.items():
        updates = [f for f in got if f["type"] == "retro_update"]
        assert updates and all(set(f) == {"type", "room", "retro", "part"} for f in updates)
        # Frames say what changed, never what it is: no text while it was hidden (the
        # top groups of retro_closed name them once everyone sees them), no vote, no score.
        collecting = got[
            : next(i for i, f in enumerate(got) if f.get("type") == "retro_phase_changed")
        ]
        assert texts_in(collecting) == set(), name
        for frame in got:
            assert "my_votes" not in json.dumps(frame) and "happiness" not in json.dumps(
                {k: v for k, v in frame.items() if k != "part"}
            )
    events = [e for e in await history(running, bob) if e["type"].startswith("retro_")]
    assert [set(e) - {"type", "id", "room", "seq", "ts", "user"} for e in events] == [
        {"retro", "title"},
        {"retro", "phase"},
        {"retro", "phase"},
        {"retro", "phase"},
        {"retro", "top"},
    ]
    assert events[-1]["top"] == [
        {"title": SECRETS["carl"], "votes": 3},
        {"title": SECRETS["ada"], "votes": 2},
        {"title": SECRETS["bob"], "votes": 1},
    ]
    await close(*sockets.values())


@pytest_twisted.ensureDeferred
async def test_a_histogram_waits_for_three_answers_and_a_named_retro_names_authors(running):
    _, (ada, bob, carl) = await lobby_with(running, "ada", "bob", "carl")
    board = await started(running, ada, anonymous=False, columns=["good", "bad"])
    written = await entry(running, bob, board, "bad", "slow builds")
    for step in ("group", "vote", "discuss"):
        await phase(running, ada, board, step)
    await ok(running, ada, "POST", board, "/happiness", {"score": 2})
    await ok(running, bob, "POST", board, "/happiness", {"score": 4})
    two = await read(running, carl, board)
    assert two["happiness"] == {"count": 2, "histogram": None, "mine": None}
    assert two["entries"][0]["author"] == "bob" and two["entries"][0]["text"] == "slow builds"
    again = await ok(running, bob, "POST", board, "/happiness", {"score": 5})  # replaces
    assert again["happiness"] == {"count": 2, "histogram": None, "mine": 5}
    await ok(running, carl, "POST", board, "/happiness", {"score": 5})
    shown = (await read(running, ada, board))["happiness"]
    assert shown == {"count": 3, "histogram": {"1": 0, "2": 1, "3": 0, "4": 0, "5": 2}, "mine": 2}
    assert written["author"] == "bob"


# --------------------------------------------------------------------------- isolation


async def grouped_retro(running, facilitator, room, *writers, to="group") -> tuple[dict, list]:
    """A retro of ``room`` with an entry by each writer, moved on to ``to``."""
    board = await started(running, facilitator, room=room)
    written = [
        await entry(running, w, board, "ideas", f"{room} idea {i}") for i, w in enumerate(writers)
    ]
    for step in ("group", "vote", "discuss", "closed")[
        : ("group", "vote", "discuss", "closed").index(to) + 1
    ]:
        await phase(running, facilitator, board, step)
    return board, written


@pytest_twisted.ensureDeferred
async def test_the_isolation_matrix_another_rooms_retro_another_retros_parts_404(running):
    admin, (ada, bob) = await lobby_with(running, "ada", "bob")
    carl = await user_session(running, "carl")
    await make_room(running, carl, name="den", visibility="private")
    assert (await api(running, carl, "POST", "/api/rooms/den/members", {"username": "ada"}))[
        0
    ] == 204
    assert (await api(running, ada, "POST", "/api/rooms/den/join"))[0] == 200
    dan = await user_session(running, "dan")  # a member of neither
    old, old_entries = await grouped_retro(running, ada, "lobby", ada, bob, to="closed")
    lobby, _ = await grouped_retro(running, ada, "lobby", ada, bob)
    den, den_entries = await grouped_retro(running, carl, "den", carl, ada)
    foreign_entry = old_entries[0]["id"]  # entry ids are their group's ids too
    private_entry = den_entries[0]["id"]

    def routes(retro_path: str, entry_id: str, group_id: str) -> list:
        return [
            ("GET", retro_path, None),
            ("GET", retro_path + "/summary", None),
            ("POST", retro_path + "/join", None),
            ("POST", retro_path + "/phase", {"phase": "vote"}),
            ("POST", retro_path + "/entries", {"column": "ideas", "text": "x"}),
            ("PATCH", f"{retro_path}/entries/{entry_id}", {"text": "x"}),
            ("DELETE", f"{retro_path}/entries/{entry_id}", None),
            ("POST", f"{retro_path}/groups/{group_id}/entries", {"entry": entry_id}),
            ("PATCH", f"{retro_path}/groups/{group_id}", {"title": "x"}),
            ("POST", retro_path + "/votes", {"group": group_id}),
            ("DELETE", f"{retro_path}/votes/{group_id}", None),
            ("POST", retro_path + "/focus", {"group": group_id}),
            ("POST", retro_path + "/actions", {"title": "x"}),
            ("POST", retro_path + "/happiness", {"score": 3}),
        ]

    absent_retro = await api(running, ada, "GET", "/api/rooms/lobby/retros/999999999999")
    assert absent_retro == (404, {"detail": "No such retro.", "error_code": "not_found"})
    # Another room's retro through this room's path: the 404 of no retro at all, for
    # members of both rooms, of one, and of neither.
    for caller in (ada, bob, carl, dan, admin):
        for method, path, body in routes(
            f"/api/rooms/lobby/retros/{den['id']}", private_entry, private_entry
        ):
            # carl and dan are not members of lobby: still the 404, never a 403.
            answer = await api(running, caller, method, path, body)
            assert answer == absent_retro, (caller["user"]["username"], method, path)
    # Another retro's entries and groups in this retro's routes: 404, as absent ones.
    here = path_of(lobby)
    nothing = "999999999999"
    for caller in (ada, bob, dan, admin):  # dan: a non-member of this public room
        for other in (foreign_entry, private_entry):
            paired = zip(
                routes(here, other, other)[5:12], routes(here, nothing, nothing)[5:12], strict=True
            )
            for (method, path, body), (_, absent_path, absent_body) in paired:
                absent = await api(running, caller, method, absent_path, absent_body)
                assert absent[0] == 404, (method, absent_path, absent)
                answer = await api(running, caller, method, path, body)
                assert answer == absent, (caller["user"]["username"], method, path, answer)
    # A private room's retro, by its own path, to those outside it: the room's 404.
    hidden_room = await api(running, dan, "GET", "/api/rooms/den")
    for caller in (bob, dan):
        for method, path, body in routes(path_of(den), private_entry, private_entry):
            assert await api(running, caller, method, path, body) == hidden_room, (method, path)
    # Nothing of it changed.
    assert [e["text"] for e in (await read(running, ada, lobby))["entries"]] == [
        "lobby idea 0",
        "lobby idea 1",
    ]
    assert (await read(running, carl, den))["phase"] == "group"


# --------------------------------------------------------------------------- phases

# What each change answers in each phase, collect to closed ("w": 409 wrong_phase,
# "c": 409 retro_closed).
PHASE_TABLE = {
    "join": (200, 200, 200, 200, "c"),
    "add entry": (201, "w", "w", "w", "c"),
    "edit entry": (200, "w", "w", "w", "c"),
    "delete entry": (204, "w", "w", "w", "c"),
    "move entry": ("w", 200, "w", "w", "c"),
    "title group": ("w", 200, "w", "w", "c"),
    "vote": ("w", "w", 200, "w", "c"),
    "unvote": ("w", "w", 200, "w", "c"),
    "focus": ("w", "w", "w", 200, "c"),
    "action": (201, 201, 201, 201, "c"),
    "happiness": (200, 200, 200, 200, "c"),
}
PHASES = ("collect", "group", "vote", "discuss", "closed")


@pytest_twisted.ensureDeferred
async def test_every_route_in_every_phase_and_only_the_facilitator_moves(running):
    admin, (ada, bob) = await lobby_with(running, "ada", "bob")
    board = await started(running, ada)
    await ok(running, bob, "POST", board, "/join")
    first = await entry(running, bob, board, "ideas", "first")
    second = await entry(running, bob, board, "ideas", "second")
    spare = [await entry(running, bob, board, "ideas", f"spare {i}") for i in range(2)]
    # Through to the discussion and back, with a vote spent: going back keeps it all.
    for step in ("group", "vote"):
        await phase(running, ada, board, step)
    await ok(running, bob, "POST", board, "/votes", {"group": first["id"]})
    for step in ("discuss", "vote", "group", "collect"):
        await phase(running, ada, board, step)
    kept = await read(running, bob, board)
    assert len(kept["groups"]) == 4 and kept["my_votes"] == {first["id"]: 1}

    def change(name: str, step: str):
        deletable = spare[0]["id"] if step == "collect" else spare[1]["id"]
        return {
            "join": ("POST", "/join", None),
            "add entry": ("POST", "/entries", {"column": "ideas", "text": f"in {step}"}),
            "edit entry": ("PATCH", f"/entries/{first['id']}", {"text": f"first, {step}"}),
            "delete entry": ("DELETE", f"/entries/{deletable}", None),
            "move entry": ("POST", f"/groups/{first['id']}/entries", {"entry": second["id"]}),
            "title group": ("PATCH", f"/groups/{first['id']}", {"title": step}),
            "vote": ("POST", "/votes", {"group": first["id"]}),
            "unvote": ("DELETE", f"/votes/{first['id']}", None),
            "focus": ("POST", "/focus", {"group": first["id"]}),
            "action": ("POST", "/actions", {"title": f"act in {step}"}),
            "happiness": ("POST", "/happiness", {"score": 4}),
        }[name]

    for at, step in enumerate(PHASES):
        if step != "collect":
            # Only the facilitator moves, and one step at a time.
            assert field_of(
                await api(running, bob, "POST", path_of(board, "/phase"), {"phase": step})
            )[:2] == (403, "forbidden")
            assert field_of(
                await api(running, admin, "POST", path_of(board, "/phase"), {"phase": step})
            )[:2] == (403, "forbidden")
            if at + 1 < len(PHASES):
                skip = PHASES[at + 1]
                assert field_of(
                    await api(running, ada, "POST", path_of(board, "/phase"), {"phase": skip})
                )[:2] == (409, "wrong_phase")
            await phase(running, ada, board, step)
        for name, answers in PHASE_TABLE.items():
            method, tail, body = change(name, step)
            status, answer = await api(
                running, bob if name != "focus" else ada, method, path_of(board, tail), body
            )
            expected = answers[at]
            if expected == "w":
                assert (status, answer["error_code"]) == (409, "wrong_phase"), (step, name, answer)
            elif expected == "c":
                assert (status, answer["error_code"]) == (409, "retro_closed"), (step, name, answer)
            else:
                assert status == expected, (step, name, status, answer)
            if name == "unvote" and status == 200:  # keep the vote for the next phases
                await ok(running, bob, "POST", board, "/votes", {"group": first["id"]})
        same = await api(running, ada, "POST", path_of(board, "/phase"), {"phase": step})
        assert field_of(same)[:2] == (409, "retro_closed" if step == "closed" else "wrong_phase")
    # Closed is final: no step back, whoever asks.
    for who in (ada, bob):
        status, answer = await api(
            running, who, "POST", path_of(board, "/phase"), {"phase": "discuss"}
        )
        assert status in (403, 409) and answer["error_code"] in ("forbidden", "retro_closed")
    final = await read(running, bob, board)
    assert final["phase"] == "closed" and final["focus"] == first["id"]
    assert [g["title"] for g in final["groups"] if g["id"] == first["id"]] == ["group"]
    assert sorted(t["title"] for t in final["actions"]) == [
        f"act in {s}" for s in sorted(PHASES[:4])
    ]
    # A member who may not start retros, or a room without one: commands and routes agree.
    assert field_of(await api(running, bob, "POST", ROOM, {}))[:2] == (403, "forbidden")


# --------------------------------------------------------------------------- races


@pytest_twisted.ensureDeferred
async def test_twenty_participants_spending_votes_at_once_keep_to_their_budget(running):
    _, sessions = await lobby_with(running, "ada", *[f"voter{i:02}" for i in range(20)])
    ada, voters = sessions[0], sessions[1:]
    board = await started(running, ada, votes_per_participant=3)
    written = [await entry(running, ada, board, "ideas", f"idea {i}") for i in range(4)]
    await phase(running, ada, board, "group")
    await phase(running, ada, board, "vote")
    path = path_of(board, "/votes")
    # Each voter fires five votes at once (two tabs' worth) for a budget of three.
    attempts = [
        api(running, voter, "POST", path, {"group": written[(i + k) % 4]["id"]})
        for i, voter in enumerate(voters)
        for k in range(5)
    ]
    answers = await defer.gatherResults([defer.ensureDeferred(a) for a in attempts])
    codes = sorted((status, body.get("error_code")) for status, body in answers)
    assert codes.count((200, None)) == 60 and codes.count((409, "no_votes_left")) == 40, codes
    for voter in voters:
        mine = await read(running, voter, board)
        assert sum(mine["my_votes"].values()) == 3 and mine["votes_left"] == 0
    await phase(running, ada, board, "discuss")
    assert sum(g["votes"] for g in (await read(running, ada, board))["groups"]) == 60
    assert sorted((await read(running, ada, board))["participants"]) == sorted(
        ["ada", *(v["user"]["username"] for v in voters)]
    )


@pytest_twisted.ensureDeferred
async def test_racing_moves_and_a_phase_change_racing_votes_leave_a_consistent_board(running):
    _, (ada, bob, carl) = await lobby_with(running, "ada", "bob", "carl")
    board = await started(running, ada, votes_per_participant=1)
    for session in (bob, carl):
        await ok(running, session, "POST", board, "/join")
    cards = [(await entry(running, ada, board, "ideas", f"card {i}"))["id"] for i in range(8)]
    await phase(running, ada, board, "group")

    def move(session, group, card):
        path = path_of(board, f"/groups/{group}/entries")
        return defer.ensureDeferred(api(running, session, "POST", path, {"entry": card}))

    def consistent(shown: dict) -> None:
        placed = [entry_id for group in shown["groups"] for entry_id in group["entries"]]
        assert sorted(placed) == sorted(cards)  # each card in exactly one group
        assert all(group["entries"] for group in shown["groups"])  # no group left empty
        for card in shown["entries"]:
            assert card["group"] == group_of(shown, card["id"])["id"]

    # Two people move the same card at once into different groups, for four cards; then
    # the cards that named those groups are moved away at once, emptying them from both
    # sides (a group emptied twice, or left empty, would show).
    rounds = [
        [move(bob, cards[4 + i], cards[i]) for i in range(4)]
        + [move(carl, cards[4 + (i + 1) % 4], cards[i]) for i in range(4)],
        [move(bob, cards[0], cards[4 + i]) for i in range(4)]
        + [move(carl, cards[1], cards[4 + i]) for i in range(4)],
    ]
    for burst in rounds:
        answers = await defer.gatherResults(burst)
        assert all(status in (200, 404) for status, _ in answers), answers
        consistent(await read(running, ada, board))
    shown = await read(running, ada, board)

    # The last vote, raced for from two tabs; then votes racing the end of voting.
    await phase(running, ada, board, "vote")
    target = shown["groups"][0]["id"]
    raced = await defer.gatherResults(
        [defer.ensureDeferred(api(running, bob, "POST", path_of(board, "/votes"), {"group": target}))
         for _ in range(2)]
    )  # fmt: skip
    assert sorted(status for status, _ in raced) == [200, 409]
    moves = [
        defer.ensureDeferred(
            api(running, carl, "POST", path_of(board, "/votes"), {"group": target})
        ),
        defer.ensureDeferred(phase(running, ada, board, "discuss")),
        defer.ensureDeferred(
            api(running, ada, "POST", path_of(board, "/votes"), {"group": target})
        ),
    ]
    carl_vote, _, ada_vote = await defer.gatherResults(moves)
    after = await read(running, ada, board)
    counted = sum(group["votes"] for group in after["groups"])
    # Each vote landed before the move, or was refused after it: the totals say which.
    landed = 1 + sum(1 for status, _ in (carl_vote, ada_vote) if status == 200)
    assert counted == landed
    for status, answer in (carl_vote, ada_vote):
        assert status == 200 or answer["error_code"] == "wrong_phase"


# --------------------------------------------------------------------------- callers


@pytest_twisted.ensureDeferred
async def test_every_route_by_every_kind_of_caller(running):
    admin, (ada, bob, erin) = await lobby_with(
        running, "ada", "bob", "erin", room="crew", visibility="private"
    )
    dave = await user_session(running, "dave")  # never a member
    board = await started(running, ada, room="crew")
    written = await entry(running, bob, board, "ideas", "crew only")
    assert (await moderate(running, ada, "ban", "erin", room="crew"))[0] == 200
    base = "/api/rooms/crew/retros"
    routes = [
        ("GET", base, None),
        ("POST", base, {}),
        ("GET", path_of(board), None),
        ("GET", path_of(board, "/summary"), None),
        ("POST", path_of(board, "/join"), None),
        ("POST", path_of(board, "/phase"), {"phase": "group"}),
        ("POST", path_of(board, "/phase"), {"phase": "nope"}),  # a bad body says nothing
        ("POST", path_of(board, "/entries"), {"column": "ideas", "text": "x"}),
        ("PATCH", path_of(board, f"/entries/{written['id']}"), {"text": "x"}),
        ("DELETE", path_of(board, f"/entries/{written['id']}"), None),
        ("POST", path_of(board, f"/groups/{written['id']}/entries"), {"entry": written["id"]}),
        ("PATCH", path_of(board, f"/groups/{written['id']}"), {"title": "x"}),
        ("POST", path_of(board, "/votes"), {"group": written["id"]}),
        ("DELETE", path_of(board, f"/votes/{written['id']}"), None),
        ("POST", path_of(board, "/focus"), {"group": None}),
        ("POST", path_of(board, "/actions"), {"title": "x"}),
        ("POST", path_of(board, "/happiness"), {"score": 9}),
    ]
    hidden = await api(running, dave, "GET", "/api/rooms/crew")
    assert hidden[0] == 404
    for outsider in (dave, erin):  # a private room hides itself from the banned too
        for method, path, body in routes:
            assert await api(running, outsider, method, path, body) == hidden, (method, path)
    for method, path, body in routes:
        assert (await api(running, None, method, path, body))[0] == 401, (method, path)

    # Members see their board; the admin is a member here by rank, not the facilitator.
    for reader in (ada, bob, admin):
        assert (await read(running, reader, board))["id"] == board["id"]
    assert field_of(
        await api(running, admin, "POST", path_of(board, "/phase"), {"phase": "group"})
    )[:2] == (403, "forbidden")
    # Others' entries are not theirs to change.
    assert field_of(
        await api(
            running, ada, "PATCH", path_of(board, f"/entries/{written['id']}"), {"text": "mine now"}
        )
    )[:2] == (403, "forbidden")
    assert field_of(await api(running, ada, "DELETE", path_of(board, f"/entries/{written['id']}")))[
        :2
    ] == (403, "forbidden")
    # Grouping and actions are for participants: bob wrote (anonymously), so joins first.
    await phase(running, ada, board, "group")
    title = ("PATCH", path_of(board, f"/groups/{written['id']}"), {"title": "t"})
    assert field_of(await api(running, bob, *title))[:2] == (403, "forbidden")
    await ok(running, bob, "POST", board, "/join")
    assert (await api(running, bob, *title))[0] == 200

    # A public room: anyone signed in reads; only members take part.
    olga = await user_session(running, "olga")
    await make_room(running, olga, name="lobby")
    public = await started(running, olga, room="lobby")
    assert (await read(running, dave, public))["id"] == public["id"]
    assert (await markdown(running, dave, public))[0] == 200
    for method, tail, body in (
        ("POST", "/join", None),
        ("POST", "/entries", {"column": "ideas", "text": "x"}),
        ("POST", "/happiness", {"score": 3}),
        ("POST", "/actions", {"title": "x"}),
        ("POST", "/happiness", {"score": 9}),  # 403 before 422
    ):
        assert field_of(await api(running, dave, method, path_of(public, tail), body))[:2] == (
            403,
            "forbidden",
        )
    assert field_of(await api(running, dave, "POST", "/api/rooms/lobby/retros", {}))[:2] == (
        403,
        "forbidden",
    )


# --------------------------------------------------------------------------- bad input

RETRO_ROWS = (
    "SELECT (SELECT count(*) FROM retros), (SELECT count(*) FROM retro_entries),"
    " (SELECT count(*) FROM retro_groups), (SELECT count(*) FROM retro_votes),"
    " (SELECT count(*) FROM retro_happiness), (SELECT count(*) FROM tasks),"
    " (SELECT count(*) FROM retro_participants)"
)


@pytest_twisted.ensureDeferred
async def test_bad_input_names_its_field_and_stores_nothing(running, fresh_migrated_database_url):
    _, (ada, bob) = await lobby_with(running, "ada", "bob")
    for body, fields in (
        ({"title": ""}, ["title"]),
        ({"title": "t" * 101}, ["title"]),
        ({"title": 7}, ["title"]),
        ({"columns": []}, ["columns"]),
        ({"columns": list("abcdefg")}, ["columns"]),
        ({"columns": ["a", " A "]}, ["columns"]),
        ({"columns": ["a", ""]}, ["columns"]),
        ({"columns": ["c" * 41]}, ["columns"]),
        ({"columns": "a,b"}, ["columns"]),
        ({"votes_per_participant": 0}, ["votes_per_participant"]),
        ({"votes_per_participant": 21}, ["votes_per_participant"]),
        ({"votes_per_participant": True}, ["votes_per_participant"]),
        ({"votes_per_participant": 2.5}, ["votes_per_participant"]),
        ({"anonymous": "yes"}, ["anonymous"]),
        ({"title": "", "columns": [], "anonymous": 0}, ["title", "columns", "anonymous"]),
    ):
        assert field_of(await api(running, ada, "POST", ROOM, body)) == (
            422,
            "validation_error",
            fields,
        ), body
    assert sql(fresh_migrated_database_url, RETRO_ROWS) == [(0, 0, 0, 0, 0, 0, 0)]

    board = await started(running, ada, columns=["good", "bad"])
    good = await entry(running, bob, board, "good", "fine")
    await entry(running, bob, board, "bad", "not fine")
    before = sql(fresh_migrated_database_url, RETRO_ROWS)

    async def refused(method, tail, body, fields, session=bob):
        answer = await api(running, session, method, path_of(board, tail), body)
        assert field_of(answer) == (422, "validation_error", fields), (tail, body, answer)

    for body, fields in (
        ({"text": "x"}, ["column"]),
        ({"column": "ugly", "text": "x"}, ["column"]),
        ({"column": "good", "text": ""}, ["text"]),
        ({"column": "good", "text": "   "}, ["text"]),
        ({"column": "good", "text": "t" * 501}, ["text"]),
        ({"column": "good", "text": 5}, ["text"]),
    ):
        await refused("POST", "/entries", body, fields)
    await refused("PATCH", f"/entries/{good['id']}", {}, ["text"])
    await refused("PATCH", f"/entries/{good['id']}", {"column": "ugly"}, ["column"])
    for body in ({}, {"phase": "later"}, {"phase": 1}):
        await refused("POST", "/phase", body, ["phase"], session=ada)
    for score in (0, 6, "3", 3.0, True, None):
        await refused("POST", "/happiness", {"score": score}, ["score"])
    for body, fields in (({"title": ""}, ["title"]), ({"title": "t" * 201}, ["title"]),
                         ({"title": "x", "assignee": "nobody"}, ["assignee"]),
                         ({"title": "x", "assignee": 5}, ["assignee"])):  # fmt: skip
        await refused("POST", "/actions", body, fields, session=ada)
    await phase(running, ada, board, "group")
    current = await read(running, ada, board)
    other_column = next(e["id"] for e in current["entries"] if e["column"] == "bad")
    await ok(running, bob, "POST", board, "/join")
    await refused("POST", f"/groups/{good['id']}/entries", {"entry": "x"}, ["entry"])
    await refused("POST", f"/groups/{good['id']}/entries", {"entry": other_column}, ["entry"])
    await refused("PATCH", f"/groups/{good['id']}", {"title": "t" * 101}, ["title"])
    await refused("PATCH", f"/groups/{good['id']}", {"title": 5}, ["title"])
    await phase(running, ada, board, "vote")
    for body in ({}, {"group": "abc"}, {"group": 0}, {"group": None}):
        await refused("POST", "/votes", body, ["group"])
    await refused("DELETE", f"/votes/{good['id']}", None, ["group"])  # none there
    await phase(running, ada, board, "discuss")
    await refused("POST", "/focus", {"group": "x"}, ["group"], session=ada)
    status, broken, _ = await running.request(
        "POST", path_of(board, "/happiness"), data=b"{", headers=bearer(bob["access_token"])
    )
    assert (status, broken["error_code"]) == (400, "invalid_json")
    after = sql(fresh_migrated_database_url, RETRO_ROWS)
    # Only the groups the move to `group` made, and bob's participation by joining.
    assert after == [(*before[0][:2], 2, 0, 0, 0, before[0][6] + 1)]


# --------------------------------------------------------------------------- frames


@pytest_twisted.ensureDeferred
async def test_retro_updates_reach_every_socket_coalesced_and_end_after_the_last_change(running):
    _, (ada, bob) = await lobby_with(running, "ada", "bob")
    watchers = [await subscribed(running, ada), await subscribed(running, bob)]
    board = await started(running, ada)
    for watcher in watchers:
        await drained(watcher)
    began = reactor.seconds()
    for i in range(30):
        await ok(running, bob, "POST", board, "/happiness", {"score": 1 + i % 5})
    elapsed = reactor.seconds() - began
    await entry(running, ada, board, "ideas", "one more")
    await deferLater(reactor, 0.4, lambda: None)
    for watcher in watchers:
        updates = [f for f in await drained(watcher) if f["type"] == "retro_update"]
        parts = [f["part"] for f in updates]
        assert set(parts) == {"happiness", "participants", "entries"}, parts
        assert 1 <= parts.count("happiness") <= elapsed / 0.25 + 2, (parts, elapsed)
        assert parts.count("participants") == 1  # bob's first score made him one
        assert updates[0] == {"type": "retro_update", "room": "lobby", "retro": board["id"],
                              "part": parts[0]}  # fmt: skip
    # Well after the last update, one more change: its own frame follows it.
    await ok(running, bob, "POST", board, "/happiness", {"score": 5})
    await deferLater(reactor, 0.3, lambda: None)
    for watcher in watchers:
        assert [f["part"] for f in await drained(watcher)] == ["happiness"]
    await close(*watchers)


# --------------------------------------------------------------------------- commands


@pytest_twisted.ensureDeferred
async def test_a_whole_retro_run_with_commands_alone(running):
    _, (ada, bob) = await lobby_with(running, "ada", "bob")
    assert (await moderate(running, ada, "op", "bob"))[0] == 200
    alice, bert = await connect(running, ada), await connect(running, bob)

    async def says(client, line: str, ok_: bool = True) -> str:
        reply = await command(client, line)
        assert reply["ok"] is ok_, (line, reply)
        return reply["text"]

    assert (
        await says(alice, "/retro", False) == "no open retro here: /retro start [TITLE] starts one"
    )
    assert (await says(bert, "/retro start Sprint 9")).startswith(
        "started retro “Sprint 9” (collect"
    )
    assert await says(alice, "/retro add 1 Pairing worked") == "added to went well"
    assert await says(alice, "/retro add to Reviews are slow") == "added to to improve"
    assert await says(bert, "/retro add TO Builds are slow") == "added to to improve"
    assert (await says(alice, "/retro add x nothing", False)).startswith(
        "no single column 'x': 1. went well"
    )
    assert "(hidden until collecting ends)" in await says(alice, "/retro show")
    assert (await says(alice, "/retro next", False)) == "Only the retro's facilitator does that."
    assert "(group," in await says(bert, "/retro next")
    assert "(vote," in await says(bert, "/retro next")
    shown = await says(alice, "/retro show")
    assert "  2. Reviews are slow (yours) [to improve]" in shown, shown
    assert await says(alice, "/retro vote 2") == "voted 2. Reviews are slow; votes left: 2"
    assert await says(alice, "/retro vote 2") == "voted 2. Reviews are slow; votes left: 1"
    assert await says(alice, "/retro unvote 2") == "unvoted 2. Reviews are slow; votes left: 2"
    assert await says(bert, "/retro vote 3") == "voted 3. Builds are slow; votes left: 2"
    assert (await says(alice, "/retro vote 9", False)) == "the board has groups 1-3: /retro show"
    assert "your votes left: 2" in await says(alice, "/retro")
    assert "(discuss," in await says(bert, "/retro next")
    assert await says(alice, "/retro happy 4") == "happiness: 4/5 (nobody sees whose it is)"
    assert await says(bert, "/retro happy 2") == "happiness: 2/5 (nobody sees whose it is)"
    assert (
        await says(alice, "/retro action Split the review queue @bob")
        == "added action #1 Split the review queue"
    )
    shown = await says(bert, "/retro show")
    assert shown.splitlines()[1].startswith("  1. ") and "1 vote" in shown
    assert "actions: #1 Split the review queue (@bob)" in shown
    assert (await says(bert, "/retro back")).startswith("moved: retro “Sprint 9” (vote")
    assert "(discuss," in await says(bert, "/retro next")
    assert "(closed," in await says(bert, "/retro close")
    assert (
        await says(alice, "/retro vote 1", False)
        == "no open retro here: /retro start [TITLE] starts one"
    )
    assert "(closed," in await says(alice, "/retro")
    board = (await api(running, ada, "GET", ROOM))[1]["retros"][0]
    code, _, text = await markdown(running, ada, board)
    assert code == 200 and "- [ ] #1 Split the review queue (@bob)" in text
    await close(alice, bert)


@pytest_twisted.ensureDeferred
async def test_export_holds_my_entries_votes_and_score(running):
    _, (ada, bob) = await lobby_with(running, "ada", "bob")
    board = await started(running, ada)
    written = await entry(running, bob, board, "ideas", "mine alone")
    await phase(running, ada, board, "group")
    await phase(running, ada, board, "vote")
    await ok(running, bob, "POST", board, "/votes", {"group": written["id"]})
    await ok(running, bob, "POST", board, "/happiness", {"score": 2})
    status, export, _ = await running.request(
        "GET", "/api/auth/me/export", headers=bearer(bob["access_token"])
    )
    assert status == 200
    assert [(e["retro"], e["column"], e["text"]) for e in export["retros"]["entries"]] == [
        (board["id"], "ideas", "mine alone")
    ]
    assert export["retros"]["votes"] == [{"retro": board["id"], "group": written["id"], "count": 1}]
    assert export["retros"]["happiness"] == [{"retro": board["id"], "score": 2}]
    _, theirs, _ = await running.request(
        "GET", "/api/auth/me/export", headers=bearer(ada["access_token"])
    )
    assert theirs["retros"] == {"entries": [], "votes": [], "happiness": []}


@pytest_twisted.ensureDeferred
async def test_the_openapi_document_lists_the_retro_routes(running):
    status, document, _ = await running.request("GET", "/api/openapi.json")
    assert status == 200
    paths = document["paths"]
    base = "/api/rooms/{name}/retros"
    one = base + "/{retro_id}"
    assert {path: set(paths[path]) for path in paths if path.startswith(base)} == {
        base: {"get", "post"},
        one: {"get"},
        one + "/summary": {"get"},
        one + "/join": {"post"},
        one + "/phase": {"post"},
        one + "/entries": {"post"},
        one + "/entries/{entry_id}": {"patch", "delete"},
        one + "/groups/{group_id}/entries": {"post"},
        one + "/groups/{group_id}": {"patch"},
        one + "/votes": {"post"},
        one + "/votes/{group_id}": {"delete"},
        one + "/focus": {"post"},
        one + "/actions": {"post"},
        one + "/happiness": {"post"},
    }
    board = paths[base]["post"]["responses"]["201"]["content"]["application/json"]["schema"]
    assert "my_votes" in board["required"] and "409" in paths[one + "/votes"]["post"]["responses"]
