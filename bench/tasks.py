"""
How long a page of ``GET /api/tasks`` takes with many tasks stored (100k by default).

Starts a real daemon on a scratch database, registers USERS users, makes ROOMS public
rooms they all join, then stores TASKS tasks in one ``INSERT ... SELECT
generate_series``: half personal, half room tasks each assigned to one of the users,
one in seven deleted. For each page (my tasks and one room's, the newest page and a
deep ``before=`` one) it first runs the daemon's own query (termrooms.storage.tasks)
under ``EXPLAIN ANALYZE`` and names the indexes it used (a sequential scan of tasks
fails the run), then keeps CONCURRENCY requests in flight for DURATION seconds and
prints requests/s and p50/p95 latency.

    .venv/bin/python bench/tasks.py [--database-url URL] [--tasks 100000] [--duration 5]
        [--concurrency 4] [--explain] [--analyze tasks]
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from typing import Any

import attrs
import psycopg2
import treq
from twisted.internet.defer import ensureDeferred, gatherResults

from harness import DEFAULT_ADMIN_URL, daemon_on, measure, scratch_database
from termrooms.domain.tasks import TASK_PAGE_DEFAULT
from termrooms.storage.tasks import tasks_page_txn

USERS = 4
ROOMS = 4
PASSWORD = "bench-password-1"
FAST_PASSWORDS = ["--argon2-memory-kib", "8192", "--argon2-time-cost", "1"]
# Task g (1..N): odd g a room task, even g a personal one; j counts each kind from 0.
# Each room (each user's personal list) holds a block of consecutive js, the first
# room and user the oldest, so that their newest pages are not simply the newest rows;
# room tasks are assigned to the users in turn. Ids are g: below any snowflake.
SEED = """
INSERT INTO tasks (id, room_id, user_id, number, title, status, assignee_id, deleted_at)
SELECT g,
       CASE WHEN room THEN (%(rooms)s::bigint[])[1 + j / %(per_room)s] END,
       (%(users)s::bigint[])[1 + CASE WHEN room THEN j %% %(u)s ELSE j / %(per_user)s END],
       CASE WHEN room THEN j %% %(per_room)s ELSE j %% %(per_user)s END + 1,
       'task ' || g,
       (ARRAY['pending', 'in_progress', 'completed'])[1 + g %% 3],
       CASE WHEN room THEN (%(users)s::bigint[])[1 + j %% %(u)s] END,
       CASE WHEN g %% 7 = 0 THEN now() END
  FROM (SELECT g, g %% 2 = 1 AS room, (g - 1) / 2 AS j
          FROM generate_series(1, %(n)s) AS g) AS s
"""


@attrs.define
class ExplainingCursor:
    """Stands in for txpostgres' cursor: runs a storage query under EXPLAIN ANALYZE, so
    the plan is the one of the query the daemon sends, not of a copy of it."""

    cursor: Any  # psycopg2's
    plans: list[str] = attrs.Factory(list)

    async def execute(self, query: str, params: Any = None) -> None:
        self.cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + query, params)
        self.plans.append("\n".join(row[0] for row in self.cursor.fetchall()))

    def fetchall(self) -> list:
        return []


def tasks_scans(plan: str) -> list[str]:
    """How the plan reads tasks: the index names, or ``SEQ SCAN``."""
    scans = re.findall(r"(?:Index|Index Only) Scan(?: Backward)? using (\w+) on tasks", plan)
    scans += re.findall(r"Bitmap Index Scan on (tasks\w*)", plan)
    if re.search(r"Seq Scan on tasks\b", plan):
        scans.append("SEQ SCAN")
    return sorted(set(scans))


@attrs.frozen
class Page:
    label: str
    query: str  # the query string of GET /api/tasks
    room_id: int | None
    before: int | None


def seed(
    database_url: str, users: list[int], rooms: list[int], count: int, analyze: str = ""
) -> float:
    """Store ``count`` tasks; seconds it took (ANALYZE included, as autovacuum would;
    ``analyze`` "tasks": of that table only, the others as a young database has them)."""
    started = time.monotonic()
    connection = psycopg2.connect(database_url)
    try:
        with connection, connection.cursor() as cursor:
            half = (count + 1) // 2  # of each kind, at most
            per_room, per_user = -(-half // len(rooms)), -(-half // len(users))
            params = {"users": users, "rooms": rooms, "u": len(users), "n": count}
            cursor.execute(SEED, {**params, "per_room": per_room, "per_user": per_user})
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {analyze}")
    finally:
        connection.close()
    return time.monotonic() - started


async def explain(database_url: str, user_id: int, page: Page) -> str:
    connection = psycopg2.connect(database_url)
    try:
        with connection, connection.cursor() as cursor:
            explaining = ExplainingCursor(cursor)
            await tasks_page_txn(
                explaining,
                room_id=page.room_id,
                user_id=user_id,
                status=None,
                assignee_id=None,
                assignee_filter=False,
                before_id=page.before,
                limit=TASK_PAGE_DEFAULT,
            )
    finally:
        connection.close()
    return explaining.plans[0]


async def load(
    base_url: str, token: str, path: str, duration: float, concurrency: int, key: str = "tasks"
) -> dict:
    """CONCURRENCY GETs of ``path`` in flight for ``duration`` seconds: rate, latencies
    and the sizes of the pages' ``key`` lists."""
    headers = {"Authorization": f"Bearer {token}"}
    latencies: list[float] = []
    failures = 0
    sizes: set[int] = set()
    deadline = time.monotonic() + duration

    async def worker() -> None:
        nonlocal failures
        while time.monotonic() < deadline:
            started = time.monotonic()
            response = await treq.get(base_url + path, headers=headers)
            body = await response.json()
            if response.code == 200:
                latencies.append(time.monotonic() - started)
                sizes.add(len(body[key]))
            else:
                failures += 1

    started = time.monotonic()
    await gatherResults([ensureDeferred(worker()) for _ in range(concurrency)])
    elapsed = time.monotonic() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "rate": len(latencies) / elapsed,
        "p50": statistics.median(latencies) * 1000 if latencies else 0.0,
        "p95": latencies[max(0, int(len(latencies) * 0.95) - 1)] * 1000 if latencies else 0.0,
        "failures": failures,
        "sizes": sorted(sizes),
    }


async def register_users(base_url: str, count: int) -> tuple[list[str], list[int]]:
    """``count`` accounts through the open registration: their tokens and ids."""
    tokens, users = [], []
    for n in range(count):
        response = await treq.post(
            base_url + "/api/auth/register",
            json={"username": f"bench{n}", "password": PASSWORD},
        )
        body = await response.json()
        assert response.code == 201, body
        tokens.append(body["access_token"])
        users.append(int(body["user"]["id"]))
    return tokens, users


async def run(reactor: Any, base_url: str, database_url: str, args: argparse.Namespace) -> dict:
    tokens, users = await register_users(base_url, USERS)
    auth = {"Authorization": f"Bearer {tokens[0]}"}
    rooms = []
    for r in range(ROOMS):
        response = await treq.post(
            base_url + "/api/rooms",
            json={"name": f"bench{r}", "visibility": "public"},
            headers=auth,
        )
        body = await response.json()
        assert response.code == 201, body
        rooms.append(int(body["id"]))
        for token in tokens[1:]:
            joined = await treq.post(
                base_url + f"/api/rooms/bench{r}/join",
                headers={"Authorization": f"Bearer {token}"},
            )
            assert joined.code == 200, await joined.text()
    seconds = seed(database_url, users, rooms, args.tasks, args.analyze)
    deep = max(1, args.tasks // 10)  # deep in the first room and user's lists
    pages = [
        Page("my tasks, newest page", "", None, None),
        Page(f"my tasks, before={deep}", f"?before={deep}", None, deep),
        Page("room, newest page", "?room=bench0", rooms[0], None),
        Page(f"room, before={deep}", f"?room=bench0&before={deep}", rooms[0], deep),
    ]
    rows = []
    for page in pages:
        plan = await explain(database_url, users[0], page)
        path = "/api/tasks" + page.query
        result = await load(base_url, tokens[0], path, args.duration, args.concurrency)
        rows.append({"page": page, "plan": plan, "scans": tasks_scans(plan), **result})
    return {"seed_seconds": seconds, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default=DEFAULT_ADMIN_URL,
        help="a server where a scratch database can be created",
    )
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--explain", action="store_true", help="print each query's plan")
    parser.add_argument(
        "--analyze",
        choices=["", "tasks"],
        default="",
        help="ANALYZE every table after seeding (default) or only tasks",
    )
    args = parser.parse_args()

    flags = ["--open-registration", "--no-rate-limits", *FAST_PASSWORDS]
    with scratch_database(args.database_url) as database_url:
        with daemon_on(database_url, *flags) as base_url:
            results = measure(lambda reactor: run(reactor, base_url, database_url, args))

    print(f"{args.tasks} tasks stored in {results['seed_seconds']:.1f}s; {USERS} users,")
    print(f"{ROOMS} rooms, pages of {TASK_PAGE_DEFAULT}, {args.concurrency} requests in flight")
    print(f"{'page':<26} {'req/s':>7} {'p50 ms':>7} {'p95 ms':>7} {'non-200':>7}  tasks read by")
    problems = []
    for row in results["rows"]:
        label = row["page"].label
        print(
            f"{label:<26} {row['rate']:>7.1f} {row['p50']:>7.1f} {row['p95']:>7.1f}"
            f" {row['failures']:>7}  {', '.join(row['scans'])}"
        )
        if args.explain:
            print("    " + row["plan"].replace("\n", "\n    "))
        if "SEQ SCAN" in row["scans"] or not row["scans"]:
            problems.append(f"{label}: tasks not read through an index")
        if row["failures"] or row["sizes"] != [TASK_PAGE_DEFAULT]:
            problems.append(f"{label}: {row['failures']} non-200, page sizes {row['sizes']}")
    if problems:
        sys.exit("\n".join(problems))


if __name__ == "__main__":
    main()
