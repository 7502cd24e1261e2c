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
import statistics
import time

import treq
from twisted.internet.defer import ensureDeferred, gatherResults

from harness import DEFAULT_ADMIN_URL, daemon, measure


async def logins_per_second(reactor, base_url: str, duration: float, concurrency: int) -> dict:
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
        default=DEFAULT_ADMIN_URL,
        help="a server where a scratch database can be created",
    )
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--password-threads", type=int, default=2)
    args = parser.parse_args()

    flags = ["--open-registration", "--no-rate-limits"]
    flags += ["--password-threads", str(args.password_threads)]
    with daemon(args.database_url, *flags) as base_url:
        results = measure(
            lambda reactor: logins_per_second(reactor, base_url, args.duration, args.concurrency)
        )

    print(f"{'scenario':<48} {'logins/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-200':>8}")
    label = f"login, argon2id 19MiB t=2, {args.password_threads} thr, {args.concurrency} conc"
    print(
        f"{label:<48} {results['rate']:>9.1f} {results['p50']:>8.1f} {results['p99']:>8.1f}"
        f" {results['failures']:>8}"
    )


if __name__ == "__main__":
    main()
