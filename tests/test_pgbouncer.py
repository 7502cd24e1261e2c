"""
A real daemon whose pool goes through a real PgBouncer in transaction mode, running the
[pgbouncer] settings of docs/deploy/pgbouncer.ini, while LISTEN and migrations go to
PostgreSQL directly (--database-session-url).
"""

from __future__ import annotations

import configparser
import json
import os
import pwd
import shutil
import subprocess
import time
from pathlib import Path
from typing import Iterator
from urllib.parse import parse_qs, urlsplit

import attrs
import psycopg2
import psycopg2.extras
import pytest
import pytest_twisted
import treq

from support import bearer, free_port, port_answers, unavailable, ws_connect
from test_daemon import wait_for_health
from test_rooms import frames_until

pytestmark = pytest.mark.slow

SAMPLE = Path(__file__).resolve().parent.parent / "docs" / "deploy" / "pgbouncer.ini"
POOL_SIZE = 4  # the daemon's --database-pool-size
SERVER_CONNECTIONS = 2  # PgBouncer's default_pool_size: fewer than the daemon's pool


@attrs.define
class PgBouncer:
    process: subprocess.Popen
    port: int
    log_path: Path
    user: str
    database: str = "termrooms"

    def url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{self.database}"

    def show(self, what: str) -> list[dict]:
        """A SHOW command on PgBouncer's admin console, for this test's database."""
        connection = psycopg2.connect(
            f"postgresql://{self.user}@127.0.0.1:{self.port}/pgbouncer", connect_timeout=5
        )
        connection.autocommit = True  # the console takes no BEGIN
        try:
            with connection.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cursor:
                cursor.execute(f"SHOW {what}")
                rows = cursor.fetchall()
        finally:
            connection.close()
        return [r for r in rows if r.get("database") == self.database]


def user_of(database_url: str) -> str:
    return urlsplit(database_url).username or "postgres"


def pgbouncer_settings(database_url: str, workdir: Path, port: int) -> configparser.ConfigParser:
    """The sample's settings, with only what is machine-specific replaced."""
    settings = configparser.ConfigParser(interpolation=None)
    settings.read_string(SAMPLE.read_text())
    assert settings["pgbouncer"]["pool_mode"] == "transaction"
    parts = urlsplit(database_url)
    host = parse_qs(parts.query).get("host", [parts.hostname or "127.0.0.1"])[0]
    user = user_of(database_url)
    server = f"host={host} port={parts.port or 5432} dbname={parts.path.lstrip('/')} user={user}"
    if parts.password:
        server += f" password={parts.password}"
    settings["databases"] = {"termrooms": server}
    auth_file = workdir / "userlist.txt"
    auth_file.write_text(f'"{user}" ""\n')
    bouncer = settings["pgbouncer"]
    bouncer.update(
        listen_addr="127.0.0.1",
        listen_port=str(port),
        unix_socket_dir="",
        auth_type="trust",
        auth_file=str(auth_file),
        admin_users=user,
        default_pool_size=str(SERVER_CONNECTIONS),
        reserve_pool_size="0",
    )
    for machine_path in ("logfile", "pidfile"):
        bouncer.pop(machine_path, None)  # log to stderr, no pid file
    if os.geteuid() == 0:
        # PgBouncer refuses to run as root, and reaches a unix socket as the user it runs
        # as: the socket's owner (the embedded server's user) can, nobody else may.
        bouncer["user"] = socket_owner(host, parts.port or 5432) or "nobody"
    return settings


def socket_owner(host: str, port: int) -> str | None:
    """Who owns PostgreSQL's unix socket when ``host`` is its directory (not root)."""
    if not host.startswith("/"):
        return None
    try:
        uid = (Path(host) / f".s.PGSQL.{port}").stat().st_uid
    except OSError:
        return None
    return pwd.getpwuid(uid).pw_name if uid != 0 else None


@pytest.fixture
def pgbouncer(database_url: str, tmp_path: Path) -> Iterator[PgBouncer]:
    binary = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin")
    if binary is None:
        unavailable("pgbouncer is not installed (Debian: apt-get install pgbouncer)")
    port = free_port()
    ini = tmp_path / "pgbouncer.ini"
    with ini.open("w") as f:
        pgbouncer_settings(database_url, tmp_path, port).write(f)
    log_path = tmp_path / "pgbouncer.log"
    process = subprocess.Popen(
        [binary, str(ini)], stdout=log_path.open("w"), stderr=subprocess.STDOUT
    )
    bouncer = PgBouncer(process, port, log_path, user_of(database_url))
    deadline = time.monotonic() + 10
    while not port_answers("127.0.0.1", port):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"pgbouncer did not start:\n{log_path.read_text()}")
        time.sleep(0.05)
    yield bouncer
    process.terminate()
    process.wait(10)


@pytest.fixture
def pooled_daemon(daemons, pgbouncer, database_url):
    """A daemon on an empty database: it migrates over the session URL, pools via PgBouncer."""
    daemon = daemons(
        [
            "--database-url",
            pgbouncer.url(),
            "--database-session-url",
            database_url,
            "--database-pool-size",
            str(POOL_SIZE),
            "--open-registration",
            "--argon2-memory-kib",
            "8192",
        ]
    )
    wait_for_health(daemon.base_url, 200)
    return daemon


async def request(method: str, url: str, **kwargs) -> tuple[int, dict | None]:
    response = await treq.request(method, url, **kwargs)
    content = await response.content()
    return response.code, json.loads(content) if content else None


@pytest_twisted.ensureDeferred
async def test_a_daemon_pooling_through_pgbouncer_in_transaction_mode_serves_rooms(
    pooled_daemon, pgbouncer
):
    base = pooled_daemon.base_url
    status, session = await request(
        "POST",
        base + "/api/auth/register",
        json={"username": "ada", "password": "correct horse battery"},
    )
    assert status == 201, session
    token = session["access_token"]
    status, room = await request(
        "POST",
        base + "/api/rooms",
        json={"name": "lobby", "visibility": "public"},
        headers=bearer(token),
    )
    assert status == 201, room

    client = await ws_connect(base.replace("http://", "ws://") + f"/ws?token={token}")
    assert (await client.next_frame())["type"] == "welcome"
    client.send({"type": "join", "room": "lobby", "since": 0})
    await frames_until(client, lambda f: f["type"] == "joined")

    bodies = [f"message {n}" for n in range(5)]
    for body in bodies:
        status, event = await request(
            "POST", base + "/api/rooms/lobby/messages", json={"body": body}, headers=bearer(token)
        )
        assert status == 201, event
    live = []
    while len(live) < len(bodies):
        frame = await client.next_frame()
        if frame["type"] == "message":
            live.append(frame["body"])
    assert live == bodies

    status, history = await request(
        "GET", base + "/api/rooms/lobby/messages", headers=bearer(token)
    )
    assert status == 200, history
    stored = [e for e in history["events"] if e["type"] == "message"]
    assert [e["body"] for e in stored] == bodies
    seqs = [e["seq"] for e in history["events"]]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # gapless through the pooler

    # The logout's NOTIFY is sent in a pooled transaction and heard on the direct session.
    status, _ = await request("POST", base + "/api/auth/logout", headers=bearer(token))
    assert status == 204
    assert await client.close_code() == 4001

    # Only the pool went through PgBouncer (the listener and migrations did not), and its
    # connections took turns on fewer server connections: transaction pooling was in use.
    clients = pgbouncer.show("CLIENTS")
    assert len(clients) == POOL_SIZE, clients
    assert {c["application_name"] for c in clients} == {"termrooms"}
    servers = pgbouncer.show("SERVERS")
    assert 1 <= len(servers) <= SERVER_CONNECTIONS, servers
    (stats,) = pgbouncer.show("STATS")
    assert stats["total_xact_count"] >= len(bodies) + 3, stats
