"""
What every benchmark here needs: a real daemon (``twistd -n termrooms``) on a scratch
database of a PostgreSQL server, healthy before the measurement starts and gone after,
and the measurement run on a reactor of its own.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator, Sequence
from urllib.parse import urlsplit, urlunsplit

import psycopg2
from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol, connectWS
from psycopg2 import sql
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import react

BIN = Path(sys.executable).parent
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _admin(admin_url: str) -> Any:
    connection = psycopg2.connect(admin_url)
    connection.autocommit = True
    return connection


@contextmanager
def scratch_database(admin_url: str) -> Iterator[str]:
    """A new database on the server of ``admin_url``, dropped afterwards; yields its URL."""
    name = f"termrooms_bench_{secrets.token_hex(4)}"
    connection = _admin(admin_url)
    with connection.cursor() as cursor:
        cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    connection.close()
    try:
        yield urlunsplit(urlsplit(admin_url)._replace(path="/" + name))
    finally:
        connection = _admin(admin_url)
        with connection.cursor() as cursor:
            cursor.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        connection.close()


def wait_until_healthy(base_url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(base_url + "/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit("the daemon did not become healthy")


@contextmanager
def daemon(admin_url: str, *flags: str) -> Iterator[str]:
    """A daemon with ``flags`` on a scratch database; yields its base URL once healthy."""
    with scratch_database(admin_url) as database_url:
        with daemon_on(database_url, *flags) as base_url:
            yield base_url


@contextmanager
def daemon_on(database_url: str, *flags: str) -> Iterator[str]:
    """A daemon with ``flags`` on an existing database (several may share one)."""
    with daemon_process(database_url, flags) as (base_url, _):
        yield base_url


@contextmanager
def daemon_process(
    database_url: str, flags: Sequence[str], wrapper: Sequence[str] = ()
) -> Iterator[tuple[str, subprocess.Popen]]:
    """
    A daemon with ``flags`` on an existing database, run under ``wrapper`` (``taskset``
    say); yields its base URL once healthy, and its process for its CPU and memory.
    """
    port = free_port()
    data_dir = Path(os.environ.get("TMPDIR", "/tmp")) / f"termrooms-bench-{port}"
    process = subprocess.Popen(
        [
            *wrapper,
            str(BIN / "twistd"),
            "--nodaemon",
            "--pidfile=",
            "termrooms",
            "--listen",
            f"tcp:{port}:interface=127.0.0.1:backlog=1024",
            "--database-url",
            database_url,
            "--data-dir",
            str(data_dir),
            "--log-level",
            "warn",
            *flags,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base_url = f"http://127.0.0.1:{port}"
        wait_until_healthy(base_url)
        yield base_url, process
    finally:
        process.terminate()
        process.wait(15)
        shutil.rmtree(data_dir, ignore_errors=True)


@contextmanager
def redis_server(url: str | None) -> Iterator[str]:
    """``url`` when given; else a private redis-server on a free port, gone afterwards."""
    if url:
        yield url
        return
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("no redis-server on PATH: pass --redis-url")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="termrooms-bench-redis-") as directory:
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
            + ["no", "--dir", directory],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or process.poll() is not None:
                        raise SystemExit("redis-server did not start") from None
                    time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            process.wait(10)


def measure(work: Callable[[Any], Awaitable[dict]]) -> dict:
    """Run ``await work(reactor)`` on a reactor of its own; its result."""
    results: dict = {}

    async def run(reactor: Any) -> None:
        results.update(await work(reactor))

    try:
        react(lambda reactor: ensureDeferred(run(reactor)))
    except SystemExit:
        pass
    return results


class BenchClient(WebSocketClientProtocol):
    """A load-generator socket: every frame it gets goes to its factory's ``receiver``."""

    def onOpen(self) -> None:
        self.factory.opened.callback(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.factory.receiver.receive(self, json.loads(payload))


async def open_client(url: str, receiver: Any) -> BenchClient:
    """A connected BenchClient; ``receiver.receive(client, frame)`` sees its frames."""
    factory = WebSocketClientFactory(url)
    factory.protocol = BenchClient
    factory.opened = Deferred()
    factory.receiver = receiver
    connectWS(factory)
    return await factory.opened
