"""
Fan-out across instances: one room, SUBSCRIBERS sockets split evenly over 1 or 2
daemons (one database, one Redis, one signing key), SENDERS sockets on instance 1,
DURATION seconds per row at each offered rate. Prints one table row per (instances,
rate): deliveries per second, the share of them that crossed to another instance,
send-to-delivery latency p50/p99, and the lost, duplicated and out-of-order deliveries
counted over every subscriber (all must be 0).

The load generator is this one Python process (Autobahn clients on one reactor): on a
2-core machine it competes with the daemons, PostgreSQL and Redis for CPU, so the
figures are a floor, and the second instance costs CPU the first one then lacks.

    .venv/bin/python bench/cluster.py [--database-url URL] [--redis-url URL]
        [--subscribers 200] [--senders 10] [--rates 200] [--instances 1,2]
        [--duration 5]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import treq
from twisted.internet.defer import Deferred, DeferredSemaphore, ensureDeferred, gatherResults
from twisted.internet.task import deferLater

from harness import (
    DEFAULT_ADMIN_URL,
    BenchClient,
    daemon_on,
    measure,
    open_client,
    redis_server,
    scratch_database,
)

ROOM = "bench"


class Row:
    """One measurement: what was sent when, and what every subscriber received."""

    def __init__(self, subscribers_by_client: dict[Any, int]) -> None:
        self.instance_of = subscribers_by_client  # subscriber -> instance index (0 = senders')
        self.next_seq: dict[Any, int] = {}
        self.seen: dict[Any, set[int]] = {}
        self.joined: dict[Any, Deferred] = {}
        self.sent_at: dict[str, float] = {}
        self.acked = 0
        self.deliveries = 0
        self.cross = 0
        self.duplicates = 0
        self.out_of_order = 0
        self.latencies: list[float] = []
        self.cross_latencies: list[float] = []
        self.last_delivery = 0.0

    def receive(self, client: Any, frame: dict) -> None:
        kind = frame["type"]
        if kind == "joined":
            self.next_seq[client] = frame["last_seq"] + 1
            self.seen[client] = set()
            waiting = self.joined.pop(client, None)
            if waiting is not None:
                waiting.callback(None)
        elif kind == "ack":
            self.acked += 1
        elif "seq" in frame and "room" in frame and client in self.instance_of:
            seq = frame["seq"]
            seen = self.seen[client]
            if seq in seen:
                self.duplicates += 1
                return
            seen.add(seq)
            if seq != self.next_seq[client]:
                self.out_of_order += 1
            self.next_seq[client] = max(self.next_seq[client], seq + 1)
            if kind == "message":
                now = time.monotonic()
                latency = now - self.sent_at[frame["client_msg_id"]]
                self.deliveries += 1
                self.latencies.append(latency)
                if self.instance_of[client] != 0:
                    self.cross += 1
                    self.cross_latencies.append(latency)
                self.last_delivery = now


async def register(base_urls: list[str], count: int) -> list[str]:
    limit = DeferredSemaphore(8)

    async def one(i: int) -> str:
        credentials = {"username": f"bench{i:04d}", "password": "bench-password-1"}
        response = await treq.post(
            base_urls[i % len(base_urls)] + "/api/auth/register", json=credentials
        )
        return (await response.json())["access_token"]

    return await gatherResults(
        [limit.run(lambda i=i: ensureDeferred(one(i))) for i in range(count)]
    )


async def join(client: BenchClient, row: Row) -> None:
    row.joined[client] = Deferred()
    client.sendMessage(json.dumps({"type": "join", "room": ROOM}).encode())
    await row.joined[client]


async def run_row(
    reactor: Any, base_urls: list[str], args: argparse.Namespace, rate: float
) -> dict:
    tokens = await register(base_urls, args.subscribers + args.senders)
    await treq.post(
        base_urls[0] + "/api/rooms",
        json={"name": ROOM, "visibility": "public"},
        headers={"Authorization": f"Bearer {tokens[0]}"},
    )
    placement: dict[Any, int] = {}
    row = Row(placement)
    ws = [url.replace("http://", "ws://") + "/ws?token=" for url in base_urls]
    subscribers = []
    for i, token in enumerate(tokens[: args.subscribers]):
        instance = i % len(base_urls)
        client = await open_client(ws[instance] + token, row)
        placement[client] = instance
        subscribers.append(client)
    senders = [await open_client(ws[0] + token, row) for token in tokens[args.subscribers :]]
    await gatherResults([ensureDeferred(join(c, row)) for c in subscribers + senders])
    for sender in senders:  # members may send; unsubscribed, they receive nothing
        sender.sendMessage(json.dumps({"type": "leave", "room": ROOM}).encode())
    await deferLater(reactor, 0.5)

    interval = len(senders) / rate
    started = time.monotonic()
    deadline = started + args.duration

    async def send_loop(index: int, client: BenchClient) -> None:
        # Message n is due at a fixed time, so a busy reactor delays sends but does not
        # lower the offered rate: a sender that fell behind catches up.
        offset = interval * index / len(senders)  # the senders spread over an interval
        n = 0
        while True:
            due = started + offset + n * interval
            if due >= deadline:
                return
            if due > time.monotonic():
                await deferLater(reactor, due - time.monotonic())
            msg_id = f"{index}-{n}"
            row.sent_at[msg_id] = time.monotonic()
            frame = {"type": "send", "room": ROOM, "body": "x" * 100, "client_msg_id": msg_id}
            client.sendMessage(json.dumps(frame).encode())
            n += 1

    await gatherResults([ensureDeferred(send_loop(i, c)) for i, c in enumerate(senders)])
    sent = len(row.sent_at)
    expected = sent * len(subscribers)
    drain_until = time.monotonic() + args.drain
    while (row.acked < sent or row.deliveries < expected) and time.monotonic() < drain_until:
        await deferLater(reactor, 0.1)
    elapsed = max(row.last_delivery, deadline) - started
    for client in subscribers + senders:
        client.dropConnection(abort=True)
    latencies = sorted(row.latencies)
    cross = sorted(row.cross_latencies)
    return {
        "instances": len(base_urls),
        "rate": rate,
        "sent": sent,
        "acked": row.acked,
        "deliveries_per_s": row.deliveries / elapsed,
        "cross_per_s": row.cross / elapsed,
        "p50": percentile(latencies, 0.50),
        "p99": percentile(latencies, 0.99),
        "cross_p99": percentile(cross, 0.99),
        "lost": max(0, row.acked * len(subscribers) - row.deliveries),
        "duplicates": row.duplicates,
        "out_of_order": row.out_of_order,
    }


def percentile(ordered: list[float], fraction: float) -> float:
    """In milliseconds; 0 for none."""
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] * 1000


async def run(reactor: Any, args: argparse.Namespace, redis_url: str) -> dict:
    rows = []
    for instances in args.instances:
        for rate in args.rates:
            with ExitStack() as stack:
                database_url = stack.enter_context(scratch_database(args.database_url))
                keys = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "keys.json"
                flags = ["--open-registration", "--no-rate-limits", "--redis-url", redis_url]
                flags += ["--argon2-memory-kib", "8192", "--argon2-time-cost", "1"]
                flags += ["--signing-key-file", str(keys)]
                base_urls = [
                    # One at a time: the first creates the signing key file the others read.
                    stack.enter_context(daemon_on(database_url, *flags, "--node-id", str(n + 1)))
                    for n in range(instances)
                ]
                rows.append(await run_row(reactor, base_urls, args, rate))
    return {"rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_ADMIN_URL)
    parser.add_argument("--redis-url", help="default: a private redis-server on a free port")
    parser.add_argument("--subscribers", type=int, default=200)
    parser.add_argument("--senders", type=int, default=10)
    parser.add_argument(
        "--rates",
        type=lambda text: [float(r) for r in text.split(",")],
        default=[200.0],
        help="offered messages/s in all, comma-separated: one row per rate",
    )
    parser.add_argument(
        "--instances",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[1, 2],
        help="instance counts to compare, comma-separated",
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of sending per row")
    parser.add_argument("--drain", type=float, default=10.0, help="most seconds to wait after")
    args = parser.parse_args()

    with redis_server(args.redis_url) as redis_url:
        results = measure(lambda reactor: run(reactor, args, redis_url))

    print(
        f"{'instances':>9} {'offered/s':>9} {'acked':>6} {'deliv/s':>8} {'cross/s':>8}"
        f" {'p50':>8} {'p99':>8} {'cross p99':>9} {'lost':>5} {'dup':>4} {'disorder':>8}"
    )
    for r in results.get("rows", []):
        print(
            f"{r['instances']:>9} {r['rate']:>9g} {r['acked']:>6} {r['deliveries_per_s']:>8.0f}"
            f" {r['cross_per_s']:>8.0f} {r['p50']:>6.1f}ms {r['p99']:>6.1f}ms"
            f" {r['cross_p99']:>7.1f}ms {r['lost']:>5} {r['duplicates']:>4}"
            f" {r['out_of_order']:>8}"
        )
    print(
        f"one room; {args.subscribers} subscribers split evenly over the instances,"
        f" {args.senders} senders on instance 1, {args.duration:g}s per row"
    )


if __name__ == "__main__":
    main()
