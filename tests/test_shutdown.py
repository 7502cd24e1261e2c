"""
SIGTERM and SIGHUP on a real ``twistd -n termrooms`` process under load: the drain loses
nothing acknowledged and closes every WebSocket with 1001; SIGHUP reopens the log file.
"""

from __future__ import annotations

import json
import signal
import socket
import time
import urllib.request

import psycopg2
import pytest
import pytest_twisted
import treq
from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread

from support import PASSWORD, bearer, run_termrooms, ws_connect

pytestmark = pytest.mark.slow

FAST_ARGON2 = ["--argon2-memory-kib", "8192", "--argon2-time-cost", "1"]
USERS = 4
SOCKETS_PER_USER = 5  # 20 clients
SHUTDOWN_TIMEOUT = 10.0


def wait_for_connected(base_url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(base_url + "/health", timeout=5) as response:
                if json.load(response)["database"] == "connected":
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError("the daemon never became healthy")


async def session_of(base_url: str, name: str) -> str:
    response = await treq.post(
        base_url + "/api/auth/login", json={"username": name, "password": PASSWORD}
    )
    body = await response.json()
    assert response.code == 200, body
    return body["access_token"]


class Sender:
    """One client that sends as fast as its acks come back, a few frames ahead."""

    def __init__(self, client, name: str) -> None:
        self.client = client
        self.name = name
        self.sent = 0
        self.acked: dict[str, int] = {}  # client_msg_id -> event id
        self.close_code = None

    def send_next(self) -> None:
        self.sent += 1
        self.client.send(
            {
                "type": "send",
                "room": "lobby",
                "body": f"message {self.sent}",
                "client_msg_id": f"{self.name}-{self.sent}",
            }
        )

    async def run(self) -> None:
        """Keep four sends in flight until the server closes the socket."""
        for _ in range(4):
            self.send_next()
        while not self.client.closed.called:
            try:
                frame = await self.client.next_frame(timeout=0.5)
            except Exception:
                continue  # no frame in that half second; look at the socket again
            self.note(frame)
            if frame["type"] == "ack" and not self.client.closed.called:
                self.send_next()
        for frame in self.client.frames.pending:  # read before the close, not yet looked at
            self.note(frame)
        self.close_code = await self.client.close_code()

    def note(self, frame: dict) -> None:
        if frame["type"] == "ack":
            self.acked[frame["client_msg_id"]] = str(frame["id"])


@pytest_twisted.ensureDeferred
async def test_sigterm_under_load_acks_only_what_is_stored_closes_1001_and_exits_0(
    daemons, database_url
):
    daemon = daemons(
        [
            "--database-url",
            database_url,
            "--no-rate-limits",
            "--shutdown-timeout",
            f"{SHUTDOWN_TIMEOUT:g}s",
            *FAST_ARGON2,
        ]
    )
    await deferToThread(wait_for_connected, daemon.base_url)
    names = [f"user{n}" for n in range(USERS)]
    for name in names:
        await deferToThread(
            run_termrooms,
            ["create-user", name, "--password-stdin", "--database-url", database_url] + FAST_ARGON2,
            input=PASSWORD + "\n",
            check=True,
        )
    tokens = {name: await session_of(daemon.base_url, name) for name in names}
    response = await treq.post(
        daemon.base_url + "/api/rooms",
        json={"name": "lobby", "visibility": "public"},
        headers=bearer(tokens[names[0]]),
    )
    assert response.code == 201, await response.text()

    senders = []
    ws_base = daemon.base_url.replace("http://", "ws://")
    for name in names:
        for n in range(SOCKETS_PER_USER):
            client = await ws_connect(f"{ws_base}/ws?token={tokens[name]}")
            assert (await client.next_frame())["type"] == "welcome"
            client.send({"type": "join", "room": "lobby"})
            while (await client.next_frame())["type"] != "joined":
                pass
            senders.append(Sender(client, f"{name}-{n}"))
    running = [ensureDeferred(sender.run()) for sender in senders]
    await deferLater(reactor, 1.5, lambda: None)  # load for a while

    acked_before_sigterm = sum(len(s.acked) for s in senders)
    signalled = time.monotonic()
    daemon.process.send_signal(signal.SIGTERM)
    code = await deferToThread(daemon.process.wait, SHUTDOWN_TIMEOUT + 5)
    took = time.monotonic() - signalled
    for done in running:
        await done

    assert code == 0, daemon.log()
    assert took < SHUTDOWN_TIMEOUT, took
    assert [s.close_code for s in senders] == [1001] * len(senders)
    acked = {msg_id: event_id for s in senders for msg_id, event_id in s.acked.items()}
    assert acked_before_sigterm > 100  # the daemon was under load when it was told to stop
    connection = psycopg2.connect(database_url)
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute(
                "SELECT client_msg_id, id FROM room_events WHERE client_msg_id = ANY(%s)",
                (list(acked),),
            )
            stored = {msg_id: str(event_id) for msg_id, event_id in cursor.fetchall()}
    finally:
        connection.close()
    assert stored == acked, "an acknowledged message is missing from the database"
    assert "cursor already closed" not in daemon.log()
    assert "Unhandled" not in daemon.log()


def test_sighup_reopens_the_log_file_that_logrotate_moved_away(daemons, database_url, tmp_path):
    log_file = tmp_path / "termrooms.log"
    daemon = daemons(["--database-url", database_url, "--log-file", str(log_file)])
    wait_for_connected(daemon.base_url)
    rotated = tmp_path / "termrooms.log.1"
    log_file.rename(rotated)
    daemon.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while not log_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    urllib.request.urlopen(daemon.base_url + "/api/openapi.json", timeout=5).read()
    assert daemon.stop(timeout=15) == 0, daemon.log()

    old = [json.loads(line) for line in rotated.read_text().splitlines()]
    new = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert any("termrooms is serving" in r["message"] for r in old)
    assert any(r.get("path") == "/api/openapi.json" for r in new)
    assert not any(r.get("path") == "/api/openapi.json" for r in old)
    assert any("SIGTERM" in r["message"] for r in new)


@pytest_twisted.ensureDeferred
async def test_a_client_that_never_answers_the_close_does_not_hold_the_exit_past_the_timeout(
    daemons, database_url
):
    daemon = daemons(["--database-url", database_url, "--shutdown-timeout", "2s", *FAST_ARGON2])
    await deferToThread(wait_for_connected, daemon.base_url)
    await deferToThread(
        run_termrooms,
        ["create-user", "ada", "--password-stdin", "--database-url", database_url] + FAST_ARGON2,
        input=PASSWORD + "\n",
        check=True,
    )
    token = await session_of(daemon.base_url, "ada")
    # A WebSocket whose client stops reading after the handshake: it never answers the
    # server's close (Autobahn would wait 5 s for it), so the drain runs into its deadline.
    silent = socket.create_connection(("127.0.0.1", daemon.port))
    silent.sendall(
        (
            f"GET /ws?token={token} HTTP/1.1\r\nHost: 127.0.0.1:{daemon.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        ).encode()
    )
    assert silent.recv(4096).startswith(b"HTTP/1.1 101")
    try:
        signalled = time.monotonic()
        daemon.process.send_signal(signal.SIGTERM)
        code = await deferToThread(daemon.process.wait, 15)
        took = time.monotonic() - signalled
    finally:
        silent.close()
    assert code == 0, daemon.log()
    assert 2.0 <= took < 4.0, took
    assert "closing the WebSockets took longer than --shutdown-timeout" in daemon.log()


def test_sighup_without_a_log_file_leaves_the_daemon_serving(daemons, database_url):
    # `systemctl reload` sends SIGHUP whatever the settings; its default action kills.
    daemon = daemons(["--database-url", database_url])
    wait_for_connected(daemon.base_url)
    daemon.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "no --log-file to reopen" not in daemon.log():
        assert daemon.process.poll() is None, daemon.log()
        assert time.monotonic() < deadline, daemon.log()
        time.sleep(0.05)
    wait_for_connected(daemon.base_url)
    assert daemon.stop(timeout=15) == 0, daemon.log()
