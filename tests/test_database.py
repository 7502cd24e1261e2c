"""The pool: transactions, fail-fast while PostgreSQL is away, recovery by itself."""

from __future__ import annotations

import time

import psycopg2
import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import gatherResults
from twisted.internet.task import deferLater

from termrooms.domain.errors import DatabaseUnavailable
from termrooms.storage.database import Database


async def _create_scratch_txn(cursor, name: str) -> None:
    await cursor.execute(f"CREATE TABLE {name} (n integer PRIMARY KEY)")


async def _insert_two_then_fail_txn(cursor, name: str) -> None:
    await cursor.execute(f"INSERT INTO {name} VALUES (1)")
    await cursor.execute(f"INSERT INTO {name} VALUES (2)")
    raise ValueError("the handler changed its mind")


async def _insert_txn(cursor, name: str, n: int) -> int:
    await cursor.execute(f"INSERT INTO {name} VALUES (%s) RETURNING n", (n,))
    return cursor.fetchone()[0]


async def wait_until_connected(database: Database, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not await database.probe(1):
        assert time.monotonic() < deadline, "the pool did not reconnect"
        await deferLater(reactor, 0.1)


def assert_reactor_has_no_stale_descriptors() -> None:
    # Both raise KeyError when a descriptor is watched without its selectable.
    reactor.getReaders()
    reactor.getWriters()


@pytest_twisted.ensureDeferred
async def test_interaction_commits_on_success_and_rolls_back_every_row_on_error(database_url):
    database = Database(reactor, database_url, size=2)
    await database.start()
    try:
        await database.run_interaction(_create_scratch_txn, "scratch")
        assert await database.run_interaction(_insert_txn, "scratch", 7) == 7
        with pytest.raises(ValueError):
            await database.run_interaction(_insert_two_then_fail_txn, "scratch")
        rows = await database.run_query("SELECT n FROM scratch ORDER BY n")
        assert rows == [(7,)]
    finally:
        database.close()


async def _two_transaction_ids_txn(cursor) -> tuple[int, int]:
    await cursor.execute("SELECT txid_current()")
    first = cursor.fetchone()[0]
    await cursor.execute("SELECT txid_current()")
    return first, cursor.fetchone()[0]


@pytest_twisted.ensureDeferred
async def test_reads_run_without_a_transaction_block_and_interactions_within_one(database_url):
    database = Database(reactor, database_url, size=1)
    await database.start()
    try:
        first, second = await database.run_autocommit(_two_transaction_ids_txn)
        assert first != second  # each statement its own transaction: no BEGIN, no COMMIT
        first, second = await database.run_interaction(_two_transaction_ids_txn)
        assert first == second
    finally:
        database.close()


@pytest_twisted.ensureDeferred
async def test_more_concurrent_calls_than_connections_all_complete(database_url):
    database = Database(reactor, database_url, size=2)
    await database.start()
    try:
        results = await gatherResults(
            [database.run_query("SELECT %s::int", (i,)) for i in range(50)]
        )
        assert [rows[0][0] for rows in results] == list(range(50))
    finally:
        database.close()


@pytest_twisted.ensureDeferred
async def test_calls_fail_fast_while_database_is_away_and_succeed_after_it_returns(
    database_proxy,
):
    database = Database(reactor, database_proxy.url, size=3)
    await database.start()
    try:
        await database_proxy.cut()
        started = time.monotonic()
        for _ in range(5):
            with pytest.raises(DatabaseUnavailable):
                await database.run_query("SELECT 1")
        assert time.monotonic() - started < 2, "calls must fail at once, not hang"
        assert not await database.probe(1)

        await database_proxy.restore()
        await wait_until_connected(database)
        assert await database.run_query("SELECT 41 + 1") == [(42,)]
        assert_reactor_has_no_stale_descriptors()
    finally:
        database.close()


@pytest_twisted.ensureDeferred
async def test_pool_started_while_database_is_away_connects_once_it_appears(database_proxy):
    await database_proxy.cut()
    database = Database(reactor, database_proxy.url, size=2)
    connected = database.start()
    try:
        await deferLater(reactor, 1.0)
        assert not connected.called
        with pytest.raises(DatabaseUnavailable):
            await database.run_query("SELECT 1")
        await database_proxy.restore()
        await connected
        assert await database.run_query("SELECT 1") == [(1,)]
        assert_reactor_has_no_stale_descriptors()
    finally:
        database.close()


@pytest_twisted.ensureDeferred
async def test_sql_errors_are_reported_as_themselves_and_keep_the_connection(database_url):
    database = Database(reactor, database_url, size=1)
    await database.start()
    try:
        with pytest.raises(psycopg2.errors.UndefinedTable):
            await database.run_query("SELECT * FROM no_such_table")
        assert database.connected
        assert await database.run_query("SELECT 1") == [(1,)]
    finally:
        database.close()


@pytest_twisted.ensureDeferred
async def test_waiting_longer_than_acquire_timeout_for_a_busy_pool_is_unavailable_not_a_hang(
    database_url,
):
    database = Database(reactor, database_url, size=1, acquire_timeout=0.3)
    await database.start()
    try:
        slow = database.run_query("SELECT pg_sleep(1)")
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailable):
            await database.run_query("SELECT 1")
        assert time.monotonic() - started < 0.9
        await slow
        # The connection came back to the pool: nothing leaked.
        assert await database.run_query("SELECT 2") == [(2,)]
    finally:
        database.close()


async def _slow_insert_txn(cursor, name: str, n: int) -> int:
    await cursor.execute("SELECT pg_sleep(0.3)")
    return await _insert_txn(cursor, name, n)


@pytest_twisted.ensureDeferred
async def test_drain_lets_running_and_waiting_transactions_commit_before_close(database_url):
    database = Database(reactor, database_url, size=1)
    await database.start()
    await database.run_interaction(_create_scratch_txn, "drained")
    running = database.run_interaction(_slow_insert_txn, "drained", 1)
    waiting = database.run_interaction(
        _insert_txn, "drained", 2
    )  # behind it, for the one connection
    await database.drain()
    database.close()
    assert await gatherResults([running, waiting]) == [1, 2]
    connection = psycopg2.connect(database_url)
    with connection, connection.cursor() as cursor:
        cursor.execute("SELECT n FROM drained ORDER BY n")
        assert cursor.fetchall() == [(1,), (2,)]
    connection.close()


@pytest.mark.parametrize("sqlstate", ["disk_full", "out_of_memory", "cannot_connect_now"])
@pytest_twisted.ensureDeferred
async def test_a_server_that_cannot_work_now_is_unavailable_and_keeps_the_connection(
    database_url, sqlstate
):
    # As PostgreSQL answers with its disk full (tests/faults/test_disk_full.py does it for real).
    database = Database(reactor, database_url, size=1)
    await database.start()
    try:
        with pytest.raises(DatabaseUnavailable):
            await database.run_query(
                f"DO $$ BEGIN RAISE EXCEPTION 'no room' USING ERRCODE = '{sqlstate}'; END $$"
            )
        assert database.connected
        assert await database.run_query("SELECT 1") == [(1,)]
    finally:
        database.close()
