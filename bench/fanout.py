"""
Fan-out of one room: SUBSCRIBERS sockets receive what SENDERS sockets send, for
DURATION seconds, through a real daemon on a scratch database. Prints one table row:
messages acked per second, deliveries per second, ack latency p50/p99, and the lost,
duplicated and out-of-order deliveries counted over every subscriber (all must be 0).

The load generator is this one Python process (Autobahn clients on one reactor): on a
2-core machine it competes with the daemon for CPU, so the figures are a floor.

    .venv/bin/python bench/fanout.py [--database-url URL] [--subscribers 200]
        [--senders 10] [--rate 200] [--duration 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import treq
from twisted.internet.defer import Deferred, ensureDeferred, gatherResults
from twisted.internet.task import deferLater

from harness import DEFAULT_ADMIN_URL, BenchClient, daemon, measure, open_client


class Stats:
    def __init__(self) -> None:
        self.next_seq: dict[object, int] = {}
        self.deliveries = 0
        self.problems = 0  # duplicates, gaps, out of order
        self.sent_at: dict[str, float] = {}
        self.ack_latencies: list[float] = []
        self.joined: dict[object, Deferred] = {}

    def receive(self, client: object, frame: dict) -> None:
        kind = frame["type"]
        if kind == "joined":
            self.next_seq[client] = frame["last_seq"] + 1
            self.joined.pop(client).callback(None)
        elif kind == "ack":
            self.ack_latencies.append(time.monotonic() - self.sent_at.pop(frame["client_msg_id"]))
        elif "seq" in frame:  # a stored room event: every one must come once, in order
            expected = self.next_seq.get(client)
            if expected is not None:
                if frame["seq"] != expected:
                    self.problems += 1
                self.next_seq[client] = frame["seq"] + 1
            if kind == "message":
                self.deliveries += 1


async def run(reactor, base_url: str, args: argparse.Namespace) -> dict:
    tokens = []
    for i in range(args.subscribers + args.senders):
        credentials = {"username": f"bench{i:04d}", "password": "bench-password-1"}
        response = await treq.post(base_url + "/api/auth/register", json=credentials)
        tokens.append((await response.json())["access_token"])
    await treq.post(
        base_url + "/api/rooms",
        json={"name": "bench", "visibility": "public"},
        headers={"Authorization": f"Bearer {tokens[0]}"},
    )
    stats = Stats()
    ws = base_url.replace("http://", "ws://") + "/ws?token="
    clients = [await open_client(ws + token, stats) for token in tokens]
    for client in clients:
        stats.joined[client] = Deferred()
        client.sendMessage(json.dumps({"type": "join", "room": "bench"}).encode())
    await gatherResults(list(stats.joined.values()))
    senders = clients[args.subscribers :]
    interval = args.senders / args.rate
    deadline = time.monotonic() + args.duration
    started = time.monotonic()

    async def send_loop(index: int, client: BenchClient) -> None:
        n = 0
        while time.monotonic() < deadline:
            msg_id = f"{index}-{n}"
            stats.sent_at[msg_id] = time.monotonic()
            frame = {"type": "send", "room": "bench", "body": "x" * 100, "client_msg_id": msg_id}
            client.sendMessage(json.dumps(frame).encode())
            n += 1
            await deferLater(reactor, interval)

    await gatherResults([ensureDeferred(send_loop(i, c)) for i, c in enumerate(senders)])
    await deferLater(reactor, 2.0)  # let the last deliveries arrive
    elapsed = time.monotonic() - started
    acked = sorted(stats.ack_latencies)
    expected = len(acked) * len(clients)
    return {
        "acked_per_s": len(acked) / args.duration,
        "deliveries_per_s": stats.deliveries / elapsed,
        "ack_p50": statistics.median(acked) * 1000 if acked else 0.0,
        "ack_p99": acked[max(0, int(len(acked) * 0.99) - 1)] * 1000 if acked else 0.0,
        "lost": max(0, expected - stats.deliveries),
        "problems": stats.problems,
        "unacked": len(stats.sent_at),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_ADMIN_URL)
    parser.add_argument("--subscribers", type=int, default=200)
    parser.add_argument("--senders", type=int, default=10)
    parser.add_argument("--rate", type=float, default=200.0, help="messages/s offered in all")
    parser.add_argument("--duration", type=float, default=10.0)
    args = parser.parse_args()

    flags = ["--open-registration", "--no-rate-limits"]
    flags += ["--argon2-memory-kib", "8192", "--argon2-time-cost", "1"]  # fast sign-ups
    with daemon(args.database_url, *flags) as base_url:
        results = measure(lambda reactor: run(reactor, base_url, args))

    print(
        f"{'scenario':<40} {'acked/s':>8} {'deliv/s':>9} {'ack p50':>8} {'ack p99':>8}"
        f" {'lost':>5} {'disorder':>8}"
    )
    label = f"1 room, {args.subscribers + args.senders} subs, {args.senders} senders"
    label += f" @ {args.rate:g}/s"
    print(
        f"{label:<40} {results['acked_per_s']:>8.1f} {results['deliveries_per_s']:>9.0f}"
        f" {results['ack_p50']:>7.1f}ms {results['ack_p99']:>7.1f}ms {results['lost']:>5}"
        f" {results['problems']:>8}"
    )


if __name__ == "__main__":
    main()
