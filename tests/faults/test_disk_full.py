"""
The disk of the embedded PostgreSQL fills up while clients send: sends are refused with
the contract's ``unavailable`` (never acked unless stored, never an internal error), the
daemon stays up with a clean log, and once space is freed it stores the retried messages,
each exactly once.
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest
import pytest_twisted
from twisted.internet.defer import CancelledError, ensureDeferred
from twisted.internet.threads import deferToThread

from cluster_support import (
    Cluster,
    Findings,
    Tally,
    connect_and_join,
    health,
    poll,
    settle_count_and_check,
    sleep,
    stream,
    wait_until,
)
from support import HOSTILE, record_outcome

pytestmark = pytest.mark.slow

FULL_SECONDS = 20.0 if HOSTILE else 3.0  # how long the disk stays full once sends fail
SENDERS, SUBSCRIBERS = (8, 8) if HOSTILE else (2, 2)
RATE = 50


def fill(directory: str, leave_bytes: int) -> str:
    """A file taking all the free space of ``directory``'s filesystem but ``leave_bytes``."""
    stats = os.statvfs(directory)
    free = stats.f_bavail * stats.f_frsize
    filler = os.path.join(directory, "filler")
    subprocess.run(["fallocate", "-l", str(max(free - leave_bytes, 0)), filler], check=True)
    return filler


@pytest_twisted.ensureDeferred
async def test_a_full_disk_refuses_sends_as_unavailable_and_recovers_once_space_is_freed(
    daemons, tmp_path, small_disk
):
    # No --database-url: the embedded PostgreSQL, in the data dir on the small disk.
    cluster = Cluster(tmp_path, None, None, daemons, ["--no-rate-limits"], data_root=small_disk)
    findings = Findings(cluster)
    pgdata = cluster.data_dir(1) / "postgres"
    daemon = cluster.start(1)
    embedded_url = f"postgresql://postgres:@/termrooms?host={pgdata}"
    rooms = ["room0"]
    subscribers = [f"sub{i}" for i in range(SUBSCRIBERS)]
    senders = [f"snd{j}" for j in range(SENDERS)]
    tokens = await cluster.register(["owner", *subscribers, *senders])
    await cluster.create_room(tokens["owner"], "room0")
    tally = Tally()
    placed, sending = [], []
    for name in subscribers + senders:
        client = cluster.client(name, tokens[name], tally)
        client.failover = lambda client: daemon
        placed.append((client, daemon, rooms))
        if name in senders:
            sending.append((client, "room0"))
    await connect_and_join(placed)
    clients = [client for client, _, _ in placed]

    def send_all(total: int, prefix: str):
        return ensureDeferred(stream(sending, total=total, rate=RATE, prefix=prefix))

    await send_all(RATE, "before")  # a second of normal traffic
    await wait_until(tally.all_acked, 20)
    filler = await deferToThread(fill, str(small_disk), 64 * 1024)
    full_at = time.monotonic()
    # Keep sending until PostgreSQL cannot write, then for FULL_SECONDS more.
    streaming = send_all(RATE * 600, "full")
    refused = await wait_until(lambda: sum(tally.refusals.values()) > 0, 60)
    findings.expect(refused, "the disk is full but no send was refused")
    refused_after = time.monotonic() - full_at
    await sleep(FULL_SECONDS)
    during = await health(daemon)
    streaming.cancel()
    streaming.addErrback(lambda failure: failure.trap(CancelledError))
    refusals_while_full = dict(tally.refusals)
    findings.note(
        f"refused {refused_after:.1f}s after the fill; health while full {during}; refusals"
        f" {refusals_while_full}"
    )

    await deferToThread(os.remove, filler)
    back, answer = await poll(lambda: health(daemon), lambda a: a[0] == 200, timeout=60)
    findings.expect(back, f"/health once space was freed: {answer}")
    await send_all(RATE, "after")
    stored = await settle_count_and_check(
        findings, tally, clients, tokens["owner"], rooms, embedded_url
    )
    findings.expect(
        set(refusals_while_full) <= {"unavailable"},
        f"while the disk was full sends were refused as {refusals_while_full}",
    )
    findings.expect(daemon.process.poll() is None, "the daemon died of the full disk")
    findings.expect(
        "PostgreSQL refuses work" in daemon.log(), "the log does not tell the operator why"
    )
    cluster.close_clients()
    findings.expect(daemon.stop(timeout=30) == 0, "the daemon did not stop with 0")
    findings.verify()

    counts = findings.report.counts
    record_outcome(
        "faults/test_disk_full::"
        "test_a_full_disk_refuses_sends_as_unavailable_and_recovers_once_space_is_freed",
        what="the embedded PostgreSQL's disk (a 192 MB tmpfs) filled up while clients send; "
        "then space is freed",
        load=f"1 instance, {SENDERS} senders and {SUBSCRIBERS} subscribers in 1 room, "
        f"{RATE} messages/s",
        faults=f"disk filled to 64 KB free for {FULL_SECONDS:g}s after the first refusal",
        outcome=f"sends refused as {refusals_while_full} (first {refused_after:.1f}s after the "
        f"fill), none acked unless stored; {stored} of {counts['sent']} stored exactly once "
        f"after the space came back; {counts['delivered']} deliveries in seq order; daemon "
        "up throughout, clean log, exit 0",
        sent=counts["sent"],
        acked=counts["acked"],
        delivered=counts["delivered"],
        lost=counts["lost"],
        duplicated=counts["duplicated"],
    )
