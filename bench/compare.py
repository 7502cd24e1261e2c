"""
termrooms side by side with the servers it would be chosen over, in one run on one
machine: Node.js + Socket.IO + pg (the seed's stack) and Node.js + ws + pg (the raw
baseline), both in ``bench/peers/``. All three store every message in the same
PostgreSQL server (``synchronous_commit`` as the server has it, on by default) before
acknowledging it, and are pinned to CPU 0; the load generator (``bench/peers/loadgen.js``,
one Node.js process) is pinned to CPU 1. Each scenario prints one row per server with
the ratio termrooms / that server, and the whole run is saved as JSON under
``bench/results/`` with a description of the machine.

Scenarios: S1 idle sockets (RSS per connection), S2 connect storm (authenticated
connects/s), S3 one room's fan-out at rising offered rates, S4 the same over two
instances through Redis, S5 100 rooms' acked messages/s, S7 HTTP history reads and bot
posts; S6, a soak of S3 at half saturation, runs only with ``--soak MINUTES``. Every
socket's deliveries are checked: lost, duplicated or out-of-order ones make the run
fail, whatever the speed.

    .venv/bin/python bench/compare.py [--quick] [--only S3,S5] [--servers termrooms,ws-pg]
        [--soak 30] [--database-url URL] [--output bench/results]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack, contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import attrs
import jwt

from harness import (
    DEFAULT_ADMIN_URL,
    daemon_process,
    free_port,
    redis_server,
    scratch_database,
    wait_until_healthy,
)

BENCH = Path(__file__).resolve().parent
PEERS = BENCH / "peers"
SERVERS = ("termrooms", "ws-pg", "socketio-pg")
SCENARIOS = ("S1", "S2", "S3", "S4", "S5", "S7")
PEER_SCRIPTS = {"ws-pg": "ws-server.js", "socketio-pg": "sio-server.js"}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
BODY = "x" * 100
# Messages a sender may have unanswered, as a client with an outbox keeps: beyond it what
# falls due is held back, and counted, instead of piling up in a server's socket.
WINDOW = 100


@attrs.frozen
class Plan:
    """How much of each scenario: the full run, or the quick one CI uses."""

    idle_sockets: int
    storm_seconds: float
    storm_concurrency: int
    subscribers: int
    senders: int
    fanout_rates: tuple[int, ...]
    step_seconds: float
    persist_rooms: int
    persist_rates: tuple[int, ...]
    http_rates: tuple[int, ...]
    drain_seconds: float


FULL = Plan(
    idle_sockets=10_000,
    storm_seconds=10,
    storm_concurrency=50,
    subscribers=200,
    senders=10,
    fanout_rates=(20_000, 40_000, 100_000),
    step_seconds=20,
    persist_rooms=100,
    persist_rates=(1_000, 2_500, 5_000, 7_500),
    http_rates=(100, 500, 1_000),
    drain_seconds=15,
)
QUICK = Plan(
    idle_sockets=300,
    storm_seconds=2,
    storm_concurrency=10,
    subscribers=40,
    senders=4,
    fanout_rates=(2_000,),
    step_seconds=2,
    persist_rooms=10,
    persist_rates=(200,),
    http_rates=(50,),
    drain_seconds=10,
)


# ------------------------------------------------------------------ processes


def pinned(cpu: int) -> list[str]:
    """``taskset -c CPU`` where there is a second core to keep the other side on."""
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        return ["taskset", "-c", str(cpu)]
    return []


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


@attrs.define
class Running:
    """One server under test: its instances' URLs and processes, and its tokens."""

    name: str
    urls: list[str]
    pids: list[int]
    tokens: list[str]

    def cpu(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids)

    def rss(self) -> int:
        return sum(rss_bytes(pid) for pid in self.pids)


@attrs.define
class Meter:
    """Server CPU (share of one core) and machine CPU between two points in time."""

    running: Running
    started: tuple[float, float, tuple[float, float]] | None = None
    readings: list[dict] = attrs.field(factory=list)

    def start(self) -> None:
        self.started = (time.monotonic(), self.running.cpu(), machine_busy())

    def stop(self) -> None:
        assert self.started is not None
        t0, cpu0, (busy0, total0) = self.started
        busy1, total1 = machine_busy()
        self.readings.append(
            {
                "server_cpu": round((self.running.cpu() - cpu0) / (time.monotonic() - t0), 2),
                "machine_busy": round((busy1 - busy0) / max(1, total1 - total0), 2),
            }
        )
        self.started = None


def loadgen(job: dict, on_event: Callable[[dict, subprocess.Popen], None] | None = None) -> dict:
    """Run the load generator on ``job``; its result, after ``on_event`` saw each line."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as file:
        json.dump(job, file)  # thousands of tokens: too long for a command line
    try:
        return _loadgen(file.name, on_event)
    finally:
        os.unlink(file.name)


def _loadgen(job_file: str, on_event: Callable[[dict, subprocess.Popen], None] | None) -> dict:
    process = subprocess.Popen(
        [*pinned(1), "node", str(PEERS / "loadgen.js"), job_file],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    result: dict = {}
    for line in process.stdout:
        event = json.loads(line)
        if event["event"] == "result":
            result = event
        elif event["event"] == "failed":
            raise SystemExit(f"the load generator failed: {event['error']}")
        elif on_event is not None:
            on_event(event, process)
    if process.wait() != 0 or not result:
        raise SystemExit(f"the load generator exited with {process.returncode}")
    return result


def stepped(meter: Meter) -> Callable[[dict, subprocess.Popen], None]:
    """An ``on_event`` that meters the server between each step's start and end."""

    def on_event(event: dict, _: subprocess.Popen) -> None:
        if event["event"] == "step":
            (meter.start if event["phase"] == "start" else meter.stop)()
        elif event["event"] == "error":
            print(f"  error frame: {event['frame']}", file=sys.stderr)

    return on_event


# ------------------------------------------------------------------ servers


@attrs.define
class Bench:
    """What one run shares: the databases, the Redis, termrooms' accounts and key."""

    args: argparse.Namespace
    plan: Plan
    stack: ExitStack
    workdir: Path
    secret: str = attrs.field(factory=lambda: secrets.token_hex(32))
    databases: dict[str, str] = attrs.field(factory=dict)
    termrooms_tokens: list[str] = attrs.field(factory=list)
    redis_url: str | None = None

    def database(self, server: str) -> str:
        if server not in self.databases:
            self.databases[server] = self.stack.enter_context(
                scratch_database(self.args.database_url)
            )
        return self.databases[server]

    def redis(self) -> str:
        if self.redis_url is None:
            self.redis_url = self.stack.enter_context(redis_server(self.args.redis_url))
        return self.redis_url

    def accounts(self) -> int:
        """Distinct accounts each server gets; S1's idle sockets share them round-robin."""
        plan = self.plan
        return max(
            plan.subscribers + plan.senders, plan.persist_rooms, min(plan.idle_sockets, 1_000)
        )

    @contextmanager
    def start(self, server: str, instances: int = 1) -> Iterator[Running]:
        """``instances`` of ``server`` pinned to CPU 0, fresh processes for each scenario."""
        with ExitStack() as stack:
            if server == "termrooms":
                yield self._termrooms(stack, instances)
            else:
                yield self._peer(stack, server, instances)

    def _termrooms(self, stack: ExitStack, instances: int) -> Running:
        flags = [
            "--open-registration",
            "--no-rate-limits",
            "--argon2-memory-kib",
            "8192",
            "--argon2-time-cost",
            "1",
            "--max-connections",
            str(self.plan.idle_sockets + 1_000),
            "--access-token-ttl",
            "24h",
            "--signing-key-file",
            str(self.workdir / "termrooms.key"),
        ]
        if instances > 1:
            flags += ["--redis-url", self.redis()]
        database = self.database("termrooms")
        urls, pids = [], []
        for n in range(instances):  # one at a time: the first creates the key file
            url, process = stack.enter_context(
                daemon_process(database, [*flags, "--node-id", str(n + 1)], pinned(0))
            )
            urls.append(url)
            pids.append(process.pid)
        if not self.termrooms_tokens:
            rooms = ["bench"] + [f"bench{i}" for i in range(self.plan.persist_rooms)]
            registered = loadgen(
                {
                    "mode": "register",
                    "protocol": "termrooms",
                    "urls": urls,
                    "count": self.accounts(),
                    "concurrency": 16,
                    "prefix": "bench",
                    "rooms": rooms,
                    "members_of": ["bench"],
                }
            )
            self.termrooms_tokens = registered["tokens"]
        return Running("termrooms", urls, pids, self.termrooms_tokens)

    def _peer(self, stack: ExitStack, server: str, instances: int) -> Running:
        database = self.database(server)
        urls, pids = [], []
        for n in range(instances):
            port = free_port()
            environment = {
                **os.environ,
                "PORT": str(port),
                "DATABASE_URL": database,
                "JWT_SECRET": self.secret,
                "SERVER_ID": f"{server}-{n + 1}",
            }
            if instances > 1:
                environment["REDIS_URL"] = self.redis()
            process = subprocess.Popen(
                [*pinned(0), "node", str(PEERS / PEER_SCRIPTS[server])],
                env=environment,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            stack.callback(_stop, process)
            url = f"http://127.0.0.1:{port}"
            wait_until_healthy(url)
            urls.append(url)
            pids.append(process.pid)
        expires = int(time.time()) + 86_400
        tokens = [
            jwt.encode({"sub": str(i + 1), "name": f"bench{i}", "exp": expires}, self.secret)
            for i in range(self.accounts())
        ]
        return Running(server, urls, pids, tokens)


@contextmanager
def profiled(directory: Path | None, scenario: str, running: Running) -> Iterator[None]:
    """py-spy on termrooms' instances while the scenario runs, when asked for."""
    if directory is None or running.name != "termrooms":
        yield
        return
    directory.mkdir(parents=True, exist_ok=True)
    spies = [
        subprocess.Popen(
            [
                str(Path(sys.executable).parent / "py-spy"),
                "record",
                "--pid",
                str(pid),
                "--rate",
                "250",
                "--format",
                "raw",
                "--nonblocking",
                "--output",
                str(directory / f"{scenario}-{n + 1}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for n, pid in enumerate(running.pids)
    ]
    try:
        yield
    finally:
        for spy in spies:
            spy.send_signal(2)  # SIGINT: py-spy writes what it recorded
            spy.wait(30)


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# ------------------------------------------------------------------ scenarios


def protocol_of(server: str) -> str:
    return "socketio" if server == "socketio-pg" else "ws"


def idle(bench: Bench, running: Running) -> dict:
    """S1: RSS per idle authenticated socket."""
    before = running.rss()
    held: dict[str, Any] = {}

    def on_event(event: dict, process: subprocess.Popen) -> None:
        if event["event"] == "ready":
            time.sleep(2)  # let the server settle after the last handshake
            held["rss"] = running.rss()
            held["open"] = event["open"]
            assert process.stdin is not None
            process.stdin.write("done\n")
            process.stdin.flush()

    loadgen(
        {
            "mode": "idle",
            "protocol": protocol_of(running.name),
            "urls": running.urls,
            "tokens": running.tokens,
            "count": bench.plan.idle_sockets,
        },
        on_event,
    )
    per = (held["rss"] - before) / held["open"]
    return {
        "sockets": held["open"],
        "rss_before_mb": round(before / 2**20, 1),
        "rss_after_mb": round(held["rss"] / 2**20, 1),
        "kb_per_socket": round(per / 1024, 2),
    }


def storm(bench: Bench, running: Running) -> dict:
    """S2: authenticated WebSocket connects per second, the server on one core."""
    meter = Meter(running)
    meter.start()
    result = loadgen(
        {
            "mode": "connect",
            "protocol": protocol_of(running.name),
            "urls": running.urls,
            "tokens": running.tokens[:1000],
            "seconds": bench.plan.storm_seconds,
            "concurrency": bench.plan.storm_concurrency,
        }
    )
    meter.stop()
    result.pop("event")
    return {**result, **meter.readings[0]}


def job_for(bench: Bench, running: Running, **specific: Any) -> dict:
    """A load generator job against ``running``: what every scenario's job holds."""
    return {
        "protocol": protocol_of(running.name),
        "urls": running.urls,
        "tokens": running.tokens,
        "room": "bench",
        "drain_s": bench.plan.drain_seconds,
        "body": BODY,
        "window": WINDOW,
        **specific,
    }


def metered_steps(running: Running, job: dict) -> list[dict]:
    """The job's steps, each with the server's CPU and the machine's over that step."""
    meter = Meter(running)
    result = loadgen(job, stepped(meter))
    return [
        {**step, **reading} for step, reading in zip(result["steps"], meter.readings, strict=True)
    ]


def fanout(bench: Bench, running: Running) -> dict:
    """S3 (one instance) and S4 (several): one room's deliveries per second at each rate."""
    plan = bench.plan
    job = job_for(
        bench,
        running,
        mode="fanout",
        subscribers=plan.subscribers,
        senders=plan.senders,
        rates=list(plan.fanout_rates),
        step_s=plan.step_seconds,
    )
    return {"steps": metered_steps(running, job)}


def persist(bench: Bench, running: Running) -> dict:
    """S5: 100 rooms, one sender each: acknowledged (stored) messages per second."""
    plan = bench.plan
    job = job_for(
        bench,
        running,
        mode="persist",
        rooms=plan.persist_rooms,
        rates=list(plan.persist_rates),
        step_s=plan.step_seconds / 2,
    )
    return {"steps": metered_steps(running, job)}


def http_api(bench: Bench, running: Running) -> dict:
    """S7: history reads and bot posts over HTTP at each rate."""
    plan = bench.plan
    return {
        kind: metered_steps(
            running,
            job_for(
                bench,
                running,
                mode="http",
                kind=kind,
                tokens=running.tokens[: plan.subscribers],
                rates=list(plan.http_rates),
                step_s=plan.step_seconds / 2,
                sockets=64,
            ),
        )
        for kind in ("history", "post")
    }


def prime_room(bench: Bench, running: Running) -> None:
    """Peers make a room at its first join: S7's history needs one holding messages."""
    loadgen(job_for(bench, running, mode="persist", rooms=1, rates=[100], step_s=1))


# ------------------------------------------------------------------ tables


def ratio(ours: float | None, theirs: float | None) -> str:
    if not ours or not theirs:
        return "-"
    return f"{ours / theirs:.2f}x"


def print_table(title: str, header: list[str], rows: list[list[Any]]) -> None:
    print(f"\n{title}")
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=True)]
    for row in [header, *rows]:
        print(
            "  ".join(
                str(c).rjust(w) if i else str(c).ljust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )


Figure = Callable[[dict[str, Any]], Any]


def _at(*path: str) -> Figure:
    def figure(row: dict[str, Any]) -> Any:
        for key in path:
            row = row[key]
        return row

    return figure


def _steps(result: dict[str, Any], group: str) -> list[dict[str, Any]]:
    return result["steps"]


def _whole(result: dict[str, Any], group: str) -> list[dict[str, Any]]:
    return [result]


@attrs.frozen
class Table:
    """How one scenario's results print: a row per server and step, a column per figure."""

    scenario: str
    title: str
    columns: tuple[tuple[str, Figure], ...]  # header, figure of a step
    compared: Figure  # the figure set against termrooms' own in the last column
    steps: Callable[[dict[str, Any], str], list[dict[str, Any]]] = _steps
    groups: tuple[str, ...] = ("",)  # S7: a block of rows per kind, named in a first column
    ours_first: bool = True  # the ratio is termrooms / this server, else the other way


_FANOUT_COLUMNS = (
    ("offered/s", _at("offered_deliveries_per_s")),
    ("achieved/s", _at("achieved_deliveries_per_s")),
    ("p50 ms", _at("latency", "p50_ms")),
    ("p99 ms", _at("latency", "p99_ms")),
    ("max ms", _at("latency", "max_ms")),
    ("server CPU", _at("server_cpu")),
    ("loadgen CPU", _at("loadgen_cpu")),
)
_INTEGRITY_COLUMNS = (
    ("held back", _at("held_back")),
    ("refused", _at("refused")),
    ("lost", _at("lost")),
    ("dup", _at("duplicates")),
    ("disorder", _at("disorder")),
)

TABLES = (
    Table(
        "S1",
        "S1 idle sockets: server RSS per connection (lower is better)",
        (
            ("sockets", _at("sockets")),
            ("RSS before MB", _at("rss_before_mb")),
            ("RSS after MB", _at("rss_after_mb")),
            ("KB/socket", _at("kb_per_socket")),
        ),
        _at("kb_per_socket"),
        steps=_whole,
    ),
    Table(
        "S2",
        "S2 connect storm: authenticated connects per second",
        (
            ("connects/s", _at("connects_per_s")),
            ("p50 ms", _at("latency", "p50_ms")),
            ("p99 ms", _at("latency", "p99_ms")),
            ("failed", _at("failed")),
            ("server CPU", _at("server_cpu")),
            ("loadgen CPU", _at("loadgen_cpu")),
        ),
        _at("connects_per_s"),
        steps=_whole,
    ),
    Table(
        "S3",
        "S3 fan-out: one room, one instance: deliveries/s, send-to-delivery latency",
        _FANOUT_COLUMNS + _INTEGRITY_COLUMNS,
        _at("achieved_deliveries_per_s"),
    ),
    Table(
        "S4",
        "S4 fan-out: one room, subscribers spread over instances through Redis:"
        " deliveries/s, send-to-delivery latency",
        _FANOUT_COLUMNS + _INTEGRITY_COLUMNS,
        _at("achieved_deliveries_per_s"),
    ),
    Table(
        "S5",
        "S5 persistence: rooms with one sender each, acked messages/s",
        (
            ("offered/s", _at("offered_per_s")),
            ("acked/s", _at("acked_per_s")),
            ("ack p50 ms", _at("ack_latency", "p50_ms")),
            ("ack p99 ms", _at("ack_latency", "p99_ms")),
            ("server CPU", _at("server_cpu")),
            *_INTEGRITY_COLUMNS,
        ),
        _at("acked_per_s"),
    ),
    Table(
        "S7",
        "S7 HTTP API: history reads (limit 50) and bot posts; ratio is this p99 / termrooms p99",
        (
            ("offered/s", _at("offered_per_s")),
            ("achieved/s", _at("achieved_per_s")),
            ("p50 ms", _at("latency", "p50_ms")),
            ("p95 ms", _at("latency", "p95_ms")),
            ("p99 ms", _at("latency", "p99_ms")),
            ("failed", _at("failed")),
            ("server CPU", _at("server_cpu")),
        ),
        _at("latency", "p99_ms"),
        steps=lambda result, kind: result[kind],
        groups=("history", "post"),
        ours_first=False,
    ),
)


def report(results: dict[str, dict[str, Any]]) -> None:
    """One table per scenario: one row per server (and step), with termrooms' ratio."""
    servers = [s for s in SERVERS if any(s in r for r in results.values())]
    for table in TABLES:
        if table.scenario not in results:
            continue
        by_server = results[table.scenario]
        ours = by_server.get("termrooms")
        named = table.groups != ("",)
        rows = []
        for group in table.groups:
            for server in servers:
                result = by_server.get(server)
                if not result:
                    continue
                for i, step in enumerate(table.steps(result, group)):
                    mine = table.compared(table.steps(ours, group)[i]) if ours else None
                    theirs = table.compared(step)
                    rows.append(
                        [
                            *([group] if named else []),
                            server,
                            *(figure(step) for _, figure in table.columns),
                            ratio(mine, theirs) if table.ours_first else ratio(theirs, mine),
                        ]
                    )
        print_table(
            table.title,
            [
                *(["kind"] if named else []),
                "server",
                *(header for header, _ in table.columns),
                "termrooms/this" if table.ours_first else "speed-up",
            ],
            rows,
        )


def integrity_failures(results: dict[str, dict[str, Any]]) -> list[str]:
    """Every lost, duplicated or out-of-order delivery, and socket closed under load."""
    failures = []
    for scenario, by_server in results.items():
        for server, result in by_server.items():
            for step in result.get("steps", []) if isinstance(result, dict) else []:
                bad = {
                    k: step[k]
                    for k in ("unacked", "lost", "duplicates", "disorder", "closed")
                    if step.get(k)
                }
                if bad:
                    failures.append(f"{scenario} {server}: {bad}")
    return failures


# ------------------------------------------------------------------ the run


def describe_machine(args: argparse.Namespace) -> dict:
    def output(*command: str) -> str:
        try:
            return subprocess.run(
                command, capture_output=True, text=True, check=True
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return ""

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory = Path("/proc/meminfo").read_text().split("\n", 1)[0].split()[1]
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(int(memory) / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "node": output("node", "--version"),
        "postgresql": output("psql", args.database_url, "-Atc", "show server_version"),
        "synchronous_commit": output("psql", args.database_url, "-Atc", "show synchronous_commit"),
        "redis": output("redis-server", "--version"),
        "termrooms_commit": output("git", "-C", str(BENCH), "rev-parse", "--short", "HEAD"),
        "pinned": bool(pinned(0)),
    }


def install_peers() -> None:
    """npm ci into bench/peers/node_modules when the lock file is newer than it."""
    marker = PEERS / "node_modules" / ".package-lock.json"
    lock = PEERS / "package-lock.json"
    if not marker.exists() or marker.stat().st_mtime < lock.stat().st_mtime:
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=PEERS, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds per scenario (CI)")
    parser.add_argument("--only", default=",".join(SCENARIOS), help="scenarios, e.g. S3,S5")
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--instances", type=int, default=2, help="S4's instances")
    parser.add_argument(
        "--soak", type=float, default=0, help="S6: minutes of S3 at half saturation"
    )
    parser.add_argument(
        "--soak-rate",
        type=int,
        default=None,
        help="S6's offered deliveries/s (default: half what termrooms achieved in S3, or 20k)",
    )
    parser.add_argument("--database-url", default=DEFAULT_ADMIN_URL)
    parser.add_argument("--redis-url", default=None, help="default: a private redis-server")
    parser.add_argument("--output", type=Path, default=BENCH / "results")
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="record termrooms with py-spy into DIR/SCENARIO-N.txt (collapsed stacks)",
    )
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    scenarios = [s for s in args.only.split(",") if s]
    servers = [s for s in args.servers.split(",") if s]
    install_peers()

    runs: dict[str, Callable[[Bench, Running], dict]] = {
        "S1": idle,
        "S2": storm,
        "S3": fanout,
        "S4": fanout,
        "S5": persist,
        "S7": http_api,
    }
    results: dict[str, dict[str, Any]] = {}
    started = datetime.now(timezone.utc)
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="termrooms-compare-") as workdir:
        bench = Bench(args, plan, stack, Path(workdir))
        for scenario in scenarios:
            print(f"{scenario}...", file=sys.stderr, flush=True)
            for server in servers:
                if scenario == "S4" and server == "ws-pg":
                    continue  # a bare ws server has no way to span instances
                instances = args.instances if scenario == "S4" else 1
                with bench.start(server, instances) as running:
                    if scenario == "S7" and server != "termrooms":
                        prime_room(bench, running)
                    with profiled(args.profile, scenario, running):
                        results.setdefault(scenario, {})[server] = runs[scenario](bench, running)
        if args.soak:
            rate = args.soak_rate or half_saturation(results)
            results["S6"] = soak(bench, servers, args.soak, rate)

    report(results)
    document = {
        "started": started.isoformat(timespec="seconds"),
        "variant": "quick" if args.quick else "full",
        "machine": describe_machine(args),
        "plan": attrs.asdict(plan),
        "results": results,
    }
    args.output.mkdir(parents=True, exist_ok=True)
    name = f"{started:%Y%m%dT%H%M%SZ}-{document['variant']}.json"
    (args.output / name).write_text(json.dumps(document, indent=1) + "\n")
    print(f"\nsaved {args.output / name}")
    failures = integrity_failures(results)
    if failures:
        print("\nDELIVERY FAILURES:\n  " + "\n  ".join(failures))
        raise SystemExit(1)


def half_saturation(results: dict[str, dict[str, Any]]) -> int:
    steps = results.get("S3", {}).get("termrooms", {}).get("steps")
    if not steps:
        return 20_000
    return max(step["achieved_deliveries_per_s"] for step in steps) // 2


@contextmanager
def rss_sampled(running: Running, every: float) -> Iterator[list[tuple[int, float]]]:
    """(seconds, RSS MB) of the server every ``every`` seconds until the block ends."""
    samples: list[tuple[int, float]] = []
    stop = threading.Event()
    t0 = time.monotonic()

    def sample() -> None:
        while not stop.wait(every):
            samples.append((round(time.monotonic() - t0), round(running.rss() / 2**20, 1)))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield samples
    finally:
        stop.set()
        sampler.join()


def soak(bench: Bench, servers: list[str], minutes: float, rate: int) -> dict:
    """S6: S3 at half its saturation rate for ``minutes``, RSS sampled every 30 s."""
    out = {}
    for server in servers:
        with bench.start(server) as running, rss_sampled(running, 30) as samples:
            job = job_for(
                bench,
                running,
                mode="fanout",
                subscribers=bench.plan.subscribers,
                senders=bench.plan.senders,
                rates=[rate],
                step_s=minutes * 60,
            )
            result = loadgen(job)
            out[server] = {"offered": rate, "rss_mb_over_time": samples, "steps": result["steps"]}
    return out


if __name__ == "__main__":
    main()
