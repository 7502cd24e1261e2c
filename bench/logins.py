"""
Logins per second one termrooms instance sustains, with the default argon2id parameters.

Starts a real daemon (``twistd -n termrooms``) on a scratch database, registers one user,
then keeps CONCURRENCY logins in flight for DURATION seconds from this process and prints
a table: completed logins per second, latency percentiles, and how many answers were not
200. Rate limits are switched off in the daemon for the measurement (they would stop a
single client after five attempts).

    .venv/bin/python bench/logins.py [--database-url URL] [--duration 10] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import treq
from psycopg2 import sql
from twisted.internet.defer import ensureDeferred, gatherResults
from twisted.internet.task import react

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def scratch_database(admin_url: str) -> tuple[str, str]:
    name = f"termrooms_bench_{secrets.token_hex(4)}"
    connection = psycopg2.connect(admin_url)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    connection.close()
    return name, urlunsplit(urlsplit(admin_url)._replace(path="/" + name))


def drop_database(admin_url: str, name: str) -> None:
    connection = psycopg2.connect(admin_url)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
    connection.close()


async def measure(reactor, base_url: str, duration: float, concurrency: int) -> dict:
    credentials = {"username": "bench", "password": "bench-password-1"}
    response = await treq.post(base_url + "/api/auth/register", json=credentials)
    assert response.code == 201, await response.text()
    latencies: list[float] = []
    failures = 0
    deadline = time.monotonic() + duration

    async def worker() -> None:
        nonlocal failures
        while time.monotonic() < deadline:
            started = time.monotonic()
            answer = await treq.post(base_url + "/api/auth/login", json=credentials)
            await answer.content()
            if answer.code == 200:
                latencies.append(time.monotonic() - started)
            else:
                failures += 1

    started = time.monotonic()
    await gatherResults([ensureDeferred(worker()) for _ in range(concurrency)])
    elapsed = time.monotonic() - started
    latencies.sort()
    return {
        "logins": len(latencies),
        "elapsed": elapsed,
        "rate": len(latencies) / elapsed,
        "p50": statistics.median(latencies) * 1000 if latencies else 0.0,
        "p99": latencies[int(len(latencies) * 0.99) - 1] * 1000 if latencies else 0.0,
        "failures": failures,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="a server where a scratch database can be created",
    )
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--password-threads", type=int, default=2)
    args = parser.parse_args()

    name, url = scratch_database(args.database_url)
    port = free_port()
    data_dir = Path(os.environ.get("TMPDIR", "/tmp")) / f"termrooms-bench-{port}"
    daemon = subprocess.Popen(
        [
            str(BIN / "twistd"),
            "--nodaemon",
            "--pidfile=",
            "termrooms",
            "--listen",
            f"tcp:{port}:interface=127.0.0.1",
            "--database-url",
            url,
            "--data-dir",
            str(data_dir),
            "--open-registration",
            "--no-rate-limits",
            "--password-threads",
            str(args.password_threads),
            "--log-level",
            "warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base_url = f"http://127.0.0.1:{port}"
        wait_until_healthy(base_url)
        results: dict = {}

        async def run(reactor) -> None:
            results.update(await measure(reactor, base_url, args.duration, args.concurrency))

        try:
            react(run)
        except SystemExit:
            pass
    finally:
        daemon.terminate()
        daemon.wait(15)
        drop_database(args.database_url, name)

    print(f"{'scenario':<48} {'logins/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-200':>8}")
    label = f"login, argon2id 19MiB t=2, {args.password_threads} thr, {args.concurrency} conc"
    print(
        f"{label:<48} {results['rate']:>9.1f} {results['p50']:>8.1f} {results['p99']:>8.1f}"
        f" {results['failures']:>8}"
    )


if __name__ == "__main__":
    main()
