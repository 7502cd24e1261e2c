"""
Forged, tampered, foreign and dead access tokens at every place a token is taken: the
``Authorization`` header of every authenticated HTTP route, the ``/ws?token=`` handshake
and the ``auth`` frame of an open socket. tests/test_tokens.py pins the token module
alone; these check that the wired server refuses each forgery with the contract's 401
(never a 500), that the handshake never upgrades, and that nothing changes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import Any
from urllib.parse import quote

import jwt
import psycopg2
import pytest_twisted
from twisted.internet.threads import deferToThread
from twisted.web._newclient import ResponseNeverReceived

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
from termrooms.domain.tokens import KeyRing
from termrooms.storage.keys import read_key_ring

TOKEN_CODES = {"token_invalid", "token_expired", "unauthorized"}


@pytest_twisted.async_yield_fixture
async def running(fresh_migrated_database_url, tmp_path):
    server = await start(config_for(fresh_migrated_database_url, tmp_path, no_rate_limits=True))
    yield server
    await server.stop()


# --------------------------------------------------------------------------- forging


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def hand_made(header: dict[str, Any], claims: dict[str, Any], secret: bytes | None) -> str:
    """A JWT put together by hand, so nothing a library refuses to write is out of reach;
    ``secret`` None leaves the signature empty."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    if secret is None:
        return signing_input + "."
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def forgeries(ring: KeyRing, session: dict, victim_id: str) -> dict[str, tuple[str, set[str]]]:
    """Every attempt: name -> (token, the error codes it may be refused with)."""
    token = session["access_token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    key = ring.active
    now = int(time.time())
    good = {"alg": "HS256", "typ": "JWT", "kid": key.kid}
    invalid = {"token_invalid"}

    def with_claims(**changes: Any) -> dict[str, Any]:
        changed = {**claims, **changes}
        return {k: v for k, v in changed.items() if v is not _DROP}

    def tampered(**changes: Any) -> str:
        """The real header and signature over a payload the attacker rewrote."""
        header, _, signature = token.split(".")
        payload = b64url(json.dumps(with_claims(**changes)).encode())
        return f"{header}.{payload}.{signature}"

    def real_key(header: dict[str, Any] | None = None, **changes: Any) -> str:
        """Signed with the server's own key: only the claims or header are wrong."""
        return hand_made(header or good, with_claims(**changes), key.secret)

    made: dict[str, tuple[str, set[str]]] = {}
    for alg in ("none", "None", "NONE", "nOnE"):
        made[f"alg {alg}"] = (hand_made({**good, "alg": alg}, claims, None), invalid)
        made[f"alg {alg} with a signature"] = (
            hand_made({**good, "alg": alg}, claims, key.secret),
            invalid,
        )
    made["no alg"] = (hand_made({"typ": "JWT", "kid": key.kid}, claims, key.secret), invalid)
    made["HS256 with a wrong key"] = (hand_made(good, claims, secrets.token_bytes(32)), invalid)
    made["HS256 with an empty key"] = (hand_made(good, claims, b""), invalid)
    made["signature stripped"] = (token.rsplit(".", 1)[0] + ".", invalid)
    made["signature of another token"] = (
        token.rsplit(".", 1)[0] + "." + session["other_access_token"].rsplit(".", 1)[1],
        invalid,
    )
    made["payload: another sub"] = (tampered(sub=victim_id), invalid)
    made["payload: a later exp"] = (tampered(exp=claims["exp"] + 86400), invalid)
    made["payload: admin claims"] = (tampered(role="admin", admin=True, scope="admin"), invalid)
    for alg in ("RS256", "ES256", "PS256", "EdDSA", "HS512", "HS384"):
        # Key confusion: an asymmetric (or other) alg header over an HMAC of the real secret.
        made[f"alg {alg} keyed with the real secret"] = (
            real_key({**good, "alg": alg}),
            invalid,
        )
    made["alg RS256 with a JWK in the header"] = (
        real_key({**good, "alg": "RS256", "jwk": {"kty": "oct", "k": b64url(key.secret)}}),
        invalid,
    )
    for name, kid in {
        "unknown": "nope",
        "path traversal": "../../../../etc/passwd",
        "path traversal to the key file": "../signing-keys.json",
        "sql": "x' OR '1'='1' --",
        "sql union": "1 UNION SELECT secret FROM keys",
        "empty": "",
        "a number": 0,
        "null": None,
        "a list": [key.kid],
        "huge": "k" * 3000,
    }.items():
        made[f"kid {name}"] = (real_key({**good, "kid": kid}), invalid)
    made["kid missing"] = (real_key({"alg": "HS256", "typ": "JWT"}), invalid)
    made["jku pointing away"] = (
        hand_made({**good, "jku": "https://evil.example/jwks"}, claims, secrets.token_bytes(32)),
        invalid,
    )
    made["crit header"] = (real_key({**good, "crit": ["exp"]}), invalid)
    for claim in ("sub", "sid", "iat", "exp", "aud", "iss", "typ"):
        made[f"claim {claim} missing"] = (real_key(**{claim: _DROP}), invalid)
        made[f"claim {claim} null"] = (real_key(**{claim: None}), invalid)
    made["aud another service"] = (real_key(aud="another-service"), invalid)
    made["aud a list with ours"] = (real_key(aud=[claims["aud"], "evil"]), invalid)
    made["iss another issuer"] = (real_key(iss="https://evil.example"), invalid)
    for typ in ("refresh", "id", "ACCESS", "", 1):
        made[f"typ {typ!r}"] = (real_key(typ=typ), invalid)
    made["sub a number"] = (real_key(sub=int(claims["sub"])), invalid)
    made["sub zero"] = (real_key(sub="0"), invalid)
    made["sub negative"] = (real_key(sub="-1"), invalid)
    made["sub past 63 bits"] = (real_key(sub=str(2**64)), invalid)
    made["sid of no session"] = (real_key(sid="00000000-0000-0000-0000-000000000000"), invalid)
    made["sid not a uuid"] = (real_key(sid="'; DROP TABLE users; --"), invalid)
    made["issued in the future"] = (real_key(iat=now + 3600, exp=now + 3600 + 900), invalid)
    made["lifetime of a year"] = (real_key(iat=now, exp=now + 365 * 86400), invalid)
    made["exp a string"] = (real_key(exp=str(now + 600)), invalid)
    made["expired"] = (real_key(iat=now - 2000, exp=now - 1100), {"token_expired"})
    made["expired and tampered"] = (
        tampered(iat=now - 2000, exp=now - 1100, sub=victim_id),
        invalid,
    )
    made["a refresh token"] = (session["refresh_token"], invalid)
    made["empty"] = ("", {"unauthorized", "token_invalid"})
    made["garbage"] = ("garbage", invalid)
    made["three dots"] = ("...", invalid)
    made["two empty parts"] = ("a..", invalid)
    made["not base64"] = ("!!!.@@@.###", invalid)
    made["json header not an object"] = (f"{b64url(b'[1]')}.{b64url(b'{}')}.", invalid)
    made["nested json"] = (
        f"{b64url(b'[' * 5000 + b']' * 5000)}.{b64url(b'{}')}.x",
        invalid,
    )
    made["token twice"] = (f"{token} {token}", invalid)
    made["4 KiB of padding"] = (token + "A" * 4096, invalid)
    made["10 KiB"] = ("x" * 10_000, invalid)
    made["non-ascii"] = ("é" * 20 + "." + "ü" * 20 + ".x", invalid)
    return made


class _Drop:
    """A claim to leave out."""


_DROP = _Drop()


# --------------------------------------------------------------------------- the entry points


def authenticated_routes(document: dict) -> list[tuple[str, str]]:
    """(method, path) of every route the OpenAPI document says takes a bearer token."""
    routes = []
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            if operation.get("security"):
                concrete = path.replace("{name}", "lobby").replace("{message_id}", "1")
                routes.append((method.upper(), concrete))
    return routes


def ws_url(running, token: str) -> str:
    return running.url.replace("http://", "ws://") + "/ws?token=" + quote(token, safe="")


def state_of(database_url: str) -> list[Any]:
    """What a forged token could have changed: users, sessions, rooms, events, audit."""
    connection = psycopg2.connect(database_url)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT (SELECT json_agg(u ORDER BY id) FROM (SELECT id, username, role,"
                "        disabled_at, deleted_at FROM users) u),"
                "       (SELECT count(*) FROM refresh_token_families),"
                "       (SELECT count(*) FROM refresh_token_families WHERE revoked_at IS NULL),"
                "       (SELECT count(*) FROM refresh_tokens),"
                "       (SELECT count(*) FROM rooms), (SELECT count(*) FROM room_events),"
                "       (SELECT count(*) FROM memberships), (SELECT count(*) FROM audit_log)"
            )
            return list(cursor.fetchone())
    finally:
        connection.close()


async def session_of(running, name: str, role: str = "user") -> dict:
    await add_user(running, name, role=role)
    status, session = await login(running, name)
    assert status == 200, session
    return session


@pytest_twisted.ensureDeferred
async def test_forged_tokens_are_refused_at_every_entry_point_and_change_nothing(running):
    ada = await session_of(running, "ada")
    _, second = await login(running, "ada")
    ada["other_access_token"] = second["access_token"]
    root = await session_of(running, "root", role="admin")
    status, _, _ = await running.request(
        "POST",
        "/api/rooms",
        json={"name": "lobby", "visibility": "public"},
        headers=bearer(ada["access_token"]),
    )
    assert status == 201
    made = forgeries(running.server.get_signing_keys().ring(), ada, root["user"]["id"])
    _, document, _ = await running.request("GET", "/api/openapi.json")
    routes = authenticated_routes(document)
    assert len(routes) >= 15, routes
    before = await deferToThread(state_of, running.server.config.database_url)

    # A socket of ada's own, open with her real token, to send forged auth frames on.
    socket = await ws_connect(ws_url(running, ada["access_token"]))
    assert (await socket.next_frame())["type"] == "welcome"
    (connection,) = running.server.get_gateway().registry.by_user[int(ada["user"]["id"])]
    expires_at, family = connection._token_expires_at, connection.family_id

    tried = 0
    for ref, (name, (token, codes)) in enumerate(made.items()):
        # Every authenticated route with the first few; /api/auth/me with all of them.
        for method, path in routes if ref < 4 or HOSTILE else [("GET", "/api/auth/me")]:
            status, error, _ = await running.request(method, path, headers=bearer(token), json={})
            assert status == 401 and error["error_code"] in codes, (name, method, path, error)
            tried += 1
        status, error = await websocket_handshake_status(
            running.url, "?token=" + quote(token, safe="")
        )
        assert status == 401 and error["error_code"] in codes, (name, "handshake", error)
        socket.send({"type": "auth", "token": token, "ref": ref})
        answer = await socket.next_frame()
        expected = codes if 0 < len(token) <= 4096 else {"validation_error"}
        assert answer["type"] == "error" and answer["ref"] == ref, (name, answer)
        assert answer["error_code"] in expected, (name, "auth frame", answer)
        tried += 2

    # The socket stands, on its own token's lifetime and session, and its token works.
    assert (connection._token_expires_at, connection.family_id) == (expires_at, family)
    socket.send({"type": "ping"})
    assert await socket.next_frame() == {"type": "pong"}
    status, me, _ = await running.request(
        "GET", "/api/auth/me", headers=bearer(ada["access_token"])
    )
    assert status == 200 and me["role"] == "user"
    assert await deferToThread(state_of, running.server.config.database_url) == before
    socket.protocol.sendClose(1000)
    await socket.close_code()

    record_outcome(
        "attacks/test_forged_tokens::test_forged_tokens_are_refused_at_every_entry_point_and_change_nothing",
        what="forged, tampered and key-confused JWTs at every HTTP route, the /ws handshake "
        "and the auth frame",
        load=f"{len(made)} forgeries, {len(routes)} authenticated routes",
        faults="alg none/None/NONE, wrong key, tampered sub/exp/admin claims, RS256/ES256/"
        "HS512 headers, kid traversal/SQL/unknown, each claim missing or null, wrong "
        "aud/iss/typ, expired, refresh token as access, garbage, 10 KiB",
        outcome=f"{tried} attempts: every one 401 token_invalid/token_expired, no handshake "
        "upgraded, the open socket kept its token and session, database unchanged",
    )


@pytest_twisted.ensureDeferred
async def test_tokens_of_ended_sessions_and_users_are_refused_everywhere(running, termrooms):
    sessions = {name: await session_of(running, name) for name in ("del", "dis", "out", "reu")}
    _, stolen_pair = await login(running, "reu")
    sockets = {}
    for name, session in sessions.items():
        sockets[name] = await ws_connect(ws_url(running, session["access_token"]))
        assert (await sockets[name].next_frame())["type"] == "welcome"
    spare = await session_of(running, "spare")  # a socket to carry auth frames
    carrier = await ws_connect(ws_url(running, spare["access_token"]))
    await carrier.next_frame()

    status, _, _ = await running.request(
        "DELETE",
        "/api/auth/me",
        json={"password": PASSWORD},
        headers=bearer(sessions["del"]["access_token"]),
    )
    assert status == 204
    result = await deferToThread(
        termrooms, ["disable-user", "dis", "--database-url", running.server.config.database_url]
    )
    assert result.returncode == 0, result.stderr
    status, _, _ = await running.request(
        "POST", "/api/auth/logout", headers=bearer(sessions["out"]["access_token"])
    )
    assert status == 204
    refresh = {"refresh_token": sessions["reu"]["refresh_token"]}
    assert (await running.request("POST", "/api/auth/refresh", json=refresh))[0] == 200
    assert (await running.request("POST", "/api/auth/refresh", json=refresh))[0] == 401

    for name, socket in sockets.items():
        assert await socket.close_code() == 4001, name
    for ref, (name, session) in enumerate(sessions.items()):
        token = session["access_token"]
        status, error, _ = await running.request("GET", "/api/auth/me", headers=bearer(token))
        assert (status, error["error_code"]) == (401, "token_invalid"), name
        status, error = await websocket_handshake_status(running.url, f"?token={token}")
        assert (status, error["error_code"]) == (401, "token_invalid"), name
        carrier.send({"type": "auth", "token": token, "ref": ref})
        answer = await carrier.next_frame()
        assert (answer["type"], answer["error_code"]) == ("error", "token_invalid"), name
    # The reused session's other login still stands: only that family was revoked.
    status, _, _ = await running.request(
        "GET", "/api/auth/me", headers=bearer(stolen_pair["access_token"])
    )
    assert status == 200
    carrier.protocol.sendClose(1000)
    await carrier.close_code()
    record_outcome(
        "attacks/test_forged_tokens::test_tokens_of_ended_sessions_and_users_are_refused_everywhere",
        what="genuine access tokens whose user was deleted or disabled, or whose session "
        "was logged out or revoked by refresh reuse",
        load="4 users, 4 open sockets",
        faults="each dead token at HTTP, the handshake and the auth frame",
        outcome="4 sockets closed 4001; 12 attempts all 401 token_invalid; the user's "
        "other session survived the reuse",
    )


@pytest_twisted.ensureDeferred
async def test_authorization_header_spellings(running):
    session = await session_of(running, "ada")
    token = session["access_token"]
    # RFC 9110: the scheme is case-insensitive; the token is taken whole.
    accepted = [f"bearer {token}", f"BEARER {token}", f"Bearer  {token}", f"Bearer {token} "]
    refused = {
        "Bearer": "unauthorized",
        "Bearer ": "unauthorized",
        "Bearer    ": "unauthorized",
        token: "unauthorized",
        f"Basic {token}": "unauthorized",
        f"Token {token}": "unauthorized",
        f"Bearer{token}": "unauthorized",
        f"Bearer {token} {token}": "token_invalid",
        f"Bearer {token},Bearer {token}": "token_invalid",
        f"Bearer {token}x": "token_invalid",
        f"Bearer {token[:-1]}": "token_invalid",
        "Bearer \t": "unauthorized",
        "Bearer " + "A" * 12_000: "token_invalid",
    }
    for header in accepted:
        status, me, _ = await running.request(
            "GET", "/api/auth/me", headers={"Authorization": header}
        )
        assert (status, me["username"]) == (200, "ada"), repr(header[:20])
    for header, code in refused.items():
        status, error, _ = await running.request(
            "GET", "/api/auth/me", headers={"Authorization": header}
        )
        assert (status, error["error_code"]) == (401, code), repr(header[:30])
    # Two Authorization headers, the second one good: refused or the good one, never a 500.
    status, _, _ = await running.request(
        "GET", "/api/auth/me", headers={"Authorization": ["Bearer forged", f"Bearer {token}"]}
    )
    assert status in (200, 401)
    # Far past Twisted's header line limit: the connection is dropped before any handler
    # runs (or a 4xx), never a 500.
    try:
        status, _, _ = await running.request(
            "GET", "/api/auth/me", headers={"Authorization": "Bearer " + "A" * 200_000}
        )
    except ResponseNeverReceived:
        status = None
    assert status is None or 400 <= status < 500
    assert (await running.health())[0] == 200
    record_outcome(
        "attacks/test_forged_tokens::test_authorization_header_spellings",
        what="Authorization header spellings: scheme case, spaces, other schemes, doubled "
        "tokens, truncated tokens, 12 KB and 200 KB headers",
        load=f"{len(accepted) + len(refused) + 2} requests",
        faults="malformed Authorization headers",
        outcome=f"{len(accepted)} RFC-correct spellings accepted, {len(refused)} refused 401 "
        "with unauthorized/token_invalid, the 200 KB header dropped unanswered, no 500",
    )


@pytest_twisted.ensureDeferred
async def test_a_daemon_refuses_every_forgery_without_an_error_in_its_log(
    daemons, daemon_client, fresh_migrated_database_url
):
    """The whole process: the same forgeries at a real daemon, whose log stays clean."""
    daemon = await deferToThread(
        daemons,
        [
            "--database-url",
            fresh_migrated_database_url,
            "--open-registration",
            "--no-rate-limits",
            "--argon2-memory-kib",
            "8192",
            "--argon2-time-cost",
            "1",
        ],
    )

    remote = daemon_client(daemon.base_url)
    credentials = {"username": "ada", "password": PASSWORD}
    status, ada, _ = await remote.request("POST", "/api/auth/register", json=credentials)
    assert status == 201, ada
    status, second, _ = await remote.request("POST", "/api/auth/login", json=credentials)
    assert status == 200, second
    ada["other_access_token"] = second["access_token"]
    # The daemon's own key file: the claims forgeries are signed with its real key.
    ring = read_key_ring(daemon.log_path.parent / "var" / "signing-keys.json")
    made = forgeries(ring, ada, ada["user"]["id"])
    for name, (token, codes) in made.items():
        status, error, _ = await remote.request("GET", "/api/rooms", headers=bearer(token))
        assert status == 401 and error["error_code"] in codes, (name, error)
        status, error = await websocket_handshake_status(
            daemon.base_url, "?token=" + quote(token, safe="")
        )
        assert status == 401 and error["error_code"] in codes, (name, error)
    status, _, _ = await remote.request("GET", "/api/auth/me", headers=bearer(ada["access_token"]))
    assert status == 200
    socket = await ws_connect(
        daemon.base_url.replace("http://", "ws://") + f"/ws?token={ada['access_token']}"
    )
    assert (await socket.next_frame())["type"] == "welcome"
    socket.protocol.sendClose(1000)
    await socket.close_code()
    assert daemon.process.poll() is None
    log = daemon.log()
    for bad in ('"log_failure"', '"isError": true', "Unhandled", "Traceback"):
        assert bad not in log, bad
    # Tokens, good or forged, never reach the log (the /ws URL carries them).
    for token in [ada["access_token"], ada["refresh_token"]] + [t for t, _ in made.values()]:
        if len(token) >= 16:
            assert token not in log, token[:40]
    assert daemon.stop() == 0
    record_outcome(
        "attacks/test_forged_tokens::test_a_daemon_refuses_every_forgery_without_an_error_in_its_log",
        what="the forgery set against a real twistd daemon over HTTP and the /ws handshake",
        load=f"{len(made)} forgeries x 2 entry points",
        faults="as test_forged_tokens_are_refused_at_every_entry_point_and_change_nothing",
        outcome=f"{2 * len(made)} refusals, all 401; no token, traceback or log_failure in the "
        "daemon's log; it stopped cleanly",
    )


@pytest_twisted.ensureDeferred
async def test_an_auth_frame_cannot_turn_a_socket_into_another_users(running):
    ada = await session_of(running, "ada")
    eve = await session_of(running, "eve")
    status, _, _ = await running.request(
        "POST",
        "/api/rooms",
        json={"name": "adas", "visibility": "private"},
        headers=bearer(ada["access_token"]),
    )
    assert status == 201
    socket = await ws_connect(ws_url(running, eve["access_token"]))
    assert (await socket.next_frame())["user"]["username"] == "eve"
    (connection,) = running.server.get_gateway().registry.by_user[int(eve["user"]["id"])]
    held = (connection.user, connection.family_id, connection._token_expires_at)
    # A stolen token of ada's, genuine and live, presented on eve's socket.
    socket.send({"type": "auth", "token": ada["access_token"], "ref": "swap"})
    answer = await socket.next_frame()
    assert (answer["type"], answer["error_code"], answer["ref"]) == ("error", "forbidden", "swap")
    assert (connection.user, connection.family_id, connection._token_expires_at) == held
    assert int(ada["user"]["id"]) not in running.server.get_gateway().registry.by_user
    # Still eve: ada's private room does not exist for this socket.
    for frame in (
        {"type": "join", "room": "adas", "ref": 1},
        {"type": "command", "room": "adas", "line": "/who", "ref": 2},
    ):
        socket.send(frame)
        answer = await socket.next_frame()
        assert answer.get("error_code") == "not_found" or answer.get("ok") is False, answer
    socket.protocol.sendClose(1000)
    await socket.close_code()
    record_outcome(
        "attacks/test_forged_tokens::test_an_auth_frame_cannot_turn_a_socket_into_another_users",
        what="renewing a socket's token with another user's genuine access token",
        load="1 socket, 3 frames",
        faults="a stolen live token in an auth frame",
        outcome="error forbidden; the socket kept its user, session and expiry, and still "
        "could not see the other user's private room",
    )
