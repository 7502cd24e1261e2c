"""
PostgreSQL restarted (``pg_ctl restart -m fast``) or crashed (``-m immediate``) under
message load, on a server of the test's own: the daemons ride it out without a restart,
clients that get ``unavailable`` or lose their socket send again with the same
client_msg_id, and in the end every message is stored once and delivered once, in order.
"""

from __future__ import annotations

import time

import pytest
import pytest_twisted
from twisted.internet.defer import ensureDeferred
from twisted.internet.threads import deferToThread

from cluster_support import (
    Findings,
    Tally,
    connect_and_join,
    health,
    poll,
    seat_clients,
    settle_count_and_check,
    sleep,
    stream,
    wait_until,
)
from support import HOSTILE, record_outcome

pytestmark = pytest.mark.slow

RESTARTS = 3 if HOSTILE else 1
OUTAGE_SECONDS = 5.0 if HOSTILE else 1.0  # between a crash and the start again
SUBSCRIBERS, SENDERS = (24, 12) if HOSTILE else (8, 4)
TOTAL, RATE = (4000, 200) if HOSTILE else (600, 150)


async def fault(server, mode: str) -> None:
    if mode == "fast":
        await deferToThread(server.restart, "fast")
    else:
        await deferToThread(server.stop, "immediate")
        await sleep(OUTAGE_SECONDS)
        await deferToThread(server.start)


@pytest.mark.parametrize("mode", ["fast", "immediate"])
@pytest_twisted.ensureDeferred
async def test_postgresql_restarted_under_load_stores_and_delivers_every_message_once(
    make_cluster, private_postgres, redis_url, mode
):
    database_url = private_postgres.url("termrooms")
    cluster = make_cluster(redis_url, ["--no-rate-limits"], database_url=database_url)
    findings = Findings(cluster)
    first, second = cluster.start(), cluster.start()
    pids = {d.port: d.process.pid for d in cluster.instances}
    rooms = ["room0", "room1"]
    subscribers = [f"sub{i:02d}" for i in range(SUBSCRIBERS)]
    senders = [f"snd{j:02d}" for j in range(SENDERS)]
    tally = Tally()
    tokens, placed, sending = await seat_clients(
        cluster, rooms, subscribers, senders, tally, lambda i, name: (first, second)[i % 2]
    )
    await connect_and_join(placed)
    clients = [client for client, _, _ in placed]

    streaming = ensureDeferred(stream(sending, total=TOTAL, rate=RATE))
    faults = []
    for n in range(RESTARTS):
        await wait_until(lambda n=n: len(tally.sent) >= TOTAL * (n + 1) // (RESTARTS + 2), 60)
        started = time.monotonic()
        await fault(private_postgres, mode)
        faults.append(round(time.monotonic() - started, 1))
    await streaming
    findings.note(f"PostgreSQL {mode} restarts took {faults}s; refusals {dict(tally.refusals)}")

    for daemon in cluster.instances:
        back, answer = await poll(lambda d=daemon: health(d), lambda a: a[0] == 200, timeout=60)
        findings.expect(back, f"node {cluster.node_of(daemon)} /health after the restart: {answer}")
        findings.expect(
            daemon.process.poll() is None and pids[daemon.port] == daemon.process.pid,
            f"node {cluster.node_of(daemon)} did not survive (exit {daemon.process.poll()})",
        )
    stored = await settle_count_and_check(findings, tally, clients, tokens["owner"], rooms)
    findings.verify()

    counts = findings.report.counts
    record_outcome(
        f"faults/test_postgres_restart::"
        f"test_postgresql_restarted_under_load_stores_and_delivers_every_message_once[{mode}]",
        what="PostgreSQL (a private server) restarted under message load; clients retry "
        "unacked sends with the same client_msg_id; subscribers rejoin with since",
        load=f"2 instances, {SENDERS} senders and {SUBSCRIBERS} subscribers in 2 rooms, "
        f"{TOTAL} messages at {RATE}/s",
        faults=f"{RESTARTS} x pg_ctl "
        + ("restart -m fast" if mode == "fast" else f"stop -m immediate, {OUTAGE_SECONDS:g}s down"),
        outcome=f"{stored} of {len(tally.sent)} stored exactly once, all acked; "
        f"{counts['delivered']} deliveries in seq order; {sum(tally.refusals.values())} "
        f"sends answered unavailable and retried, {counts['reconnects']} reconnects; "
        "both daemons back to 200 without restart",
        sent=counts["sent"],
        acked=counts["acked"],
        delivered=counts["delivered"],
        lost=counts["lost"],
        duplicated=counts["duplicated"],
    )
