"""
Browser sessions over real HTTP against a real PostgreSQL: the refresh token in an
httpOnly cookie, the CSRF token bound to it, and the bearer flow left exactly as it was.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest_twisted
import treq
from test_tls import self_signed
from twisted.internet import reactor
from twisted.internet.ssl import Certificate, PrivateCertificate
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS

from support import PASSWORD, add_user, bearer, config_for, start, third_party_imports
from termrooms.domain import browser_session
from termrooms.domain.browser_session import csrf_token

THIRTY_DAYS = str(30 * 86400)
LOGIN = {"username": "ada", "password": PASSWORD}


@pytest_twisted.async_yield_fixture
async def running(fresh_migrated_database_url, tmp_path):
    config = config_for(fresh_migrated_database_url, tmp_path, open_registration=True)
    server = await start(config)
    await add_user(server, "ada")
    yield server
    await server.stop()


def parse_cookies(headers: Any) -> dict[str, dict[str, str | bool]]:
    """Each Set-Cookie by name: its value and its attributes (lower-case names)."""
    cookies = {}
    for line in headers.getRawHeaders("set-cookie") or []:
        pair, *attributes = line.split("; ")
        name, _, value = pair.partition("=")
        cookie: dict[str, str | bool] = {"value": value}
        for attribute in attributes:
            key, has_value, attribute_value = attribute.partition("=")
            cookie[key.lower()] = attribute_value if has_value else True
        assert name not in cookies, f"{name} set twice"
        cookies[name] = cookie
    return cookies


async def post(base: str, path: str, body: dict, agent: Any = None, **headers: str):
    response = await treq.post(base + path, json=body, headers=headers, agent=agent)
    content = await response.content()
    return response.code, json.loads(content) if content else None, response.headers


async def cookie_login(running, agent: Any = None, base: str | None = None):
    status, body, headers = await post(
        base or running.url, "/api/auth/login", {**LOGIN, "refresh_cookie": True}, agent
    )
    assert status == 200, body
    return body, parse_cookies(headers)


async def cookie_refresh(running, refresh: str, csrf: str | None):
    headers = {"Cookie": f"termrooms_refresh={refresh}; termrooms_csrf=ignored"}
    if csrf is not None:
        headers["X-CSRF-Token"] = csrf
    status, body, response_headers = await post(running.url, "/api/auth/refresh", {}, **headers)
    return status, body, response_headers


def assert_session_cookies(cookies: dict, secure: bool) -> None:
    refresh, csrf = cookies["termrooms_refresh"], cookies["termrooms_csrf"]
    assert refresh["path"] == "/api/auth" and refresh["httponly"] is True
    assert csrf["path"] == "/" and "httponly" not in csrf
    for cookie in (refresh, csrf):
        assert cookie["samesite"] == "Strict"
        assert cookie["max-age"] == THIRTY_DAYS
        assert ("secure" in cookie) is secure
    assert csrf["value"] == csrf_token(refresh["value"])


def assert_cleared(headers: Any) -> None:
    cookies = parse_cookies(headers)
    assert set(cookies) == {"termrooms_refresh", "termrooms_csrf"}
    assert cookies["termrooms_refresh"]["path"] == "/api/auth"
    assert cookies["termrooms_csrf"]["path"] == "/"
    assert all(c["max-age"] == "0" and c["value"] == "" for c in cookies.values())


@pytest_twisted.ensureDeferred
async def test_cookie_login_puts_the_refresh_token_in_an_httponly_cookie(running):
    status, body, headers = await post(
        running.url, "/api/auth/login", {**LOGIN, "refresh_cookie": True}
    )
    assert status == 200
    assert body["refresh_token"] is None and body["access_token"]
    assert body["token_type"] == "Bearer" and body["user"]["username"] == "ada"
    cookies = parse_cookies(headers)
    assert_session_cookies(cookies, secure=False)
    assert body["csrf_token"] == cookies["termrooms_csrf"]["value"]
    assert headers.getRawHeaders("cache-control") == ["no-store"]

    me = await treq.get(running.url + "/api/auth/me", headers=bearer(body["access_token"]))
    assert me.code == 200


@pytest_twisted.ensureDeferred
async def test_cookie_register_sets_the_same_cookies(running):
    status, body, headers = await post(
        running.url,
        "/api/auth/register",
        {"username": "bob", "password": PASSWORD, "refresh_cookie": True},
    )
    assert status == 201, body
    assert body["refresh_token"] is None and body["user"]["username"] == "bob"
    cookies = parse_cookies(headers)
    assert_session_cookies(cookies, secure=False)
    assert body["csrf_token"] == cookies["termrooms_csrf"]["value"]


@pytest_twisted.ensureDeferred
async def test_cookie_refresh_rotates_and_the_old_cookie_is_then_reused(running):
    _, cookies = await cookie_login(running)
    old = cookies["termrooms_refresh"]["value"]

    status, body, headers = await cookie_refresh(running, old, csrf_token(old))
    assert status == 200, body
    assert body["refresh_token"] is None
    new_cookies = parse_cookies(headers)
    assert_session_cookies(new_cookies, secure=False)
    new = new_cookies["termrooms_refresh"]["value"]
    assert new != old and body["csrf_token"] == csrf_token(new) != csrf_token(old)
    assert headers.getRawHeaders("cache-control") == ["no-store"]

    status, body, headers = await cookie_refresh(running, old, csrf_token(old))
    assert (status, body["error_code"]) == (401, "refresh_reused")
    assert_cleared(headers)
    status, body, _ = await cookie_refresh(running, new, csrf_token(new))
    assert (status, body["error_code"]) == (401, "token_invalid")  # the family is revoked


@pytest_twisted.ensureDeferred
async def test_missing_or_wrong_csrf_header_is_403_and_spends_nothing(running):
    _, cookies = await cookie_login(running)
    refresh = cookies["termrooms_refresh"]["value"]
    for csrf in (None, "", csrf_token(refresh + "x"), refresh, csrf_token(refresh)[:-1]):
        status, body, headers = await cookie_refresh(running, refresh, csrf)
        assert (status, body["error_code"]) == (403, "forbidden"), csrf
        assert "X-CSRF-Token" in body["detail"]
        assert headers.getRawHeaders("set-cookie") is None  # a forged request logs nobody out

    status, body, _ = await cookie_refresh(running, refresh, csrf_token(refresh))
    assert status == 200, body


@pytest_twisted.ensureDeferred
async def test_an_unknown_refresh_cookie_is_401_and_clears_both_cookies(running):
    forged = "not-a-token-we-made"
    status, body, headers = await cookie_refresh(running, forged, csrf_token(forged))
    assert (status, body["error_code"]) == (401, "token_invalid")
    assert_cleared(headers)
    assert headers.getRawHeaders("cache-control") == ["no-store"]


@pytest_twisted.ensureDeferred
async def test_logout_clears_both_cookies(running):
    body, cookies = await cookie_login(running)
    response = await treq.post(
        running.url + "/api/auth/logout", headers=bearer(body["access_token"])
    )
    assert response.code == 204
    assert_cleared(response.headers)
    refresh = cookies["termrooms_refresh"]["value"]
    status, body, _ = await cookie_refresh(running, refresh, csrf_token(refresh))
    assert (status, body["error_code"]) == (401, "token_invalid")


@pytest_twisted.ensureDeferred
async def test_the_bearer_flow_sets_no_cookie_and_reads_none(running):
    status, body, headers = await post(running.url, "/api/auth/login", LOGIN)
    assert status == 200
    assert isinstance(body["refresh_token"], str) and "csrf_token" not in body
    assert headers.getRawHeaders("set-cookie") is None

    # A body token wins over any cookie: no CSRF header needed, no cookie set.
    _, cookies = await cookie_login(running)
    status, second, headers = await post(
        running.url,
        "/api/auth/refresh",
        {"refresh_token": body["refresh_token"]},
        Cookie=f"termrooms_refresh={cookies['termrooms_refresh']['value']}",
    )
    assert status == 200, second
    assert isinstance(second["refresh_token"], str) and "csrf_token" not in second
    assert headers.getRawHeaders("set-cookie") is None
    refresh = cookies["termrooms_refresh"]["value"]
    assert (await cookie_refresh(running, refresh, csrf_token(refresh)))[0] == 200  # unspent

    # No body token and no cookie: the same 422 as ever.
    status, error, _ = await post(running.url, "/api/auth/refresh", {})
    assert (status, error["error_code"]) == (422, "validation_error")
    assert error["validation_errors"][0]["field"] == "refresh_token"


@pytest_twisted.ensureDeferred
async def test_refresh_cookie_must_be_a_boolean(running):
    for path, body in (
        ("/api/auth/login", LOGIN),
        ("/api/auth/register", {"username": "carl", "password": PASSWORD}),
    ):
        status, error, headers = await post(running.url, path, {**body, "refresh_cookie": "yes"})
        assert (status, error["error_code"]) == (422, "validation_error"), path
        assert [e["field"] for e in error["validation_errors"]] == ["refresh_cookie"]
        assert headers.getRawHeaders("set-cookie") is None
    status, body, headers = await post(
        running.url, "/api/auth/login", {**LOGIN, "refresh_cookie": False}
    )
    assert status == 200 and isinstance(body["refresh_token"], str)
    assert headers.getRawHeaders("set-cookie") is None


@pytest_twisted.ensureDeferred
async def test_cookies_are_secure_behind_an_https_public_url(fresh_migrated_database_url, tmp_path):
    config = config_for(fresh_migrated_database_url, tmp_path, public_url="https://chat.example")
    running = await start(config)
    try:
        await add_user(running, "ada")
        body, cookies = await cookie_login(running)
        assert_session_cookies(cookies, secure=True)
        response = await treq.post(
            running.url + "/api/auth/logout", headers=bearer(body["access_token"])
        )
        assert all("secure" in c for c in parse_cookies(response.headers).values())
    finally:
        await running.stop()


@pytest_twisted.ensureDeferred
async def test_cookies_are_secure_over_tls(running, tmp_path):
    key, cert = self_signed(tmp_path)
    identity = PrivateCertificate.loadPEM(key.read_bytes() + cert.read_bytes())
    port = reactor.listenSSL(
        0, running.server.get_site(), identity.options(), interface="127.0.0.1"
    )
    try:
        trusted = Certificate.loadPEM(cert.read_bytes())
        agent = Agent(reactor, contextFactory=BrowserLikePolicyForHTTPS(trustRoot=trusted))
        base = f"https://localhost:{port.getHost().port}"
        _, cookies = await cookie_login(running, agent, base)
        assert_session_cookies(cookies, secure=True)
    finally:
        await port.stopListening()


def test_csrf_token_is_bound_to_the_refresh_token_and_the_module_is_pure():
    digest = hashlib.sha256(b"termrooms-csrf\0" + b"abc").digest()
    assert csrf_token("abc") == base64.urlsafe_b64encode(digest).decode().rstrip("=")
    assert csrf_token("abc") != csrf_token("abd") and "=" not in csrf_token("abc")
    assert browser_session.csrf_matches("abc", csrf_token("abc"))
    assert not browser_session.csrf_matches("abc", None)
    assert third_party_imports(browser_session) == {"termrooms.domain.rules"}


@pytest_twisted.ensureDeferred
async def test_openapi_describes_cookie_sessions(running):
    response = await treq.get(running.url + "/api/openapi.json")
    paths = (await response.json())["paths"]
    login = paths["/api/auth/login"]["post"]
    credentials = login["requestBody"]["content"]["application/json"]["schema"]
    assert credentials["properties"]["refresh_cookie"] == {"type": "boolean"}
    session = login["responses"]["200"]["content"]["application/json"]["schema"]
    assert session["properties"]["refresh_token"]["type"] == ["string", "null"]
    assert "csrf_token" in session["properties"] and "csrf_token" not in session["required"]
    refresh = paths["/api/auth/refresh"]["post"]
    assert "required" not in refresh["requestBody"]["content"]["application/json"]["schema"]
    assert "403" in refresh["responses"]
