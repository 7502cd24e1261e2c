"""
Retention against the real database: batches, the lock between instances, the audit row,
the command, and catch-up over a real WebSocket after old events went.
"""

from __future__ import annotations

import select
import time
from datetime import datetime, timedelta, timezone

import psycopg2
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred, gatherResults
from twisted.internet.task import deferLater
from twisted.internet.testing import MemoryReactor

from support import bearer, config_for, start
from termrooms.domain.retention import KINDS, RetentionPolicy
from termrooms.handlers.retention import RetentionService, dry_run, run_pass
from termrooms.storage.database import connect_one
from termrooms.storage.migrations import load_deltas, migrate
from termrooms.storage.retention import RETENTION_LOCK_KEY
from termrooms.tap import Options, makeService
from test_rooms import connect, frames_until, make_room, user_session

KEEP_ALL = RetentionPolicy(
    messages=timedelta(0),
    idle_rooms=timedelta(0),
    deleted_rooms=timedelta(0),
    audit_rows=timedelta(0),
)
ADA = 1


def sql(url: str, statement: str, params: tuple = ()) -> list[tuple]:
    """Run one statement on a connection of its own; the rows it returned, if any."""
    connection = psycopg2.connect(url)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement, params)
            return cursor.fetchall() if cursor.description else []
    finally:
        connection.close()


def add_room(url: str, room_id: int, name: str, idle_for: timedelta = timedelta(0)) -> None:
    sql(
        url,
        "INSERT INTO users (id, username, display_name, password_hash)"
        " VALUES (%s, 'ada', 'ada', 'x') ON CONFLICT DO NOTHING",
        (ADA,),
    )
    sql(
        url,
        "INSERT INTO rooms (id, name, visibility, created_by, created_at, last_event_at)"
        " VALUES (%s, %s, 'public', %s, now() - %s, now() - %s)",
        (room_id, name, ADA, idle_for, idle_for),
    )


def add_events(url: str, room_id: int, count: int, age: timedelta) -> None:
    """``count`` messages ``age`` old, after the room's newest."""
    (last_seq,) = sql(url, "SELECT last_seq FROM rooms WHERE id = %s", (room_id,))[0]
    for seq in range(last_seq + 1, last_seq + count + 1):
        sql(
            url,
            "INSERT INTO room_events (id, room_id, seq, type, user_id, body, created_at)"
            " VALUES (%s, %s, %s, 'message', %s, %s, now() - %s)",
            (room_id * 100_000 + seq, room_id, seq, ADA, f"m{seq}", age),
        )
    sql(url, "UPDATE rooms SET last_seq = %s WHERE id = %s", (last_seq + count, room_id))


def seqs(url: str, room_id: int) -> list[int]:
    rows = sql(url, "SELECT seq FROM room_events WHERE room_id = %s ORDER BY seq", (room_id,))
    return [seq for (seq,) in rows]


def retention_audit(url: str) -> list[dict]:
    rows = sql(url, "SELECT data FROM audit_log WHERE action = 'retention.run' ORDER BY id")
    return [data for (data,) in rows]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


async def one_pass(url: str, policy: RetentionPolicy, now: datetime | None = None, **kwargs):
    connection = await connect_one(reactor, url)
    try:
        return await run_pass(connection, policy, now or utc_now(), **kwargs)
    finally:
        connection.close()


@pytest_twisted.ensureDeferred
async def test_old_events_go_in_batches_of_the_batch_size_and_recent_ones_stay(
    fresh_migrated_database_url,
):
    url = fresh_migrated_database_url
    add_room(url, 7, "lobby")
    add_events(url, 7, 10, timedelta(days=31))
    add_events(url, 7, 3, timedelta(days=29))
    policy = RetentionPolicy(messages=timedelta(days=30), batch_size=3)
    asked = []

    # Stopped before its third batch, a pass has removed two batches for good: each
    # batch is a transaction of its own, of batch_size rows.
    stopped = await one_pass(url, policy, stopping=lambda: asked.append(1) or len(asked) > 2)
    assert stopped.counts["messages"] == 6 and not stopped.complete
    assert seqs(url, 7) == list(range(7, 14))

    finished = await one_pass(url, policy)
    assert finished.counts["messages"] == 4 and finished.complete
    assert seqs(url, 7) == [11, 12, 13]


@pytest_twisted.ensureDeferred
async def test_zero_keeps_old_events_rooms_and_audit_rows(fresh_migrated_database_url):
    url = fresh_migrated_database_url
    add_room(url, 7, "lobby", idle_for=timedelta(days=400))
    add_events(url, 7, 5, timedelta(days=400))
    sql(
        url, "INSERT INTO audit_log (action, created_at) VALUES ('x', now() - '400 days'::interval)"
    )

    report = await one_pass(url, KEEP_ALL, purge_expired=False)

    assert report.total == 0
    assert seqs(url, 7) == [1, 2, 3, 4, 5]
    assert sql(url, "SELECT deleted_at FROM rooms") == [(None,)]
    assert sql(url, "SELECT count(*) FROM audit_log") == [(1,)]
    assert retention_audit(url) == []  # nothing removed, no daily purge: no audit row


@pytest_twisted.ensureDeferred
async def test_idle_rooms_are_soft_deleted_like_a_delete_with_the_removal_notified(
    fresh_migrated_database_url,
):
    url = fresh_migrated_database_url
    add_room(url, 7, "quiet", idle_for=timedelta(days=8))
    add_room(url, 8, "busy", idle_for=timedelta(days=6))
    listener = psycopg2.connect(url)
    listener.autocommit = True
    listener.cursor().execute("LISTEN termrooms_room_removals")
    try:
        report = await one_pass(url, RetentionPolicy(idle_rooms=timedelta(days=7)))
        select.select([listener], [], [], 5)
        listener.poll()
        heard = [n.payload for n in listener.notifies]
    finally:
        listener.close()

    assert report.counts["idle_rooms"] == 1
    assert heard == ["7 * 0"]  # every member of room 7 stops receiving it
    live = sql(url, "SELECT name FROM rooms WHERE deleted_at IS NULL")
    assert live == [("busy",)]
    deletions = sql(url, "SELECT actor_id, room_id FROM audit_log WHERE action = 'room.delete'")
    assert deletions == [(None, 7)]  # no actor: the system did it
    # The name is free again, as after an owner's DELETE.
    add_room(url, 9, "quiet")


@pytest_twisted.ensureDeferred
async def test_a_direct_room_is_never_idle(fresh_migrated_database_url):
    """A conversation is not an abandoned room (docs/protocol.md, Direct messages)."""
    url = fresh_migrated_database_url
    add_room(url, 7, "quiet", idle_for=timedelta(days=8))
    sql(
        url,
        "INSERT INTO users (id, username, display_name, password_hash) VALUES (2, 'bob', 'bob', 'x')",
    )
    sql(
        url,
        "INSERT INTO rooms (id, name, visibility, created_by, kind, direct_low, direct_high,"
        "                   last_event_at)"
        " VALUES (8, 'dm-8', 'private', %s, 'direct', %s, 2, now() - interval '80 days')",
        (ADA, ADA),
    )
    policy = RetentionPolicy(idle_rooms=timedelta(days=7))
    connection = await connect_one(reactor, url)
    try:
        assert (await dry_run(connection, policy, utc_now())).counts["idle_rooms"] == 1
    finally:
        connection.close()
    report = await one_pass(url, policy)
    assert report.counts["idle_rooms"] == 1
    assert sql(url, "SELECT name FROM rooms WHERE deleted_at IS NULL") == [("dm-8",)]


@pytest_twisted.ensureDeferred
async def test_a_room_whose_old_events_went_is_idle_by_its_last_event_not_its_creation(
    fresh_migrated_database_url,
):
    """Message retention shorter than idle retention must not make a room look idle."""
    url = fresh_migrated_database_url
    add_room(url, 7, "lobby")
    sql(url, "UPDATE rooms SET created_at = now() - '100 days'::interval WHERE id = 7")
    add_events(url, 7, 2, timedelta(days=40))
    # What the schema records when an event is stored the real way.
    sql(url, "UPDATE rooms SET last_event_at = now() - '40 days'::interval WHERE id = 7")

    report = await one_pass(
        url, RetentionPolicy(messages=timedelta(days=30), idle_rooms=timedelta(days=60))
    )

    assert report.counts["messages"] == 2 and report.counts["idle_rooms"] == 0
    assert sql(url, "SELECT deleted_at IS NULL FROM rooms") == [(True,)]
    later = await one_pass(
        url,
        RetentionPolicy(messages=timedelta(days=30), idle_rooms=timedelta(days=60)),
        utc_now() + timedelta(days=21),
    )
    assert later.counts["idle_rooms"] == 1


@pytest_twisted.ensureDeferred
async def test_old_audit_rows_go_and_the_pass_records_its_counts(fresh_migrated_database_url):
    url = fresh_migrated_database_url
    for age in ("91 days", "95 days", "89 days"):
        sql(
            url,
            "INSERT INTO audit_log (action, created_at) VALUES ('x', now() - %s::interval)",
            (age,),
        )
    add_room(url, 7, "lobby")
    add_events(url, 7, 4, timedelta(days=31))
    add_events(url, 7, 1, timedelta(0))

    report = await one_pass(url, RetentionPolicy(), purge_expired=False)

    assert sql(url, "SELECT count(*) FROM audit_log WHERE action = 'x'") == [(1,)]
    expected = dict.fromkeys(KINDS, 0) | {"messages": 4, "audit_rows": 2}
    assert dict(report.counts) == expected
    assert retention_audit(url) == [{"removed": expected, "purged_expired": False}]
    (actor,) = sql(url, "SELECT actor_id FROM audit_log WHERE action = 'retention.run'")[0]
    assert actor is None


def add_expiring_rows(url: str) -> None:
    """Of each expiring kind: one long expired, one just expired, one live, one never."""
    add_room(url, 7, "lobby")
    expiries = [
        "now() - '3 days'::interval",
        "now() - '1 minute'::interval",
        "now() + '1 hour'::interval",
        "NULL",
    ]
    for n, expires in enumerate(expiries):
        user_id = n + 2
        sql(
            url,
            "INSERT INTO users (id, username, display_name, password_hash)"
            " VALUES (%s, %s, 'u', 'x')",
            (user_id, f"user{user_id}"),
        )
        sql(
            url,
            "INSERT INTO room_bans (room_id, user_id, banned_by, expires_at)"
            f" VALUES (7, %s, %s, {expires})",
            (user_id, ADA),
        )
        sql(
            url,
            "INSERT INTO room_mutes (room_id, user_id, muted_by, expires_at)"
            f" VALUES (7, %s, %s, {expires})",
            (user_id, ADA),
        )
        sql(
            url,
            "INSERT INTO invites (code_hash, created_by, expires_at, max_uses, uses_left)"
            f" VALUES (%s, %s, {expires}, 1, 1)",
            (bytes([n]) * 32, ADA),
        )
    # Tasks: one deleted over 7 days ago (it goes), one deleted 6 days ago, one live.
    for number, deleted in enumerate(
        ["now() - '8 days'::interval", "now() - '6 days'::interval", "NULL"], start=1
    ):
        sql(
            url,
            "INSERT INTO tasks (id, user_id, number, title, deleted_at)"
            f" VALUES (%s, %s, %s, 'personal', {deleted})",
            (100 + number, ADA, number),
        )
    # Sessions: "old" has only tokens expired over a day ago; "mixed" one such token and
    # a live one; "recent" a token expired an hour ago (its access token may live on).
    sessions = {"old": ("3 days", "2 days"), "mixed": ("3 days", "-1 day"), "recent": ("1 hour",)}
    for name, ages in sessions.items():
        (family,) = sql(
            url,
            "INSERT INTO refresh_token_families (user_id) VALUES (%s) RETURNING id::text",
            (ADA,),
        )[0]
        for n, age in enumerate(ages):
            sql(
                url,
                "INSERT INTO refresh_tokens (token_hash, family_id, issued_at, expires_at)"
                " VALUES (%s, %s, now() - '40 days'::interval, now() - %s::interval)",
                ((name + str(n)).encode().ljust(32, b"."), family, age),
            )
        FAMILIES[name] = family


FAMILIES: dict[str, str] = {}


@pytest_twisted.ensureDeferred
async def test_expired_tokens_sessions_invites_bans_and_mutes_are_purged(
    fresh_migrated_database_url,
):
    url = fresh_migrated_database_url
    add_expiring_rows(url)

    report = await one_pass(url, KEEP_ALL, purge_expired=True)

    assert {k: v for k, v in report.counts.items() if v} == {
        "refresh_tokens": 3,  # old's two, mixed's expired one
        "sessions": 1,
        "invites": 2,
        "bans": 2,
        "mutes": 2,
        "deleted_tasks": 1,
    }
    assert sql(url, "SELECT user_id FROM room_bans ORDER BY user_id") == [(4,), (5,)]
    assert sql(url, "SELECT user_id FROM room_mutes ORDER BY user_id") == [(4,), (5,)]
    assert sql(url, "SELECT count(*) FROM invites") == [(2,)]
    assert sql(url, "SELECT id FROM tasks ORDER BY id") == [(102,), (103,)]
    families = {f for (f,) in sql(url, "SELECT id::text FROM refresh_token_families")}
    assert families == {FAMILIES["mixed"], FAMILIES["recent"]}
    assert retention_audit(url)[-1]["purged_expired"] is True


@pytest_twisted.ensureDeferred
async def test_the_daily_purge_runs_on_the_first_scheduled_pass_of_a_utc_day(
    fresh_migrated_database_url,
):
    url = fresh_migrated_database_url
    add_room(url, 7, "lobby")
    expired = "INSERT INTO invites (code_hash, created_by, expires_at, max_uses, uses_left)"
    expired += " VALUES (%s, 1, now() - '1 hour'::interval, 1, 1)"
    sql(url, expired, (b"a" * 32,))

    first = await one_pass(url, KEEP_ALL)
    sql(url, expired, (b"b" * 32,))
    again = await one_pass(url, KEEP_ALL)
    (today,) = sql(url, "SELECT now()")[0]
    tomorrow = await one_pass(
        url,
        KEEP_ALL,
        datetime.combine(
            today.astimezone(timezone.utc).date() + timedelta(days=1),
            datetime.min.time(),
            timezone.utc,
        ),
    )

    assert first.counts["invites"] == 1
    assert "invites" not in again.cutoffs and again.total == 0
    assert tomorrow.counts["invites"] == 1
    assert [data["purged_expired"] for data in retention_audit(url)] == [True, True]


@pytest_twisted.ensureDeferred
async def test_two_instances_at_once_one_pass_does_the_work(fresh_migrated_database_url):
    url = fresh_migrated_database_url
    add_room(url, 7, "lobby")
    add_events(url, 7, 60, timedelta(days=31))
    policy = RetentionPolicy(batch_size=5)

    reports = await gatherResults(
        [ensureDeferred(one_pass(url, policy)), ensureDeferred(one_pass(url, policy))]
    )

    worked = [r for r in reports if r is not None]
    assert len(worked) == 1, reports
    assert worked[0].counts["messages"] == 60
    assert seqs(url, 7) == []
    assert len(retention_audit(url)) == 1


@pytest_twisted.ensureDeferred
async def test_a_pass_does_nothing_while_another_session_holds_the_lock(
    fresh_migrated_database_url,
):
    url = fresh_migrated_database_url
    add_room(url, 7, "lobby")
    add_events(url, 7, 3, timedelta(days=31))
    holder = psycopg2.connect(url)
    holder.autocommit = True
    try:
        holder.cursor().execute("SELECT pg_advisory_lock(%s)", (RETENTION_LOCK_KEY,))
        assert await one_pass(url, RetentionPolicy()) is None
        assert seqs(url, 7) == [1, 2, 3]
        # Unlocked before the next pass: a closed session's locks go only when its
        # backend has exited, a moment after the client hangs up (a race under load).
        holder.cursor().execute("SELECT pg_advisory_unlock(%s)", (RETENTION_LOCK_KEY,))
    finally:
        holder.close()
    assert (await one_pass(url, RetentionPolicy())).counts["messages"] == 3


@pytest_twisted.ensureDeferred
async def test_dry_run_counts_every_kind_and_removes_nothing(fresh_migrated_database_url):
    url = fresh_migrated_database_url
    add_expiring_rows(url)
    add_events(url, 7, 4, timedelta(days=31))
    before = sql(url, "SELECT (SELECT count(*) FROM room_events), (SELECT count(*) FROM invites)")
    connection = await connect_one(reactor, url)
    try:
        report = await dry_run(connection, RetentionPolicy(), utc_now())
    finally:
        connection.close()

    assert {k: v for k, v in report.counts.items() if v} == {
        "messages": 4,
        "refresh_tokens": 3,
        "sessions": 1,
        "invites": 2,
        "bans": 2,
        "mutes": 2,
        "deleted_tasks": 1,
    }
    assert (
        sql(url, "SELECT (SELECT count(*) FROM room_events), (SELECT count(*) FROM invites)")
        == before
    )
    assert retention_audit(url) == []


def test_the_command_dry_run_prints_counts_then_a_pass_removes_them(
    fresh_migrated_database_url, termrooms
):
    url = fresh_migrated_database_url
    add_room(url, 7, "lobby")
    add_events(url, 7, 4, timedelta(days=31))
    add_events(url, 7, 2, timedelta(days=1))

    dry = termrooms(["retention", "--dry-run", "--database-url", url], check=True)
    assert "messages        would remove 4: room events stored before " in dry.stdout
    assert "audit_rows      would remove 0: " in dry.stdout
    assert seqs(url, 7) == [1, 2, 3, 4, 5, 6]
    assert retention_audit(url) == []

    kept = termrooms(
        ["retention", "--dry-run", "--database-url", url],
        env={"TERMROOMS_MESSAGE_RETENTION": "0"},
        check=True,
    )
    assert "messages        kept (message_retention is 0)" in kept.stdout

    done = termrooms(["retention", "--database-url", url], check=True)
    assert "messages        removed 4: " in done.stdout
    assert seqs(url, 7) == [5, 6]
    assert retention_audit(url)[-1]["removed"]["messages"] == 4


def test_the_command_says_so_when_another_instance_holds_the_lock(
    fresh_migrated_database_url, termrooms
):
    url = fresh_migrated_database_url
    holder = psycopg2.connect(url)
    holder.autocommit = True
    try:
        holder.cursor().execute("SELECT pg_advisory_lock(%s)", (RETENTION_LOCK_KEY,))
        result = termrooms(["retention", "--database-url", url])
    finally:
        holder.close()

    assert result.returncode == 1
    assert "another instance is running a retention pass; nothing removed" in result.stderr


# ----------------------------------------------------------------------- the daemon


@pytest_twisted.async_yield_fixture
async def running(fresh_migrated_database_url, tmp_path):
    server = await start(config_for(fresh_migrated_database_url, tmp_path, no_rate_limits=True))
    yield server
    await server.stop()


async def post(running, session, body: str) -> dict:
    status, event, _ = await running.request(
        "POST",
        "/api/rooms/lobby/messages",
        json={"body": body},
        headers=bearer(session["access_token"]),
    )
    assert status == 201, event
    return event


@pytest_twisted.ensureDeferred
async def test_catch_up_from_before_what_retention_kept_gets_history_truncated(running):
    url = running.server.config.database_url
    ada = await user_session(running, "ada")
    await make_room(running, ada)  # seq 1: ada joined
    for i in range(2, 11):
        await post(running, ada, f"m{i}")
    sql(url, "UPDATE room_events SET created_at = now() - '31 days'::interval WHERE seq <= 6")
    service = RetentionService(running.server, 3600)
    report = await service.run_once()
    assert report.counts["messages"] == 6

    client = await connect(running, ada)
    client.send({"type": "join", "room": "lobby", "since": 2})
    frames = await frames_until(client, lambda f: f.get("seq") == 10)
    other = await connect(running, ada)
    other.send({"type": "join", "room": "lobby", "since": 8})
    later = await frames_until(other, lambda f: f.get("seq") == 10)

    kinds = [f["type"] for f in frames]
    assert kinds[kinds.index("joined") + 1] == "history_truncated"
    truncated = frames[kinds.index("history_truncated")]
    assert truncated == {"type": "history_truncated", "room": "lobby", "oldest_seq": 7}
    assert [f["seq"] for f in frames if "seq" in f] == [7, 8, 9, 10]
    # From within what was kept: no marker, just the events.
    assert "history_truncated" not in [f["type"] for f in later]
    assert [f["seq"] for f in later if "seq" in f] == [9, 10]
    for socket in (client, other):
        socket.protocol.sendClose(1000)
        await socket.close_code()


@pytest_twisted.ensureDeferred
async def test_catch_up_in_a_room_whose_every_event_went_is_truncated_then_live(running):
    url = running.server.config.database_url
    ada = await user_session(running, "ada")
    await make_room(running, ada)
    for i in range(2, 6):
        await post(running, ada, f"m{i}")
    sql(url, "UPDATE room_events SET created_at = now() - '31 days'::interval")
    policy = RetentionPolicy(messages=timedelta(days=30), idle_rooms=timedelta(0))
    assert (await one_pass(url, policy)).counts["messages"] == 5

    client = await connect(running, ada)
    client.send({"type": "join", "room": "lobby", "since": 2})
    frames = await frames_until(client, lambda f: f["type"] == "history_truncated")
    await post(running, ada, "after the gap")
    live = await frames_until(client, lambda f: f["type"] == "message")

    assert frames[-2]["type"] == "joined" and frames[-2]["last_seq"] == 5
    assert frames[-1] == {"type": "history_truncated", "room": "lobby", "oldest_seq": 6}
    assert (live[-1]["seq"], live[-1]["body"]) == (6, "after the gap")
    client.protocol.sendClose(1000)
    await client.close_code()


@pytest_twisted.ensureDeferred
async def test_http_history_after_retention_starts_at_the_oldest_kept_event(running):
    url = running.server.config.database_url
    ada = await user_session(running, "ada")
    await make_room(running, ada)
    for i in range(2, 11):
        await post(running, ada, f"m{i}")
    sql(url, "UPDATE room_events SET created_at = now() - '31 days'::interval WHERE seq <= 6")
    await RetentionService(running.server, 3600).run_once()
    auth = bearer(ada["access_token"])

    _, after, _ = await running.request("GET", "/api/rooms/lobby/messages?after=2", headers=auth)
    _, before, _ = await running.request("GET", "/api/rooms/lobby/messages?before=9", headers=auth)

    # The gap shows in the seqs: the first event is not after + 1.
    assert [e["seq"] for e in after["events"]] == [7, 8, 9, 10]
    # Paging back ends at the oldest kept event.
    assert [e["seq"] for e in before["events"]] == [7, 8] and before["has_more"] is False


async def until(predicate, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        await deferLater(reactor, 0.05)
    raise AssertionError("it never happened")


@pytest_twisted.ensureDeferred
async def test_the_daemon_service_waits_for_the_schema_and_gives_up_when_stopped(running):
    url = running.server.config.database_url
    add_room(url, 7, "old")
    add_events(url, 7, 3, timedelta(days=31))
    service = RetentionService(running.server, 3600)
    running.server.schema_ready = False

    service.startService()  # its first pass waits for the schema...
    await deferLater(reactor, 0.5)
    assert seqs(url, 7) == [1, 2, 3]
    await service.stopService()  # ...and gives up when the daemon stops first
    assert seqs(url, 7) == [1, 2, 3]

    service.startService()
    await deferLater(reactor, 0.5)
    running.server.schema_ready = True
    await until(lambda: seqs(url, 7) == [])
    await service.stopService()
    assert retention_audit(url)[-1]["removed"]["messages"] == 3


@pytest_twisted.ensureDeferred
async def test_storing_an_event_records_when_the_room_was_last_active(running):
    url = running.server.config.database_url
    ada = await user_session(running, "ada")
    await make_room(running, ada)
    sql(url, "UPDATE rooms SET last_event_at = now() - '9 days'::interval")

    event = await post(running, ada, "still here")

    (last_event_at, created_at) = sql(
        url,
        "SELECT r.last_event_at, e.created_at FROM rooms r"
        " JOIN room_events e ON e.room_id = r.id AND e.seq = r.last_seq",
    )[0]
    assert event["seq"] == 2
    assert timedelta(0) <= created_at - last_event_at < timedelta(seconds=1)


@pytest_twisted.ensureDeferred
async def test_the_migration_dates_existing_rooms_by_their_newest_event(database_url):
    url = database_url
    connection = await connect_one(reactor, url)
    try:
        await migrate(connection, load_deltas()[:1])
        sql(
            url,
            "INSERT INTO users (id, username, display_name, password_hash)"
            " VALUES (1, 'ada', 'ada', 'x')",
        )
        for room_id, name in ((7, "talked"), (8, "silent")):
            sql(
                url,
                "INSERT INTO rooms (id, name, visibility, created_by, created_at)"
                " VALUES (%s, %s, 'public', 1, now() - '5 days'::interval)",
                (room_id, name),
            )
        add_events(url, 7, 2, timedelta(days=3))
        add_events(url, 7, 1, timedelta(days=2))
        await migrate(connection, load_deltas())
    finally:
        connection.close()

    rows = sql(
        url,
        "SELECT name, round(extract(epoch FROM now() - last_event_at) / 86400)"
        " FROM rooms ORDER BY id",
    )
    assert rows == [("talked", 2), ("silent", 5)]


def test_the_daemon_runs_retention_every_retention_interval() -> None:
    options = Options()
    options.parseOptions(["--retention-interval", "10m"])

    top = makeService(options, MemoryReactor())

    (service,) = [s for s in top if isinstance(s, RetentionService)]
    assert service.step == 600
    assert service.server is top.server


def test_a_real_daemon_clears_a_backlog_at_start_and_a_second_one_finds_it_done(
    fresh_migrated_database_url, daemons
):
    url = fresh_migrated_database_url
    add_room(url, 7, "lobby")
    sql(
        url,
        "INSERT INTO room_events (id, room_id, seq, type, user_id, body, created_at)"
        " SELECT 700000 + n, 7, n, 'message', 1, 'old', now() - '40 days'::interval"
        "   FROM generate_series(1, 2500) AS n",
    )
    sql(url, "UPDATE rooms SET last_seq = 2500")
    add_events(url, 7, 2, timedelta(0))

    first = daemons(["--database-url", url, "--node-id", "1"])
    second = daemons(["--database-url", url, "--node-id", "2"])
    deadline = time.monotonic() + 30
    while seqs(url, 7) != [2501, 2502]:
        assert time.monotonic() < deadline, "the backlog was never cleared"
        time.sleep(0.1)
    deadline = time.monotonic() + 10
    while not all('"termrooms.handlers.retention"' in d.log() for d in (first, second)):
        assert time.monotonic() < deadline, "a daemon never reported its pass"
        time.sleep(0.1)

    (data,) = retention_audit(url)
    assert data["removed"]["messages"] == 2500
    logs = [d.log() for d in (first, second)]
    assert sum("retention removed 2500 row(s)" in log for log in logs) == 1
    assert sum("retention removed 0 row(s)" in log or "skipped" in log for log in logs) == 1
    assert first.stop() == 0 and second.stop() == 0


def deleted_room(url: str, room_id: int, name: str, deleted_for: timedelta, events: int) -> None:
    """A room soft-deleted ``deleted_for`` ago with ``events`` messages, a member, a task,
    a poll with a vote and a retro with an entry, a group and a vote and a score."""
    add_room(url, room_id, name)
    add_events(url, room_id, events, deleted_for)
    base = room_id * 10
    sql(
        url,
        "INSERT INTO memberships (room_id, user_id, role) VALUES (%(room)s, 1, 'owner');"
        "INSERT INTO tasks (id, room_id, user_id, number, title) VALUES (%(b)s, %(room)s, 1, 1, 't');"
        "INSERT INTO polls (id, room_id, user_id, question) VALUES (%(b)s, %(room)s, 1, 'q');"
        "INSERT INTO poll_options (poll_id, option_index, text) VALUES (%(b)s, 0, 'a'), (%(b)s, 1, 'b');"
        "INSERT INTO poll_votes (poll_id, user_id, option_index) VALUES (%(b)s, 1, 0);"
        "INSERT INTO retros (id, room_id, facilitator_id, title, columns, votes_per_participant,"
        "                    anonymous, phase, focus_group_id)"
        " VALUES (%(b)s, %(room)s, 1, 'r', '{ideas}', 3, true, 'vote', NULL);"
        "INSERT INTO retro_participants (retro_id, user_id) VALUES (%(b)s, 1);"
        "INSERT INTO retro_groups (id, retro_id, column_index) VALUES (%(b)s + 1, %(b)s, 0);"
        "INSERT INTO retro_entries (id, retro_id, user_id, column_index, text, group_id)"
        " VALUES (%(b)s + 1, %(b)s, 1, 0, 'e', %(b)s + 1);"
        "INSERT INTO retro_votes (retro_id, group_id, user_id, count) VALUES (%(b)s, %(b)s + 1, 1, 2);"
        "INSERT INTO retro_happiness (retro_id, user_id, score) VALUES (%(b)s, 1, 4);"
        "UPDATE retros SET focus_group_id = %(b)s + 1 WHERE id = %(b)s;"
        "UPDATE rooms SET deleted_at = now() - %(ago)s WHERE id = %(room)s",
        {"room": room_id, "b": base, "ago": deleted_for},
    )


ROOM_ROWS = (
    "SELECT (SELECT count(*) FROM rooms WHERE id = %(room)s),"
    " (SELECT count(*) FROM room_events WHERE room_id = %(room)s),"
    " (SELECT count(*) FROM memberships WHERE room_id = %(room)s),"
    " (SELECT count(*) FROM tasks WHERE room_id = %(room)s),"
    " (SELECT count(*) FROM polls WHERE room_id = %(room)s),"
    " (SELECT count(*) FROM poll_votes v JOIN polls p ON p.id = v.poll_id WHERE p.room_id = %(room)s),"
    " (SELECT count(*) FROM retros WHERE room_id = %(room)s),"
    " (SELECT count(*) FROM retro_entries e JOIN retros x ON x.id = e.retro_id"
    "   WHERE x.room_id = %(room)s),"
    " (SELECT count(*) FROM retro_votes v JOIN retros x ON x.id = v.retro_id"
    "   WHERE x.room_id = %(room)s)"
)


@pytest_twisted.ensureDeferred
async def test_rooms_deleted_long_enough_ago_go_for_good_with_all_they_held(
    fresh_migrated_database_url,
):
    url = fresh_migrated_database_url
    deleted_room(url, 7, "gone", timedelta(days=31), events=7)
    deleted_room(url, 8, "recent", timedelta(days=10), events=2)
    add_room(url, 9, "alive")
    add_events(url, 9, 3, timedelta(days=1))
    policy = RetentionPolicy(deleted_rooms=timedelta(days=30), batch_size=3)

    connection = await connect_one(reactor, url)
    try:
        dry = await dry_run(connection, policy, utc_now())
    finally:
        connection.close()
    assert dry.counts["deleted_rooms"] == 1
    assert sql(url, ROOM_ROWS, {"room": 7}) == [(1, 7, 1, 1, 1, 1, 1, 1, 1)]  # the dry run kept all
    assert any(line.startswith("deleted_rooms   would remove 1: rooms deleted before")
               for line in dry.lines())  # fmt: skip

    # Seven events in batches of three, then the room with everything it held.
    report = await one_pass(url, policy, purge_expired=False)
    assert report.counts["deleted_rooms"] == 1
    assert sql(url, ROOM_ROWS, {"room": 7}) == [(0, 0, 0, 0, 0, 0, 0, 0, 0)]
    assert sql(url, ROOM_ROWS, {"room": 8}) == [(1, 2, 1, 1, 1, 1, 1, 1, 1)]  # deleted 10 days ago
    assert seqs(url, 9) == [1, 2, 3]  # a live room is no deleted one
    [(room_id, data)] = sql(url, "SELECT room_id, data FROM audit_log WHERE action = 'room.purge'")
    assert room_id == 7 and data["name"] == "gone"
    assert retention_audit(url)[-1]["removed"]["deleted_rooms"] == 1

    # 0 keeps deleted rooms, however old.
    keep = RetentionPolicy(deleted_rooms=timedelta(0))
    later = await one_pass(url, keep, now=utc_now() + timedelta(days=365), purge_expired=False)
    assert later.counts["deleted_rooms"] == 0 and sql(url, ROOM_ROWS, {"room": 8})[0][0] == 1
