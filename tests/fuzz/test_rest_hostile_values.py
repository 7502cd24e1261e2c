"""
The hostile values the body fuzzer may take long to hit, each sent on purpose: durations
beyond what a datetime holds, passwords with lone surrogates, NUL in codes and tokens.
Each must get the contract's answer (422 naming the field, or 401/403 for a wrong
credential), never a 500.
"""

from __future__ import annotations

import json

import pytest
import pytest_twisted
import treq

from fuzz.fuzzing import check_response, row_counts
from support import add_user, bearer, config_for, login, record_outcome, run_termrooms, start
from termrooms.config import ConfigError, resolve_config

HUGE = "99999999999999999999w"
SURROGATE_PASSWORD = "\ud800abcdefgh"


async def post(running, method: str, path: str, body: dict, token: str | None = None):
    """``body`` as ASCII JSON (a lone surrogate travels as a \\ud800 escape)."""
    headers = {"Content-Type": "application/json", **(bearer(token) if token else {})}
    response = await treq.request(
        method, running.url + path, data=json.dumps(body).encode(), headers=headers
    )
    return response.code, await response.content(), response.headers


@pytest_twisted.ensureDeferred
async def test_hostile_values_get_a_contract_error(fresh_migrated_database_url, tmp_path):
    running = await start(config_for(fresh_migrated_database_url, tmp_path, no_rate_limits=True))
    try:
        tokens = {}
        for name, role in (("admin-fuzz", "admin"), ("fuzzer", "user"), ("doomed", "user")):
            await add_user(running, name, role)
            status, session = await login(running, name)
            assert status == 200, session
            tokens[name] = session
        admin, user = tokens["admin-fuzz"]["access_token"], tokens["fuzzer"]["access_token"]
        status, body, _ = await running.request(
            "POST",
            "/api/rooms",
            json={"name": "lobby", "visibility": "public"},
            headers=bearer(user),
        )
        assert status == 201, body
        status, invite, _ = await running.request(
            "POST", "/api/invites", json={"uses": 10}, headers=bearer(admin)
        )
        assert status == 201, invite
        code = invite["code"]
        cases = [
            ("POST", "/api/invites", {"expires_in": HUGE}, admin, 422, "expires_in"),
            ("POST", "/api/invites", {"expires_in": "5000000d"}, admin, 422, "expires_in"),
            ("POST", "/api/invites", {"expires_in": "400d"}, admin, 422, "expires_in"),
            ("POST", "/api/invites", {"expires_in": 10**30}, admin, 422, "expires_in"),
            ("POST", "/api/rooms/lobby/moderation",
             {"action": "mute", "username": "doomed", "duration_s": 10**30}, user, 422, "duration_s"),
            ("POST", "/api/auth/register",
             {"username": "newcomer", "password": SURROGATE_PASSWORD, "invite_code": code},
             None, 422, "password"),
            ("POST", "/api/auth/login",
             {"username": "fuzzer", "password": SURROGATE_PASSWORD}, None, 401, None),
            ("DELETE", "/api/auth/me", {"password": SURROGATE_PASSWORD},
             tokens["doomed"]["access_token"], 401, None),
            ("POST", "/api/auth/register",
             {"username": "newcomer", "password": "long enough pw", "invite_code": code + "\x00"},
             None, 403, None),
            ("POST", "/api/auth/refresh", {"refresh_token": "x\x00y"}, None, 401, None),
            ("POST", "/api/auth/refresh",
             {"refresh_token": tokens["fuzzer"]["refresh_token"] + "\x00"}, None, 401, None),
            # A lone surrogate (a JSON \ud800 escape) in every other text field.
            ("POST", "/api/rooms/lobby/messages", {"body": "a\ud800", "client_msg_id": "s1"},
             user, 422, "body"),
            ("POST", "/api/rooms/lobby/messages", {"body": "hi", "client_msg_id": "\ud800"},
             user, 422, "client_msg_id"),
            ("PATCH", "/api/rooms/lobby", {"topic": "\ud800"}, user, 422, "topic"),
            ("POST", "/api/rooms/lobby/moderation",
             {"action": "kick", "username": "doomed", "reason": "\udfff"}, user, 422, "reason"),
            ("POST", "/api/auth/refresh", {"refresh_token": "\ud800"}, None, 422, "refresh_token"),
            ("POST", "/api/auth/register",
             {"username": "newcomer", "password": "long enough pw", "invite_code": "\ud800"},
             None, 422, "invite_code"),
        ]  # fmt: skip
        for method, path, body, token, want, field in cases:
            before = row_counts(fresh_migrated_database_url)
            status, content, headers = await post(running, method, path, body, token)
            check_response(status, content, headers, (method, path, body))
            answer = json.loads(content)
            assert status == want, (status, answer, path, body)
            if field is not None:
                assert field in json.dumps(answer["validation_errors"]), answer
            assert row_counts(fresh_migrated_database_url) == before, (path, body)
        # A path that is not UTF-8 (a lone surrogate, a stray byte) is the contract's 400 too.
        for path in ("/api/rooms/%ED%A0%80", "/api/rooms/%FF/messages"):
            response = await treq.get(running.url + path, headers=bearer(user))
            content = await response.content()
            check_response(response.code, content, response.headers, path)
            assert json.loads(content)["error_code"] == "bad_request", content
        # The commands take the same huge durations.
        for line in (f"/mute doomed {HUGE}", f"/ban doomed {HUGE}", "/mute doomed 5000000d"):
            status, answer, _ = await running.request(
                "POST",
                "/api/rooms/lobby/messages",
                json={"body": line, "client_msg_id": line},
                headers=bearer(user),
            )
            assert status < 500, (status, answer, line)
        status, health, _ = await running.health()
        assert status == 200, health
    finally:
        await running.stop()
    record_outcome(
        "fuzz/test_rest_hostile_values::test_hostile_values_get_a_contract_error",
        what="durations past a datetime's range, lone-surrogate passwords and NUL in codes "
        "and tokens get 422 (naming the field) or 401/403, never a 500",
        load=f"{len(cases) + 5} requests on one in-process server",
        faults="expires_in 99999999999999999999w / 5000000d / 10**30, duration_s 10**30, "
        "/mute and /ban with 99999999999999999999w, password \\ud800abcdefgh on register/"
        "login/delete account, NUL in invite_code and refresh_token, a lone surrogate in "
        "body, client_msg_id, topic, reason, refresh_token and invite_code, non-UTF-8 paths",
        outcome=f"all {len(cases) + 5} answered with the contract's status and error body; "
        "no rows changed",
    )


def test_invite_command_refuses_an_expiry_past_a_datetime():
    """`termrooms invite --expires-in` takes the route's bounds: a usage error, no traceback."""
    unreachable = "postgresql://postgres@127.0.0.1:1/none?connect_timeout=1"
    for expiry in (HUGE, "5000000d", "400d"):
        result = run_termrooms(["invite", "--expires-in", expiry, "--database-url", unreachable])
        assert result.returncode == 2, (expiry, result.stderr[-2000:])
        assert "--expires-in" in result.stderr and "Traceback" not in result.stderr, expiry
    record_outcome(
        "fuzz/test_rest_hostile_values::test_invite_command_refuses_an_expiry_past_a_datetime",
        what="termrooms invite refuses a lifetime past a year as a usage error",
        load="3 CLI runs",
        faults="--expires-in 99999999999999999999w, 5000000d, 400d",
        outcome="all 3 exit 2 naming --expires-in, no traceback",
    )


def test_a_duration_setting_past_timedelta_is_a_config_error():
    """A retention of 99999999999999999999w names its setting, like any too-long one."""
    for name in ("TERMROOMS_MESSAGE_RETENTION", "TERMROOMS_AUDIT_RETENTION"):
        with pytest.raises(ConfigError, match="must be between"):
            resolve_config({}, {name: HUGE})
    record_outcome(
        "fuzz/test_rest_hostile_values::test_a_duration_setting_past_timedelta_is_a_config_error",
        what="a duration setting past what timedelta holds is a ConfigError naming it",
        load="2 settings resolved",
        faults="message_retention and audit_retention 99999999999999999999w from the environment",
        outcome="both refused as 'must be between', no OverflowError",
    )
