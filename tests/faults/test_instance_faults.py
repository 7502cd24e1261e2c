"""
Instances that go away under load, as real processes: one of three killed with SIGKILL
(its clients fail over and resend, its users go offline by themselves) and one stopped
with SIGTERM (its clients get every ack of what it stored, then 1001, then fail over and
resend). Nothing acked is lost, nothing is stored or delivered twice.
"""

from __future__ import annotations

import signal
import time

import pytest
import pytest_twisted
from twisted.internet.defer import ensureDeferred
from twisted.internet.threads import deferToThread

from cluster_support import (
    PRESENCE_BOUND_SECONDS,
    Findings,
    Tally,
    connect_and_join,
    fail_over_to_survivors,
    members_online,
    poll,
    presence_adds_up,
    seat_clients,
    settle_count_and_check,
    stream,
    three_instances_under_load,
    wait_until,
)
from support import HOSTILE, record_outcome

pytestmark = pytest.mark.slow

SUBSCRIBERS, SENDERS, TOTAL = (60, 18, 3000) if HOSTILE else (30, 9, 1200)
SHUTDOWN_TIMEOUT = 10.0


@pytest_twisted.ensureDeferred
async def test_an_instance_killed_mid_stream_loses_nothing_and_its_users_go_offline(
    make_cluster, private_redis
):
    cluster = make_cluster(private_redis.url, ["--no-rate-limits"])
    findings = Findings(cluster)
    rooms = ["room0", "room1", "room2"]
    tokens, tally, clients, sending = await three_instances_under_load(
        cluster, rooms, SUBSCRIBERS, SENDERS
    )
    a, _, doomed = cluster.instances
    ghost_tokens = await cluster.register(["ghost1", "ghost2"], via=[a])
    ghosts = [cluster.client(name, token) for name, token in ghost_tokens.items()]
    await connect_and_join([(g, doomed, ["room0"]) for g in ghosts])  # never come back
    observer = next(c for c in clients if c.daemon is a and "room0" in c.rooms)
    owner = tokens["owner"]

    # Presence crosses instances before anything fails: node 1 sees node 3's ghosts.
    seen_online, online = await poll(
        lambda: members_online(a, owner, "room0"),
        lambda m: m.get("ghost1") and m.get("ghost2"),
        timeout=5,
    )
    findings.expect(
        seen_online, f"before the kill, node 1 does not show node 3's ghosts online: {online}"
    )

    for client in clients:
        client.failover = fail_over_to_survivors(cluster)
    streaming = ensureDeferred(stream(sending, total=TOTAL, rate=300))
    await wait_until(lambda: len(tally.sent) >= TOTAL // 3, 30)
    cluster.kill(doomed)
    killed_at = time.monotonic()
    await streaming
    on_doomed = [c for c in clients if c.closes]
    findings.note(f"clients that lost node 3: {len(on_doomed)}")
    stored = await settle_count_and_check(findings, tally, clients, owner, rooms)
    findings.expect(
        on_doomed and all(c.reconnects for c in on_doomed),
        "clients of node 3 failed to reconnect: "
        f"{[(c.name, c.closes, c.reconnects, c.errors[-3:]) for c in on_doomed]}",
    )
    if on_doomed and all(c.reconnects for c in on_doomed):
        longest = max(took for c in on_doomed for _, _, took in c.reconnects)
        findings.note(f"longest failover (reconnect, rejoin with since, resend): {longest:.2f}s")

    # The ghosts' presence ends by itself: a presence frame on node 1, and REST says so.
    def offline_frames() -> dict[str, float]:
        return {
            frame["user"]: round(at - killed_at, 2)
            for at, frame in observer.presence
            if frame["status"] == "offline"
            and frame["user"] in ("ghost1", "ghost2")
            and at >= killed_at
        }

    await wait_until(
        lambda: len(offline_frames()) == 2,
        max(0.0, killed_at + PRESENCE_BOUND_SECONDS - time.monotonic()),
    )
    went_offline, members = await poll(
        lambda: members_online(a, owner, "room0"),
        lambda m: not m.get("ghost1") and not m.get("ghost2"),
        timeout=max(0.0, killed_at + PRESENCE_BOUND_SECONDS - time.monotonic()),
    )
    findings.note(
        f"presence offline frames for the ghosts on node 1, seconds after the kill:"
        f" {offline_frames()} (bound {PRESENCE_BOUND_SECONDS:.1f}s)"
    )
    findings.expect(
        len(offline_frames()) == 2,
        f"{observer.name} on node 1 did not get presence offline for both ghosts of node 3"
        f" within {PRESENCE_BOUND_SECONDS:.1f}s: {offline_frames()}",
    )
    findings.expect(
        went_offline,
        f"members of room0 on node 1, {time.monotonic() - killed_at:.1f}s after the kill,"
        f" still show a ghost online: {members}",
    )
    # online_count: the live subscribers, nobody of the dead instance.
    await presence_adds_up(findings, owner, clients, rooms, "after the kill")
    findings.verify()
    counts = findings.report.counts
    record_outcome(
        "faults/test_instance_faults::"
        "test_an_instance_killed_mid_stream_loses_nothing_and_its_users_go_offline",
        what="one of three instances killed with SIGKILL under load; its clients fail over, "
        "rejoin with since and resend unacked messages with the same client_msg_id",
        load=f"3 instances, {SENDERS} senders and {SUBSCRIBERS} subscribers in 3 rooms, "
        f"{TOTAL} messages at 300/s",
        faults="kill -9 of one instance a third of the way in",
        outcome=f"{stored} of {counts['sent']} stored exactly once, all acked; "
        f"{counts['delivered']} deliveries in seq order; {len(on_doomed)} clients failed over "
        f"({counts['reconnects']} reconnects); the dead instance's users went offline within "
        f"{PRESENCE_BOUND_SECONDS:.1f}s",
        sent=counts["sent"],
        acked=counts["acked"],
        delivered=counts["delivered"],
        lost=counts["lost"],
        duplicated=counts["duplicated"],
    )


def minted_by(event_id: str) -> int:
    """The node id inside a snowflake id: the instance that stored the event."""
    return (int(event_id) >> 12) & 1023


@pytest_twisted.ensureDeferred
async def test_sigterm_under_load_acks_what_it_stored_closes_1001_and_clients_fail_over(
    make_cluster, redis_url
):
    flags = ["--no-rate-limits", "--shutdown-timeout", f"{SHUTDOWN_TIMEOUT:g}s"]
    cluster = make_cluster(redis_url, flags)
    findings = Findings(cluster)
    stopping, survivor = cluster.start(), cluster.start()
    rooms = ["room0", "room1"]
    subscribers = [f"sub{i:02d}" for i in range(SUBSCRIBERS // 3)]
    senders = [f"snd{j:02d}" for j in range(SENDERS)]
    tally = Tally()
    # Every sender on the instance that stops: the drain has work to finish.
    tokens, placed, sending = await seat_clients(
        cluster,
        rooms,
        subscribers,
        senders,
        tally,
        lambda i, name: stopping if name in senders else (stopping, survivor)[i % 2],
    )
    await connect_and_join(placed)
    clients = [client for client, _, _ in placed]
    on_stopping = [client for client, daemon, _ in placed if daemon is stopping]
    node = cluster.node_of(stopping)

    streaming = ensureDeferred(stream(sending, total=TOTAL, rate=300))
    await wait_until(lambda: len(tally.sent) >= TOTAL // 3, 30)
    acked_before = len(tally.acked())
    signalled = time.monotonic()
    stopping.process.send_signal(signal.SIGTERM)
    code = await deferToThread(stopping.process.wait, SHUTDOWN_TIMEOUT + 10)
    took = time.monotonic() - signalled
    await streaming
    stored = await settle_count_and_check(findings, tally, clients, tokens["owner"], rooms)

    findings.expect(code == 0, f"the stopped instance exited {code}")
    findings.expect(took < SHUTDOWN_TIMEOUT, f"the drain took {took:.1f}s")
    findings.expect(acked_before > 50, f"only {acked_before} acks before SIGTERM: no load")
    first_closes = [c.closes[0][2] if c.closes else None for c in on_stopping]
    findings.expect(
        first_closes == [1001] * len(on_stopping),
        f"close codes of the stopped instance's clients: {first_closes}",
    )
    findings.expect(
        all(c.reconnects for c in on_stopping),
        "clients of the stopped instance did not fail over: "
        f"{[c.name for c in on_stopping if not c.reconnects]}",
    )
    # What the stopping instance stored, it acked on the old socket before the 1001: a
    # message it minted but the survivor acked was stored and left unacknowledged.
    unacked_by_it = [
        cmid
        for cmid, sent in tally.acked().items()
        if minted_by(sent.ack["id"]) == node and sent.ack_node != node
    ]
    findings.expect(
        not unacked_by_it,
        f"stored by node {node} but acked only after the failover: {unacked_by_it[:10]}",
    )
    log = stopping.log()
    findings.expect("Unhandled" not in log and "Traceback" not in log, "unhandled error")
    findings.verify()
    counts = findings.report.counts
    resent_elsewhere = sum(1 for s in tally.acked().values() if s.ack_node != node)
    record_outcome(
        "faults/test_instance_faults::"
        "test_sigterm_under_load_acks_what_it_stored_closes_1001_and_clients_fail_over",
        what="one of two instances stopped with SIGTERM under load; its clients get 1001, fail "
        "over to the other and resend their unacked messages with the same client_msg_id",
        load=f"2 instances, {SENDERS} senders (all on the stopped one) and "
        f"{len(subscribers)} subscribers in 2 rooms, {TOTAL} messages at 300/s",
        faults="SIGTERM a third of the way in (drain, --shutdown-timeout 10s)",
        outcome=f"exit 0 after {took:.1f}s; {len(on_stopping)} clients closed with 1001 and "
        f"failed over; {stored} of {counts['sent']} stored exactly once, all acked "
        f"({resent_elsewhere} by the survivor), nothing the stopped instance stored left "
        f"unacked; {counts['delivered']} deliveries in seq order",
        sent=counts["sent"],
        acked=counts["acked"],
        delivered=counts["delivered"],
        lost=counts["lost"],
        duplicated=counts["duplicated"],
    )
