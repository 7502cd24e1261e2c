"""systemd's notify protocol, pure parts and a real daemon talking to a socket we bind."""

from __future__ import annotations

import json
import socket
import time
import urllib.request
import uuid

import pytest
from twisted.internet.defer import Deferred

from termrooms.operations.systemd import notify_address, watchdog_interval, when_listening


def test_notify_address_turns_a_leading_at_into_an_abstract_socket_name():
    assert notify_address("@termrooms/notify") == "\0termrooms/notify"
    assert notify_address("/run/systemd/notify") == "/run/systemd/notify"
    assert notify_address("") is None
    assert notify_address(None) is None


def test_watchdog_pings_at_half_the_interval_systemd_gives():
    assert watchdog_interval({"WATCHDOG_USEC": "20000000"}, 7) == 10.0
    assert watchdog_interval({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "7"}, 7) == 10.0


def test_no_watchdog_without_usec_or_for_another_process():
    assert watchdog_interval({}, 7) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}, 7) is None
    assert watchdog_interval({"WATCHDOG_USEC": "soon"}, 7) is None
    assert watchdog_interval({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "8"}, 7) is None


def get_health(base_url: str) -> tuple[int, dict]:
    with urllib.request.urlopen(base_url + "/health", timeout=5) as response:
        return response.status, json.load(response)


class NotifySocket:
    """The datagram socket systemd would listen on: here an abstract one of the test's."""

    def __init__(self) -> None:
        self.name = f"@termrooms-test-{uuid.uuid4().hex}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.name[1:])
        self.received: list[tuple[float, str]] = []

    def wait_for(self, line: str, timeout: float = 60) -> float:
        """Read datagrams until one has ``line``; when it came."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                datagram = self.sock.recv(4096).decode()
            except TimeoutError:
                break
            now = time.monotonic()
            self.received.append((now, datagram))
            if line in datagram.splitlines():
                return now
        raise AssertionError(f"no {line!r} within {timeout} s; got {self.received}")

    def lines(self) -> list[str]:
        return [line for _, datagram in self.received for line in datagram.splitlines()]

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify_socket():
    sock = NotifySocket()
    yield sock
    sock.close()


def test_ready_only_once_serving_watchdog_pings_and_stopping_on_sigterm(
    daemons, database_url, notify_socket
):
    daemon = daemons(
        ["--database-url", database_url],
        env={"NOTIFY_SOCKET": notify_socket.name, "WATCHDOG_USEC": "400000"},
        until_listening=False,
    )
    notify_socket.wait_for("READY=1")
    # READY means the database is migrated and the port listens: /health says so at once.
    assert get_health(daemon.base_url) == (
        200,
        {"status": "ok", "database": "connected", "redis": "disabled"},
    )
    before_ready = notify_socket.lines()[: notify_socket.lines().index("READY=1")]
    assert "STATUS=preparing the database" in before_ready
    pings_before = notify_socket.lines().count("WATCHDOG=1")
    started = time.monotonic()
    while time.monotonic() - started < 1.0:
        notify_socket.wait_for("WATCHDOG=1", timeout=1)
    # Every 0.2 s: about 5 in that second, at least 3 however the machine is loaded.
    assert notify_socket.lines().count("WATCHDOG=1") - pings_before >= 3

    daemon.process.terminate()
    notify_socket.wait_for("STOPPING=1", timeout=10)
    assert daemon.process.wait(15) == 0, daemon.log()
    assert notify_socket.lines().count("READY=1") == 1


class FakeListener:
    def __init__(self) -> None:
        self._waitingForPort = Deferred()


def test_ready_waits_for_a_listening_port_and_leaves_the_port_to_stop_service():
    listener = FakeListener()
    listening = when_listening(listener)
    port = object()
    listener._waitingForPort.callback(port)
    assert listening.called
    kept = []
    listener._waitingForPort.addCallback(kept.append)
    assert kept == [port]  # stopService still gets the port, to stop listening


def test_a_listener_that_failed_never_counts_as_listening():
    listener = FakeListener()
    listening = when_listening(listener)
    listener._waitingForPort.callback(None)  # what StreamServerEndpointService leaves
    assert not listening.called
