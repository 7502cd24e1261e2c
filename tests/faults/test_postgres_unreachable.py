"""
The daemon started while its PostgreSQL is down: it keeps running and says so (503
``unavailable`` from /health and the API, never a 500), retries with backoff rather than
in a tight loop, and once the server comes up it migrates the empty database and serves,
without being restarted.
"""

from __future__ import annotations

import json
import re
import time

import pytest
import pytest_twisted
from twisted.internet.threads import deferToThread

from cluster_support import FAST_PASSWORDS, PASSWORD, api, health, poll, sleep, unhandled_errors
from support import HOSTILE, record_outcome

pytestmark = pytest.mark.slow

DOWN_SECONDS = 30.0 if HOSTILE else 6.0
RETRY = re.compile(r"retrying in ([0-9.]+) s")


def connection_retries(log: str) -> list[tuple[float, float]]:
    """(seconds since the first, announced delay) of every failed connection attempt."""
    found = []
    for line in log.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        match = RETRY.search(str(record.get("message", "")))
        if match and "connection failed" in record["message"]:
            found.append((record["time"], float(match.group(1))))
    if not found:
        return []
    stamps = [_seconds(stamp) for stamp, _ in found]
    return [(at - stamps[0], delay) for at, (_, delay) in zip(stamps, found, strict=True)]


def _seconds(stamp: str) -> float:
    clock = stamp.split("T")[1].rstrip("Z")
    hours, minutes, seconds = clock.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


@pytest_twisted.ensureDeferred
async def test_a_daemon_started_before_its_postgresql_waits_with_503s_and_recovers_by_itself(
    daemons, private_postgres
):
    await deferToThread(private_postgres.stop, "fast")
    url = private_postgres.url("termrooms")  # made but never migrated
    daemon = daemons(["--database-url", url, "--open-registration", *FAST_PASSWORDS])
    problems: list[str] = []
    await sleep(1.0)
    status, body = await health(daemon)
    if status != 503 or body.get("database") != "disconnected":
        problems.append(f"/health while PostgreSQL is down: {status} {body}")
    if body.get("error_code") != "unavailable":
        problems.append(f"/health's error_code while down: {body}")
    api_answers = []
    for method, path, payload in (
        ("POST", "/api/auth/register", {"username": "early", "password": PASSWORD}),
        ("POST", "/api/auth/login", {"username": "early", "password": PASSWORD}),
    ):
        code, answer, headers = await api(daemon.base_url, method, path, body=payload)
        api_answers.append((path, code, (answer or {}).get("error_code")))
        if code != 503 or (answer or {}).get("error_code") != "unavailable":
            problems.append(f"{method} {path} while PostgreSQL is down: {code} {answer}")
    await sleep(max(0.0, DOWN_SECONDS - 1.0))
    retries = connection_retries(daemon.log())
    if daemon.process.poll() is not None:
        problems.append(
            f"the daemon exited ({daemon.process.returncode}) while PostgreSQL was down"
        )

    # Backoff: each of the pool's slots waits longer and longer, up to 5 s; a tight loop
    # would try hundreds of times a second.
    window = [delay for at, delay in retries if at <= DOWN_SECONDS - 1.5]
    longest = max((delay for _, delay in retries), default=0.0)
    per_second = len(window) / max(DOWN_SECONDS - 1.5, 1.0)
    if not retries or per_second > 15 or longest < 2.0:
        problems.append(
            f"no backoff: {len(window)} attempts in {DOWN_SECONDS - 1.5:g}s, longest delay"
            f" {longest}s"
        )

    started = time.monotonic()
    await deferToThread(private_postgres.start)
    back, answer = await poll(lambda: health(daemon), lambda a: a[0] == 200, timeout=60)
    recovered_in = time.monotonic() - started
    if not back:
        problems.append(f"/health after PostgreSQL came up: {answer}")
    code, registered, _ = await api(
        daemon.base_url,
        "POST",
        "/api/auth/register",
        body={"username": "late", "password": PASSWORD},
    )
    if code != 201:
        problems.append(f"register after the recovery: {code} {registered}")
    if "delta(s) applied now" not in daemon.log():
        problems.append("the daemon did not say it migrated the database")
    errors = unhandled_errors(daemon)
    if errors:
        problems.append(f"the log has unhandled errors: {errors[:5]}")
    assert not problems, "\n".join(problems) + "\n" + daemon.log()[-4000:]

    record_outcome(
        "faults/test_postgres_unreachable::"
        "test_a_daemon_started_before_its_postgresql_waits_with_503s_and_recovers_by_itself",
        what="a daemon started while its PostgreSQL (a private server) is stopped; then the "
        "server starts",
        load="health probes, register and login requests",
        faults=f"PostgreSQL down for the daemon's first {DOWN_SECONDS:g}s, database never migrated",
        outcome=f"/health 503 database disconnected, API {api_answers}; {len(window)} "
        f"connection attempts in {DOWN_SECONDS - 1.5:g}s (backoff up to {longest:.1f}s); "
        f"migrated and 200 {recovered_in:.1f}s after the server started, no restart",
    )
