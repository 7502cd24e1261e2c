"""
Many instances as one deployment (#7): real daemons on one PostgreSQL database and one
Redis. Every subscriber gets every event of its rooms once and in seq order, whichever
instance it and the sender are on; bans, rate limits and node ids hold across instances
too (instances killed and Redis restarting or going away: tests/faults/). Each test counts sent, acked, delivered, lost and duplicated messages;
when a guarantee breaks it goes on to the end and then prints every problem it found,
the counts, and the tail of each daemon's log.
"""

from __future__ import annotations

import json
import random
import re
import time
from typing import Any, Awaitable

import psycopg2
import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred, gatherResults
from twisted.internet.threads import deferToThread

from cluster_support import (
    Cluster,
    Findings,
    LedgerClient,
    Tally,
    api,
    connect_and_join,
    count_deliveries,
    health,
    settle_and_count,
    sleep,
    stream,
    wait_until,
)
from termrooms.domain.polls import POLL_UPDATE_EVERY_SECONDS
from termrooms.storage.polls import POLLS_CLOSING_CHANNEL

pytestmark = pytest.mark.slow


# --------------------------------------------------------------------------- 1. fan-out


@pytest_twisted.ensureDeferred
async def test_three_instances_deliver_every_message_once_and_in_seq_order(make_cluster, redis_url):
    cluster = make_cluster(redis_url, ["--no-rate-limits"])
    findings = Findings(cluster)
    for _ in range(3):
        cluster.start()
    rooms = [f"room{r}" for r in range(5)]
    subscribers = [f"sub{i:02d}" for i in range(60)]
    senders = [f"snd{j:02d}" for j in range(20)]
    tokens = await cluster.register(["owner", *subscribers, *senders])
    for room in rooms:
        await cluster.create_room(tokens["owner"], room)
    tally = Tally()
    rng = random.Random(7)
    placed = [
        (cluster.client(name, tokens[name], tally), cluster.instances[i % 3], [rooms[i % 5]])
        for i, name in enumerate(subscribers)
    ]
    sending = []
    for j, name in enumerate(senders):
        client = cluster.client(name, tokens[name], tally)
        placed.append((client, rng.choice(cluster.instances), [rooms[j % 5]]))
        sending.append((client, rooms[j % 5]))
    await connect_and_join(placed)

    started = time.monotonic()
    await stream(sending, total=2000, rate=400)
    await settle_and_count(findings, tally, [p[0] for p in placed], tokens["owner"], rooms)
    counts = findings.report.counts
    findings.note(
        f"2000 messages, {counts['delivered']} deliveries in {time.monotonic() - started:.1f}s"
    )
    # 12 subscribers and 4 senders in each room.
    findings.expect(counts["expected"] == 2000 * 16, f"expected {counts['expected']} deliveries")
    findings.verify()


# --------------------------------------------------------------------------- 4. removals

# How mallory leaves the room on node 1: the event every subscriber gets, and the error
# her send on node 2 gets afterwards.
REMOVALS = {
    "ban via moderation endpoint": ("member_banned", "banned"),
    "ban via /ban command": ("member_banned", "banned"),
    "kick via moderation endpoint": ("member_kicked", "forbidden"),
    "leave via POST /leave": ("member_left", "forbidden"),
}


async def remove_mallory(how: str, owner: LedgerClient, node: Any, tokens: dict) -> None:
    if how == "ban via /ban command":
        reply = owner.expect(lambda f: f["type"] == "reply" and f["ref"] == "ban")
        owner.send_frame(
            {"type": "command", "room": "mod", "line": "/ban mallory spam", "ref": "ban"}
        )
        answer = await reply.addTimeout(10, reactor)
        assert answer["ok"], answer
    elif how == "leave via POST /leave":
        status, body, _ = await api(
            node.base_url, "POST", "/api/rooms/mod/leave", tokens["mallory"], {}
        )
        assert status in (200, 204), (status, body)
    else:
        action = how.split()[0]
        status, event, _ = await api(
            node.base_url,
            "POST",
            "/api/rooms/mod/moderation",
            tokens["owner"],
            {"action": action, "username": "mallory", "reason": "spam"},
        )
        assert status in (200, 201), event


@pytest.mark.parametrize("how", list(REMOVALS))
@pytest_twisted.ensureDeferred
async def test_a_ban_kick_or_leave_on_one_instance_ends_the_subscription_on_another(
    make_cluster, redis_url, how
):
    event_type, send_error = REMOVALS[how]
    cluster = make_cluster(redis_url, ["--no-rate-limits"])
    findings = Findings(cluster)
    a, b = cluster.start(), cluster.start()
    tokens = await cluster.register(["owner", "mallory", "witness"])
    await cluster.create_room(tokens["owner"], "mod", via=a)
    tally = Tally()
    owner, mallory, witness = (cluster.client(n, tokens[n], tally) for n in tokens)
    await connect_and_join([(owner, a, ["mod"]), (mallory, b, ["mod"]), (witness, b, ["mod"])])
    for n in range(5):
        owner.send_message("mod", f"before-{n}")
    await wait_until(tally.all_acked, 10)
    before = await cluster.last_seq(tokens["owner"], "mod")
    findings.expect(
        await wait_until(lambda: mallory.rooms["mod"].caught_up(before), 10),
        f"before the {how}, mallory on node 2 did not get node 1's events up to seq {before}:"
        f" she has seqs {[e['seq'] for e in mallory.events_in('mod')]}",
    )

    removed = mallory.expect(lambda f: f["type"] == event_type)
    seen_by_owner = owner.expect(lambda f: f["type"] == event_type)
    await remove_mallory(how, owner, a, tokens)
    removal = await seen_by_owner.addTimeout(5, reactor)
    assert "mallory" in (removal.get("target"), removal.get("user")), removal
    try:
        await removed.addTimeout(5, reactor)
        got_it = True
    except Exception:  # noqa: BLE001 - a timeout: the finding is recorded below
        got_it = False
    findings.expect(
        got_it,
        f"mallory on node 2 never got {event_type} (seq {removal['seq']}); her last frames:"
        f" {[f for _, _, f in mallory.frames][-4:]}",
    )

    for n in range(10):
        owner.send_message("mod", f"after-{n}")
    await wait_until(tally.all_acked, 10)
    final = await cluster.last_seq(tokens["owner"], "mod")
    findings.expect(
        await wait_until(lambda: witness.rooms["mod"].caught_up(final), 10),
        f"witness on node 2 did not reach seq {final}",
    )
    await sleep(0.5)  # time enough for anything still meant for mallory

    frames = [f for _, _, f in mallory.frames]
    removal_index = next(
        (i for i, f in enumerate(frames) if f.get("seq") == removal["seq"]), len(frames)
    )
    leaked = [
        f
        for f in frames[removal_index + 1 :]
        if str(f.get("room", "")).lower() == "mod" or f.get("seq", 0) > removal["seq"]
    ]
    refused = mallory.expect(lambda f: f["type"] == "error" and f.get("ref") == "late")
    mallory.send_frame(
        {
            "type": "send",
            "room": "mod",
            "body": "let me back",
            "client_msg_id": "late-1",
            "ref": "late",
        }
    )
    error = await refused.addTimeout(5, reactor)
    if event_type == "member_banned":
        rejoin = mallory.expect(lambda f: f["type"] in ("error", "joined"))
        mallory.send_frame({"type": "join", "room": "mod", "ref": "rejoin"})
        rejoined = await rejoin.addTimeout(5, reactor)
        findings.expect(
            rejoined.get("error_code") == "banned", f"mallory's join after the ban: {rejoined}"
        )

    report = count_deliveries(tally, [owner, witness], {"mod": final})
    report.counts["mallory_frames_after_removal"] = len(leaked)
    findings.report = report
    print(report.text())
    findings.expect(report.clean, "owner or witness missed, doubled or reordered events")
    findings.expect(not leaked, f"mallory (node 2) got after the {how}: {leaked[:5]}")
    findings.expect(
        error.get("error_code") == send_error,
        f"mallory's send after the {how}: want error {send_error}, got {error}",
    )
    findings.verify()


# --------------------------------------------------------------------------- 5. limits


@pytest_twisted.ensureDeferred
async def test_the_login_limit_counts_attempts_on_every_instance_together(make_cluster, redis_url):
    cluster = make_cluster(redis_url, ["--login-rate-limit", "3/60s"])
    findings = Findings(cluster)
    a, b = cluster.start(), cluster.start()
    await cluster.register(["target"], via=[a])
    answers = []
    for attempt in range(6):
        daemon = (a, b)[attempt % 2]
        status, body, headers = await api(
            daemon.base_url,
            "POST",
            "/api/auth/login",
            body={"username": "target", "password": "not the password"},
        )
        retry_after = headers.getRawHeaders("retry-after")
        answers.append((cluster.node_of(daemon), status, body.get("error_code"), retry_after))
    findings.note(f"failed logins alternating nodes 1 and 2, burst 3: {answers}")
    statuses = [status for _, status, _, _ in answers]
    findings.expect(
        statuses == [401, 401, 401, 429, 429, 429],
        f"want 401 x3 then 429 x3 across the two instances, got {statuses}",
    )
    findings.expect(
        all(retry for _, status, _, retry in answers if status == 429),
        "a 429 without Retry-After",
    )
    findings.verify()


# --------------------------------------------------------------------------- 6. node ids


def says_node_id_5(line: str) -> bool:
    """A log line (JSON or plain) whose message names the node id and the number 5."""
    try:
        message = str(json.loads(line).get("message", ""))
    except ValueError:
        message = line
    return bool(re.search(r"node[-_ ]?id", message, re.I) and re.search(r"\b5\b", message))


@pytest_twisted.ensureDeferred
async def test_a_second_live_instance_with_the_same_node_id_refuses_to_start(
    make_cluster, redis_url
):
    cluster = make_cluster(redis_url)
    findings = Findings(cluster)
    first = cluster.start(5)
    second = cluster.start(5, healthy=False)
    try:
        code = second.process.wait(20)
    except Exception:  # noqa: BLE001 - still running: that is the finding
        second.process.kill()
        code = None
    log = second.log()
    findings.expect(
        code not in (None, 0),
        f"the second instance with --node-id 5 {'kept running' if code is None else 'exited 0'}",
    )
    findings.expect(
        any(says_node_id_5(line) for line in log.splitlines()),
        "the second instance's log has no line saying that node id 5 is taken",
    )
    status, body = await health(first)
    findings.expect(status == 200, f"the first instance's /health: {status} {body}")

    # Once the first is gone, the id is free again: after a clean stop, and after a crash
    # (or systemd could never restart a crashed instance).
    findings.expect(first.stop(timeout=15) == 0, "the first instance did not stop with 0")
    for how in ("stopped", "was killed"):
        try:
            successor = cluster.start(5)
        except AssertionError as e:
            findings.expect(False, f"node id 5 still refused after its instance {how}: {e}")
            break
        if how == "stopped":
            cluster.kill(successor)
    findings.verify()


# --------------------------------------------------------------------------- 7. tasks and polls


@pytest_twisted.ensureDeferred
async def test_task_notices_and_task_events_cross_instances(make_cluster, redis_url):
    """Tasks, polls, direct messages and retros across two instances: one pair of daemons for all
    (see below);
    no rate limits, for the many voters' registrations and their votes as fast as they go."""
    cluster = make_cluster(redis_url, ["--no-rate-limits"])
    findings = Findings(cluster)
    a, b = cluster.start(), cluster.start()
    await tasks_cross_instances(cluster, findings, a, b)
    await polls_cross_instances(cluster, findings, a, b)
    await mentions_cross_instances(cluster, findings, a, b)
    await dms_cross_instances(cluster, findings, a, b)
    await retros_cross_instances(cluster, findings, a, b)
    findings.verify()


async def tasks_cross_instances(cluster: Cluster, findings: Findings, a: Any, b: Any) -> None:
    """
    Tasks changed over HTTP on node 1 reach sockets on node 2: an assignment as a
    ``notify`` (never for one's own), a personal task's change as a ``task`` frame, and
    a room's task events, after a reconnect there with ``since``, each exactly once.
    """
    tokens = await cluster.register(["ada", "bob", "carl"], via=[a])
    await cluster.create_room(tokens["ada"], "crew", via=a)
    for name in ("bob", "carl"):
        status, body, _ = await api(a.base_url, "POST", "/api/rooms/crew/join", tokens[name])
        assert status == 200, body
    ada, bob, carl = (cluster.client(n, tokens[n]) for n in ("ada", "bob", "carl"))
    await ada.connect(b)  # ada's and bob's sockets are subscribed to no room
    await bob.connect(b)
    await carl.connect(a)
    since = (await carl.join("crew"))["last_seq"]
    carl.protocol.sendClose()
    assert await wait_until(lambda: not carl.connected, 10), "carl's socket did not close"

    async def on_a(who: str, method: str, path: str, body: Any = None) -> dict:
        status, answer, _ = await api(a.base_url, method, path, tokens[who], body)
        assert status in (200, 201, 204), (who, method, path, status, answer)
        return answer

    async def heard(client: LedgerClient, kind: str, change: Awaitable[dict | None]) -> tuple:
        """The change's answer and the next ``kind`` frame on the client's socket."""
        frame = client.expect(lambda f: f["type"] == kind)
        answer = await change
        try:
            return answer, await frame.addTimeout(10, reactor)
        except Exception:  # noqa: BLE001 - a timeout: the finding is recorded
            findings.expect(False, f"{client.name} on node 2 got no {kind} frame for {answer}")
            return answer, None

    # Assignments on node 1 tell the assignee on node 2, the event in the frame.
    given, notify = await heard(
        bob,
        "notify",
        on_a("ada", "POST", "/api/tasks", {"title": "book", "room": "crew", "assignee": "bob"}),
    )
    findings.expect(
        notify
        and notify["reason"] == "task_assigned"
        and notify["room"] == "crew"
        and notify["event"]["type"] == "task_created"
        and notify["event"]["task"] == given,
        f"bob's notify for task {given['id']}: {notify}",
    )
    # Ada's own assignment tells her nothing; bob's assignment to her does.
    own = await on_a(
        "ada", "POST", "/api/tasks", {"title": "own", "room": "crew", "assignee": "ada"}
    )
    await on_a(
        "ada", "PATCH", f"/api/tasks/{own['id']}", {"assignee": "ada", "status": "in_progress"}
    )
    reassigned, notify = await heard(
        bob, "notify", on_a("ada", "PATCH", f"/api/tasks/{own['id']}", {"assignee": "bob"})
    )
    findings.expect(
        notify
        and notify["event"]["type"] == "task_updated"
        and notify["event"]["changes"] == ["assignee"]
        and notify["event"]["task"] == reassigned,
        f"bob's notify for the reassignment of {own['id']}: {notify}",
    )
    await on_a("bob", "PATCH", f"/api/tasks/{given['id']}", {"status": "completed"})
    from_bob, notify = await heard(
        ada,
        "notify",
        on_a("bob", "POST", "/api/tasks", {"title": "yours", "room": "crew", "assignee": "ada"}),
    )
    findings.expect(
        notify and notify["event"]["task"] == from_bob, f"ada's notify from bob: {notify}"
    )
    await on_a("ada", "DELETE", f"/api/tasks/{own['id']}")

    # A personal task's every change reaches its owner's socket on node 2.
    personal, frame = await heard(ada, "task", on_a("ada", "POST", "/api/tasks", {"title": "me"}))
    findings.expect(frame == {"type": "task", "task": personal}, f"created: {frame}")
    path = f"/api/tasks/{personal['id']}"
    done, frame = await heard(ada, "task", on_a("ada", "PATCH", path, {"status": "completed"}))
    findings.expect(frame == {"type": "task", "task": done}, f"updated: {frame}")
    _, frame = await heard(ada, "task", on_a("ada", "DELETE", path))
    findings.expect(frame == {"type": "task", "deleted": personal["id"]}, f"deleted: {frame}")

    # Carl, back on node 2 with since, gets the room's task events once each, in order,
    # then the next one live, once.
    await carl.connect(b)
    await carl.join("crew", since=since)
    live = await on_a("bob", "PATCH", f"/api/tasks/{from_bob['id']}", {"title": "t"})
    stored = [e for e in await cluster.history(tokens["ada"], "crew") if e["seq"] > since]
    findings.expect(
        await wait_until(lambda: carl.rooms["crew"].caught_up(stored[-1]["seq"]), 10),
        f"carl on node 2 did not reach seq {stored[-1]['seq']}",
    )
    await sleep(0.5)  # time enough for a duplicate on its way
    findings.expect(
        [e["type"] for e in stored]
        == ["task_created"] * 2
        + ["task_updated"] * 3
        + ["task_created", "task_deleted"]
        + ["task_updated"],
        f"stored after seq {since}: {[(e['seq'], e['type']) for e in stored]}",
    )
    got = [(e["seq"], e["type"], e["id"]) for e in carl.events_in("crew")]
    findings.expect(
        got == [(e["seq"], e["type"], e["id"]) for e in stored],
        f"carl on node 2 got {got}, stored {[(e['seq'], e['type']) for e in stored]}",
    )
    findings.expect(
        stored and stored[-1]["task"] == live, f"the live update {live} is not the last event"
    )

    # Each assignee was told once per assignment by someone else, and of nothing else.
    notified = {
        c.name: [f["event"]["seq"] for _, _, f in c.frames if f["type"] == "notify"]
        for c in (ada, bob, carl)
    }
    seqs = [e["seq"] for e in stored]
    want = {"ada": seqs[5:6], "bob": [seqs[0], seqs[3]], "carl": []} if len(seqs) == 8 else None
    findings.expect(notified == want, f"event seqs notified, by user: {notified}")


async def mentions_cross_instances(cluster: Cluster, findings: Findings, a: Any, b: Any) -> None:
    """
    A message posted on node 1 that names a member notifies every socket of theirs, on
    both nodes, once, and its author none; an edit made on node 2 notifies only whom it
    names anew, with the message_edited event; a blocked user's mention notifies no one.
    """
    tokens = await cluster.register(["mona", "nils", "olaf"], via=[a])
    await cluster.create_room(tokens["mona"], "forum", via=a)
    for name in ("nils", "olaf"):
        status, body, _ = await api(a.base_url, "POST", "/api/rooms/forum/join", tokens[name])
        assert status == 200, body
    mona, nils_a, nils_b, olaf = (
        cluster.client(name, tokens[name]) for name in ("mona", "nils", "nils", "olaf")
    )
    for client, daemon in ((mona, b), (nils_a, a), (nils_b, b), (olaf, a)):
        await client.connect(daemon)  # subscribed to no room: notify reaches them anyway

    def notified(client: LedgerClient) -> Deferred:
        return client.expect(lambda f: f["type"] == "notify").addTimeout(10, reactor)

    heard = [notified(nils_a), notified(nils_b)]
    status, message, _ = await api(
        a.base_url, "POST", "/api/rooms/forum/messages", tokens["mona"],
        {"body": "@nils and @mona: lunch?"},
    )  # fmt: skip
    assert status == 201, message
    for frame in [await d for d in heard]:
        findings.expect(
            frame == {"type": "notify", "reason": "mention", "room": "forum", "event": message},
            f"nils's mention notify: {frame}",
        )
    heard_edit = notified(olaf)
    status, edited, _ = await api(
        b.base_url, "PATCH", f"/api/rooms/forum/messages/{message['id']}", tokens["mona"],
        {"body": "@nils, @olaf and @mona: lunch?"},
    )  # fmt: skip
    assert status == 200, edited
    frame = await heard_edit
    findings.expect(
        frame["event"]["type"] == "message_edited"
        and frame["event"]["target"] == message["id"]
        and frame["event"]["body"] == edited["body"],
        f"olaf's notify for the edit: {frame}",
    )
    # Nils blocks olaf (on node 1); olaf's mention of him, posted on node 2, tells no one.
    status, _, _ = await api(
        a.base_url, "POST", "/api/blocks", tokens["nils"], {"username": "olaf"}
    )
    assert status == 204
    status, blocked, _ = await api(
        b.base_url, "POST", "/api/rooms/forum/messages", tokens["olaf"], {"body": "@nils hey"}
    )
    assert status == 201 and blocked["mentions"] == ["nils"], blocked
    await sleep(0.5)  # time enough for a duplicate, or the blocked mention, on its way
    counts = {
        f"{c.name}@{c.daemon.base_url}": sum(1 for _, _, f in c.frames if f["type"] == "notify")
        for c in (mona, nils_a, nils_b, olaf)
    }
    findings.expect(sorted(counts.values()) == [0, 1, 1, 1], f"notifies per socket: {counts}")


async def retros_cross_instances(cluster: Cluster, findings: Findings, a: Any, b: Any) -> None:
    """
    A retro edited through both instances at once stays consistent: entries written,
    moved into one group and voted on concurrently from both sides leave every entry in
    one group, no group empty and each participant's votes within the budget. A
    subscriber on each instance gets the retro_update frames of each part and every
    retro_* event once.
    """
    members = [f"rm{i}" for i in range(6)]
    tokens = await cluster.register(["rita", *members], via=[a, b])
    await cluster.create_room(tokens["rita"], "retroboard", via=a)
    for i, name in enumerate(members):
        status, body, _ = await api((a, b)[i % 2].base_url, "POST", "/api/rooms/retroboard/join",
                                    tokens[name])  # fmt: skip
        assert status == 200, body
    watchers = [cluster.client("rita", tokens["rita"]), cluster.client("rm0", tokens["rm0"])]
    for watcher, daemon in zip(watchers, (a, b), strict=True):
        await watcher.connect(daemon)
        await watcher.join("retroboard")

    async def on(daemon: Any, who: str, method: str, tail: str, body: Any = None) -> tuple:
        status, answer, _ = await api(daemon.base_url, method, base + tail, tokens[who], body)
        return status, answer

    status, board, _ = await api(a.base_url, "POST", "/api/rooms/retroboard/retros", tokens["rita"],
                                 {"title": "Both sides", "votes_per_participant": 3})  # fmt: skip
    assert status == 201, board
    base = f"/api/rooms/retroboard/retros/{board['id']}"
    everyone = [(name, (a, b)[i % 2]) for i, name in enumerate(members)]
    written = await gatherResults(
        [ensureDeferred(on(node, name, "POST", "/entries", {"column": "ideas", "text": f"{name} {k}"}))
         for name, node in everyone for k in range(2)]
    )  # fmt: skip
    findings.expect(all(s == 201 for s, _ in written), f"entries refused: {written[:2]}")
    for step, node in (("group", b),):
        findings.expect((await on(node, "rita", "POST", "/phase", {"phase": step}))[0] == 200,
                        f"rita could not move to {step}")  # fmt: skip
    for name, node in everyone:
        await on(node, name, "POST", "/join")
    # Everyone moves their entries into the first entry's group at once, from both sides.
    into = written[0][1]["id"]
    moved = await gatherResults(
        [ensureDeferred(on(node, name, "POST", f"/groups/{into}/entries", {"entry": e["id"]}))
         for (name, node), e in zip([p for p in everyone for _ in range(2)], [w for _, w in written],
                                    strict=True)]
    )  # fmt: skip
    findings.expect(
        all(s == 200 for s, _ in moved), f"moves refused: {[m for m in moved if m[0] != 200][:2]}"
    )
    seen = [(await on(node, "rita", "GET", ""))[1] for node in (a, b)]
    findings.expect(seen[0] == seen[1], "the two instances show rita different boards")
    groups = seen[0]["groups"]
    findings.expect(
        len(groups) == 1 and sorted(groups[0]["entries"]) == sorted(w["id"] for _, w in written),
        f"after the moves the board has groups {groups}",
    )
    findings.expect(
        (await on(a, "rita", "POST", "/phase", {"phase": "vote"}))[0] == 200, "no vote phase"
    )
    votes = await gatherResults(
        [ensureDeferred(on((a, b)[k % 2], name, "POST", "/votes", {"group": into}))
         for name, _ in everyone for k in range(4)]
    )  # fmt: skip
    spent = sorted(status for status, _ in votes)
    findings.expect(spent == [200] * 18 + [409] * 6, f"votes answered {spent}")
    findings.expect(
        (await on(b, "rita", "POST", "/phase", {"phase": "discuss"}))[0] == 200, "no discussion"
    )
    status, discussed = await on(a, "rm3", "GET", "")
    findings.expect(discussed["groups"][0]["votes"] == 18, f"totals {discussed['groups']}")
    findings.expect(
        (await on(a, "rita", "POST", "/phase", {"phase": "closed"}))[0] == 200, "not closed"
    )

    def retro_events(watcher: LedgerClient) -> list[str]:
        return [
            e["type"] for e in watcher.events_in("retroboard") if e["type"].startswith("retro_")
        ]

    want = ["retro_started", "retro_phase_changed", "retro_phase_changed", "retro_phase_changed",
            "retro_closed"]  # fmt: skip
    for watcher in watchers:
        findings.expect(
            await wait_until(lambda w=watcher: retro_events(w) == want, 10),
            f"{watcher.name} on node {watcher.node} got retro events {retro_events(watcher)}",
        )
        parts = {f["part"] for _, _, f in watcher.frames if f["type"] == "retro_update"}
        findings.expect(
            {"entries", "groups", "votes", "participants"} <= parts,
            f"{watcher.name} on node {watcher.node} got retro_update parts {sorted(parts)}",
        )
    stored = [e["type"] for e in await cluster.history(tokens["rita"], "retroboard")
              if e["type"].startswith("retro_")]  # fmt: skip
    findings.expect(stored == want, f"stored retro events {stored}")


async def polls_cross_instances(cluster: Cluster, findings: Findings, a: Any, b: Any) -> None:
    """
    A poll made on node 1 and voted on through both: a subscriber on each instance gets
    poll_update frames, at most one per instance every POLL_UPDATE_EVERY_SECONDS however
    fast the votes come, the last with the exact totals. When it is due, both instances'
    timers wake at once (a NOTIFY) and it closes once: one poll_closed stored, each
    subscriber gets it once, and a vote after it is 409 on either instance.
    """
    voters = [f"voter{i:02d}" for i in range(12)]
    tokens = await cluster.register(["pia", *voters], via=[a, b])
    await cluster.create_room(tokens["pia"], "agora", via=a)
    for i, name in enumerate(voters):
        daemon = (a, b)[i % 2]
        status, body, _ = await api(daemon.base_url, "POST", "/api/rooms/agora/join", tokens[name])
        assert status == 200, body
    watchers = [cluster.client("pia", tokens["pia"]), cluster.client("voter00", tokens["voter00"])]
    for watcher, daemon in zip(watchers, (a, b), strict=True):
        await watcher.connect(daemon)
        await watcher.join("agora")
    status, poll, _ = await api(
        a.base_url,
        "POST",
        "/api/rooms/agora/polls",
        tokens["pia"],
        {"question": "Where?", "options": ["hall", "park", "pub"], "multiple": True,
         "closes_in_s": 60},
    )  # fmt: skip
    assert status == 201, poll
    path = f"/api/rooms/agora/polls/{poll['id']}"

    async def vote(name: str, choices: list[int], daemon: Any) -> tuple[int, Any]:
        status, body, _ = await api(
            daemon.base_url, "POST", path + "/vote", tokens[name], {"choices": choices}
        )
        return status, body

    # Two rounds as fast as they go, half on each instance; the second changes some.
    choices = {name: [i % 3] for i, name in enumerate(voters)}
    started = time.monotonic()
    for round_ in range(2):
        if round_:
            choices.update({name: [0, 2] for name in voters[:5]})
        answers = await gatherResults(
            [
                ensureDeferred(vote(name, choices[name], (a, b)[i % 2]))
                for i, name in enumerate(voters)
            ]
        )
        findings.expect(
            all(status == 200 for status, _ in answers),
            f"votes refused: {[a for a in answers if a[0] != 200][:3]}",
        )
    elapsed = time.monotonic() - started
    status, final, _ = await api(b.base_url, "GET", path, tokens["pia"])
    want_votes = [sum(i in c for c in choices.values()) for i in range(3)]
    findings.expect(
        [o["votes"] for o in final["options"]] == want_votes and final["voters"] == len(voters),
        f"the poll's totals {final['options']}, want votes {want_votes}",
    )
    want = {"type": "poll_update", "room": "agora", "poll": {**final, "mine": None}}

    def updates(watcher: LedgerClient) -> list[dict]:
        return [f for _, _, f in watcher.frames if f["type"] == "poll_update"]

    for watcher in watchers:
        findings.expect(
            await wait_until(lambda w=watcher: updates(w)[-1:] == [want], 5),
            f"{watcher.name} on node {watcher.node}: last poll_update"
            f" {(updates(watcher) or [None])[-1]}, want {want}",
        )
    await sleep(2 * POLL_UPDATE_EVERY_SECONDS)  # an update still owed would come now
    # Each instance sends one at once and then one per interval, plus the one owed.
    bound = 2 * (elapsed / POLL_UPDATE_EVERY_SECONDS + 2)
    for watcher in watchers:
        got = updates(watcher)
        findings.expect(
            got[-1:] == [want], f"{watcher.name}: a poll_update came after the final one"
        )
        findings.expect(
            1 <= len(got) <= bound,
            f"{watcher.name} got {len(got)} poll_updates for {2 * len(voters)} votes in"
            f" {elapsed:.2f}s (at most {bound:.0f})",
        )
    findings.note(f"poll_updates for {2 * len(voters)} votes in {elapsed:.2f}s:"
                  f" {[len(updates(w)) for w in watchers]}")  # fmt: skip

    # Due now, and both timers told at once: one of them closes it.
    await deferToThread(make_poll_due, cluster.database_url, int(poll["id"]))

    def closed_events(watcher: LedgerClient) -> list[dict]:
        return [e for e in watcher.events_in("agora") if e["type"] == "poll_closed"]

    findings.expect(
        await wait_until(lambda: all(closed_events(w) for w in watchers), 10),
        f"poll_closed received: {[len(closed_events(w)) for w in watchers]}",
    )
    await sleep(1.0)  # a second close, or a duplicate, would be here by now
    stored = [
        e for e in await cluster.history(tokens["pia"], "agora") if e["type"] == "poll_closed"
    ]
    findings.expect(len(stored) == 1, f"poll_closed stored {len(stored)} times")
    findings.expect(
        stored and stored[0]["poll"]["closed"] and stored[0]["poll"]["options"] == final["options"],
        f"the stored poll_closed {stored[:1]}, final results {final['options']}",
    )
    for watcher in watchers:
        got = closed_events(watcher)
        findings.expect(
            [e["id"] for e in got] == [e["id"] for e in stored],
            f"{watcher.name} on node {watcher.node} got poll_closed {got}, stored {stored}",
        )
    closings = sum(
        "closed 1 poll(s) whose time had come" in line
        for daemon in (a, b)
        for line in daemon.log().splitlines()
    )
    findings.expect(closings == 1, f"{closings} instances logged closing the poll")
    for daemon in (a, b):
        status, body = await vote("voter01", [1], daemon)
        findings.expect(
            status == 409 and body["error_code"] == "poll_closed",
            f"a vote after the close on node {cluster.node_of(daemon)}: {status} {body}",
        )


def make_poll_due(database_url: str, poll_id: int) -> None:
    """Blocking: the poll's time passed a second ago, and every instance's timer wakes."""
    connection = psycopg2.connect(database_url, connect_timeout=10)
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute(
                "UPDATE polls SET created_at = now() - interval '2 minutes',"
                " closes_at = now() - interval '1 second' WHERE id = %s",
                (poll_id,),
            )
            cursor.execute("SELECT pg_notify(%s, '0')", (POLLS_CLOSING_CHANNEL,))
    finally:
        connection.close()


async def dms_cross_instances(cluster: Cluster, findings: Findings, a: Any, b: Any) -> None:
    """
    A direct message posted on node 1 is a ``notify`` (``dm``) on every socket of the
    peer, one on each node, once, and none to its author; a user the peer blocks can
    neither open the room nor reach them with a mention in a room they share.
    """
    tokens = await cluster.register(["dia", "eli", "fay"], via=[a])
    await cluster.create_room(tokens["fay"], "hub", via=a)
    for name in ("dia", "eli"):
        status, body, _ = await api(a.base_url, "POST", "/api/rooms/hub/join", tokens[name])
        assert status == 200, body
    eli_a, eli_b = cluster.client("eli", tokens["eli"]), cluster.client("eli", tokens["eli"])
    dia = cluster.client("dia", tokens["dia"])
    await eli_a.connect(a)
    await eli_b.connect(b)
    await dia.connect(b)

    async def on(daemon: Any, who: str, method: str, path: str, body: Any = None) -> tuple:
        status, answer, _ = await api(daemon.base_url, method, path, tokens[who], body)
        return status, answer

    status, room = await on(a, "dia", "POST", "/api/dms", {"username": "eli"})
    assert status == 201, room
    heard = [
        c.expect(lambda f: f["type"] == "notify").addTimeout(10, reactor) for c in (eli_a, eli_b)
    ]
    status, message = await on(a, "dia", "POST", f"/api/rooms/{room['name']}/messages",
                               {"body": "psst @eli"})  # fmt: skip
    assert status == 201, message
    for client, waiting in zip((eli_a, eli_b), heard, strict=True):
        try:
            notify = await waiting
        except Exception:  # noqa: BLE001 - a timeout: the finding is recorded
            notify = None
        findings.expect(
            notify == {"type": "notify", "reason": "dm", "room": room["name"], "event": message},
            f"eli's socket on node {client.node} got {notify} for the direct message",
        )

    status, _ = await on(b, "eli", "POST", "/api/blocks", {"username": "fay"})
    assert status == 204
    status, refused = await on(a, "fay", "POST", "/api/dms", {"username": "eli"})
    findings.expect(status == 403, f"fay, blocked, opened a direct room with eli: {refused}")
    status, _ = await on(a, "fay", "POST", "/api/rooms/hub/messages", {"body": "@eli hey"})
    assert status == 201
    marked = [
        c.expect(lambda f: f["type"] == "notify").addTimeout(10, reactor) for c in (eli_a, eli_b)
    ]
    status, marker = await on(a, "dia", "POST", "/api/rooms/hub/messages", {"body": "@eli m"})
    assert status == 201
    for waiting in marked:
        try:
            await waiting
        except Exception:  # noqa: BLE001 - checked below
            pass
    await sleep(0.5)  # time enough for a duplicate on its way
    told = {
        f"{c.name}@{c.node}": [f["event"]["id"] for _, _, f in c.frames if f["type"] == "notify"]
        for c in (eli_a, eli_b, dia)
    }
    want = {f"eli@{c.node}": [message["id"], marker["id"]] for c in (eli_a, eli_b)}
    findings.expect(told == {**want, f"dia@{dia.node}": []}, f"notify event ids, by socket: {told}")
