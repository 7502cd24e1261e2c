"""The daemon as operators run it: a real ``twistd -n termrooms`` process."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg2
import pytest

pytestmark = pytest.mark.slow


def get_health(base_url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(base_url + "/health", timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def wait_for_health(base_url: str, status: int, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        code, body = get_health(base_url)
        if code == status:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"/health stayed {code} {body}")
        time.sleep(0.1)


def stop_and_time(daemon) -> tuple[int, float]:
    started = time.monotonic()
    code = daemon.stop(timeout=15)
    return code, time.monotonic() - started


def test_daemon_serves_health_with_external_database_and_exits_0_on_sigterm(daemons, database_url):
    daemon = daemons(["--database-url", database_url])
    body = wait_for_health(daemon.base_url, 200)
    assert body == {"status": "ok", "database": "connected", "redis": "disabled"}
    code, seconds = stop_and_time(daemon)
    assert code == 0, daemon.log()
    assert seconds < 5


def test_daemon_logs_one_json_object_per_line_without_secrets(daemons, database_url):
    daemon = daemons(["--database-url", database_url])
    wait_for_health(daemon.base_url, 200)
    urllib.request.urlopen(daemon.base_url + "/api/openapi.json?token=hush-hush", timeout=5).read()
    daemon.stop()
    lines = [line for line in daemon.log().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]
    assert all({"time", "level", "namespace", "message"} <= set(r) for r in records)
    assert any(r.get("path") == "/api/openapi.json" and r.get("status") == 200 for r in records)
    assert "hush-hush" not in daemon.log()


def test_daemon_with_no_database_url_runs_an_embedded_postgresql_and_stops_it(daemons):
    # pgserver runs PostgreSQL as an unprivileged user when we are root: the data
    # directory must be reachable by it, which pytest's private tmp_path is not.
    data_dir = Path(tempfile.mkdtemp(prefix="termrooms-embedded-"))
    data_dir.chmod(0o755)
    try:
        daemon = daemons(["--data-dir", str(data_dir)])
        # Polled from the moment it listens: while the embedded server starts, 503
        # "starting" (never a 500), then 200.
        answers = []
        deadline = time.monotonic() + 90
        while not answers or answers[-1][0] != 200:
            code, body = get_health(daemon.base_url)
            answers.append((code, body["database"]))
            assert time.monotonic() < deadline, answers[-3:]
            time.sleep(0.01)
        assert answers[0] == (503, "starting"), answers[:3]
        assert {code for code, _ in answers} <= {200, 503}
        assert answers[-1] == (200, "connected")
        assert '"level": "critical"' not in daemon.log()
        assert (data_dir / "postgres" / "PG_VERSION").exists()
        code, _ = stop_and_time(daemon)
        assert code == 0, daemon.log()
        assert not (data_dir / "postgres" / "postmaster.pid").exists(), (
            "embedded server left running"
        )
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def test_daemon_refuses_a_database_newer_than_it_knows_and_exits_non_zero(
    daemons, migrated_database_url, databases
):
    url = databases.create()
    connection = psycopg2.connect(url)
    with connection, connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        cursor.execute("INSERT INTO schema_migrations (version, name) VALUES (9999, 'future')")
    connection.close()
    daemon = daemons(["--database-url", url], until_listening=False)
    code = daemon.process.wait(30)
    assert code != 0
    assert "newer than this termrooms knows" in daemon.log()


def test_daemon_with_no_migrate_refuses_a_database_with_pending_migrations(daemons, database_url):
    daemon = daemons(["--database-url", database_url, "--no-migrate"], until_listening=False)
    assert daemon.process.wait(30) != 0
    assert "pending" in daemon.log()
    connection = psycopg2.connect(database_url)
    with connection, connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('users')")
        assert cursor.fetchone() == (None,), "--no-migrate must not apply anything"
    connection.close()


def test_environment_settings_reach_the_daemon(daemons, database_url):
    daemon = daemons([], env={"TERMROOMS_DATABASE_URL": database_url})
    assert wait_for_health(daemon.base_url, 200)["database"] == "connected"
