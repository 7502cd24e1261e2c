"""
Several real daemons as one deployment, for the cluster tests: one database, one Redis,
one signing-key file, a node id each. Clients keep a ledger of every stored event they
see, so a test can count what was sent, acked, delivered, lost, duplicated and
reordered, and print those counts with the daemons' logs when a guarantee breaks.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable

import attrs
import psycopg2
import treq
from autobahn.twisted.websocket import (
    WebSocketClientFactory,
    WebSocketClientProtocol,
    connectWS,
)
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredSemaphore, ensureDeferred, gatherResults
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread

from support import Daemon

PASSWORD = "correct horse battery"
FAST_PASSWORDS = ["--argon2-memory-kib", "8192", "--argon2-time-cost", "1"]
PRESENCE_TTL_SECONDS = 3.0
EPHEMERAL = frozenset({"welcome", "joined", "ack", "reply", "typing", "presence", "pong"})
# A crashed instance's users: their keys expire within the TTL, and an instance checks
# every third of it; a little more for the frame to travel.
PRESENCE_BOUND_SECONDS = PRESENCE_TTL_SECONDS * 4 / 3 + 1.5
# Once every message is acked, how long subscribers get to receive the last of them.
CATCH_UP_SECONDS = 20
# A send answered ``unavailable`` goes again after this long (sooner than the frame's
# retry_after, which is meant for people: a test client is impatient on purpose).
RETRY_UNAVAILABLE_SECONDS = 0.5


async def sleep(seconds: float) -> None:
    await deferLater(reactor, seconds)


async def wait_until(condition: Callable[[], bool], timeout: float, every: float = 0.05) -> bool:
    """Whether ``condition`` came true within ``timeout`` seconds (polled, reactor running)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        await sleep(every)
    return True


# --------------------------------------------------------------------------- Redis


# --------------------------------------------------------------------------- HTTP


async def api(
    base_url: str, method: str, path: str, token: str | None = None, body: Any = None
) -> tuple[int, Any, Any]:
    """One request: status, decoded JSON body (None when empty), headers."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    kwargs: dict[str, Any] = {"headers": headers, "timeout": 15}
    if body is not None:
        kwargs["json"] = body
    response = await treq.request(method, base_url + path, **kwargs)
    content = await response.content()
    return response.code, json.loads(content) if content else None, response.headers


async def health(daemon: Daemon) -> tuple[int, dict | None]:
    try:
        status, body, _ = await api(daemon.base_url, "GET", "/health")
    except Exception as e:  # noqa: BLE001 - a refused or stalled probe is an answer too
        return 0, {"error": repr(e)}
    return status, body


# --------------------------------------------------------------------------- deployment


@attrs.define(eq=False)
class Cluster:
    """Daemons sharing a database, a Redis and a signing key; each its own node id.
    With no ``database_url``, each runs its embedded PostgreSQL under its data dir."""

    tmp_path: Path
    database_url: str | None
    redis_url: str | None
    launch: Callable[..., Daemon]  # the ``daemons`` fixture
    flags: list[str] = attrs.Factory(list)
    instances: list[Daemon] = attrs.Factory(list)
    node_ids: dict[int, int] = attrs.Factory(dict)  # port -> node id
    clients: list["LedgerClient"] = attrs.Factory(list)
    data_root: Path | None = None  # where the instances' data dirs go; else tmp_path

    def data_dir(self, node_id: int) -> Path:
        return (self.data_root or self.tmp_path) / f"node-{node_id}-{len(self.instances)}"

    def args(self, node_id: int, *extra: str) -> list[str]:
        data_dir = self.data_dir(node_id)
        data_dir.mkdir(exist_ok=True)
        args = ["--node-id", str(node_id)]
        if self.database_url:
            args += ["--database-url", self.database_url]
        args += ["--signing-key-file", str(self.tmp_path / "signing-keys.json")]
        args += ["--data-dir", str(data_dir), "--open-registration", *FAST_PASSWORDS]
        args += ["--presence-ttl", f"{PRESENCE_TTL_SECONDS:g}s"]
        if self.redis_url:
            args += ["--redis-url", self.redis_url]
        return [*args, *self.flags, *extra]

    def start(self, node_id: int | None = None, *extra: str, healthy: bool = True) -> Daemon:
        """One more instance; one at a time, so the first creates the signing key file.
        With ``healthy=False`` it returns at once, for an instance expected to refuse."""
        if node_id is None:
            node_id = len(self.instances) + 1
        daemon = self.launch(self.args(node_id, *extra), until_listening=healthy)
        self.instances.append(daemon)
        self.node_ids[daemon.port] = node_id
        if healthy:
            wait_for_ok(daemon)
        return daemon

    def node_of(self, daemon: Daemon) -> int:
        return self.node_ids[daemon.port]

    def alive(self) -> list[Daemon]:
        return [d for d in self.instances if d.process.poll() is None]

    def kill(self, daemon: Daemon) -> None:
        """``kill -9``: no drain, no goodbye to Redis or PostgreSQL."""
        daemon.process.kill()
        daemon.process.wait(10)

    async def register(self, names: Iterable[str], via: list[Daemon] | None = None) -> dict:
        """Accounts through the open registration, spread over ``via``: name -> token."""
        via = via or self.instances
        limit = DeferredSemaphore(6)
        names = list(names)

        async def one(index: int, name: str) -> tuple[str, str]:
            daemon = via[index % len(via)]
            status, body, _ = await api(
                daemon.base_url,
                "POST",
                "/api/auth/register",
                body={"username": name, "password": PASSWORD},
            )
            assert status == 201, (name, status, body)
            return name, body["access_token"]

        pairs = await gatherResults(
            [limit.run(lambda i=i, n=n: ensureDeferred(one(i, n))) for i, n in enumerate(names)]
        )
        return dict(pairs)

    async def create_room(self, token: str, name: str, via: Daemon | None = None) -> dict:
        daemon = via or self.instances[0]
        status, room, _ = await api(
            daemon.base_url,
            "POST",
            "/api/rooms",
            token,
            {"name": name, "visibility": "public"},
        )
        assert status == 201, room
        return room

    async def last_seq(self, token: str, room: str) -> int:
        daemon = self.alive()[0]
        status, body, _ = await api(daemon.base_url, "GET", f"/api/rooms/{room}", token)
        assert status == 200, body
        return body["last_seq"]

    async def history(self, token: str, room: str) -> list[dict]:
        """Every stored event of a room, oldest first, read through the REST API."""
        daemon = self.alive()[0]
        events: list[dict] = []
        after = 0
        while True:
            status, page, _ = await api(
                daemon.base_url,
                "GET",
                f"/api/rooms/{room}/messages?after={after}&limit=200",
                token,
            )
            assert status == 200, page
            events += page["events"]
            if not page["has_more"] or not page["events"]:
                return events
            after = page["events"][-1]["seq"]

    def client(self, name: str, token: str, tally: "Tally | None" = None) -> "LedgerClient":
        client = LedgerClient(self, name, token, tally or Tally())
        self.clients.append(client)
        return client

    def close_clients(self) -> None:
        """At the end of a test: no more reconnects, every socket dropped."""
        for client in self.clients:
            client.closing = True
            if client.protocol is not None:
                client.protocol.dropConnection(abort=True)

    def log_excerpts(self, tail: int = 25, problems: int = 15) -> str:
        """Each daemon's warnings and errors, then its last lines, for a failure report."""
        parts = []
        for daemon in self.instances:
            lines = daemon.log().splitlines()
            serious = [line for line in lines if _level(line) in ("warn", "error", "critical")]
            state = "running" if daemon.process.poll() is None else f"exit {daemon.process.poll()}"
            parts.append(f"----- node {self.node_of(daemon)} (port {daemon.port}, {state})")
            if serious:
                parts.append(f"  last {min(problems, len(serious))} warnings/errors:")
                parts += ["    " + _compact(line) for line in serious[-problems:]]
            parts.append(f"  last {min(tail, len(lines))} lines:")
            parts += ["    " + _compact(line) for line in lines[-tail:]]
        return "\n".join(parts)


def unhandled_errors(daemon: Daemon) -> list[str]:
    """Lines of a daemon's log that carry a traceback, an unhandled error or a critical."""
    found = []
    for line in daemon.log().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            if "Traceback" in line or "Unhandled" in line:
                found.append(line)
            continue
        message = str(record.get("message", ""))
        if "traceback" in record or record.get("level") == "critical" or "Unhandled" in message:
            found.append(_compact(line))
    return found


def _level(line: str) -> str:
    try:
        return json.loads(line).get("level", "")
    except ValueError:
        return "error" if "Traceback" in line or "Error" in line else ""


def _compact(line: str, limit: int = 600) -> str:
    try:
        record = json.loads(line)
    except ValueError:
        return line[:limit]
    text = f"{record.get('time', '')} {record.get('level', '')} {record.get('namespace', '')}: "
    text += str(record.get("message", ""))
    if "traceback" in record:
        text += " | " + record["traceback"].strip().splitlines()[-1]
    return text[:limit]


def wait_for_ok(daemon: Daemon, timeout: float = 60) -> None:
    """Blocking, for set-up: /health answers 200 with the database connected."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    body: Any = None
    while time.monotonic() < deadline:
        if daemon.process.poll() is not None:
            raise AssertionError(f"daemon exited {daemon.process.returncode}:\n{daemon.log()}")
        try:
            with urllib.request.urlopen(daemon.base_url + "/health", timeout=5) as response:
                body = json.load(response)
                if response.status == 200:
                    return
        except urllib.error.HTTPError as e:
            body = e.code
        except OSError as e:
            body = e
        time.sleep(0.1)
    raise AssertionError(f"/health never 200 ({body}):\n{daemon.log()[-3000:]}")


# --------------------------------------------------------------------------- clients


@attrs.define(eq=False)
class Delivery:
    """One message event as a client received it."""

    id: str
    seq: int
    node: int  # the instance the receiving socket was on
    at: float


@attrs.define(eq=False)
class RoomLedger:
    """What one client saw of one room's stored events."""

    start_seq: int | None = None  # the first seq this client is owed
    previous: int | None = None  # the last seq received
    seq_counts: Counter = attrs.Factory(Counter)
    out_of_order: int = 0
    messages: dict[str, list[Delivery]] = attrs.Factory(lambda: defaultdict(list))
    events: list[dict] = attrs.Factory(list)

    def see(self, event: dict, node: int, at: float) -> None:
        seq = event["seq"]
        expected = self.start_seq if self.previous is None else self.previous + 1
        if expected is not None and seq != expected:
            self.out_of_order += 1
        self.seq_counts[seq] += 1
        self.previous = seq if self.previous is None else max(self.previous, seq)
        self.events.append(event)
        if event["type"] == "message":
            delivery = Delivery(event["id"], seq, node, at)
            self.messages[event.get("client_msg_id") or event["id"]].append(delivery)

    def caught_up(self, last_seq: int) -> bool:
        return (
            self.previous is not None
            and self.previous >= last_seq
            or (self.start_seq is not None and self.start_seq > last_seq)
        )


@attrs.define(eq=False)
class Sent:
    room: str
    sender: str
    at: float
    ack: dict | None = None
    ack_node: int | None = None
    acked_at: float | None = None
    acks: int = 0


@attrs.define(eq=False)
class Tally:
    """Every message the test's clients sent, and their acks."""

    sent: dict[str, Sent] = attrs.Factory(dict)
    attempts: int = 0
    refusals: Counter = attrs.Factory(Counter)  # error_code -> error frames for sends
    ack_conflicts: list[tuple[str, dict, dict]] = attrs.Factory(list)

    def acked(self) -> dict[str, Sent]:
        return {cmid: s for cmid, s in self.sent.items() if s.ack is not None}

    def all_acked(self) -> bool:
        return all(s.ack is not None for s in self.sent.values())


class _LedgerProtocol(WebSocketClientProtocol):
    def onOpen(self) -> None:
        self.factory.opened.callback(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.factory.client.receive(self, json.loads(payload))

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        if not self.factory.opened.called:
            self.factory.opened.errback(ConnectionError(f"handshake failed: {code} {reason}"))
        self.factory.client.connection_lost(self, code)


@attrs.define(eq=False)
class LedgerClient:
    """
    A user's WebSocket that records every frame and keeps a ledger per room. When its
    instance goes away it reconnects to another (``failover``), joins its rooms again
    with ``since`` = the last seq it saw, and sends its unacknowledged messages again
    with the same client_msg_id, as the contract tells clients to; a send answered
    ``unavailable`` goes again, the same, a moment later.
    """

    cluster: Cluster
    name: str
    token: str
    tally: Tally
    protocol: Any = None
    daemon: Daemon | None = None
    node: int | None = None
    rooms: dict[str, RoomLedger] = attrs.Factory(dict)
    outbox: dict[str, dict] = attrs.Factory(dict)  # client_msg_id -> send frame, until acked
    frames: list[tuple[float, int | None, dict]] = attrs.Factory(list)
    errors: list[dict] = attrs.Factory(list)
    presence: list[tuple[float, dict]] = attrs.Factory(list)
    closes: list[tuple[float, int | None, int | None]] = attrs.Factory(list)
    reconnects: list[tuple[float, int | None, float]] = attrs.Factory(list)  # when, node, took
    failover: Callable[["LedgerClient"], Daemon] | None = None
    closing: bool = False
    _waiters: list[tuple[Callable[[dict], bool], Deferred]] = attrs.Factory(list)

    # ------------------------------------------------------------ connection

    async def connect(self, daemon: Daemon) -> None:
        url = f"ws://127.0.0.1:{daemon.port}/ws?token={self.token}"
        factory = WebSocketClientFactory(url)
        factory.protocol = _LedgerProtocol
        factory.client = self
        factory.opened = Deferred()
        welcome = self.expect(lambda f: f["type"] == "welcome")
        connectWS(factory, timeout=10)
        self.protocol = await factory.opened.addTimeout(10, reactor)
        self.daemon = daemon
        self.node = self.cluster.node_of(daemon)
        await welcome.addTimeout(10, reactor)

    def connection_lost(self, protocol: Any, code: int | None) -> None:
        if protocol is not self.protocol:
            return
        self.protocol = None
        self.closes.append((time.monotonic(), self.node, code))
        if not self.closing and self.failover is not None:
            ensureDeferred(self._fail_over()).addErrback(
                lambda f: self.errors.append({"type": "failover", "detail": f.getErrorMessage()})
            )

    async def _fail_over(self) -> None:
        started = time.monotonic()
        for _ in range(50):
            if self.closing:
                return
            daemon = self.failover(self)
            try:
                await self.connect(daemon)
                break
            except Exception:  # noqa: BLE001 - that instance is not there: try again
                await sleep(0.2)
        else:
            raise ConnectionError(f"{self.name} found no instance to reconnect to")
        for room, ledger in list(self.rooms.items()):
            since = ledger.previous if ledger.previous is not None else ledger.start_seq - 1
            await self.join(room, since=since)
        for frame in list(self.outbox.values()):
            self.tally.attempts += 1
            self.send_frame(frame)
        self.reconnects.append((time.monotonic(), self.node, time.monotonic() - started))

    @property
    def connected(self) -> bool:
        return self.protocol is not None

    # ------------------------------------------------------------ frames

    def expect(self, predicate: Callable[[dict], bool]) -> Deferred:
        """A Deferred firing with the next frame that satisfies ``predicate``."""
        d: Deferred = Deferred()
        self._waiters.append((predicate, d))
        return d

    async def next_matching(self, predicate: Callable[[dict], bool], timeout: float = 10) -> dict:
        return await self.expect(predicate).addTimeout(timeout, reactor)

    def receive(self, protocol: Any, frame: dict) -> None:
        if protocol is not self.protocol and self.protocol is not None:
            return  # a straggler from a socket already replaced
        now = time.monotonic()
        self.frames.append((now, self.node, frame))
        kind = frame.get("type")
        if kind == "joined":
            ledger = self.rooms.setdefault(frame["room"], RoomLedger())
            if ledger.start_seq is None:
                ledger.start_seq = frame["last_seq"] + 1
        elif kind == "ack":
            self._acked(frame, now)
        elif kind == "error":
            self.errors.append(frame)
            if frame.get("ref") in self.outbox:
                self.tally.refusals[frame.get("error_code")] += 1
                if frame.get("error_code") == "unavailable":
                    deferLater(reactor, RETRY_UNAVAILABLE_SECONDS, self._resend, frame["ref"])
        elif kind == "presence":
            self.presence.append((now, frame))
        elif kind not in EPHEMERAL and "seq" in frame and "room" in frame:
            ledger = self.rooms.setdefault(frame["room"], RoomLedger())
            ledger.see(frame, self.node, now)
        for waiter in list(self._waiters):
            predicate, d = waiter
            if d.called:
                self._waiters.remove(waiter)
            elif predicate(frame):
                self._waiters.remove(waiter)
                d.callback(frame)

    def _acked(self, frame: dict, now: float) -> None:
        cmid = frame["client_msg_id"]
        self.outbox.pop(cmid, None)
        sent = self.tally.sent.get(cmid)
        if sent is None:
            return
        sent.acks += 1
        answer = {"id": frame["id"], "seq": frame["seq"]}
        if sent.ack is None:
            sent.ack, sent.ack_node, sent.acked_at = answer, self.node, now
        elif sent.ack != answer:
            self.tally.ack_conflicts.append((cmid, sent.ack, answer))

    def _resend(self, client_msg_id: str) -> None:
        frame = self.outbox.get(client_msg_id)
        if frame is not None and self.protocol is not None:
            self.tally.attempts += 1
            self.send_frame(frame)

    def send_frame(self, frame: dict) -> None:
        """Send now, if the socket is open; a socket closing keeps the send in the outbox."""
        if self.protocol is not None and self.protocol.state == self.protocol.STATE_OPEN:
            self.protocol.sendMessage(json.dumps(frame).encode())

    async def join(self, room: str, since: int | None = None, timeout: float = 15) -> dict:
        frame: dict[str, Any] = {"type": "join", "room": room}
        if since is not None:
            frame["since"] = since
        answer = self.expect(
            lambda f: (
                (f["type"] == "joined" and f["room"].lower() == room.lower())
                or f["type"] == "error"
            )
        )
        self.send_frame(frame)
        reply = await answer.addTimeout(timeout, reactor)
        if reply["type"] != "joined":
            raise AssertionError(f"{self.name} could not join {room}: {reply}")
        return reply

    def send_message(self, room: str, client_msg_id: str, body: str | None = None) -> None:
        """Post a message now, or on the next connection while there is none."""
        frame = {
            "type": "send",
            "room": room,
            "body": body or f"message {client_msg_id}",
            "client_msg_id": client_msg_id,
            "ref": client_msg_id,  # an error frame names the send it refuses
        }
        self.outbox[client_msg_id] = frame
        self.tally.sent[client_msg_id] = Sent(room, self.name, time.monotonic())
        self.tally.attempts += 1
        self.send_frame(frame)

    def events_in(self, room: str) -> list[dict]:
        ledger = self.rooms.get(room)
        return ledger.events if ledger else []


# --------------------------------------------------------------------------- load


async def stream(
    senders: list[tuple[LedgerClient, str]],
    total: int,
    rate: float,
    prefix: str = "m",
) -> None:
    """``total`` messages at ``rate`` a second in all, round-robin over (sender, room)."""
    started = time.monotonic()
    n = 0
    while n < total:
        due = min(total, int((time.monotonic() - started) * rate) + 1)
        while n < due:
            client, room = senders[n % len(senders)]
            client.send_message(room, f"{prefix}{n:05d}-{client.name}")
            n += 1
        await sleep(0.02)


# --------------------------------------------------------------------------- scenarios


Placement = tuple[LedgerClient, Any, list[str]]  # a client, its instance, its rooms


async def connect_and_join(placements: list[Placement]) -> None:
    """Each client onto its instance, subscribed to its rooms; a few at a time."""
    limit = DeferredSemaphore(10)

    async def one(client: LedgerClient, daemon: Any, rooms: list[str]) -> None:
        await client.connect(daemon)
        for room in rooms:
            await client.join(room)

    await gatherResults(
        [limit.run(lambda p=p: ensureDeferred(one(*p))) for p in placements], consumeErrors=True
    )


async def seat_clients(
    cluster: Cluster,
    rooms: list[str],
    subscribers: list[str],
    senders: list[str],
    tally: Tally,
    instance_for: Callable[[int, str], Any],
) -> tuple[dict[str, str], list[Placement], list[tuple[LedgerClient, str]]]:
    """Register everyone and an ``owner``, make the rooms, and seat one failing-over client
    per user, in room ``i % len(rooms)``, on the instance ``instance_for(i, name)`` picks.
    Returns the tokens, the placements (for connect_and_join) and the (sender, room) pairs."""
    tokens = await cluster.register(["owner", *subscribers, *senders])
    for room in rooms:
        await cluster.create_room(tokens["owner"], room)
    placed, sending = [], []
    for i, name in enumerate(subscribers + senders):
        client = cluster.client(name, tokens[name], tally)
        client.failover = fail_over_to_survivors(cluster)
        room = rooms[i % len(rooms)]
        placed.append((client, instance_for(i, name), [room]))
        if name in senders:
            sending.append((client, room))
    return tokens, placed, sending


def fail_over_to_survivors(cluster: Cluster) -> Callable[[LedgerClient], Any]:
    """A client whose instance died picks a live one, spreading the clients out."""

    def pick(client: LedgerClient) -> Any:
        alive = [d for d in cluster.alive() if d is not client.daemon]
        return alive[sum(map(ord, client.name)) % len(alive)]

    return pick


async def settle_and_count(
    findings: Findings,
    tally: Tally,
    clients: list[LedgerClient],
    token: str,
    rooms: list[str],
) -> None:
    """Wait for every ack and for every subscriber to reach each room's last seq; count."""
    cluster = findings.cluster
    findings.expect(
        await wait_until(tally.all_acked, CATCH_UP_SECONDS),
        f"not every message was acked within {CATCH_UP_SECONDS}s of the end of the stream",
    )
    final = {room: await cluster.last_seq(token, room) for room in rooms}

    def everyone_caught_up() -> bool:
        return all(
            ledger.caught_up(final[room])
            for client in clients
            for room, ledger in client.rooms.items()
            if room in final
        )

    findings.expect(
        await wait_until(everyone_caught_up, CATCH_UP_SECONDS),
        f"not every subscriber reached its room's last seq within {CATCH_UP_SECONDS}s",
    )
    await sleep(0.5)  # a duplicate still on its way would arrive now
    stored = {room: await cluster.history(token, room) for room in rooms}
    report = count_deliveries(tally, clients, final, stored)
    report.counts["reconnects"] = sum(len(c.reconnects) for c in clients)
    findings.report = report
    print(report.text())
    findings.expect(report.clean, "messages lost, doubled, reordered or unacked (counts below)")


async def poll(
    fetch: Callable[[], Awaitable[Any]], good: Callable[[Any], bool], timeout: float
) -> tuple[bool, Any]:
    """Ask until the answer is good or the time is up: (good?, last answer)."""
    deadline = time.monotonic() + timeout
    while True:
        answer = await fetch()
        if good(answer):
            return True, answer
        if time.monotonic() > deadline:
            return False, answer
        await sleep(0.1)


async def members_online(daemon: Any, token: str, room: str) -> dict[str, bool]:
    status, body, _ = await api(daemon.base_url, "GET", f"/api/rooms/{room}/members", token)
    assert status == 200, body
    return {m["username"]: m["online"] for m in body}


async def online_count(daemon: Any, token: str, room: str) -> int | None:
    status, body, _ = await api(daemon.base_url, "GET", "/api/rooms", token)
    assert status == 200, body
    return next((r["online_count"] for r in body if r["name"] == room), None)


async def presence_adds_up(
    findings: Findings, token: str, clients: list[LedgerClient], rooms: list[str], after: str
) -> None:
    """On every live instance, each room's online_count is its connected subscribers."""
    cluster = findings.cluster
    for daemon in cluster.alive():
        for room in rooms:
            want = len({c.name for c in clients if room in c.rooms and c.connected})
            counted, count = await poll(
                lambda d=daemon, r=room: online_count(d, token, r),
                lambda n, w=want: n == w,
                timeout=PRESENCE_TTL_SECONDS + 2,
            )
            findings.expect(
                counted,
                f"{after}, online_count of {room} on node {cluster.node_of(daemon)} is {count},"
                f" want {want}",
            )


async def three_instances_under_load(
    cluster: Cluster, rooms: list[str], subscribers: int, senders: int
) -> tuple[dict, Tally, list[LedgerClient], list[tuple[LedgerClient, str]]]:
    """
    Three instances and an owner who made the rooms; subscribers round-robin over the
    instances with every room on every instance, and a sender per room on each instance,
    so that every instance's messages must reach every other's subscribers.
    """
    for _ in range(3):
        cluster.start()
    instances = cluster.instances
    names = ["owner"] + [f"sub{i:02d}" for i in range(subscribers)]
    names += [f"snd{j:02d}" for j in range(senders)]
    tokens = await cluster.register(names)
    for room in rooms:
        await cluster.create_room(tokens["owner"], room)
    tally = Tally()
    placed = []
    for i in range(subscribers):
        name = f"sub{i:02d}"
        room = rooms[(i // len(instances)) % len(rooms)]
        client = cluster.client(name, tokens[name], tally)
        placed.append((client, instances[i % len(instances)], [room]))
    sending = []
    for j in range(senders):
        name = f"snd{j:02d}"
        room = rooms[(j // len(instances)) % len(rooms)]
        client = cluster.client(name, tokens[name], tally)
        placed.append((client, instances[j % len(instances)], [room]))
        sending.append((client, room))
    await connect_and_join(placed)
    return tokens, tally, [p[0] for p in placed], sending


# --------------------------------------------------------------------------- the count


@attrs.define
class DeliveryReport:
    """The counts a cluster test asserts on, and what it prints when they are wrong."""

    counts: dict[str, int]
    lost_by_path: Counter  # (from node, to node) -> lost message deliveries
    delivered_by_path: Counter
    examples: list[str]
    final_seqs: dict[str, int]

    @property
    def clean(self) -> bool:
        c = self.counts
        return (
            c["sent"] == c["acked"]
            and c["lost"] == 0
            and c["duplicated"] == 0
            and c["out_of_order"] == 0
            and c["mismatched"] == 0
            and c["seq_missing"] == 0
            and c["seq_doubled"] == 0
            and c["ack_conflicts"] == 0
            and c["stored_doubles"] == 0
            and c["stored_missing"] == 0
        )

    def text(self) -> str:
        lines = ["counts: " + ", ".join(f"{k}={v}" for k, v in self.counts.items())]
        lines.append(f"final seqs: {self.final_seqs}")
        paths = sorted(set(self.lost_by_path) | set(self.delivered_by_path))
        for path in paths:
            lines.append(
                f"  node {path[0]} -> node {path[1]}: delivered {self.delivered_by_path[path]},"
                f" lost {self.lost_by_path[path]}"
            )
        lines += ["examples:"] + ["  " + e for e in self.examples[:15]]
        return "\n".join(lines)


def count_deliveries(
    tally: Tally,
    subscribers: Iterable[LedgerClient],
    final_seqs: dict[str, int],
    stored: dict[str, list[dict]] | None = None,
) -> DeliveryReport:
    """
    Every subscriber of a room is owed every acked message of that room (all of them
    joined before the first send) and every stored event from its first seq to the
    room's last: count what came, what did not, and what came twice or out of order.
    """
    acked = tally.acked()
    by_room: dict[str, list[tuple[str, Sent]]] = defaultdict(list)
    for cmid, sent in acked.items():
        by_room[sent.room].append((cmid, sent))
    counts = Counter(
        sent=len(tally.sent),
        acked=len(acked),
        resent=tally.attempts - len(tally.sent),
        ack_conflicts=len(tally.ack_conflicts),
    )
    lost_by_path: Counter = Counter()
    delivered_by_path: Counter = Counter()
    examples: list[str] = []
    for client in subscribers:
        shown = 0  # examples from this client: a few, so that many clients get a word in

        def example(text: str) -> None:
            nonlocal shown
            if shown < 2 and len(examples) < 15:
                examples.append(text)
                shown += 1

        for room, ledger in client.rooms.items():
            counts["out_of_order"] += ledger.out_of_order
            if ledger.out_of_order:
                seqs = [e["seq"] for e in ledger.events]
                example(f"{client.name}/{room}: out of order, seqs {_runs(seqs)}")
            start = ledger.start_seq or 1
            for seq in range(start, final_seqs.get(room, 0) + 1):
                if ledger.seq_counts[seq] == 0:
                    counts["seq_missing"] += 1
            counts["seq_doubled"] += sum(n - 1 for n in ledger.seq_counts.values() if n > 1)
            for cmid, sent in by_room.get(room, ()):
                if sent.ack["seq"] < start:
                    continue
                counts["expected"] += 1
                deliveries = ledger.messages.get(cmid, [])
                path_to = deliveries[0].node if deliveries else client.node
                if not deliveries:
                    counts["lost"] += 1
                    lost_by_path[(sent.ack_node, path_to)] += 1
                    example(
                        f"{client.name} (node {client.node}) never got {cmid}"
                        f" (seq {sent.ack['seq']} in {room}, acked by node {sent.ack_node});"
                        f" its seqs: {_runs([e['seq'] for e in ledger.events])}"
                    )
                    continue
                counts["delivered"] += 1
                delivered_by_path[(sent.ack_node, path_to)] += 1
                if len(deliveries) > 1:
                    counts["duplicated"] += len(deliveries) - 1
                    example(f"{client.name} got {cmid} {len(deliveries)} times")
                first = deliveries[0]
                if first.id != sent.ack["id"] or first.seq != sent.ack["seq"]:
                    counts["mismatched"] += 1
    for room, events in (stored or {}).items():
        cmids = Counter(e.get("client_msg_id") for e in events if e["type"] == "message")
        counts["stored_doubles"] += sum(n - 1 for cmid, n in cmids.items() if cmid and n > 1)
        wanted = {cmid for cmid, sent in acked.items() if sent.room == room}
        counts["stored_missing"] += len(wanted - set(cmids))
        seqs = [e["seq"] for e in events]
        if seqs != list(range(1, len(seqs) + 1)):
            counts["stored_seq_gaps"] += 1
            examples.append(f"stored seqs of {room} not 1..N: {_runs(seqs)}")
    for key in (
        "expected",
        "delivered",
        "lost",
        "duplicated",
        "out_of_order",
        "mismatched",
        "seq_missing",
        "seq_doubled",
        "stored_doubles",
        "stored_missing",
    ):
        counts.setdefault(key, 0)
    return DeliveryReport(dict(counts), lost_by_path, delivered_by_path, examples, final_seqs)


def _runs(seqs: list[int]) -> str:
    """``1-40, 42-90, 41``: a seq list, short."""
    if not seqs:
        return "(none)"
    runs: list[str] = []
    begin = prev = seqs[0]
    for seq in seqs[1:] + [None]:  # type: ignore[list-item]
        if seq is not None and seq == prev + 1:
            prev = seq
            continue
        runs.append(str(begin) if begin == prev else f"{begin}-{prev}")
        if seq is not None:
            begin = prev = seq
    text = ", ".join(runs)
    return text if len(text) < 300 else text[:300] + " ..."


def failure_text(cluster: Cluster, report: DeliveryReport | None, *notes: str) -> str:
    parts = [*notes]
    if report is not None:
        parts.append(report.text())
    parts.append(cluster.log_excerpts())
    return "\n".join(parts)


def stored_copies(database_url: str) -> Counter:
    """Blocking: client_msg_id -> how many events PostgreSQL holds with it."""
    connection = psycopg2.connect(database_url, connect_timeout=10)
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute(
                "SELECT client_msg_id, count(*) FROM room_events"
                " WHERE client_msg_id IS NOT NULL GROUP BY client_msg_id"
            )
            return Counter(dict(cursor.fetchall()))
    finally:
        connection.close()


def expect_stored_once(findings: "Findings", tally: Tally, copies: Counter) -> int:
    """Every message sent is stored exactly once (acked or not); returns how many are."""
    doubled = {cmid: n for cmid, n in copies.items() if cmid in tally.sent and n > 1}
    missing = [cmid for cmid in tally.sent if copies[cmid] == 0]
    acked_missing = [cmid for cmid in missing if tally.sent[cmid].ack is not None]
    findings.expect(not doubled, f"stored more than once: {list(doubled.items())[:10]}")
    findings.expect(not acked_missing, f"ACKED but not stored: {acked_missing[:10]}")
    findings.expect(not missing, f"sent, retried, never stored: {missing[:10]}")
    return sum(1 for cmid in tally.sent if copies[cmid] >= 1)


async def settle_count_and_check(
    findings: "Findings",
    tally: Tally,
    clients: list[LedgerClient],
    token: str,
    rooms: list[str],
    database_url: str | None = None,
) -> int:
    """
    The end of a fault test: every delivery counted, every message stored exactly once
    (read from PostgreSQL), no unhandled error in a surviving instance's log, no send
    refused as an internal error. Returns how many messages are stored.
    """
    cluster = findings.cluster
    await settle_and_count(findings, tally, clients, token, rooms)
    copies = await deferToThread(stored_copies, database_url or cluster.database_url)
    stored = expect_stored_once(findings, tally, copies)
    for daemon in cluster.alive():
        errors = unhandled_errors(daemon)
        findings.expect(not errors, f"node {cluster.node_of(daemon)} logged: {errors[:5]}")
    findings.expect(
        "internal_error" not in tally.refusals, f"sends refused as {dict(tally.refusals)}"
    )
    return stored


@attrs.define(eq=False)
class Findings:
    """
    What a test found wrong. The test goes on after a broken guarantee, so that one run
    shows every problem; one assertion at the end prints them all with the counts and
    the daemons' logs.
    """

    cluster: Cluster
    problems: list[str] = attrs.Factory(list)
    notes: list[str] = attrs.Factory(list)
    report: DeliveryReport | None = None

    def expect(self, ok: Any, problem: str) -> bool:
        if not ok:
            self.problems.append(problem)
        return bool(ok)

    def note(self, text: str) -> None:
        print(text)
        self.notes.append(text)

    def verify(self) -> None:
        if self.problems:
            raise AssertionError(
                failure_text(
                    self.cluster,
                    self.report,
                    "PROBLEMS:",
                    *("  - " + p for p in self.problems),
                    "NOTES:",
                    *("  " + n for n in self.notes),
                )
            )
