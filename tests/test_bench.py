"""
The quick variant of bench/compare.py, as CI runs it: every scenario against termrooms
and both Node.js peers for a few seconds. It fails on any lost, duplicated or
out-of-order delivery, unanswered send, or socket closed under load; never on a speed.
bench/tasks.py's small variant fails on a task page read without an index, and
bench/search.py's on a search that scans room_events or finds what the caller may not read.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from support import TEST_OUTPUT, unavailable

BENCH = Path(__file__).resolve().parent.parent / "bench"


def test_quick_benchmark_accounts_for_every_delivery_on_every_server(postgres_admin_url):
    for tool in ("node", "npm", "redis-server"):
        if shutil.which(tool) is None:
            unavailable(f"{tool} is needed by bench/compare.py")
    output = TEST_OUTPUT / "bench"
    run = subprocess.run(
        [
            sys.executable,
            "compare.py",
            "--quick",
            "--output",
            str(output),
            "--database-url",
            postgres_admin_url,
        ],
        cwd=BENCH,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    saved = Path(run.stdout.strip().splitlines()[-1].removeprefix("saved "))
    results = json.loads(saved.read_text())["results"]
    assert set(results) == {"S1", "S2", "S3", "S4", "S5", "S7"}
    for scenario in ("S3", "S4", "S5"):
        for server, result in results[scenario].items():
            for step in result["steps"]:
                assert step["lost"] == step["duplicates"] == step["disorder"] == 0, server
                assert step["unacked"] == step["closed"] == 0, server
    assert set(results["S3"]) == {"termrooms", "ws-pg", "socketio-pg"}


def test_task_pages_read_tasks_through_an_index(postgres_admin_url):
    """bench/tasks.py, small: every GET /api/tasks page it times reads tasks through an
    index (a plan that scans the table fails it) and answers a full page."""
    run = subprocess.run(
        [sys.executable, "tasks.py", "--tasks", "4000", "--duration", "0.3"]
        + ["--concurrency", "2", "--database-url", postgres_admin_url],
        cwd=BENCH,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    rows = re.findall(r"^(?:my tasks|room), .* tasks_\w+$", run.stdout, re.M)
    assert len(rows) == 4, run.stdout


INDEX_LIST = ("_idx", "_key", "_pkey")  # how a row of the table ends: the indexes read


def test_every_search_reads_messages_through_an_index(postgres_admin_url):
    """bench/search.py, small: every GET /api/search it times reads room_events through
    an index, and nothing is found in the private room the caller is not in."""
    run = subprocess.run(
        [sys.executable, "search.py", "--messages", "20000", "--duration", "0.3"]
        + ["--concurrency", "2", "--posts", "0", "--database-url", postgres_admin_url],
        cwd=BENCH,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    rows = [line for line in run.stdout.splitlines() if line.endswith(INDEX_LIST)]
    assert len(rows) == 9, run.stdout
