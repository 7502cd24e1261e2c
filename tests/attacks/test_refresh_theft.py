"""
A stolen refresh token, replayed: after its owner rotated it, before, at the same moment
as the owner, and as a browser's cookie. The contract: a spent token is 401
``refresh_reused`` and its whole session (token family) is revoked, the owner's access
tokens and sockets (4001) included. In cookie mode a refresh without the right
X-CSRF-Token is 403 and spends nothing, so another site cannot refresh.
"""

from __future__ import annotations

import json

import psycopg2
import pytest_twisted
import treq
from test_browser_session import assert_cleared, cookie_refresh, parse_cookies
from twisted.internet.defer import ensureDeferred, gatherResults
from twisted.internet.threads import deferToThread

from support import (
    HOSTILE,
    PASSWORD,
    add_user,
    bearer,
    config_for,
    login,
    record_outcome,
    start,
    websocket_handshake_status,
    ws_connect,
)
from termrooms.domain.browser_session import csrf_token


@pytest_twisted.async_yield_fixture
async def running(fresh_migrated_database_url, tmp_path):
    server = await start(config_for(fresh_migrated_database_url, tmp_path, no_rate_limits=True))
    await add_user(server, "ada")
    yield server
    await server.stop()


def ws_url(running, token: str) -> str:
    return running.url.replace("http://", "ws://") + f"/ws?token={token}"


async def refresh(running, token: str) -> tuple[int, dict]:
    status, body, _ = await running.request(
        "POST", "/api/auth/refresh", json={"refresh_token": token}
    )
    return status, body


async def socket_of(running, access_token: str):
    client = await ws_connect(ws_url(running, access_token))
    assert (await client.next_frame())["type"] == "welcome"
    return client


async def assert_session_dead(running, *pairs: dict) -> None:
    """Every token of these pairs is refused wherever it is presented."""
    for pair in pairs:
        status, error, _ = await running.request(
            "GET", "/api/auth/me", headers=bearer(pair["access_token"])
        )
        assert (status, error["error_code"]) == (401, "token_invalid")
        status, error = await websocket_handshake_status(
            running.url, f"?token={pair['access_token']}"
        )
        assert (status, error["error_code"]) == (401, "token_invalid")
        if pair.get("refresh_token"):
            status, error = await refresh(running, pair["refresh_token"])
            assert (status, error["error_code"]) == (401, "token_invalid")


def reuse_audits(running) -> int:
    connection = psycopg2.connect(running.server.config.database_url)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM audit_log WHERE action = 'auth.refresh_reused'")
            return cursor.fetchone()[0]
    finally:
        connection.close()


@pytest_twisted.ensureDeferred
async def test_a_refresh_token_replayed_after_its_owner_rotated_it_revokes_the_owners_session(
    running,
):
    _, owner = await login(running, "ada")
    _, elsewhere = await login(running, "ada")  # the owner's other device: not this session
    stolen = owner["refresh_token"]
    # An access token is no refresh token, and presenting one spends or revokes nothing.
    status, error = await refresh(running, owner["access_token"])
    assert status in (401, 422) and error["error_code"] in ("token_invalid", "validation_error")
    first_socket = await socket_of(running, owner["access_token"])
    status, rotated = await refresh(running, stolen)  # the owner's client, as every 15 min
    assert status == 200
    second_socket = await socket_of(running, rotated["access_token"])
    bystander = await socket_of(running, elsewhere["access_token"])

    status, error = await refresh(running, stolen)  # the thief
    assert (status, error["error_code"]) == (401, "refresh_reused")
    assert await first_socket.close_code() == 4001
    assert await second_socket.close_code() == 4001
    await assert_session_dead(running, owner, rotated)
    # Replaying it again: still nothing, and the session stays revoked.
    status, error = await refresh(running, stolen)
    assert (status, error["error_code"]) == (401, "token_invalid")

    bystander.send({"type": "ping"})
    assert await bystander.next_frame() == {"type": "pong"}
    assert (await refresh(running, elsewhere["refresh_token"]))[0] == 200
    assert await deferToThread(reuse_audits, running) == 1
    bystander.protocol.sendClose(1000)
    await bystander.close_code()
    record_outcome(
        "attacks/test_refresh_theft::test_a_refresh_token_replayed_after_its_owner_rotated_it_revokes_the_owners_session",
        what="a refresh token stolen, then replayed after its owner rotated it",
        load="2 sessions of one user, 3 sockets",
        faults="replay of a spent refresh token, twice",
        outcome="refresh_reused then token_invalid; both sockets of the session closed "
        "4001; its 2 access and 2 refresh tokens refused; the other session untouched; "
        "1 audit row",
    )


@pytest_twisted.ensureDeferred
async def test_a_thief_who_refreshes_first_loses_the_session_when_the_owner_returns(running):
    _, owner = await login(running, "ada")
    status, thief = await refresh(running, owner["refresh_token"])
    assert status == 200
    thief_socket = await socket_of(running, thief["access_token"])
    status, error = await refresh(running, owner["refresh_token"])  # the owner, unaware
    assert (status, error["error_code"]) == (401, "refresh_reused")
    assert await thief_socket.close_code() == 4001
    await assert_session_dead(running, thief, owner)
    record_outcome(
        "attacks/test_refresh_theft::test_a_thief_who_refreshes_first_loses_the_session_when_the_owner_returns",
        what="a thief rotates a stolen refresh token before its owner does",
        load="1 session, 1 socket",
        faults="the owner's next refresh presents the token the thief spent",
        outcome="refresh_reused; the thief's socket closed 4001 and its new pair refused",
    )


@pytest_twisted.ensureDeferred
async def test_one_refresh_token_presented_many_times_at_once_wins_at_most_once(running):
    racers = 40 if HOSTILE else 12
    _, owner = await login(running, "ada")
    results = await gatherResults(
        [ensureDeferred(refresh(running, owner["refresh_token"])) for _ in range(racers)]
    )
    codes = sorted(body["error_code"] if status != 200 else "ok" for status, body in results)
    assert codes.count("ok") <= 1, codes
    assert set(codes) <= {"ok", "refresh_reused", "token_invalid"}, codes
    assert "refresh_reused" in codes
    winners = [body for status, body in results if status == 200]
    await assert_session_dead(running, owner, *winners)
    record_outcome(
        "attacks/test_refresh_theft::test_one_refresh_token_presented_many_times_at_once_wins_at_most_once",
        what="one refresh token presented concurrently (owner and thief racing)",
        load=f"{racers} concurrent refreshes",
        faults="concurrent reuse",
        outcome=f"{codes.count('ok')} won, {codes.count('refresh_reused')} refresh_reused, "
        f"{codes.count('token_invalid')} token_invalid; the winner's pair revoked with the rest",
    )


async def cookie_login(running) -> tuple[dict, str]:
    response = await treq.post(
        running.url + "/api/auth/login",
        json={"username": "ada", "password": PASSWORD, "refresh_cookie": True},
    )
    body = await response.json()
    assert response.code == 200, body
    return body, parse_cookies(response.headers)["termrooms_refresh"]["value"]


@pytest_twisted.ensureDeferred
async def test_a_stolen_refresh_cookie_replayed_revokes_the_browser_session(running):
    session, cookie = await cookie_login(running)
    page_socket = await socket_of(running, session["access_token"])
    # The browser refreshes; the thief kept the old cookie (the CSRF token follows from it).
    status, renewed, headers = await cookie_refresh(running, cookie, session["csrf_token"])
    assert status == 200
    new_cookie = parse_cookies(headers)["termrooms_refresh"]["value"]
    status, error, headers = await cookie_refresh(running, cookie, csrf_token(cookie))
    assert (status, error["error_code"]) == (401, "refresh_reused")
    assert_cleared(headers)
    assert await page_socket.close_code() == 4001
    status, error, headers = await cookie_refresh(running, new_cookie, renewed["csrf_token"])
    assert (status, error["error_code"]) == (401, "token_invalid")
    assert_cleared(headers)
    await assert_session_dead(running, session, renewed)
    record_outcome(
        "attacks/test_refresh_theft::test_a_stolen_refresh_cookie_replayed_revokes_the_browser_session",
        what="a browser session's refresh cookie stolen and replayed after the page rotated it",
        load="1 cookie session, 1 socket",
        faults="replay of the spent cookie with its (derivable) CSRF token",
        outcome="refresh_reused with both cookies cleared; the page's socket closed 4001; "
        "its new cookie refused token_invalid",
    )


@pytest_twisted.ensureDeferred
async def test_another_site_cannot_refresh_a_browser_session(running):
    """What a page elsewhere can make a browser send carries the cookie at best, never
    the X-CSRF-Token header (a custom header needs a CORS preflight nobody grants)."""
    session, cookie = await cookie_login(running)
    _, other_cookie = await cookie_login(running)  # the attacker's own account session
    evil = "https://evil.example"
    attempts = {
        "no header": ({}, b"{}", "application/json"),
        "no header, text/plain form": ({}, b'{"x":"=y"}', "text/plain"),
        "no header, urlencoded form": ({}, b"refresh_token=", "application/x-www-form-urlencoded"),
        "a guessed header": ({"X-CSRF-Token": "A" * 43}, b"{}", "application/json"),
        "the attacker's own session's header": (
            {"X-CSRF-Token": csrf_token(other_cookie)},
            b"{}",
            "application/json",
        ),
        "the header as a cookie": ({}, b"{}", "application/json"),
        "an empty header": ({"X-CSRF-Token": ""}, b"{}", "application/json"),
    }
    for name, (extra, body, content_type) in attempts.items():
        cookies = f"termrooms_refresh={cookie}"
        if name == "the header as a cookie":
            cookies += f"; termrooms_csrf={csrf_token(cookie)}"
        response = await treq.post(
            running.url + "/api/auth/refresh",
            data=body,
            headers={
                "Cookie": cookies,
                "Origin": evil,
                "Content-Type": content_type,
                "Sec-Fetch-Site": "cross-site",
                **extra,
            },
        )
        answer = await response.json()
        assert response.code in (400, 403), (name, answer)
        assert answer["error_code"] in ("forbidden", "invalid_json"), (name, answer)
        assert response.headers.getRawHeaders("set-cookie") is None, name
        assert response.headers.getRawHeaders("access-control-allow-origin") is None, name
    # No CORS preflight grants the header to another origin.
    response = await treq.request(
        "OPTIONS",
        running.url + "/api/auth/refresh",
        headers={
            "Origin": evil,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-csrf-token, content-type",
        },
    )
    await response.content()
    assert response.code >= 400
    for header in ("access-control-allow-origin", "access-control-allow-headers"):
        assert response.headers.getRawHeaders(header) is None, header
    # Nothing was spent: the page itself still refreshes with its cookie.
    status, _, _ = await cookie_refresh(running, cookie, session["csrf_token"])
    assert status == 200
    record_outcome(
        "attacks/test_refresh_theft::test_another_site_cannot_refresh_a_browser_session",
        what="cross-site refresh of a browser session: forms and fetches from another "
        "origin carrying the refresh cookie",
        load=f"{len(attempts)} cross-site requests and a CORS preflight",
        faults="missing, guessed, empty and borrowed X-CSRF-Token; text/plain and "
        "urlencoded form bodies; the CSRF token as a cookie",
        outcome="every one 403 forbidden or 400 invalid_json with no Set-Cookie and no "
        "CORS grant; the preflight refused; the cookie unspent (the page's refresh then 200)",
    )


@pytest_twisted.ensureDeferred
async def test_another_site_cannot_log_a_browser_into_an_account_of_its_choosing(running):
    """Login CSRF: a form on another site posting the attacker's credentials with
    refresh_cookie would plant the attacker's session cookies in the victim's browser,
    and the victim's page would then chat as the attacker."""
    await add_user(running, "mallory")
    credentials = {"username": "mallory", "password": PASSWORD, "refresh_cookie": True}
    planted = 0
    for path, body in (
        ("/api/auth/login", credentials),
        ("/api/auth/register", {**credentials, "username": "mallory2", "invite_code": "x"}),
    ):
        for content_type in ("text/plain", "application/json"):
            response = await treq.post(
                running.url + path,
                data=json.dumps(body).encode(),
                headers={"Origin": "https://evil.example", "Content-Type": content_type},
            )
            answer = await response.json()
            assert (response.code, answer["error_code"]) == (403, "forbidden"), (path, answer)
            planted += bool(response.headers.getRawHeaders("set-cookie"))
    assert planted == 0
    # The page's own origin, and clients that send none, still get their cookie session.
    for origin in (running.url, None):
        headers = {"Origin": origin} if origin else {}
        response = await treq.post(
            running.url + "/api/auth/login", json=credentials, headers=headers
        )
        assert response.code == 200, await response.json()
        assert "termrooms_refresh" in parse_cookies(response.headers)
    record_outcome(
        "attacks/test_refresh_theft::test_another_site_cannot_log_a_browser_into_an_account_of_its_choosing",
        what="login CSRF: another origin posting its own credentials with refresh_cookie "
        "to login and register",
        load="4 cross-site posts, 2 same-site logins",
        faults="text/plain form posts and fetches from a foreign Origin",
        outcome="every cross-site attempt 403 forbidden with no Set-Cookie; the server's "
        "own origin and Origin-less clients still got cookie sessions",
    )
