"""
How long ``GET /api/search`` takes over many messages (1M by default), and what the
search index costs a posting.

Starts a real daemon on a scratch database, registers USERS users and makes PUBLIC
public rooms and PRIVATE private ones; the caller (bench0) is a member of half the
private rooms, so every search applies the visibility rule to rooms it may and may not
read. Then stores MESSAGES messages in one ``INSERT ... SELECT generate_series`` with
the search index dropped and built again afterwards (as a restore would), their bodies
6-15 words drawn from a vocabulary with a skew (a few words are in most messages, most
are in few), a rare word in one message of 100,000. For each search (a common word, a
medium one, a rare one, a phrase, an exclusion, a room filter) it runs the daemon's
own statement (termrooms.storage.search) under ``EXPLAIN ANALYZE``, names the indexes
it read, then keeps CONCURRENCY requests in flight for DURATION seconds and prints
requests/s and p50/p95 latency.

Posting: the daemon's statement for storing messages (termrooms.storage.rooms
post_messages_txn), one commit each, POSTS times with the index and POSTS times without
it, alternating in rounds, at 1 and 16 messages a statement: the difference is what the
index costs each message.

    .venv/bin/python bench/search.py [--database-url URL] [--messages 1000000]
        [--duration 5] [--concurrency 4] [--posts 2000] [--explain]
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from typing import Any, Coroutine
from urllib.parse import urlencode

import attrs
import psycopg2
import treq
from tasks import FAST_PASSWORDS, load, register_users

from harness import DEFAULT_ADMIN_URL, daemon_on, measure, scratch_database
from termrooms.domain.search import SEARCH_PAGE_DEFAULT, parse_query
from termrooms.storage.rooms import Draft, post_messages_txn
from termrooms.storage.search import find_txn

USERS = 4
PUBLIC = 6
PRIVATE = 4  # bench0 is a member of the first half
INDEX = "room_events_search_idx"
# Skewed: the first words are drawn far more often (power(random(), 3) leans to 0).
VOCABULARY = (
    "the to and a of is in it you that for on we this with be have are not at but"
    " deploy build test review merge branch release fix bug issue ticket meeting lunch"
    " coffee today tomorrow yesterday monday friday weekend server database query index"
    " cache latency error warning log metric alert dashboard incident outage rollback"
    " customer feature design spec draft plan sprint standup retro demo team office"
    " remote call link doc wiki board thanks please sorry great nice cool maybe later"
    " soon done ready blocked waiting ping pong hello morning night again still"
).split() + [f"word{n}" for n in range(2000)]  # the long tail
RARE = "kumquat"  # in message g when g % 100000 = 7
# Message g (1..N) is in room (g - 1) % rooms, the (g - 1) / rooms + 1-th after the
# room's events before (its seqs follow theirs). Ids are g:
# below any snowflake, so the daemon's own messages stay the newest.
SEED = """
INSERT INTO room_events (id, room_id, seq, type, user_id, body)
SELECT g, (%(rooms)s::bigint[])[1 + (g - 1) %% %(r)s],
       (%(seqs)s::bigint[])[1 + (g - 1) %% %(r)s] + (g - 1) / %(r)s + 1, 'message',
       (%(users)s::bigint[])[1 + g %% %(u)s],
       (SELECT string_agg((%(words)s::text[])[1 + floor(power(random(), 3) * %(w)s)::int], ' ')
          FROM generate_series(0, 5 + (g * 7) %% 10))
       || CASE WHEN g %% 100000 = 7 THEN ' ' || %(rare)s ELSE '' END
  FROM generate_series(1, %(n)s) AS g
"""


@attrs.frozen
class Search:
    label: str
    q: str
    room: str | None = None


SEARCHES = (
    Search("common word", "the"),
    Search("medium word", "incident"),
    Search("rare word", RARE),
    Search("phrase", '"deploy the"'),
    Search("exclusion", "lunch -the"),
    Search("common, one room", "the", room="pub1"),
    Search("rare, hidden room", RARE, room="priv3"),
    Search("common, hidden room", "the", room="priv3"),
    Search("common, no such room", "the", room="nowhere"),
)


def done(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """The result of a storage coroutine run on a blocking cursor (it never waits)."""
    try:
        coroutine.send(None)
    except StopIteration as stop:
        return stop.value
    raise RuntimeError("the coroutine waited")


@attrs.define
class BlockingCursor:
    """Stands in for txpostgres' cursor with psycopg2's, for the storage functions."""

    cursor: Any

    async def execute(self, query: str, params: Any = None) -> None:
        self.cursor.execute(query, params)

    def fetchall(self) -> list:
        return self.cursor.fetchall()

    def fetchone(self) -> Any:
        return self.cursor.fetchone()


def seed(database_url: str, users: list[int], rooms: list[int], count: int) -> dict:
    """Store ``count`` messages with the search index dropped, then build it again."""
    connection = psycopg2.connect(database_url)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", (INDEX,))
            (definition,) = cursor.fetchone()
            cursor.execute(f"DROP INDEX {INDEX}")
            cursor.execute("SELECT id, last_seq FROM rooms")
            seqs = dict(cursor.fetchall())
            started = time.monotonic()
            cursor.execute(
                SEED,
                {
                    "rooms": rooms,
                    "seqs": [seqs[room] for room in rooms],
                    "r": len(rooms),
                    "users": users,
                    "u": len(users),
                    "w": len(VOCABULARY),
                    "words": VOCABULARY,
                    "rare": RARE,
                    "n": count,
                },
            )
            cursor.execute(
                "UPDATE rooms r SET last_seq = s.top FROM (SELECT room_id, max(seq) AS top"
                " FROM room_events GROUP BY room_id) s WHERE s.room_id = r.id"
            )
            inserted = time.monotonic() - started
            started = time.monotonic()
            cursor.execute("SET maintenance_work_mem = '256MB'")
            cursor.execute(definition)
            indexed = time.monotonic() - started
            cursor.execute("VACUUM ANALYZE room_events")
            cursor.execute("SELECT pg_relation_size(%s), pg_relation_size('room_events')", (INDEX,))
            index_bytes, table_bytes = cursor.fetchone()
    finally:
        connection.close()
    return {
        "insert_s": inserted,
        "index_s": indexed,
        "index_mb": index_bytes / 2**20,
        "table_mb": table_bytes / 2**20,
        "definition": definition,
    }


@attrs.define
class PlanCursor(BlockingCursor):
    """Runs the search statement under EXPLAIN ANALYZE (its plan kept, no rows
    returned) and every other statement as it is."""

    plans: list[str] = attrs.Factory(list)

    async def execute(self, query: str, params: Any = None) -> None:
        if "ts_headline" in query:
            self.cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + query, params)
            self.plans.append("\n".join(row[0] for row in self.cursor.fetchall()))
            self.cursor.execute("SELECT true, NULL")  # "q has a word", and no rows
        else:
            self.cursor.execute(query, params)


def explain(database_url: str, user_id: int, search: Search) -> str:
    """The plan of the daemon's search statement (termrooms.storage.search.find_txn)."""
    connection = psycopg2.connect(database_url)
    try:
        with connection, connection.cursor() as cursor:
            planning = PlanCursor(cursor)
            done(
                find_txn(
                    planning,
                    user_id,
                    parse_query(search.q),
                    room=search.room,
                    author=None,
                    before_id=None,
                    limit=SEARCH_PAGE_DEFAULT + 1,
                )
            )
    finally:
        connection.close()
    return planning.plans[0] if planning.plans else "(no search statement)"


def room_event_scans(plan: str) -> list[str]:
    """How the plan reads room_events: the index names, or ``SEQ SCAN``."""
    scans = re.findall(r"(?:Index|Index Only) Scan(?: Backward)? using (\w+) on room_events", plan)
    scans += re.findall(r"Bitmap Index Scan on (room_events\w*)", plan)
    if re.search(r"Seq Scan on room_events\b", plan):
        scans.append("SEQ SCAN")
    return sorted(set(scans))


def posting_cost(database_url: str, users: list[int], rooms: list[int], posts: int) -> dict:
    """Microseconds per message stored, with and without the index, at two batch sizes:
    the medians of three rounds, so both see the same noise from the machine."""
    admin = psycopg2.connect(database_url)
    admin.autocommit = True
    poster = psycopg2.connect(database_url)
    results: dict[str, dict[int, list[float]]] = {"with": {}, "without": {}}
    ids = iter(range(10**15, 10**16))
    words = VOCABULARY[:120]

    def post_batches(batch: int) -> float:
        started = time.perf_counter()
        statements = posts // batch
        for n in range(statements):
            drafts = []
            for k in range(batch):
                g = next(ids)
                body = " ".join(words[(g * 31 + j * 17) % len(words)] for j in range(10))
                drafts.append((rooms[(n + k) % len(rooms)], Draft(g, users[0], body, None)))
            done(post_messages_txn(BlockingCursor(poster.cursor()), drafts))
            poster.commit()  # one commit a statement, as a lane's batch
        return (time.perf_counter() - started) / (statements * batch) * 1e6

    try:
        with admin.cursor() as cursor:
            cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", (INDEX,))
            (definition,) = cursor.fetchone()
            for _ in range(3):
                for kind in ("with", "without"):
                    if kind == "without":
                        cursor.execute(f"DROP INDEX {INDEX}")
                    for batch in (1, 16):
                        results[kind].setdefault(batch, []).append(post_batches(batch))
                    if kind == "without":
                        cursor.execute(definition)
    finally:
        poster.close()
        admin.close()
    return {
        kind: {batch: statistics.median(runs) for batch, runs in by_batch.items()}
        for kind, by_batch in results.items()
    }


async def make_rooms(base_url: str, tokens: list[str]) -> list[int]:
    """Public rooms bench0 created, private ones bench1 created; bench0 joins half of
    the private ones (invited) and none of the others."""
    rooms = []
    names = [(f"pub{n}", "public") for n in range(PUBLIC)]
    names += [(f"priv{n}", "private") for n in range(PRIVATE)]
    for name, visibility in names:
        owner = tokens[0] if visibility == "public" else tokens[1]
        auth = {"Authorization": f"Bearer {owner}"}
        response = await treq.post(
            base_url + "/api/rooms", json={"name": name, "visibility": visibility}, headers=auth
        )
        body = await response.json()
        assert response.code == 201, body
        rooms.append(int(body["id"]))
        if visibility == "private" and int(name[4:]) < PRIVATE // 2:
            invited = await treq.post(
                base_url + f"/api/rooms/{name}/members", json={"username": "bench0"}, headers=auth
            )
            assert invited.code == 204, await invited.text()
            joined = await treq.post(
                base_url + f"/api/rooms/{name}/join",
                headers={"Authorization": f"Bearer {tokens[0]}"},
            )
            assert joined.code == 200, await joined.text()
    return rooms


async def run(reactor: Any, base_url: str, database_url: str, args: argparse.Namespace) -> dict:
    tokens, users = await register_users(base_url, USERS)
    rooms = await make_rooms(base_url, tokens)
    seeded = seed(database_url, users, rooms, args.messages)
    rows = []
    for search in SEARCHES:
        plan = explain(database_url, users[0], search)
        params = {"q": search.q, **({"room": search.room} if search.room else {})}
        path = "/api/search?" + urlencode(params)
        result = await load(
            base_url, tokens[0], path, args.duration, args.concurrency, key="results"
        )
        rows.append({"search": search, "plan": plan, "scans": room_event_scans(plan), **result})
    posting = posting_cost(database_url, users, rooms, args.posts) if args.posts else None
    return {"seed": seeded, "rows": rows, "posting": posting}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default=DEFAULT_ADMIN_URL,
        help="a server where a scratch database can be created",
    )
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--posts", type=int, default=2000, help="0: no posting measurement")
    parser.add_argument("--explain", action="store_true", help="print each query's plan")
    args = parser.parse_args()

    flags = ["--open-registration", "--no-rate-limits", *FAST_PASSWORDS]
    with scratch_database(args.database_url) as database_url:
        with daemon_on(database_url, *flags) as base_url:
            results = measure(lambda reactor: run(reactor, base_url, database_url, args))

    seeded = results["seed"]
    print(
        f"{args.messages} messages stored in {seeded['insert_s']:.1f}s, search index built in"
        f" {seeded['index_s']:.1f}s ({seeded['index_mb']:.0f} MB; the table"
        f" {seeded['table_mb']:.0f} MB); {PUBLIC} public rooms and {PRIVATE} private,"
    )
    print(
        f"the caller in {PRIVATE // 2} of the private ones; pages of {SEARCH_PAGE_DEFAULT},"
        f" {args.concurrency} requests in flight"
    )
    print(
        f"{'search':<20} {'q':<14} {'req/s':>7} {'p50 ms':>7} {'p95 ms':>7} {'non-200':>7}"
        f" {'results':>8}  room_events read by"
    )
    problems = []
    for row in results["rows"]:
        search = row["search"]
        print(
            f"{search.label:<20} {search.q:<14} {row['rate']:>7.1f} {row['p50']:>7.1f}"
            f" {row['p95']:>7.1f} {row['failures']:>7} {','.join(map(str, row['sizes'])):>8}"
            f"  {', '.join(row['scans'])}"
        )
        if args.explain:
            print("    " + row["plan"].replace("\n", "\n    "))
        if "SEQ SCAN" in row["scans"] or not row["scans"]:
            problems.append(f"{search.label}: room_events not read through an index")
        if row["failures"] or not row["requests"]:
            problems.append(f"{search.label}: {row['failures']} non-200")
        if search.room in ("priv3", "nowhere") and row["sizes"] != [0]:
            problems.append(f"{search.label}: found messages in a room the caller is not in")
    posting = results["posting"]
    if posting:
        print("storing messages (post_messages_txn, a commit each statement), µs per message:")
        for batch in (1, 16):
            with_index, without = posting["with"][batch], posting["without"][batch]
            print(
                f"  {batch:>2} a statement: {with_index:8.0f} with the index, {without:8.0f}"
                f" without: +{with_index - without:.0f} µs ({with_index / without - 1:+.0%})"
            )
    if problems:
        sys.exit("\n".join(problems))


if __name__ == "__main__":
    main()
