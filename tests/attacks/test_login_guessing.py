"""
Password guessing and account enumeration against the real login route: one address,
many usernames, many (spoofed or real) addresses, and the answers and timing an attacker
could use to tell an account exists. The limits are docs/protocol.md's: per client
address and per username, a burst of 5 then one per 20 s; 429 with Retry-After.
"""

from __future__ import annotations

import ipaddress
import statistics
import time
from typing import Any

import pytest_twisted
from test_auth import CountingHasher
from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred, gatherResults
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread

from support import HOSTILE, PASSWORD, add_user, config_for, record_outcome, start
from termrooms.domain.ratelimit import RateLimit
from termrooms.handlers.passwords import PasswordPolicy, hash_password
from termrooms.storage.users import create_user_txn

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)


async def attempt(running, username: str, password: str, via: str | None = None) -> tuple:
    """One login; ``via`` is the X-Forwarded-For header the request carries."""
    headers = {"X-Forwarded-For": via} if via is not None else {}
    return await running.request(
        "POST",
        "/api/auth/login",
        json={"username": username, "password": password},
        headers=headers,
    )


def assert_throttled(answer: tuple, limit: RateLimit) -> int:
    status, body, headers = answer
    assert (status, body["error_code"]) == (429, "rate_limited"), body
    retry_after = int(headers.getRawHeaders("retry-after")[0])
    assert 1 <= retry_after <= limit.period + 1
    return retry_after


@pytest_twisted.ensureDeferred
async def test_guessing_from_one_address_is_throttled_even_with_spoofed_forwarded_for(
    fresh_migrated_database_url, tmp_path
):
    """An untrusted peer's X-Forwarded-For names nobody: each spoofed address is the
    attacker's own, whichever usernames it tries, with or without --trusted-proxies."""
    limit = RateLimit(5, 20.0)  # the default
    tried = 0
    for trusted in ((), (ipaddress.ip_network("10.0.0.0/8"),)):
        running = await start(
            config_for(fresh_migrated_database_url, tmp_path, trusted_proxies=trusted)
        )
        try:
            await add_user(running, f"ada{len(trusted)}")
            for number in range(limit.burst):
                status, body, _ = await attempt(
                    running, f"user{number}", "wrong password!", via=f"198.51.100.{number}"
                )
                assert (status, body["error_code"]) == (401, "invalid_credentials")
            for number in range(20 if HOSTILE else 6):
                spoofed = f"203.0.113.{number}, 198.51.100.{number + 50}"
                assert_throttled(await attempt(running, f"other{number}", "x" * 8, spoofed), limit)
            # The right password during the lockout is refused like any other guess.
            assert_throttled(await attempt(running, f"ada{len(trusted)}", PASSWORD), limit)
            tried += limit.burst + (20 if HOSTILE else 6) + 1
        finally:
            await running.stop()
    record_outcome(
        "attacks/test_login_guessing::test_guessing_from_one_address_is_throttled_even_with_spoofed_forwarded_for",
        what="password guessing over many usernames from one address, each request with a "
        "new spoofed X-Forwarded-For, without and with --trusted-proxies (not the peer)",
        load=f"{tried} login attempts",
        faults="spoofed X-Forwarded-For chains, the right password during the lockout",
        outcome="after the burst of 5 every attempt 429 with Retry-After <= 20 s, the right "
        "password included; spoofed headers never reset the address budget",
    )


@pytest_twisted.ensureDeferred
async def test_guessing_one_user_from_many_addresses_stops_at_the_username_limit(
    fresh_migrated_database_url, tmp_path
):
    """Behind a trusted proxy every guess comes from a new address: the username limit
    still holds, for every spelling of the name, and the real user gets in once it
    refills, from their own address."""
    limit = RateLimit(5, 2.0)
    running = await start(
        config_for(
            fresh_migrated_database_url,
            tmp_path,
            trusted_proxies=LOOPBACK,
            login_rate_limit=limit,
        )
    )
    try:
        await add_user(running, "admin")
        await add_user(running, "bystander")
        for number in range(limit.burst):
            status, _, _ = await attempt(
                running, "admin", f"guess number {number}", via=f"198.51.100.{number}"
            )
            assert status == 401
        # The lockout: the right password, from fresh addresses, under every spelling
        # that could name the account (the dotted capital I lowers to "i" in PostgreSQL).
        spellings = ["admin", "ADMIN", "Admin", "admİn", "ADMİN", "admın", "admin ", " admin"]
        for number, spelling in enumerate(spellings):
            status, body, _ = await attempt(
                running, spelling, PASSWORD, via=f"198.51.100.{100 + number}"
            )
            assert status != 200, f"{spelling!r} logged in during the lockout"
            assert status in (401, 429), (spelling, body)
        answer = await attempt(running, "admin", PASSWORD, via="192.0.2.1")
        retry_after = assert_throttled(answer, limit)
        # Others are not locked out by it.
        status, _, _ = await attempt(running, "bystander", PASSWORD, via="192.0.2.2")
        assert status == 200
        # The lockout lasts what the username limit says, however the attacker goes on
        # from the address it already spent.
        for _ in range(10):
            assert_throttled(await attempt(running, "admin", "again!!!", via="198.51.100.4"), limit)
        await deferLater(reactor, retry_after + 0.2, lambda: None)
        status, session, _ = await attempt(running, "admin", PASSWORD, via="192.0.2.1")
        assert status == 200, session
    finally:
        await running.stop()
    record_outcome(
        "attacks/test_login_guessing::test_guessing_one_user_from_many_addresses_stops_at_the_username_limit",
        what="guessing one account's password from a new address each time behind a "
        "trusted proxy, then the right password under 8 spellings of the name",
        load=f"{limit.burst + len(spellings) + 12} login attempts, limit {limit}",
        faults="distributed guessing, case and Unicode (İ, ı) spellings, padded names",
        outcome=f"5 guesses let through, then no spelling logged in; the owner got in "
        f"{retry_after} s later from their own address; another user was never locked",
    )


@pytest_twisted.ensureDeferred
async def test_unknown_users_and_wrong_passwords_look_and_cost_the_same(
    fresh_migrated_database_url, tmp_path, termrooms
):
    """Same status, same body, same headers, one argon2 check each, and similar time."""
    policy = PasswordPolicy(memory_kib=16 * 1024, time_cost=2, parallelism=1)
    hasher = CountingHasher(policy)
    running = await start(
        config_for(
            fresh_migrated_database_url,
            tmp_path,
            argon2_memory_kib=policy.memory_kib,
            argon2_time_cost=policy.time_cost,
            login_rate_limit=RateLimit(10_000, 0.01),
        ),
        hasher,
    )
    rounds = 25 if HOSTILE else 9
    try:
        # Hashed as the server hashes (add_user's cheap hashes would verify faster).
        stored = await deferToThread(hash_password, PASSWORD, policy)
        for name in ("frank", "gone", "off"):
            await running.server.get_database().run_interaction(
                create_user_txn, running.server.get_snowflakes().next_id(), name, stored
            )
        status, gone, _ = await attempt(running, "gone", PASSWORD)
        status, _, _ = await running.request(
            "DELETE",
            "/api/auth/me",
            json={"password": PASSWORD},
            headers={"Authorization": f"Bearer {gone['access_token']}"},
        )
        assert status == 204
        result = await deferToThread(
            termrooms,
            ["disable-user", "off", "--database-url", running.server.config.database_url],
        )
        assert result.returncode == 0, result.stderr
        kinds = {
            "wrong password": ("frank", "wrong password!"),
            "unknown user": ("nobody-here", "wrong password!"),
            "deleted user": ("gone", PASSWORD),
            "disabled user": ("off", PASSWORD),
            "not a username": ("no such user!", "wrong password!"),
            "unicode lookalike": ("frank\u0130", "wrong password!"),
        }
        answers: dict[str, Any] = {}
        times: dict[str, list[float]] = {kind: [] for kind in kinds}
        for _ in range(rounds):
            for kind, (username, password) in kinds.items():  # interleaved: same conditions
                checks = hasher.verifications()
                started = time.perf_counter()
                status, body, headers = await attempt(running, username, password)
                times[kind].append(time.perf_counter() - started)
                assert hasher.verifications() - checks == 1, f"{kind}: not one argon2 check"
                shown = sorted(
                    (name, values)
                    for name, values in headers.getAllRawHeaders()
                    if name.lower() not in (b"x-request-id", b"date")
                )
                answers.setdefault(kind, (status, body, shown))
                assert answers[kind] == (status, body, shown), kind
    finally:
        await running.stop()
    assert len({repr(answer) for answer in answers.values()}) == 1, answers
    assert answers["unknown user"][:2] == (
        401,
        {"detail": "Wrong username or password.", "error_code": "invalid_credentials"},
    )
    medians = {kind: statistics.median(spent) for kind, spent in times.items()}
    # Loose on purpose (two busy cores): an account that exists must not answer in a
    # different class of time. Without the dummy check the ratio would be ~20x.
    slowest, fastest = max(medians.values()), min(medians.values())
    assert slowest / fastest < 3, medians
    record_outcome(
        "attacks/test_login_guessing::test_unknown_users_and_wrong_passwords_look_and_cost_the_same",
        what="login with a wrong password vs unknown, deleted, disabled, malformed and "
        "Unicode-lookalike usernames: answers, argon2 checks and timing",
        load=f"{rounds} interleaved rounds of {len(kinds)} kinds, argon2id 16 MiB t=2",
        faults="account enumeration by answer, header and timing",
        outcome="identical status, body and headers; exactly one argon2 verify each; "
        "median times "
        + ", ".join(f"{kind} {1000 * spent:.0f} ms" for kind, spent in medians.items())
        + f" (max/min {slowest / fastest:.2f})",
    )


@pytest_twisted.ensureDeferred
async def test_registration_tells_a_taken_name_only_with_a_live_invite_and_is_throttled(
    fresh_migrated_database_url, tmp_path
):
    """name_taken is the documented exception: without a valid invite a taken name and a
    free one answer alike, and with open registration the probes are rate limited."""
    running = await start(config_for(fresh_migrated_database_url, tmp_path))
    try:
        await add_user(running, "taken")
        answers = []
        for name in ("taken", "free-name"):
            for invite in (None, "made-up-code"):
                status, body, _ = await running.request(
                    "POST",
                    "/api/auth/register",
                    json={"username": name, "password": PASSWORD, "invite_code": invite},
                )
                answers.append((invite, status, body))
        assert answers[:2] == answers[2:], answers
    finally:
        await running.stop()

    running = await start(config_for(fresh_migrated_database_url, tmp_path, open_registration=True))
    limit = RateLimit(5, 60.0)  # the default registration limit
    try:
        statuses = []
        for number in range(limit.burst + 3):
            status, body, headers = await running.request(
                "POST",
                "/api/auth/register",
                json={"username": "taken" if number % 2 else f"new{number}", "password": PASSWORD},
            )
            statuses.append((status, body["error_code"] if status >= 400 else None))
            if number >= limit.burst:
                assert_throttled((status, body, headers), limit)
        assert (409, "name_taken") in statuses[: limit.burst]
    finally:
        await running.stop()
    record_outcome(
        "attacks/test_login_guessing::test_registration_tells_a_taken_name_only_with_a_live_invite_and_is_throttled",
        what="enumerating usernames through registration",
        load=f"4 closed-registration probes, {limit.burst + 3} open-registration probes",
        faults="taken and free names with no or a made-up invite code",
        outcome="closed: taken and free names answer alike (403); open: name_taken as "
        f"documented, every probe after {limit.burst} 429",
    )


@pytest_twisted.ensureDeferred
async def test_a_daemon_behind_a_trusted_proxy_holds_both_login_limits(
    daemons, daemon_client, fresh_migrated_database_url
):
    """The whole process, configured from its command line: --trusted-proxies and the
    default login limits hold against spoofed chains and spread-out guessing."""
    daemon = await deferToThread(
        daemons,
        [
            "--database-url",
            fresh_migrated_database_url,
            "--open-registration",
            "--trusted-proxies",
            "127.0.0.0/8",
            "--argon2-memory-kib",
            "8192",
            "--argon2-time-cost",
            "1",
        ],
    )
    remote = daemon_client(daemon.base_url)
    limit = RateLimit(5, 20.0)
    status, body, _ = await remote.request(
        "POST",
        "/api/auth/register",
        json={"username": "ada", "password": PASSWORD},
        headers={"X-Forwarded-For": "192.0.2.10"},
    )
    assert status == 201, body
    # One client behind the proxy, forging what is left of its real address.
    for number in range(limit.burst):
        chain = f"203.0.113.{number}, 198.51.100.7"
        status, _, _ = await attempt(remote, f"user{number}", "wrong password!", via=chain)
        assert status == 401
    for number in range(limit.burst, limit.burst + 5):
        chain = f"203.0.113.{number}, 198.51.100.7"
        assert_throttled(await attempt(remote, f"user{number}", "wrong password!", chain), limit)
    # Many clients, one account.
    for number in range(limit.burst):
        status, _, _ = await attempt(
            remote, "ada", "wrong password!", via=f"198.51.100.{number + 20}"
        )
        assert status == 401
    assert_throttled(await attempt(remote, "ada", PASSWORD, via="198.51.100.99"), limit)
    assert_throttled(await attempt(remote, "ADA", PASSWORD, via="198.51.100.98"), limit)
    status, _, _ = await attempt(remote, "adİ", PASSWORD, via="198.51.100.97")
    assert status == 401
    log = daemon.log()
    for bad in ('"log_failure"', '"isError": true', "Unhandled", "Traceback"):
        assert bad not in log, bad
    assert daemon.stop() == 0
    record_outcome(
        "attacks/test_login_guessing::test_a_daemon_behind_a_trusted_proxy_holds_both_login_limits",
        what="a real daemon with --trusted-proxies: a client forging its X-Forwarded-For "
        "chain, then guesses at one account from many addresses",
        load="24 login attempts",
        faults="forged X-Forwarded-For prefixes, distributed guessing, case and Unicode "
        "spellings during the lockout",
        outcome="both the per-address and the per-username limit answered 429 with "
        "Retry-After after 5; no spelling got in; the daemon's log stayed clean",
    )


@pytest_twisted.ensureDeferred
async def test_guessing_through_several_instances_shares_one_budget(
    fresh_migrated_database_url, redis_url, tmp_path
):
    """Instances sharing Redis share the login limits: going round them buys nothing."""
    limit = RateLimit(5, 20.0)
    instances = [
        await start(
            config_for(
                fresh_migrated_database_url,
                tmp_path,
                redis_url=redis_url,
                node_id=node_id,
                trusted_proxies=LOOPBACK,
            )
        )
        for node_id in (1, 2, 3)
    ]
    try:
        await add_user(instances[0], "ada")
        answers = []
        for number in range(limit.burst + 4):
            running = instances[number % len(instances)]
            via = f"198.51.100.{number}"  # a new address each time: the username limit
            answers.append(await attempt(running, "ada", f"guess {number}!!", via=via))
        assert [status for status, _, _ in answers[: limit.burst]] == [401] * limit.burst
        for answer in answers[limit.burst :]:
            assert_throttled(answer, limit)
        # Keys are the attacker's text: nothing in a name reaches another key or Redis.
        for number, name in enumerate(["ada\r\nFLUSHDB", "*", "ada:*", "login-user:ada"]):
            status, _, _ = await attempt(instances[0], name, "x" * 8, via=f"192.0.2.{number}")
            assert status == 401
        assert_throttled(await attempt(instances[1], "ada", PASSWORD, via="192.0.2.50"), limit)
    finally:
        for running in instances:
            await running.stop()
    record_outcome(
        "attacks/test_login_guessing::test_guessing_through_several_instances_shares_one_budget",
        what="guessing one account round-robin through 3 instances sharing Redis, each "
        "guess from a new address",
        load=f"{limit.burst + 9} login attempts over 3 instances",
        faults="instance hopping, Redis-protocol and key-pattern text in usernames",
        outcome=f"{limit.burst} guesses let through in all, every later one 429 on every "
        "instance; hostile names were plain unknown users and the lockout survived them",
    )


@pytest_twisted.ensureDeferred
async def test_a_stolen_access_token_is_no_password_oracle(fresh_migrated_database_url, tmp_path):
    """DELETE /api/auth/me checks the password: with a stolen access token, guesses
    there are login attempts too, under the same per-username and per-address limits."""
    limit = RateLimit(5, 20.0)
    running = await start(config_for(fresh_migrated_database_url, tmp_path))
    try:
        await add_user(running, "ada")
        _, stolen, _ = await attempt(running, "ada", PASSWORD, via=None)
        headers = {"Authorization": f"Bearer {stolen['access_token']}"}
        answers = []
        for number in range(limit.burst + 3):
            answers.append(
                await running.request(
                    "DELETE", "/api/auth/me", json={"password": f"guess {number}!"}, headers=headers
                )
            )
        statuses = [status for status, _, _ in answers]
        # The login above spent one of the burst.
        assert statuses[: limit.burst - 1] == [401] * (limit.burst - 1), statuses
        for answer in answers[limit.burst :]:
            assert_throttled(answer, limit)
        # Throttled, the right password deletes nothing, and login is throttled as well.
        status, body, _ = await running.request(
            "DELETE", "/api/auth/me", json={"password": PASSWORD}, headers=headers
        )
        assert (status, body["error_code"]) == (429, "rate_limited")
        assert_throttled(await attempt(running, "ada", PASSWORD), limit)
        status, me, _ = await running.request("GET", "/api/auth/me", headers=headers)
        assert (status, me["username"]) == (200, "ada")
    finally:
        await running.stop()
    record_outcome(
        "attacks/test_login_guessing::test_a_stolen_access_token_is_no_password_oracle",
        what="guessing the password through DELETE /api/auth/me with a stolen access token",
        load=f"{limit.burst + 4} account deletions attempted",
        faults="password guesses outside the login route",
        outcome="the login limits applied: 429 with Retry-After after the burst, the right "
        "password then deleted nothing, and login was throttled too",
    )


@pytest_twisted.ensureDeferred
async def test_racing_registrations_admit_one_per_invite_use_and_one_per_name(
    fresh_migrated_database_url, tmp_path
):
    """Many sign-ups at once: a one-use invite admits one account, one name is taken
    once, a lost race is name_taken (never a 500) and spends no invite."""
    racers = 30 if HOSTILE else 10
    running = await start(
        config_for(fresh_migrated_database_url, tmp_path, register_rate_limit=RateLimit(1000, 0.01))
    )
    try:
        await add_user(running, "root", role="admin")
        _, admin, _ = await attempt(running, "root", PASSWORD)

        async def invite(uses: int) -> str:
            status, body, _ = await running.request(
                "POST",
                "/api/invites",
                json={"uses": uses},
                headers={"Authorization": f"Bearer {admin['access_token']}"},
            )
            assert status == 201, body
            return body["code"]

        async def register(name: str, code: str) -> tuple[int, str | None]:
            status, body, _ = await running.request(
                "POST",
                "/api/auth/register",
                json={"username": name, "password": PASSWORD, "invite_code": code},
            )
            return status, None if status == 201 else body["error_code"]

        single = await invite(1)
        results = await gatherResults(
            [ensureDeferred(register(f"racer{n}", single)) for n in range(racers)]
        )
        assert sorted(results) == [(201, None)] + [(403, "invite_invalid")] * (racers - 1)

        shared = await invite(racers)
        results = await gatherResults(
            [ensureDeferred(register("samename", shared)) for _ in range(racers)]
        )
        assert sorted(results) == [(201, None)] + [(409, "name_taken")] * (racers - 1)
        # The losers spent nothing: the invite still admits racers - 1 more.
        results = await gatherResults(
            [ensureDeferred(register(f"later{n}", shared)) for n in range(racers)]
        )
        assert sorted(results) == [(201, None)] * (racers - 1) + [(403, "invite_invalid")]
    finally:
        await running.stop()
    record_outcome(
        "attacks/test_login_guessing::test_racing_registrations_admit_one_per_invite_use_and_one_per_name",
        what="concurrent sign-ups racing for one invite use and for one username",
        load=f"3 bursts of {racers} concurrent registrations",
        faults="invite reuse and name races",
        outcome=f"a one-use invite admitted 1 of {racers}; one name was taken once, the "
        f"{racers - 1} losers got name_taken and spent no use (then {racers - 1} more got in)",
    )


@pytest_twisted.ensureDeferred
async def test_an_ipv6_client_cannot_reset_the_address_limit_by_rotating_its_addresses(
    fresh_migrated_database_url, tmp_path
):
    """One IPv6 subscriber holds a /64: 2^64 addresses. Counted per address, a client
    would spray guesses over usernames without limit by changing its source address."""
    limit = RateLimit(5, 20.0)
    running = await start(
        config_for(
            fresh_migrated_database_url,
            tmp_path,
            trusted_proxies=LOOPBACK,
            http_rate_limit=RateLimit(8, 60.0),
        )
    )
    try:
        answers = []
        for number in range(limit.burst + 3):
            via = f"2001:db8:aaaa:bbbb:{number:x}:{number * 7:x}::{number + 1:x}"
            answers.append(await attempt(running, f"user{number}", "wrong password!", via=via))
        assert [status for status, _, _ in answers[: limit.burst]] == [401] * limit.burst
        for answer in answers[limit.burst :]:
            assert_throttled(answer, limit)
        # The IPv4-mapped spelling of one IPv4 client is that client.
        for number in range(limit.burst):
            status, _, _ = await attempt(running, f"v4user{number}", "x" * 8, via="192.0.2.9")
            assert status == 401
        mapped = await attempt(running, "v4user9", "x" * 8, via="::ffff:192.0.2.9")
        assert_throttled(mapped, limit)
        # Another subscriber's /64 has a budget of its own.
        status, _, _ = await attempt(running, "other", "x" * 8, via="2001:db8:aaaa:cccc::1")
        assert status == 401
        # The HTTP limit per address counts the same way.
        statuses = []
        for number in range(10):
            response = await running.request(
                "GET",
                "/api/rooms/nowhere",
                headers={"X-Forwarded-For": f"2001:db8:dddd:eeee::{number + 1:x}"},
            )
            statuses.append(response[0])
        assert statuses[:8] == [404] * 8 and statuses[8:] == [429, 429], statuses
    finally:
        await running.stop()
    record_outcome(
        "attacks/test_login_guessing::test_an_ipv6_client_cannot_reset_the_address_limit_by_rotating_its_addresses",
        what="login guesses and HTTP requests from ever-new IPv6 addresses of one /64, and "
        "an IPv4 client in IPv4-mapped IPv6 spelling",
        load=f"{2 * limit.burst + 5} logins, 10 HTTP requests",
        faults="source address rotation inside one IPv6 /64; ::ffff: spelling",
        outcome="the /64 counted as one client: 429 after the burst of 5 logins and of 8 "
        "requests; the mapped spelling shared its IPv4 budget; another /64 was unaffected",
    )


@pytest_twisted.ensureDeferred
async def test_nobody_signs_up_under_a_deleted_accounts_name(fresh_migrated_database_url, tmp_path):
    """A deleted account's messages stay, shown as authored by ``deleted-<id>``: a
    sign-up under such a name would pass for a deleted user, and one taken ahead of a
    deletion (ids are time-ordered snowflakes) would make that deletion fail."""
    running = await start(config_for(fresh_migrated_database_url, tmp_path, open_registration=True))
    try:
        credentials = {"username": "victim", "password": PASSWORD}
        status, victim, _ = await running.request("POST", "/api/auth/register", json=credentials)
        assert status == 201
        victim_id = victim["user"]["id"]
        refused = []
        for name in (f"deleted-{victim_id}", f"Deleted-{int(victim_id) + 1}", "DELETED-1"):
            status, body, _ = await running.request(
                "POST", "/api/auth/register", json={"username": name, "password": PASSWORD}
            )
            assert (status, body["error_code"]) == (422, "validation_error"), (name, body)
            assert [e["field"] for e in body["validation_errors"]] == ["username"]
            refused.append(name)
        status, _, _ = await running.request(
            "DELETE",
            "/api/auth/me",
            json={"password": PASSWORD},
            headers={"Authorization": f"Bearer {victim['access_token']}"},
        )
        assert status == 204
        # Names that merely contain the word are fine.
        status, _, _ = await running.request(
            "POST", "/api/auth/register", json={"username": "undeleted-1", "password": PASSWORD}
        )
        assert status == 201
    finally:
        await running.stop()
    record_outcome(
        "attacks/test_login_guessing::test_nobody_signs_up_under_a_deleted_accounts_name",
        what="signing up as deleted-<id>, the name deleted accounts' messages carry, "
        "including the id of a live account before it is deleted",
        load=f"{len(refused)} sign-ups, 1 deletion",
        faults="tombstone impersonation, blocking a later account deletion",
        outcome="every deleted-* name 422 on username; the live account's deletion then "
        "worked; undeleted-1 was allowed",
    )
