"""Group commit: concurrent messages to one room share transactions, in arrival order."""

from __future__ import annotations

import psycopg2
import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import gatherResults
from twisted.internet.task import deferLater

from termrooms.domain.snowflake import SnowflakeGenerator
from termrooms.handlers.writer import RoomWriter
from termrooms.storage.database import Database
from termrooms.storage.rooms import Draft, create_room_txn
from termrooms.storage.users import create_user_txn

IDS = SnowflakeGenerator(7)


class CountingDatabase(Database):
    """A pool that counts the transactions it runs, with or without BEGIN."""

    transactions = 0

    def run_interaction(self, interaction, *args, **kwargs):
        self.transactions += 1
        return super().run_interaction(interaction, *args, **kwargs)

    def run_autocommit(self, interaction, *args, **kwargs):
        self.transactions += 1
        return super().run_autocommit(interaction, *args, **kwargs)


@pytest_twisted.async_yield_fixture
async def room(fresh_migrated_database_url):
    database = CountingDatabase(reactor, fresh_migrated_database_url, size=4)
    await database.start()
    user_id = IDS.next_id()
    await database.run_interaction(create_user_txn, user_id, "ada", "x")
    room, _ = await database.run_interaction(
        create_room_txn, IDS.next_id(), IDS.next_id(), "lobby", "", "public", user_id
    )
    database.transactions = 0
    yield database, room.id, user_id
    database.close()


def draft(author: int, n: int, client_msg_id: str | None = None, body: str | None = None) -> Draft:
    return Draft(IDS.next_id(), author, body or f"m{n}", client_msg_id)


@pytest_twisted.ensureDeferred
async def test_concurrent_messages_share_commits_and_keep_arrival_order(room):
    database, room_id, author = room
    writer = RoomWriter(database)
    results = await gatherResults(
        [writer.post(room_id, draft(author, n, f"c{n}")) for n in range(60)]
    )
    assert [event.body for event, _ in results] == [f"m{n}" for n in range(60)]
    assert [event.seq for event, _ in results] == list(range(2, 62))  # seq 1: the join
    assert all(new for _, new in results)
    assert database.transactions < 10, "each message took its own transaction"


@pytest_twisted.ensureDeferred
async def test_a_client_msg_id_repeated_in_one_batch_or_later_stores_one_message(room):
    database, room_id, author = room
    writer = RoomWriter(database)
    first, again = await gatherResults(
        [
            writer.post(room_id, draft(author, 1, "same")),
            writer.post(room_id, draft(author, 2, "same")),
        ]
    )
    later = await writer.post(room_id, draft(author, 3, "same"))
    assert first[1] is True and again[1] is False and later[1] is False
    assert first[0].id == again[0].id == later[0].id
    assert count_messages(database) == 1


@pytest_twisted.ensureDeferred
async def test_one_bad_message_does_not_fail_the_others_in_its_batch(room):
    database, room_id, author = room
    writer = RoomWriter(database)
    posts = [writer.post(room_id, draft(author, n, f"c{n}")) for n in range(5)]
    bad = writer.post(room_id, draft(author, 99, "bad", body="\x01 refused by the schema"))
    posts += [writer.post(room_id, draft(author, n, f"c{n}")) for n in range(5, 10)]
    stored = await gatherResults(posts)
    with pytest.raises(psycopg2.errors.CheckViolation):
        await bad
    seqs = sorted(event.seq for event, _ in stored)
    assert seqs == list(range(2, 12)), "a gap, or a lost message"


def count_messages(database: Database) -> int:
    connection = psycopg2.connect(database.dsn)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM room_events WHERE type = 'message'")
            return cursor.fetchone()[0]
    finally:
        connection.close()


@pytest_twisted.ensureDeferred
async def test_a_retry_committed_by_another_instance_mid_statement_gets_the_original(room):
    # The other instance holds the room's lock while it stores the original; our
    # statement has taken its snapshot and waits for the lock, then meets the unique key.
    database, room_id, author = room
    other = psycopg2.connect(database.dsn)
    try:
        with other.cursor() as cursor:
            cursor.execute("UPDATE rooms SET last_seq = last_seq + 1 WHERE id = %s", (room_id,))
            cursor.execute(
                "INSERT INTO room_events (id, room_id, seq, type, user_id, body, client_msg_id)"
                " SELECT %s, %s, last_seq, 'message', %s, 'original', 'twice' FROM rooms"
                " WHERE id = %s",
                (IDS.next_id(), room_id, author, room_id),
            )
        retry = RoomWriter(database).post(room_id, draft(author, 1, "twice", body="retry"))
        await deferLater(reactor, 0.5)
        assert not retry.called, "the statement did not wait for the room's lock"
        other.commit()
        event, new = await retry
    finally:
        other.close()
    assert (event.body, new) == ("original", False)
    assert count_messages(database) == 1


@pytest_twisted.ensureDeferred
async def test_messages_to_many_rooms_share_commits_and_each_room_keeps_its_order(room):
    database, first_room, author = room
    rooms = [first_room]
    for n in range(7):
        created, _ = await database.run_interaction(
            create_room_txn, IDS.next_id(), IDS.next_id(), f"room{n}", "", "public", author
        )
        rooms.append(created.id)
    database.transactions = 0
    writer = RoomWriter(database)
    posts = [
        writer.post(room_id, draft(author, n, f"{room_id}-{n}"))
        for n in range(20)
        for room_id in rooms
    ]
    results = await gatherResults(posts)
    for room_id in rooms:
        mine = [event for event, _ in results if event.room_id == room_id]
        assert [event.body for event in mine] == [f"m{n}" for n in range(20)]
        assert [event.seq for event in mine] == list(range(2, 22))  # seq 1: the join
    assert database.transactions < 20, "each room took commits of its own"
