"""
SIGTERM and SIGHUP on a real ``twistd -n termrooms`` process: a client that never answers
the close does not hold the exit; SIGHUP reopens the log file. (SIGTERM under load, with
clients failing over to another instance: tests/faults/test_instance_faults.py.)
"""

from __future__ import annotations

import json
import signal
import socket
import time
import urllib.request

import pytest
import pytest_twisted
import treq
from twisted.internet.threads import deferToThread

from support import PASSWORD, run_termrooms

pytestmark = pytest.mark.slow

FAST_ARGON2 = ["--argon2-memory-kib", "8192", "--argon2-time-cost", "1"]


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
