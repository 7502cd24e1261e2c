"""Helpers shared by the tests: free ports, real daemon processes, a cuttable proxy."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs
import psycopg2
import pytest
import treq
from autobahn.twisted.websocket import (
    WebSocketClientFactory,
    WebSocketClientProtocol,
    connectWS,
)
from twisted.internet import protocol
from twisted.internet import reactor as default_reactor
from twisted.internet.defer import Deferred, DeferredQueue
from twisted.internet.endpoints import clientFromString
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.protocols import portforward

from termrooms.config import Config
from termrooms.domain.ratelimit import RateLimit
from termrooms.handlers.passwords import PasswordPolicy, PasswordWorkers, hash_password
from termrooms.server import TermroomsServer
from termrooms.service import DatabaseStartupService
from termrooms.storage.users import create_user_txn
from termrooms.transport.gateway.protocol import BAD_FRAMES_BEFORE_CLOSE, CLOSE_POLICY

BIN = Path(sys.executable).parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# `make test-hostile`: the fault, fuzz and attack tests run their long variants.
HOSTILE = os.environ.get("TERMROOMS_HOSTILE", "").lower() in ("1", "true", "yes")
# Screenshots, reliability figures and other artefacts of a run.
TEST_OUTPUT = Path(
    os.environ.get("TERMROOMS_TEST_OUTPUT", Path(__file__).resolve().parent.parent / "test-output")
)


def record_outcome(
    test: str,
    *,
    what: str,
    load: str,
    faults: str,
    outcome: str,
    sent: int | None = None,
    acked: int | None = None,
    delivered: int | None = None,
    lost: int | None = None,
    duplicated: int | None = None,
) -> None:
    """One row of docs/reliability.md, written by the test that measured it (after its
    assertions passed) under TEST_OUTPUT/reliability/; tests/reliability_report.py
    turns the rows of the latest run into the report's table. ``faults`` says what was
    injected or which hostile inputs were tried; ``outcome`` what held."""
    row = {
        "test": test,
        "what": what,
        "load": load,
        "faults": faults,
        "outcome": outcome,
        "sent": sent,
        "acked": acked,
        "delivered": delivered,
        "lost": lost,
        "duplicated": duplicated,
        "variant": "long" if HOSTILE else "default",
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    folder = TEST_OUTPUT / "reliability"
    folder.mkdir(parents=True, exist_ok=True)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in test)
    (folder / f"{safe}.json").write_text(json.dumps(row, indent=1) + "\n")


def unavailable(reason: str) -> None:
    """Skip, or fail under CI, a test whose service or tool cannot be had."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: failing rather than skipping)")
    pytest.skip(reason)


def third_party_imports(module: Any) -> set[str]:
    """What a module imports from outside the standard library: pure modules stay pure."""
    tree = ast.parse(Path(module.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    return {n for n in imported if n.split(".")[0] not in sys.stdlib_module_names} - {"__future__"}


def clean_environ() -> dict[str, str]:
    """The environment without any TERMROOMS_* setting of the developer's."""
    return {k: v for k, v in os.environ.items() if not k.startswith("TERMROOMS_")}


def run_termrooms(
    args: list[str], *, check: bool = False, input: str | None = None, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run the installed ``termrooms`` command."""
    result = subprocess.run(
        [str(BIN / "termrooms"), *args],
        capture_output=True,
        text=True,
        input=input,
        timeout=120,
        env={**clean_environ(), **(env or {})},
    )
    if check and result.returncode != 0:
        raise AssertionError(f"termrooms {args} failed:\n{result.stdout}\n{result.stderr}")
    return result


def port_answers(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@attrs.define
class PrivateRedis:
    """A redis-server of the tests' own on a free port, to stop, start and restart at will."""

    directory: Path
    port: int = attrs.field(factory=free_port)
    process: subprocess.Popen | None = None

    @staticmethod
    def available() -> bool:
        return shutil.which("redis-server") is not None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, wait: float = 10) -> None:
        log = (self.directory / "redis.log").open("a")
        self.process = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + wait
        while not port_answers("127.0.0.1", self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"redis-server did not start on {self.port}")
            time.sleep(0.02)

    def stop(self) -> None:
        """Gone, as an operator's restart or a crash makes it: every connection drops."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


# The PostgreSQL 16 binaries of the pgserver wheel, which termrooms depends on.
PGSERVER_BIN = Path(importlib.util.find_spec("pgserver").origin).parent / "pginstall" / "bin"


@attrs.define
class PrivatePostgres:
    """
    A PostgreSQL server of the test's own on a free port (the binaries of the pgserver
    wheel), to restart, crash and stop at will: the machine's shared server is used by
    others and must never be. As root, PostgreSQL runs as the unprivileged ``pgserver``
    user (initdb and postgres refuse root), as pgserver itself does.
    """

    directory: Path  # reachable by the server's user; the data directory goes inside
    port: int = attrs.field(factory=free_port)

    @staticmethod
    def available() -> bool:
        return (PGSERVER_BIN / "pg_ctl").exists()

    @property
    def system_user(self) -> str | None:
        return "pgserver" if os.geteuid() == 0 else None

    @property
    def pgdata(self) -> Path:
        return self.directory / "pgdata"

    @property
    def log_path(self) -> Path:
        return self.directory / "postgres.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(
            [str(PGSERVER_BIN / tool), *args],
            check=True,
            capture_output=True,
            timeout=120,
            user=self.system_user,
        )

    def init(self) -> None:
        """initdb, with trust authentication and a socket directory of its own."""
        self.directory.chmod(0o755)
        if self.system_user:
            shutil.chown(self.directory, self.system_user, self.system_user)
        self._run("initdb", "-D", str(self.pgdata), "--auth=trust", "-U", "postgres", "-E", "utf8")

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1"
        options += f" -c unix_socket_directories={self.directory}"
        self._run(
            "pg_ctl", "-D", str(self.pgdata), "-l", str(self.log_path), "-o", options, "-w", "start"
        )

    def stop(self, mode: str = "fast") -> None:
        """``fast``: an operator's stop (sessions terminated); ``immediate``: a crash."""
        self._run("pg_ctl", "-D", str(self.pgdata), "-m", mode, "-w", "stop")

    @property
    def running(self) -> bool:
        return (self.pgdata / "postmaster.pid").exists()

    def restart(self, mode: str = "fast") -> None:
        """``pg_ctl restart``: stopped in ``mode``, started again with the same options."""
        self._run(
            "pg_ctl", "-D", str(self.pgdata), "-l", str(self.log_path), "-m", mode, "-w", "restart"
        )

    def create_database(self, name: str) -> str:
        connection = psycopg2.connect(self.url())
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()
        return self.url(name)


@attrs.define
class Daemon:
    """A real ``twistd -n termrooms`` process."""

    process: subprocess.Popen
    port: int
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 10) -> int:
        if self.process.poll() is None:
            self.process.terminate()
        return self.process.wait(timeout)


def start_daemon(
    args: list[str],
    tmp_path: Path,
    *,
    env: dict | None = None,
    wait: float = 60,
    until_listening: bool = True,
    port: int | None = None,
) -> Daemon:
    """Start the daemon on ``port`` (default: a free one); return once it listens (unless
    told not to wait). The same port again is a restart as its clients see it."""
    port = port or free_port()
    log_path = tmp_path / f"daemon-{port}.log"
    restarts = 1
    while log_path.exists():  # a restart keeps the earlier run's log
        log_path = tmp_path / f"daemon-{port}.{restarts}.log"
        restarts += 1
    process = subprocess.Popen(
        [
            str(BIN / "twistd"),
            "--nodaemon",
            "--pidfile=",
            "termrooms",
            "--listen",
            f"tcp:{port}:interface=127.0.0.1",
            "--log-format",
            "json",
            *args,
        ],
        stdout=log_path.open("w"),
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
        env={**clean_environ(), **(env or {})},
    )
    daemon = Daemon(process, port, log_path)
    deadline = time.monotonic() + wait
    while until_listening and not port_answers("127.0.0.1", port):
        if process.poll() is not None:
            raise AssertionError(f"daemon exited with {process.returncode}:\n{daemon.log()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"daemon did not listen within {wait} s:\n{daemon.log()}")
        time.sleep(0.05)
    return daemon


class _ProxyServer(portforward.ProxyServer):
    """Forwards one accepted connection to the proxy's target."""

    def connectionMade(self) -> None:
        self.factory.active.add(self)
        self.transport.pauseProducing()
        client = self.clientProtocolFactory()
        client.setServer(self)
        d = self.factory.target.connect(client)
        d.addErrback(lambda _: self.transport.loseConnection())

    def connectionLost(self, reason: Any) -> None:
        self.factory.active.discard(self)
        super().connectionLost(reason)


class _ProxyFactory(protocol.Factory):
    protocol = _ProxyServer

    def __init__(self, target: Any) -> None:
        self.target = target
        self.active: set[_ProxyServer] = set()


@attrs.define
class CuttableProxy:
    """
    A TCP proxy in this test's reactor in front of a real server (TCP or unix socket).
    ``cut()`` makes the server unreachable, as a crash or a network fault would;
    ``restore()`` brings it back on the same port.
    """

    reactor: Any
    target_description: str
    port: int = 0
    url: str = ""  # the test database, reached through the proxy
    target_database_url: str = ""  # the same database, reached directly
    _factory: Any = None
    _listening: Any = None

    async def start(self) -> "CuttableProxy":
        self._factory = _ProxyFactory(clientFromString(self.reactor, self.target_description))
        self._listening = self.reactor.listenTCP(self.port, self._factory, interface="127.0.0.1")
        self.port = self._listening.getHost().port
        return self

    async def cut(self) -> None:
        if self._listening is not None:
            listening, self._listening = self._listening, None
            await listening.stopListening()
        for server in list(self._factory.active):
            server.transport.abortConnection()

    async def restore(self) -> None:
        self._listening = self.reactor.listenTCP(self.port, self._factory, interface="127.0.0.1")

    def url_through(self, database_url: str) -> str:
        """``database_url``, reaching its server through this proxy."""
        parts = urlsplit(database_url)
        user = parts.username or "postgres"
        return f"postgresql://{user}@127.0.0.1:{self.port}{parts.path}"


def target_of(database_url: str) -> str:
    """A client endpoint description for the server a PostgreSQL URL names."""
    parts = urlsplit(database_url)
    query = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p)
    socket_dir = query.get("host") or (
        parts.hostname if (parts.hostname or "").startswith("/") else None
    )
    if socket_dir:
        return f"unix:path={socket_dir}/.s.PGSQL.{parts.port or 5432}"
    return f"tcp:host={parts.hostname or '127.0.0.1'}:port={parts.port or 5432}"


class RunningServer:
    """An in-process termrooms server (start-up service and site) on a free port."""

    def __init__(self, config: Config) -> None:
        self.server = TermroomsServer(config, default_reactor)
        self.fatal_messages: list[str] = []
        self.startup = DatabaseStartupService(self.server, self.fatal_messages.append)

    async def start(self) -> "RunningServer":
        self.startup.startService()
        self.port = default_reactor.listenTCP(0, self.server.get_site(), interface="127.0.0.1")
        self.url = f"http://127.0.0.1:{self.port.getHost().port}"
        return self

    async def stop(self) -> None:
        await self.port.stopListening()
        await self.startup.stopService()

    async def request(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any, Any]:
        """One HTTP request; the decoded JSON body (None when empty) and the headers."""
        response = await treq.request(method, self.url + path, **kwargs)
        content = await response.content()
        return response.code, json.loads(content) if content else None, response.headers

    async def health(self) -> tuple[int, dict, Any]:
        response = await treq.get(self.url + "/health")
        return response.code, await response.json(), response.headers

    async def wait_for_status(self, code: int, timeout: float = 20.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            status, body, _ = await self.health()
            if status == code:
                return body
            if time.monotonic() > deadline:
                raise AssertionError(f"/health stayed {status} {body}, wanted {code}")
            await deferLater(default_reactor, 0.1)


class _WebSocketTestProtocol(WebSocketClientProtocol):
    def onOpen(self) -> None:
        self.factory.opened.callback(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.factory.frames.put(json.loads(payload))

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        if not self.factory.opened.called:
            self.factory.opened.errback(ConnectionError(f"handshake failed: {reason}"))
        self.factory.closed.callback((code, reason))


@attrs.define(eq=False)
class WebSocketTestClient:
    """A real WebSocket client: frames arrive in a queue, the close code is awaited."""

    protocol: Any
    frames: DeferredQueue
    closed: Deferred

    async def next_frame(self, timeout: float = 5.0) -> dict:
        return await with_timeout(self.frames.get(), timeout)

    def send(self, frame: dict) -> None:
        self.protocol.sendMessage(json.dumps(frame).encode())

    async def close_code(self, timeout: float = 10.0) -> int | None:
        code, _ = await with_timeout(self.closed, timeout)
        return code


async def ws_connect(url: str, origin: str | None = None, tls: Any = None) -> WebSocketTestClient:
    """``tls``: the client TLS options for a wss:// URL (e.g. trusting a test certificate)."""
    factory = WebSocketClientFactory(url, origin=origin)
    factory.protocol = _WebSocketTestProtocol
    factory.frames = DeferredQueue()
    factory.opened = Deferred()
    factory.closed = Deferred()
    connectWS(factory, contextFactory=tls)
    protocol = await with_timeout(factory.opened, 10.0)
    return WebSocketTestClient(protocol, factory.frames, factory.closed)


def with_timeout(d: Deferred, seconds: float) -> Deferred:
    return d.addTimeout(seconds, default_reactor)


async def websocket_handshake_status(
    base_url: str, query: str, origin: str | None = None
) -> tuple[int, Any]:
    """The HTTP answer to an upgrade request: (status, JSON body or None)."""
    headers = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    }
    if origin is not None:
        headers["Origin"] = origin
    response = await treq.get(f"{base_url}/ws{query}", headers=headers)
    content = await response.content()
    return response.code, json.loads(content) if content else None


# --------------------------------------------------------------------------- accounts

FAST = PasswordPolicy(memory_kib=8192, time_cost=1, parallelism=1)
PASSWORD = "correct horse battery"


def config_for(url: str, tmp_path: Any, **overrides: Any) -> Config:
    settings = dict(
        database_url=url,
        data_dir=tmp_path,
        argon2_memory_kib=FAST.memory_kib,
        argon2_time_cost=FAST.time_cost,
    )
    settings.update(overrides)
    return Config(**settings)


async def start(config: Config, hasher: Any = None) -> RunningServer:
    """A running server whose health is 200; ``hasher`` replaces argon2's, to watch it."""
    running = RunningServer(config)
    if hasher is not None:
        running.server.passwords = PasswordWorkers(
            running.server.reactor,
            FAST,
            threads=2,
            queue=64,
            make_hasher=lambda policy: hasher,
        )
    await running.start()
    await running.wait_for_status(200)
    return running


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def add_user(running: RunningServer, name: str, role: str = "user") -> None:
    password_hash = await deferToThread(hash_password, PASSWORD, FAST)
    await running.server.get_database().run_interaction(
        create_user_txn, running.server.get_snowflakes().next_id(), name, password_hash, role=role
    )


async def login(running: RunningServer, name: str, password: str = PASSWORD) -> tuple[int, Any]:
    code, body, _ = await running.request(
        "POST", "/api/auth/login", json={"username": name, "password": password}
    )
    return code, body


async def metrics_after_traffic(database_url: str, redis_url: str, tmp_path: Path) -> str:
    """``GET /metrics`` of a daemon with Redis, after HTTP requests, a socket, a message,
    a command, an error, a refused login, a refused handshake and a socket the server
    closed: every family then has samples, so what the dashboard and the alert rules
    read of it can be checked against it."""
    config = config_for(
        database_url, tmp_path, redis_url=redis_url, login_rate_limit=RateLimit(1, 60.0)
    )
    running = await start(config)
    try:
        await add_user(running, "ada")
        status, session = await login(running, "ada")
        assert status == 200
        assert (await login(running, "ada", "wrong password"))[0] == 429
        token = session["access_token"]
        room = {"name": "lobby", "visibility": "public"}
        assert (await running.request("POST", "/api/rooms", json=room, headers=bearer(token)))[
            0
        ] == 201
        assert (await running.request("GET", "/api/rooms/nowhere", headers=bearer(token)))[0] == 404
        client = await ws_connect(running.url.replace("http", "ws") + f"/ws?token={token}")
        await client.next_frame()  # welcome
        client.send({"type": "join", "room": "lobby"})
        assert (await client.next_frame())["type"] == "joined"
        client.send({"type": "send", "room": "lobby", "body": "hi", "client_msg_id": "m1"})
        client.send({"type": "command", "room": "lobby", "line": "/who", "ref": "c1"})
        seen: set[str] = set()
        while not {"ack", "message", "reply"} <= seen:
            seen.add((await client.next_frame())["type"])
        assert (await websocket_handshake_status(running.url, ""))[0] == 401  # no token
        rude = await ws_connect(running.url.replace("http", "ws") + f"/ws?token={token}")
        await rude.next_frame()  # welcome
        for _ in range(BAD_FRAMES_BEFORE_CLOSE):
            rude.send({"type": "bogus"})
        assert await rude.close_code() == CLOSE_POLICY  # closed by the server
        response = await treq.get(running.url + "/metrics")
        assert response.code == 200
        text = await response.text()
        client.protocol.sendClose(1000)
        await client.close_code()
    finally:
        await running.stop()
    return text
