"""
Search over real HTTP against a real daemon and PostgreSQL (protocol v1.1, Search): what
``q`` finds, the snippet and its marks, pages, the visibility rule as memberships change,
privacy (a room the caller may not read gives exactly what an absent one gives), bad
input, and ``/search``.
"""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
import pytest_twisted
from test_moderation import api, history, join, lobby_with, moderate, post
from test_retention_database import sql
from test_slash_commands import ok, refused

from support import config_for, start
from termrooms.domain.search import MARK_END, MARK_START, SNIPPET_MAX, unmarked
from test_rooms import close, connect, make_room, user_session


@pytest_twisted.async_yield_fixture
async def running(fresh_migrated_database_url, tmp_path):
    server = await start(config_for(fresh_migrated_database_url, tmp_path, no_rate_limits=True))
    yield server
    await server.stop()


async def search(running, session, **params) -> tuple[int, dict]:
    return await api(running, session, "GET", "/api/search?" + urlencode(params))


async def found(running, session, **params) -> list[str]:
    """The bodies a search finds, newest first."""
    status, page = await search(running, session, **params)
    assert status == 200, page
    return [result["event"]["body"] for result in page["results"]]


def marked(snippet: str) -> list[str]:
    """The matches a snippet marks."""
    return [part.split(MARK_END)[0] for part in snippet.split(MARK_START)[1:]]


async def said(running, session, body: str, room="lobby") -> dict:
    status, event = await post(running, session, body, room)
    assert status == 201, event
    return event


@pytest_twisted.ensureDeferred
async def test_words_phrases_exclusions_and_or_as_the_contract_has_them(running):
    _, (ada,) = await lobby_with(running, "ada")
    for body in (
        "Lunch at the Salad Bar today",
        "lunch: pizza again",
        "the bar is closed",
        "Привет мир, lunch?",
        "lunches are not lunch-time",
    ):
        await said(running, ada, body)

    assert await found(running, ada, q="LUNCH") == [
        "lunches are not lunch-time",
        "Привет мир, lunch?",
        "lunch: pizza again",
        "Lunch at the Salad Bar today",
    ]  # whole words, any case, no stemming (lunches is not lunch), newest first
    assert await found(running, ada, q='"salad bar"') == ["Lunch at the Salad Bar today"]
    assert await found(running, ada, q='"bar salad"') == []
    assert await found(running, ada, q="lunch -pizza -lunches") == [
        "Привет мир, lunch?",
        "Lunch at the Salad Bar today",
    ]
    assert await found(running, ada, q="pizza OR closed") == [
        "the bar is closed",
        "lunch: pizza again",
    ]
    assert await found(running, ada, q="мир") == ["Привет мир, lunch?"]
    # OR at either end is an operator with nothing to join, not the word "or".
    assert await found(running, ada, q="OR pizza or") == ["lunch: pizza again"]


@pytest_twisted.ensureDeferred
async def test_a_result_is_the_message_event_as_history_shows_it_with_its_snippet(running):
    _, (ada,) = await lobby_with(running, "ada")
    event = await said(running, ada, "deploy <b>friday</b> & a<b and c>d\n\tdeploy  again")
    status, page = await search(running, ada, q="deploy and")
    assert status == 200
    assert page["has_more"] is False
    [result] = page["results"]
    assert result["room"] == "lobby"
    assert result["event"] == event
    # The body's own characters, HTML-ish ones too, with each match marked.
    snippet = result["snippet"]
    assert unmarked(snippet) == event["body"]
    assert marked(snippet) == ["deploy", "and", "deploy"]
    # Words a tag-like run holds are found like any other.
    assert await found(running, ada, q="friday c") == [event["body"]]


@pytest_twisted.ensureDeferred
async def test_a_long_body_gives_an_excerpt_around_its_first_match(running):
    _, (ada,) = await lobby_with(running, "ada")
    body = " ".join(["filler"] * 200 + ["needle", "here"] + ["padding"] * 200)
    await said(running, ada, body)
    [result] = (await search(running, ada, q="needle"))[1]["results"]
    snippet = result["snippet"]
    assert len(unmarked(snippet)) <= SNIPPET_MAX
    assert unmarked(snippet) in body and marked(snippet) == ["needle"]
    assert snippet.index(MARK_START) < 60  # a little context before it, not the body's start


@pytest_twisted.ensureDeferred
async def test_deleted_and_edited_messages(running):
    _, (ada,) = await lobby_with(running, "ada")
    gone = await said(running, ada, "secret plans")
    await said(running, ada, "public plans")
    status, _ = await api(running, ada, "DELETE", f"/api/rooms/lobby/messages/{gone['id']}")
    assert status == 204
    assert await found(running, ada, q="plans") == ["public plans"]
    assert await found(running, ada, q="secret") == []
    # Deleted is deleted_at, whether the body is cleared or kept.
    await said(running, ada, "kept plans")
    sql(
        running.server.database_url,
        "UPDATE room_events SET deleted_at = now() WHERE body = 'kept plans'",
    )
    assert await found(running, ada, q="kept") == []
    # An edit rewrites the message's body; search reads the body as it is now.
    [public] = [e for e in await history(running, ada) if e.get("body") == "public plans"]
    path = f"/api/rooms/lobby/messages/{public['id']}"
    assert (await api(running, ada, "PATCH", path, {"body": "revised plans"}))[0] == 200
    assert await found(running, ada, q="public") == []
    assert await found(running, ada, q="revised") == ["revised plans"]


@pytest_twisted.ensureDeferred
async def test_a_direct_rooms_messages_are_found_by_its_two_members_alone(running):
    admin, (ada, bob) = await lobby_with(running, "ada", "bob")
    carl = await user_session(running, "carl")
    status, room = await api(running, ada, "POST", "/api/dms", {"username": "bob"})
    assert status == 201, room
    await said(running, ada, "whispered plans", room=room["name"])
    for member in (ada, bob):
        assert await found(running, member, q="whispered") == ["whispered plans"]
    for outsider in (carl, admin):  # a server admin is nobody in a direct room
        assert await found(running, outsider, q="whispered") == []


@pytest_twisted.ensureDeferred
async def test_pages_go_back_with_before_and_filters_narrow(running):
    _, (ada, bob) = await lobby_with(running, "ada", "bob")
    await make_room(running, ada, name="other")
    await join(running, bob, "other")
    sent = []
    for n in range(7):
        author = ada if n % 2 == 0 else bob
        sent.append(await said(running, author, f"note {n}", room="lobby" if n < 5 else "other"))
    newest_first = [event["body"] for event in reversed(sent)]

    status, first = await search(running, ada, q="note", limit=3)
    assert [r["event"]["body"] for r in first["results"]] == newest_first[:3]
    assert first["has_more"] is True
    cursor = first["results"][-1]["event"]["id"]
    status, second = await search(running, ada, q="note", limit=3, before=cursor)
    assert [r["event"]["body"] for r in second["results"]] == newest_first[3:6]
    assert second["has_more"] is True
    cursor = second["results"][-1]["event"]["id"]
    status, last = await search(running, ada, q="note", limit=3, before=cursor)
    assert [r["event"]["body"] for r in last["results"]] == newest_first[6:]
    assert last["has_more"] is False

    assert await found(running, ada, q="note", room="OTHER") == ["note 6", "note 5"]
    assert await found(running, ada, q="note", **{"from": "Bob"}) == ["note 5", "note 3", "note 1"]
    assert await found(running, ada, q="note", room="lobby", **{"from": "ada"}) == [
        "note 4",
        "note 2",
        "note 0",
    ]
    assert await found(running, ada, q="note", **{"from": "nobody"}) == []
    assert (await search(running, ada, q="note"))[1]["has_more"] is False  # 20 by default


# Message g (1..10,000) is in lobby when g is even, else in vault (private, ada's alone);
# every body holds alpha, every 7th beta, every 1,000th gamma. Ids are g, below any
# snowflake; the rooms' seqs follow their first events.
MANY = 10_000
SEED_MANY = """
INSERT INTO room_events (id, room_id, seq, type, user_id, body)
SELECT g, CASE WHEN g %% 2 = 0 THEN %(lobby)s ELSE %(vault)s END, 10 + g, 'message', %(ada)s,
       'alpha ' || g || CASE WHEN g %% 7 = 0 THEN ' beta' ELSE '' END
                     || CASE WHEN g %% 1000 = 0 THEN ' gamma' ELSE '' END
  FROM generate_series(1, %(n)s) AS g
"""


async def every_page(running, session, limit: int, **params) -> list[int]:
    """The ids of every result, page after page back to the oldest, checking has_more."""
    ids: list[int] = []
    before: dict[str, str] = {}
    while True:
        status, page = await search(running, session, limit=limit, **params, **before)
        assert status == 200, page
        assert 0 < len(page["results"]) <= limit or not ids
        ids += [int(result["event"]["id"]) for result in page["results"]]
        if not page["has_more"]:
            assert len(page["results"]) <= limit
            return ids
        assert len(page["results"]) == limit
        before = {"before": page["results"][-1]["event"]["id"]}


@pytest_twisted.ensureDeferred
async def test_ranking_and_pages_over_ten_thousand_messages(running):
    _, (ada, bob) = await lobby_with(running, "ada", "bob")
    await make_room(running, ada, name="vault", visibility="private")
    [(lobby, vault, ada_id)] = sql(
        running.server.database_url,
        "SELECT (SELECT id FROM rooms WHERE name = 'lobby'), (SELECT id FROM rooms WHERE"
        " name = 'vault'), (SELECT id FROM users WHERE username = 'ada')",
    )
    sql(
        running.server.database_url,
        SEED_MANY,
        {"lobby": lobby, "vault": vault, "ada": ada_id, "n": MANY},
    )
    sql(running.server.database_url, "ANALYZE room_events")
    newest_first = list(range(MANY, 0, -1))

    def expected(keep, visible=lambda g: True) -> list[int]:
        return [g for g in newest_first if keep(g) and visible(g)]

    def in_lobby(g: int) -> bool:
        return g % 2 == 0  # what bob, not in vault, may read

    assert await every_page(running, bob, 50, q="ALPHA") == expected(lambda g: True, in_lobby)
    assert await every_page(running, ada, 37, q="beta") == expected(lambda g: g % 7 == 0)
    assert await every_page(running, bob, 7, q="gamma") == expected(
        lambda g: g % 1000 == 0, in_lobby
    )
    assert await every_page(running, ada, 50, q="gamma OR beta", room="vault") == expected(
        lambda g: g % 7 == 0 or g % 1000 == 0, lambda g: not in_lobby(g)
    )
    assert await every_page(running, bob, 50, q="beta -gamma", room="vault") == []
    assert await every_page(running, ada, 50, q='"alpha 4242"') == [4242]
    # A page from a cursor in the middle starts right after it, whoever posted last.
    await said(running, bob, "alpha the newest")
    status, page = await search(running, bob, q="alpha", before=5001, limit=3)
    assert [int(r["event"]["id"]) for r in page["results"]] == [5000, 4998, 4996]
    status, page = await search(running, bob, q="alpha", limit=2)
    assert page["results"][0]["event"]["body"] == "alpha the newest"
    assert int(page["results"][1]["event"]["id"]) == MANY


@pytest_twisted.ensureDeferred
async def test_the_visibility_rule_follows_leaving_kicks_and_bans(running):
    admin, (ada, bob, carl, dan) = await lobby_with(
        running, "ada", "bob", "carl", "dan", room="secret", visibility="private"
    )
    await said(running, ada, "the launch code", room="secret")
    await make_room(running, ada, name="square")
    await join(running, bob, "square")
    await said(running, ada, "the launch party", room="square")
    everything = ["the launch party", "the launch code"]
    for member in (ada, bob, carl, dan):
        assert await found(running, member, q="launch") == everything
    # A server admin outside the private room finds only the public one's.
    assert await found(running, admin, q="launch") == ["the launch party"]

    assert (await api(running, bob, "POST", "/api/rooms/secret/leave"))[0] == 204
    assert (await moderate(running, ada, "kick", "carl", room="secret"))[0] == 200
    assert (await moderate(running, ada, "ban", "dan", room="secret"))[0] == 200
    for gone in (bob, carl, dan):
        assert await found(running, gone, q="launch") == ["the launch party"]
        assert await found(running, gone, q="launch", room="secret") == []
    # A public room needs no membership: leaving it, or a ban from it, hides nothing.
    assert (await api(running, bob, "POST", "/api/rooms/square/leave"))[0] == 204
    assert (await moderate(running, ada, "ban", "dan", room="square"))[0] == 200
    for outsider in (bob, dan):
        assert await found(running, outsider, q="party") == ["the launch party"]
    # Nor does a deleted room leave anything to find, for anyone.
    assert (await api(running, ada, "DELETE", "/api/rooms/square"))[0] == 204
    assert await found(running, ada, q="launch") == ["the launch code"]


@pytest_twisted.ensureDeferred
async def test_a_room_the_caller_may_not_read_answers_exactly_as_an_absent_one(running):
    admin, (ada,) = await lobby_with(running, "ada", room="secret", visibility="private")
    await said(running, ada, "hidden words", room="secret")
    status, _ = await api(running, ada, "DELETE", "/api/rooms/secret")  # a deleted room too
    assert status == 204
    await make_room(running, ada, name="vault", visibility="private")
    await said(running, ada, "hidden words", room="vault")
    outsider = await user_session(running, "eve")
    for caller in (outsider, admin):
        absent = await api(running, caller, "GET", "/api/search?q=hidden&room=nosuchroom")
        assert absent == (200, {"results": [], "has_more": False})
        for room in ("vault", "VAULT", "secret"):
            path = f"/api/search?q=hidden&room={room}"
            status, body, _ = await running.request(
                "GET", path, headers={"Authorization": f"Bearer {caller['access_token']}"}
            )
            assert (status, body) == absent
        assert await found(running, caller, q="hidden") == []
    # Signed out: 401, whatever the room.
    for room in ("vault", "nosuchroom"):
        status, body = await api(running, None, "GET", f"/api/search?q=hidden&room={room}")
        assert status == 401 and body["error_code"] == "unauthorized"


@pytest.mark.parametrize(
    "q",
    [
        "",
        " ",
        "-pizza",
        '-"salad bar"',
        "OR",
        "or OR Or",
        "- OR -x",
        "!!! ??? &|()",
        '""',
        "\x00",
        "\x02\x03",
        "-" * 4000,
        " OR" * 1333,
    ],
)
@pytest_twisted.ensureDeferred
async def test_a_q_with_no_word_to_find_is_a_422_on_q(running, q):
    _, (ada,) = await lobby_with(running, "ada")
    await said(running, ada, "or pizza")
    status, body = await search(running, ada, q=q)
    assert status == 422, body
    assert [e["field"] for e in body["validation_errors"]] == ["q"]


@pytest_twisted.ensureDeferred
async def test_bad_input_is_never_a_500(running):
    _, (ada,) = await lobby_with(running, "ada")
    await said(running, ada, "pizza tonight")
    long_words = " ".join(["pizza"] * 666)  # 3,995 characters
    assert await found(running, ada, q=long_words) == ["pizza tonight"]
    for q in (
        ('pizza "a b" -c OR ' * 300)[:4000],
        ('"' + "pizza " * 700)[:4000],
        ("-x " * 1400)[:3999] + "y",
    ):
        assert (await search(running, ada, q=q))[0] == 200
    # 4,000 characters that take 26 KB in a URL: the HTTP layer's limit on a request
    # line (16 KiB) answers before any route, with the contract's error body.
    status, body = await search(running, ada, q="\U0001f355 " * 2000)
    assert (status, body["error_code"]) == (400, "bad_request")
    assert await found(running, ada, q="pizza:* & !(x) <-> 'y'") == []  # syntax is text
    status, body = await search(running, ada, q="x" * 4001)
    assert status == 422 and body["validation_errors"][0]["field"] == "q"
    status, body = await api(running, ada, "GET", "/api/search")
    assert status == 422 and body["validation_errors"][0]["field"] == "q"
    for params, field in (
        ({"limit": 0}, "limit"),
        ({"limit": 51}, "limit"),
        ({"before": "x"}, "before"),
        ({"before": "0"}, "before"),
    ):
        status, body = await search(running, ada, q="pizza", **params)
        assert status == 422 and body["validation_errors"][0]["field"] == field
    for params in ({"room": "\x00"}, {"from": "a\x00b"}, {"room": "x" * 100}, {"from": ""}):
        assert await search(running, ada, q="pizza", **params) == (
            200,
            {"results": [], "has_more": False},
        )
        # Whether q has a word to find does not depend on them.
        status, body = await search(running, ada, q="!!!", **params)
        assert status == 422 and body["validation_errors"][0]["field"] == "q"


@pytest_twisted.ensureDeferred
async def test_slash_search_replies_with_the_newest_five_as_text(running):
    _, (ada,) = await lobby_with(running, "ada")
    for n in range(6):
        await said(running, ada, f"standup\nnote {n}")
    client = await connect(running, ada)
    try:
        reply = await ok(client, "/search standup", room="anywhere")
        lines = reply.splitlines()
        assert len(lines) == 6 and lines[-1].startswith("(older results not shown")
        assert lines[0].startswith("lobby ") and lines[0].endswith(" ada: standup note 5")
        assert MARK_START not in reply
        assert await ok(client, "/search nothing-like-it") == "no messages found"
        assert "must hold a word to find" in await refused(client, "/search -standup")
    finally:
        await close(client)


@pytest_twisted.ensureDeferred
async def test_the_openapi_document_describes_search(running):
    status, document, _ = await running.request("GET", "/api/openapi.json")
    assert status == 200
    route = document["paths"]["/api/search"]["get"]
    assert {p["name"] for p in route["parameters"]} >= {"q", "room", "from", "before", "limit"}
    assert {"200", "400", "401", "422", "429"} <= set(route["responses"])
    page = route["responses"]["200"]["content"]["application/json"]["schema"]
    assert set(page["required"]) == {"results", "has_more"}
    assert set(page["properties"]["results"]["items"]["required"]) == {"room", "event", "snippet"}
