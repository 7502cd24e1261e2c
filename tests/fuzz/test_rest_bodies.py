"""
Every JSON body of the HTTP routes, valid, almost valid and hostile, and the broken bytes
that carry them, sent to a real listening in-process server as the user each route needs.

Hypothesis only draws the requests (a synchronous ``@given`` with no I/O); one async test
then sends them all, so Hypothesis never has to wait on the reactor.
"""

from __future__ import annotations

from collections import Counter

import pytest_twisted
from hypothesis import given, settings
from hypothesis import strategies as st

from fuzz.fuzzing import check_response, row_counts, send_body
from fuzz.strategies import MISSING, ROUTES, Payload, requests
from support import HOSTILE, add_user, bearer, config_for, login, record_outcome, start

PROFILE = "fuzz-hostile" if HOSTILE else "fuzz"
EXAMPLES = 3000 if HOSTILE else 250


@st.composite
def plain_requests(draw) -> tuple:
    """Objects of only the route's own fields (no extra or repeated keys, rooms that
    exist), so most get past the body checks to the handler and the database."""
    route = draw(st.sampled_from(list(ROUTES.values())))
    room = draw(st.sampled_from(["lobby", "fuzz-private", "no-such-room"]))
    fields = ((name, draw(strategy)) for name, strategy in route.fields.items())
    body = {name: value for name, value in fields if value is not MISSING}
    return route, route.path.replace("{room}", room), Payload(value=body)


def drawn_requests(count: int) -> list:
    """``count`` requests drawn by Hypothesis over every route with a body, without I/O."""
    drawn = []

    @settings(settings.get_profile(PROFILE), max_examples=count, database=None)
    @given(request=requests() | plain_requests())
    def collect(request):
        drawn.append(request)

    collect()
    return drawn


async def live_values(running) -> dict[str, str]:
    """Tokens of a member (owner of lobby), a victim, a doomed account and an admin; an
    invite code and a refresh token."""
    live = {}
    for name, role, key in (
        ("fuzzer", "user", "access_token"),
        ("victim", "user", "other_token"),
        ("doomed", "user", "doomed_token"),
        ("admin-fuzz", "admin", "admin_token"),
    ):
        await add_user(running, name, role)
        status, session = await login(running, name)
        assert status == 200, session
        live[key] = session["access_token"]
    # A session of its own for the refresh route: replaying a rotated refresh token
    # rightly ends its whole session, which must not be the one the other routes use.
    status, session = await login(running, "fuzzer")
    assert status == 200, session
    live["refresh_token"] = session["refresh_token"]
    for owner, room, visibility in (
        ("access_token", "lobby", "public"),
        ("other_token", "fuzz-private", "private"),
    ):
        status, body, _ = await running.request(
            "POST",
            "/api/rooms",
            json={"name": room, "visibility": visibility},
            headers=bearer(live[owner]),
        )
        assert status == 201, body
    status, body, _ = await running.request(
        "POST", "/api/invites", json={"uses": 1000}, headers=bearer(live["admin_token"])
    )
    assert status == 201, body
    live["invite_code"] = body["code"]
    return live


@pytest_twisted.ensureDeferred
async def test_every_body_gets_its_answer_or_a_contract_error(
    fresh_migrated_database_url, tmp_path
):
    drawn = drawn_requests(EXAMPLES)
    config = config_for(fresh_migrated_database_url, tmp_path, no_rate_limits=True)
    running = await start(config)
    try:
        live = await live_values(running)
        outcomes: Counter = Counter()
        for route, path, payload in drawn:
            before = row_counts(fresh_migrated_database_url)
            status, content, headers = await send_body(running.url, route, path, payload, live)
            request = (route.method, path, payload)
            check_response(status, content, headers, request)
            if status >= 400:
                assert row_counts(fresh_migrated_database_url) == before, (status, content, request)
            outcomes[status] += 1
        status, body, _ = await running.health()
        assert status == 200, body
    finally:
        await running.stop()
    assert len(drawn) >= EXAMPLES // 2
    summary = ", ".join(f"{n}×{code}" for code, n in sorted(outcomes.items()))
    record_outcome(
        "fuzz/test_rest_bodies::test_every_body_gets_its_answer_or_a_contract_error",
        what="every JSON body of the HTTP routes gets a 2xx or the contract's JSON error, "
        "and a failed request changes no rows",
        load=f"{len(drawn)} fuzzed requests over 10 routes on one in-process server",
        faults="valid, almost-valid and hostile register/login/refresh/delete-account/invite/"
        "room/member/message/moderation bodies, extra and duplicate keys, NaN/1e309, "
        "10,000-deep nesting, lone surrogates, NUL, invalid UTF-8, over-64-KiB bodies, "
        "hostile room names in the path",
        outcome=f"no 5xx, every 4xx a contract error body, no rows changed by a failure; {summary}",
        sent=len(drawn),
    )
