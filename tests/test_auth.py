"""Accounts over real HTTP against a real PostgreSQL: the flows of the contract's /api/auth."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import psycopg2
import pytest
import pytest_twisted
from twisted.internet.defer import ensureDeferred, gatherResults
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.python.threadable import isInIOThread

from support import FAST, PASSWORD, RunningServer, add_user, bearer, config_for, login, start
from termrooms.domain.ratelimit import RateLimit
from termrooms.handlers.passwords import PasswordPolicy, hash_password
from termrooms.storage.users import create_user_txn


class CountingHasher:
    """An argon2 hasher that records each call and the thread it ran on."""

    def __init__(self, policy: PasswordPolicy) -> None:
        self.real = policy.hasher()
        self.calls: list[tuple[str, bool]] = []
        self.lock = threading.Lock()

    def _record(self, name: str) -> None:
        with self.lock:
            self.calls.append((name, isInIOThread()))

    def hash(self, password: str) -> str:
        self._record("hash")
        return self.real.hash(password)

    def verify(self, stored: str, password: str) -> bool:
        self._record("verify")
        return self.real.verify(stored, password)

    def check_needs_rehash(self, stored: str) -> bool:
        return self.real.check_needs_rehash(stored)

    def verifications(self) -> int:
        return sum(1 for name, _ in self.calls if name == "verify")


@pytest_twisted.async_yield_fixture
async def hasher() -> CountingHasher:
    yield CountingHasher(FAST)


@pytest_twisted.async_yield_fixture
async def running(fresh_migrated_database_url, tmp_path, hasher):
    server = await start(config_for(fresh_migrated_database_url, tmp_path), hasher)
    yield server
    await server.stop()


async def invite_code(running: RunningServer, admin_token: str, **body: Any) -> str:
    code, answer, _ = await running.request(
        "POST", "/api/invites", json=body, headers=bearer(admin_token)
    )
    assert code == 201, answer
    return answer["code"]


@pytest_twisted.ensureDeferred
async def test_full_flow_invite_register_me_refresh_reuse_login_logout(running):
    await add_user(running, "root", role="admin")
    _, admin = await login(running, "root")
    code = await invite_code(running, admin["access_token"], uses=1)

    status, session, headers = await running.request(
        "POST",
        "/api/auth/register",
        json={"username": "Ada", "password": PASSWORD, "invite_code": code},
    )
    assert status == 201, session
    assert session["token_type"] == "Bearer"
    assert session["expires_in"] == 900
    assert session["user"]["username"] == "Ada" and session["user"]["role"] == "user"
    assert headers.getRawHeaders("cache-control") == ["no-store"]

    status, me, _ = await running.request(
        "GET", "/api/auth/me", headers=bearer(session["access_token"])
    )
    assert status == 200
    assert me == session["user"]
    assert set(me) == {"id", "username", "display_name", "role", "created_at"}

    first_refresh = session["refresh_token"]
    status, second, _ = await running.request(
        "POST", "/api/auth/refresh", json={"refresh_token": first_refresh}
    )
    assert status == 200 and second["refresh_token"] != first_refresh

    # The spent token again: refused, and its whole family with it.
    status, error, _ = await running.request(
        "POST", "/api/auth/refresh", json={"refresh_token": first_refresh}
    )
    assert (status, error["error_code"]) == (401, "refresh_reused")
    status, error, _ = await running.request(
        "POST", "/api/auth/refresh", json={"refresh_token": second["refresh_token"]}
    )
    assert (status, error["error_code"]) == (401, "token_invalid")
    status, error, _ = await running.request(
        "GET", "/api/auth/me", headers=bearer(second["access_token"])
    )
    assert (status, error["error_code"]) == (401, "token_invalid")

    # A new login works; logout revokes every refresh token of the user.
    status, one = await login(running, "ada")  # names match in any case
    assert status == 200
    status, two = await login(running, "ADA")
    status, _, _ = await running.request(
        "POST", "/api/auth/logout", headers=bearer(one["access_token"])
    )
    assert status == 204
    for session_ in (one, two):
        status, error, _ = await running.request(
            "POST", "/api/auth/refresh", json={"refresh_token": session_["refresh_token"]}
        )
        assert (status, error["error_code"]) == (401, "token_invalid")

    actions = [row[0] for row in query(running, "SELECT action FROM audit_log ORDER BY id")]
    assert {"invite.create", "user.create", "auth.refresh_reused", "auth.logout"} <= set(actions)


def query(running: RunningServer, sql: str, params: tuple = ()) -> list[tuple]:
    connection = psycopg2.connect(running.server.config.database_url)
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()
    finally:
        connection.close()


@pytest_twisted.ensureDeferred
async def test_registration_needs_a_live_invite_unless_open(
    running, fresh_migrated_database_url, tmp_path
):
    credentials = {"username": "bob", "password": PASSWORD}
    status, error, _ = await running.request("POST", "/api/auth/register", json=credentials)
    assert (status, error["error_code"]) == (403, "invite_required")
    status, error, _ = await running.request(
        "POST", "/api/auth/register", json={**credentials, "invite_code": "made-up"}
    )
    assert (status, error["error_code"]) == (403, "invite_invalid")

    await add_user(running, "root", role="admin")
    _, admin = await login(running, "root")
    code = await invite_code(running, admin["access_token"], uses=1)
    status, _, _ = await running.request(
        "POST", "/api/auth/register", json={**credentials, "invite_code": code}
    )
    assert status == 201
    status, error, _ = await running.request(
        "POST",
        "/api/auth/register",
        json={"username": "carol", "password": PASSWORD, "invite_code": code},
    )
    assert (status, error["error_code"]) == (403, "invite_invalid")  # used up


@pytest_twisted.ensureDeferred
async def test_taken_name_does_not_spend_the_invite(running):
    await add_user(running, "root", role="admin")
    _, admin = await login(running, "root")
    code = await invite_code(running, admin["access_token"], uses=1)
    status, error, _ = await running.request(
        "POST",
        "/api/auth/register",
        json={"username": "ROOT", "password": PASSWORD, "invite_code": code},
    )
    assert (status, error["error_code"]) == (409, "name_taken")
    status, _, _ = await running.request(
        "POST",
        "/api/auth/register",
        json={"username": "dora", "password": PASSWORD, "invite_code": code},
    )
    assert status == 201


@pytest_twisted.ensureDeferred
async def test_open_registration_needs_no_invite(fresh_migrated_database_url, tmp_path):
    server = await start(config_for(fresh_migrated_database_url, tmp_path, open_registration=True))
    try:
        status, session, _ = await server.request(
            "POST", "/api/auth/register", json={"username": "eve", "password": PASSWORD}
        )
        assert status == 201, session
    finally:
        await server.stop()


@pytest.mark.parametrize(
    "body, fields",
    [
        ({"username": "ab", "password": PASSWORD}, ["username"]),
        ({"username": "fine", "password": "short"}, ["password"]),
        ({"username": "bad name!", "password": "x" * 200}, ["username", "password"]),
        ({"password": PASSWORD}, ["username"]),
    ],
)
@pytest_twisted.ensureDeferred
async def test_register_validation_errors_name_each_field(running, body, fields):
    status, error, _ = await running.request("POST", "/api/auth/register", json=body)
    assert status == 422
    assert error["error_code"] == "validation_error"
    assert [e["field"] for e in error["validation_errors"]] == fields


@pytest_twisted.ensureDeferred
async def test_bodies_that_are_not_json_objects_are_invalid_json(running):
    for data in (b"{nope", b"[1, 2]", b"\xff\xfe"):
        status, error, _ = await running.request("POST", "/api/auth/login", data=data)
        assert (status, error["error_code"]) == (400, "invalid_json")
    status, error, _ = await running.request(
        "POST", "/api/auth/login", data=b"{" + b" " * 70000 + b"}"
    )
    assert (status, error["error_code"]) == (413, "payload_too_large")


@pytest_twisted.ensureDeferred
async def test_unknown_user_and_wrong_password_look_the_same_and_cost_one_check(running, hasher):
    await add_user(running, "frank")
    before = hasher.verifications()
    status_unknown, unknown = await login(running, "nobody-here")
    after_unknown = hasher.verifications()
    status_wrong, wrong = await login(running, "frank", "wrong password!")
    after_wrong = hasher.verifications()

    assert status_unknown == status_wrong == 401
    assert (
        unknown
        == wrong
        == {"detail": "Wrong username or password.", "error_code": "invalid_credentials"}
    )
    assert after_unknown - before == 1
    assert after_wrong - after_unknown == 1


@pytest_twisted.ensureDeferred
async def test_argon2_never_runs_on_the_reactor_thread(running, hasher):
    await add_user(running, "grace")
    status, _ = await login(running, "grace")
    assert status == 200
    await login(running, "nobody-at-all")
    assert hasher.calls, "the counting hasher was not used"
    assert not any(on_reactor for _, on_reactor in hasher.calls)


@pytest_twisted.ensureDeferred
async def test_sixth_rapid_login_is_429_with_retry_after(running):
    await add_user(running, "heidi")
    for _ in range(5):
        status, _ = await login(running, "heidi", "wrong password!")
        assert status == 401
    status, error, headers = await running.request(
        "POST", "/api/auth/login", json={"username": "heidi", "password": PASSWORD}
    )
    assert (status, error["error_code"]) == (429, "rate_limited")
    assert int(headers.getRawHeaders("retry-after")[0]) >= 1
    actions = [a for (a,) in query(running, "SELECT action FROM audit_log")]
    assert "auth.login_throttled" in actions


@pytest_twisted.ensureDeferred
async def test_no_rate_limits_switch_lets_every_attempt_through(
    fresh_migrated_database_url, tmp_path
):
    server = await start(config_for(fresh_migrated_database_url, tmp_path, no_rate_limits=True))
    try:
        await add_user(server, "ivan")
        for _ in range(8):
            status, _ = await login(server, "ivan", "wrong password!")
            assert status == 401
    finally:
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_a_hash_with_old_parameters_is_replaced_at_the_next_login(running):
    old = await deferToThread(hash_password, PASSWORD, PasswordPolicy(8192, 2, 1))
    await running.server.get_database().run_interaction(
        create_user_txn, running.server.get_snowflakes().next_id(), "judy", old
    )
    status, _ = await login(running, "judy")
    assert status == 200
    [(stored,)] = query(running, "SELECT password_hash FROM users WHERE username = 'judy'")
    assert stored != old and ",t=1," in stored
    assert (await login(running, "judy"))[0] == 200


@pytest_twisted.ensureDeferred
async def test_password_checks_beyond_the_queue_get_503(fresh_migrated_database_url, tmp_path):
    server = await start(
        config_for(
            fresh_migrated_database_url,
            tmp_path,
            password_threads=1,
            password_queue=0,
            argon2_memory_kib=64 * 1024,
            argon2_time_cost=3,
            login_rate_limit=RateLimit(100, 1.0),
        )
    )
    try:
        # Wait out the workers' warm-up (it makes the dummy hash) before the burst.
        while (await login(server, "warm-up"))[0] == 503:
            await deferLater(server.server.reactor, 0.05)
        results = await gatherResults([ensureDeferred(login(server, f"user{i}")) for i in range(6)])
        statuses = sorted(status for status, _ in results)
        assert 503 in statuses and 401 in statuses
        busy = next(body for status, body in results if status == 503)
        assert busy["error_code"] == "unavailable"
    finally:
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_bad_or_missing_access_tokens_are_401(running):
    status, error, _ = await running.request("GET", "/api/auth/me")
    assert (status, error["error_code"]) == (401, "unauthorized")
    status, error, _ = await running.request("GET", "/api/auth/me", headers=bearer("not.a.token"))
    assert (status, error["error_code"]) == (401, "token_invalid")
    await add_user(running, "ken")
    _, session = await login(running, "ken")
    header, payload, signature = session["access_token"].split(".")
    tampered = ".".join(
        [header, payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1], signature]
    )
    status, error, _ = await running.request("GET", "/api/auth/me", headers=bearer(tampered))
    assert (status, error["error_code"]) == (401, "token_invalid")


@pytest_twisted.ensureDeferred
async def test_expired_access_token_is_token_expired(running):
    await add_user(running, "lena")
    _, session = await login(running, "lena")
    handler = running.server.get_auth_handler()
    real_clock = handler.clock
    handler.clock = lambda: real_clock() + 900 + 60
    try:
        status, error, _ = await running.request(
            "GET", "/api/auth/me", headers=bearer(session["access_token"])
        )
    finally:
        handler.clock = real_clock
    assert (status, error["error_code"]) == (401, "token_expired")


@pytest_twisted.ensureDeferred
async def test_token_signed_before_a_key_rotation_still_works(running, termrooms, tmp_path):
    await add_user(running, "mia")
    _, before = await login(running, "mia")
    result = termrooms(
        [
            "rotate-key",
            "--database-url",
            running.server.config.database_url,
            "--data-dir",
            str(tmp_path),
        ]
    )
    assert result.returncode == 0, result.stderr
    running.server.get_signing_keys()._checked_at = float("-inf")  # notice the change now
    _, after = await login(running, "mia")
    kid = lambda token: __import__("jwt").get_unverified_header(token)["kid"]  # noqa: E731
    assert kid(before["access_token"]) != kid(after["access_token"])
    for session in (before, after):
        status, _, _ = await running.request(
            "GET", "/api/auth/me", headers=bearer(session["access_token"])
        )
        assert status == 200


@pytest_twisted.ensureDeferred
async def test_only_admins_create_invites_and_read_the_audit_log(running):
    await add_user(running, "nina")
    _, user = await login(running, "nina")
    for method, path in (("POST", "/api/invites"), ("GET", "/api/admin/audit")):
        status, error, _ = await running.request(
            method, path, json={}, headers=bearer(user["access_token"])
        )
        assert (status, error["error_code"]) == (403, "forbidden")


@pytest_twisted.ensureDeferred
async def test_audit_log_is_newest_first_and_pages_with_next_before(running):
    await add_user(running, "root", role="admin")
    _, admin = await login(running, "root")
    for _ in range(3):
        await invite_code(running, admin["access_token"], expires_in="1d", uses=2)
    status, page, _ = await running.request(
        "GET", "/api/admin/audit?limit=2", headers=bearer(admin["access_token"])
    )
    assert status == 200
    ids = [int(e["id"]) for e in page["entries"]]
    assert ids == sorted(ids, reverse=True) and len(ids) == 2
    status, older, _ = await running.request(
        "GET",
        f"/api/admin/audit?limit=2&before={page['next_before']}",
        headers=bearer(admin["access_token"]),
    )
    assert all(int(e["id"]) < ids[-1] for e in older["entries"])
    status, error, _ = await running.request(
        "GET", "/api/admin/audit?limit=0", headers=bearer(admin["access_token"])
    )
    assert (status, error["error_code"]) == (422, "validation_error")


@pytest_twisted.ensureDeferred
async def test_export_holds_the_users_messages_and_deletion_keeps_room_seqs(running):
    await add_user(running, "olga")
    await add_user(running, "paul")
    _, olga = await login(running, "olga")
    [(olga_id,)] = query(running, "SELECT id FROM users WHERE username = 'olga'")
    [(paul_id,)] = query(running, "SELECT id FROM users WHERE username = 'paul'")
    seed_room_with_messages(running, olga_id, paul_id)

    status, export, _ = await running.request(
        "GET", "/api/auth/me/export", headers=bearer(olga["access_token"])
    )
    assert status == 200
    assert export["profile"]["username"] == "olga"
    assert [m["body"] for m in export["messages"]] == ["hello from olga", "bye from olga"]
    assert [m["room"] for m in export["memberships"]] == ["lobby"]

    status, error, _ = await running.request(
        "DELETE",
        "/api/auth/me",
        json={"password": "not my password"},
        headers=bearer(olga["access_token"]),
    )
    assert (status, error["error_code"]) == (401, "invalid_credentials")
    status, _, _ = await running.request(
        "DELETE", "/api/auth/me", json={"password": PASSWORD}, headers=bearer(olga["access_token"])
    )
    assert status == 204

    assert (await login(running, "olga"))[0] == 401
    status, error, _ = await running.request(
        "GET", "/api/auth/me", headers=bearer(olga["access_token"])
    )
    assert (status, error["error_code"]) == (401, "token_invalid")
    events = query(running, "SELECT seq, user_id, body FROM room_events ORDER BY seq")
    assert [seq for seq, _, _ in events] == [1, 2, 3]  # gapless, nothing removed
    assert [body for _, user, body in events if user == olga_id] == [
        "hello from olga",
        "bye from olga",
    ]
    [(username, display_name, password_hash)] = query(
        running, "SELECT username, display_name, password_hash FROM users WHERE id = %s", (olga_id,)
    )
    assert (username, display_name, password_hash) == (f"deleted-{olga_id}", "deleted user", None)
    assert query(running, "SELECT count(*) FROM memberships WHERE user_id = %s", (olga_id,)) == [
        (0,)
    ]
    # The name is free again.
    await add_user(running, "olga")


def seed_room_with_messages(running: RunningServer, olga_id: int, paul_id: int) -> None:
    """A room with three messages, written as the rooms issue's store will write them."""
    snowflakes = running.server.get_snowflakes()
    connection = psycopg2.connect(running.server.config.database_url)
    try:
        with connection, connection.cursor() as cursor:
            room_id = snowflakes.next_id()
            cursor.execute(
                "INSERT INTO rooms (id, name, visibility, created_by, last_seq) VALUES (%s, 'lobby', 'public', %s, 3)",
                (room_id, olga_id),
            )
            cursor.execute(
                "INSERT INTO memberships (room_id, user_id, role) VALUES (%s, %s, 'owner'), (%s, %s, 'member')",
                (room_id, olga_id, room_id, paul_id),
            )
            for seq, (author, body) in enumerate(
                [(olga_id, "hello from olga"), (paul_id, "hi olga"), (olga_id, "bye from olga")],
                start=1,
            ):
                cursor.execute(
                    "INSERT INTO room_events (id, room_id, seq, type, user_id, body, client_msg_id)"
                    " VALUES (%s, %s, %s, 'message', %s, %s, %s)",
                    (snowflakes.next_id(), room_id, seq, author, body, f"c{seq}"),
                )
    finally:
        connection.close()


def test_invite_expiry_accepts_seconds_durations_and_null():
    from termrooms.transport.http.auth import _invite_expiry

    assert _invite_expiry(3600) == timedelta(hours=1)
    assert _invite_expiry("7d") == timedelta(days=7)
    assert _invite_expiry(None) is None
