"""
Test fixtures: a real PostgreSQL and a real Redis, found or started.

PostgreSQL: ``TERMROOMS_TEST_DATABASE_URL``, else 127.0.0.1:5432 (user postgres) when it
answers, else an embedded server from ``pgserver``. Each test session works in databases
of its own and drops them afterwards.

Redis: ``TERMROOMS_TEST_REDIS_URL``, else 127.0.0.1:6379 when it answers, else a
``redis-server`` started on a free port. Tests use their own db number and flush it.

With ``CI=true`` a test that needs a service fails instead of skipping when none can be had.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence
from urllib.parse import urlsplit, urlunsplit

import attrs
import psycopg2
import pytest
import pytest_twisted
from psycopg2 import sql

from cluster_support import Cluster
from support import (
    CuttableProxy,
    Daemon,
    PrivateRedis,
    port_answers,
    run_termrooms,
    start_daemon,
    target_of,
    unavailable,
)

# Parallel runs pick other db numbers; so does each pytest-xdist worker (gw0: 13, gw1: 14).
TEST_REDIS_DB = int(os.environ.get("TERMROOMS_TEST_REDIS_DB", "13")) + int(
    os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
)


def with_database(url: str, name: str) -> str:
    """The same server URL, naming another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


# --------------------------------------------------------------------------- PostgreSQL


@pytest.fixture(scope="session")
def postgres_admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A URL with rights to create databases on a real PostgreSQL server."""
    explicit = os.environ.get("TERMROOMS_TEST_DATABASE_URL")
    if explicit:
        yield explicit
        return
    local = "postgresql://postgres@127.0.0.1:5432/postgres"
    if port_answers("127.0.0.1", 5432):
        try:
            psycopg2.connect(local, connect_timeout=3).close()
            yield local
            return
        except psycopg2.OperationalError:
            pass
    import pgserver

    # pgserver runs PostgreSQL as an unprivileged user when we are root: give it a
    # directory it can reach.
    base = Path(tempfile.mkdtemp(prefix="termrooms-test-pg-"))
    base.chmod(0o755)
    server = pgserver.get_server(base / "pgdata", cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(base, ignore_errors=True)


@attrs.define
class DatabaseFactory:
    """Creates empty databases on the test server and drops them all at the end."""

    admin_url: str
    created: list[str] = attrs.Factory(list)

    def _admin(self) -> Any:
        connection = psycopg2.connect(self.admin_url)
        connection.autocommit = True
        return connection

    def create(self, template: str | None = None) -> str:
        """A new database, empty or a copy of ``template`` (which nobody may be using)."""
        name = f"termrooms_test_{os.getpid()}_{secrets.token_hex(4)}"
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        connection = self._admin()
        try:
            with connection.cursor() as cursor:
                cursor.execute(statement)
        finally:
            connection.close()
        self.created.append(name)
        return with_database(self.admin_url, name)

    def drop_all(self) -> None:
        connection = self._admin()
        with connection.cursor() as cursor:
            for name in self.created:
                cursor.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
        connection.close()
        self.created.clear()


@pytest.fixture(scope="session")
def databases(postgres_admin_url: str) -> Iterator[DatabaseFactory]:
    try:
        psycopg2.connect(postgres_admin_url, connect_timeout=5).close()
    except psycopg2.OperationalError as e:
        unavailable(f"no PostgreSQL for the tests: {e}")
    factory = DatabaseFactory(postgres_admin_url)
    yield factory
    factory.drop_all()


@pytest.fixture
def database_url(databases: DatabaseFactory) -> str:
    """An empty database of this test's own."""
    return databases.create()


@pytest.fixture(scope="session")
def migrated_database_url(databases: DatabaseFactory) -> str:
    """A database migrated once for the session, by the real command."""
    url = databases.create()
    run_termrooms(["migrate", "--database-url", url], check=True)
    return url


@pytest.fixture(scope="session")
def migrated_template(databases: DatabaseFactory) -> str:
    """The name of a migrated database that is only ever copied, never connected to."""
    url = databases.create()
    run_termrooms(["migrate", "--database-url", url], check=True)
    return urlsplit(url).path.lstrip("/")


@pytest.fixture
def fresh_migrated_database_url(databases: DatabaseFactory, migrated_template: str) -> str:
    """A migrated database of this test's own, copied in a few milliseconds."""
    return databases.create(template=migrated_template)


@pytest.fixture
def termrooms() -> Callable[..., subprocess.CompletedProcess]:
    return run_termrooms


# --------------------------------------------------------------------------- Redis


@pytest.fixture(scope="session")
def redis_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str | None]:
    explicit = os.environ.get("TERMROOMS_TEST_REDIS_URL")
    if explicit:
        yield explicit
        return
    if port_answers("127.0.0.1", 6379):
        yield "redis://127.0.0.1:6379"
        return
    if not PrivateRedis.available():
        yield None
        return
    redis = PrivateRedis(tmp_path_factory.mktemp("redis"))
    try:
        redis.start()
    except AssertionError:
        yield None
        return
    try:
        yield f"redis://127.0.0.1:{redis.port}"
    finally:
        redis.stop()


@pytest.fixture
def redis_url(redis_server_url: str | None) -> Iterator[str]:
    """A Redis db of the tests' own, flushed before and after each test."""
    if redis_server_url is None:
        unavailable("no Redis for the tests: none on 127.0.0.1:6379 and no redis-server binary")
    url = f"{redis_server_url.rstrip('/')}/{TEST_REDIS_DB}"
    _flush(url)
    yield url
    _flush(url)


def _flush(url: str) -> None:
    """FLUSHDB over a raw socket: the fixture needs no client library of its own."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port or 6379), timeout=5) as s:
        s.sendall(
            f"*2\r\n$6\r\nSELECT\r\n${len(str(TEST_REDIS_DB))}\r\n{TEST_REDIS_DB}\r\n".encode()
        )
        s.sendall(b"*1\r\n$7\r\nFLUSHDB\r\n")
        received = b""
        while received.count(b"\r\n") < 2:
            chunk = s.recv(64)
            if not chunk:
                break
            received += chunk
    assert received == b"+OK\r\n+OK\r\n", received


# --------------------------------------------------------------------------- daemon


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    """Start daemons; every one still running is stopped after the test."""
    started: list[Daemon] = []

    def start(args: list[str], **kwargs: Any) -> Daemon:
        daemon = start_daemon(args, tmp_path, **kwargs)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        if daemon.process.poll() is None:
            daemon.process.kill()
            daemon.process.wait(10)


# --------------------------------------------------------------------------- faults


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A redis-server of this test's own, which the test may stop and restart."""
    if not PrivateRedis.available():
        unavailable("no redis-server binary for a private Redis")
    directory = tmp_path / "redis"
    directory.mkdir()
    redis = PrivateRedis(directory)
    redis.start()
    yield redis
    redis.stop()


@pytest.fixture
def make_cluster(
    daemons: Callable[..., Daemon],
    databases: DatabaseFactory,
    migrated_template: str,
    tmp_path: Path,
) -> Iterator[Callable[..., Cluster]]:
    """Clusters of real daemons on a fresh migrated database (or ``database_url``)."""
    made: list[Cluster] = []

    def make(
        redis_url: str | None, flags: Sequence[str] = (), database_url: str | None = None
    ) -> Cluster:
        url = database_url or databases.create(template=migrated_template)
        cluster = Cluster(tmp_path, url, redis_url, daemons, list(flags))
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.close_clients()


@pytest_twisted.async_yield_fixture
async def database_proxy(migrated_database_url: str) -> CuttableProxy:
    from twisted.internet import reactor

    proxy = await CuttableProxy(reactor, target_of(migrated_database_url)).start()
    proxy.url = proxy.url_through(migrated_database_url)
    proxy.target_database_url = migrated_database_url
    yield proxy
    await proxy.cut()
