"""
Attacks on the transport of a real ``twistd -n termrooms`` process over real sockets:
spoofed Origins, oversized and compressed bodies, slow and idle clients, connection
floods beyond --max-connections, compressed and oversized WebSocket frames.

The clients here are raw sockets speaking HTTP/1.1 and RFC 6455 by hand, so a test can
send what no well-behaved library would (a byte a second, a frame with RSV1, a header
announcing ten gigabytes).
"""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import attrs
import pytest

from support import Daemon, record_outcome, run_termrooms, start_daemon

MODULE = "attacks/test_transport"
PASSWORD = "correct horse battery"
ALLOWED_ORIGIN = "https://chat.example"
PUBLIC_URL = "https://Rooms.Example.org:8443/chat"
MAX_BODY = 64 * 1024
MAX_MESSAGE = 64 * 1024
WS_KEY = base64.b64encode(b"sixteen byte key").decode()


# --------------------------------------------------------------------------- raw clients


@attrs.define(eq=False)
class Raw:
    """One TCP connection to the daemon, spoken to by hand."""

    sock: socket.socket
    received: bytes = b""

    @classmethod
    def open(cls, port: int, timeout: float = 10.0) -> "Raw":
        return cls(socket.create_connection(("127.0.0.1", port), timeout=timeout))

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed by the server")
        self.received += chunk

    def read_response(self) -> tuple[int, dict[str, list[str]], bytes]:
        """One HTTP response: status, headers (lower-case names), body."""
        while b"\r\n\r\n" not in self.received:
            self._fill()
        head, self.received = self.received.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers: dict[str, list[str]] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.setdefault(name.strip().lower(), []).append(value.strip())
        if headers.get("transfer-encoding") == ["chunked"]:
            body = b""
            while True:
                while b"\r\n" not in self.received:
                    self._fill()
                size_line, self.received = self.received.split(b"\r\n", 1)
                size = int(size_line, 16)
                while len(self.received) < size + 2:
                    self._fill()
                body, self.received = body + self.received[:size], self.received[size + 2 :]
                if size == 0:
                    return status, headers, body
        length = int(headers.get("content-length", ["0"])[0])
        while len(self.received) < length:
            self._fill()
        body, self.received = self.received[:length], self.received[length:]
        return status, headers, body

    def closed_by_server(self, timeout: float) -> bool:
        """Whether the server closes (or resets) the connection within ``timeout``."""
        self.sock.settimeout(timeout)
        try:
            while self.sock.recv(65536):
                pass
        except TimeoutError:
            return False
        except OSError:
            return True
        return True

    # ------------------------------------------------------------------ WebSocket

    def send_frame(
        self, opcode: int, payload: bytes, *, fin: bool = True, rsv1: bool = False
    ) -> None:
        self.send(frame(opcode, payload, fin=fin, rsv1=rsv1))

    def read_frame(self) -> tuple[int, bytes]:
        """The next frame from the server that is not a ping (pings are answered)."""
        while True:
            while len(self.received) < 2:
                self._fill()
            first, second = self.received[0], self.received[1]
            length, offset = second & 0x7F, 2
            if length == 126:
                while len(self.received) < 4:
                    self._fill()
                (length,), offset = struct.unpack("!H", self.received[2:4]), 4
            elif length == 127:
                while len(self.received) < 10:
                    self._fill()
                (length,), offset = struct.unpack("!Q", self.received[2:10]), 10
            while len(self.received) < offset + length:
                self._fill()
            payload = self.received[offset : offset + length]
            self.received = self.received[offset + length :]
            opcode = first & 0x0F
            if opcode == 0x9:
                self.send_frame(0xA, payload)
                continue
            return opcode, payload

    def next_json(self) -> dict:
        opcode, payload = self.read_frame()
        assert opcode == 0x1, (opcode, payload)
        return json.loads(payload)

    def close_code(self) -> int:
        """Read frames until the server's close frame; its code."""
        while True:
            opcode, payload = self.read_frame()
            if opcode == 0x8:
                return struct.unpack("!H", payload[:2])[0]

    def close(self) -> None:
        self.sock.close()


def frame(opcode: int, payload: bytes, *, fin: bool = True, rsv1: bool = False) -> bytes:
    """A masked client frame."""
    head = bytes([(0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode])
    if len(payload) < 126:
        head += bytes([0x80 | len(payload)])
    elif len(payload) < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", len(payload))
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", len(payload))
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


def upgrade_request(
    port: int, token: str, *, origins: tuple[str, ...] = (), extra: str = ""
) -> bytes:
    lines = [
        f"GET /ws?token={token} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {WS_KEY}",
        "Sec-WebSocket-Version: 13",
        *(f"Origin: {origin}" for origin in origins),
    ]
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode("latin-1")


def handshake(
    port: int, token: str, *, origins: tuple[str, ...] = (), extra: str = ""
) -> tuple[Raw, int, dict[str, list[str]], bytes]:
    raw = Raw.open(port)
    raw.send(upgrade_request(port, token, origins=origins, extra=extra))
    status, headers, body = raw.read_response()
    return raw, status, headers, body


def open_socket(daemon: Daemon, token: str) -> Raw:
    """An open WebSocket, its welcome frame read."""
    raw, status, _, body = handshake(daemon.port, token)
    assert status == 101, body
    assert raw.next_json()["type"] == "welcome"
    return raw


def ping_pong(raw: Raw) -> bool:
    raw.send_frame(0x1, b'{"type":"ping"}')
    return raw.next_json() == {"type": "pong"}


def http(
    daemon: Daemon, method: str, path: str, body: bytes | None = None, headers: dict | None = None
) -> tuple[int, Any]:
    request = urllib.request.Request(
        daemon.base_url + path, data=body, method=method, headers=headers or {}
    )
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def login(daemon: Daemon, username: str) -> str:
    status, body = http(
        daemon,
        "POST",
        "/api/auth/login",
        json.dumps({"username": username, "password": PASSWORD}).encode(),
        {"Content-Type": "application/json"},
    )
    assert status == 200, body
    return body["access_token"]


def rss_kib(daemon: Daemon) -> int:
    for line in Path(f"/proc/{daemon.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def spooled_bytes(daemon: Daemon) -> int:
    """Bytes in files the daemon holds open that are already deleted (spooled bodies)."""
    total = 0
    for fd in Path(f"/proc/{daemon.process.pid}/fd").iterdir():
        try:
            if os.readlink(fd).endswith("(deleted)"):
                total += fd.stat().st_size
        except OSError:
            continue
    return total


def assert_healthy(daemon: Daemon) -> None:
    assert daemon.process.poll() is None, daemon.log()
    assert http(daemon, "GET", "/health")[0] == 200
    problems = [
        line
        for line in daemon.log().splitlines()
        if '"log_failure"' in line
        or '"isError": true' in line
        or "Unhandled" in line
        or "Traceback" in line
    ]
    assert problems == [], "\n".join(problems[:5])


def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.05)


# --------------------------------------------------------------------------- daemons


@attrs.define
class Site:
    daemon: Daemon
    token: str
    database_url: str


def start_site(databases: Any, template: str, tmp_path: Path, *extra: str) -> Site:
    url = databases.create(template=template)
    run_termrooms(
        ["create-user", "ada", "--password-stdin", "--database-url", url],
        input=PASSWORD + "\n",
        check=True,
    )
    daemon = start_daemon(
        [
            "--database-url",
            url,
            "--no-migrate",
            "--argon2-memory-kib",
            "8192",
            "--argon2-time-cost",
            "1",
            *extra,
        ],
        tmp_path,
    )
    wait_for(lambda: http(daemon, "GET", "/health")[0] == 200, 60, "the daemon is healthy")
    return Site(daemon, login(daemon, "ada"), url)


@pytest.fixture(scope="module")
def site(databases, migrated_template, tmp_path_factory) -> Iterator[Site]:
    """One daemon for the tests that do not change its connection count."""
    made = start_site(
        databases,
        migrated_template,
        tmp_path_factory.mktemp("transport"),
        "--allowed-origins",
        ALLOWED_ORIGIN,
        "--public-url",
        PUBLIC_URL,
    )
    yield made
    made.daemon.stop()


@pytest.fixture
def small_site(databases, migrated_template, tmp_path) -> Iterator[Site]:
    """A daemon of this test's own holding at most 4 WebSockets."""
    made = start_site(databases, migrated_template, tmp_path, "--max-connections", "4")
    yield made
    made.daemon.stop()


# --------------------------------------------------------------------------- Origin


def spoofed_origins(port: int) -> list[str]:
    """Origins a page that is not ours could send, and malformed ones."""
    return [
        "https://evil.example",
        "null",  # sandboxed iframes, file:// pages, some redirects
        "file://",
        f"http://127.0.0.1.evil.example:{port}",
        f"http://127.0.0.1:{port}.evil.example",
        f"http://127.0.0.1:{port + 1}",  # the right host, another port
        "http://127.0.0.1",  # ... and no port
        f"ws://127.0.0.1:{port}",  # ... another scheme
        f"ftp://127.0.0.1:{port}",
        f"http://127.0.0.1.:{port}",  # trailing dot
        f"http://evil.example@127.0.0.1:{port}",  # userinfo tricks
        f"http://127.0.0.1:{port}@evil.example",
        "https://chat.example.evil.example",  # look-alikes of the allow-list
        "https://evil-chat.example",
        "http://chat.example",  # the allowed host, another scheme
        "https://chat.example:444",
        "https://rooms.example.org",  # --public-url's host without its port
        "http://rooms.example.org:8443",
        "https://",
        "chat.example",
        "https://chat.example/../evil",
    ]


def accepted_origins(port: int) -> list[str]:
    return [
        f"http://127.0.0.1:{port}",  # the server's own, as the browser reached it
        f"HTTP://127.0.0.1:{port}",  # scheme and host compare case-insensitively
        ALLOWED_ORIGIN,
        "HTTPS://CHAT.EXAMPLE",
        "https://rooms.example.org:8443",  # --public-url's origin
    ]


def test_spoofed_origins_are_refused_403_and_ours_accepted(site):
    port = site.daemon.port
    refused = {}
    for origin in spoofed_origins(port):
        raw, status, headers, body = handshake(port, site.token, origins=(origin,))
        answer = json.loads(body) if headers.get("content-type") == ["application/json"] else body
        refused[origin] = (status, answer.get("error_code") if status != 101 else "opened")
        raw.close()
    # Two Origin headers, the first or the second ours: no browser sends that.
    for pair in ((ALLOWED_ORIGIN, "https://evil.example"), ("https://evil.example", ALLOWED_ORIGIN)):
        raw, status, headers, body = handshake(port, site.token, origins=pair)
        answer = json.loads(body) if headers.get("content-type") == ["application/json"] else body
        refused[" + ".join(pair)] = (status, answer.get("error_code") if status != 101 else "opened")
        raw.close()
    wrong = {o: answer for o, answer in refused.items() if answer != (403, "forbidden")}
    assert wrong == {}

    for origin in [*accepted_origins(port), None]:
        raw, status, _, body = handshake(port, site.token, origins=(origin,) if origin else ())
        assert status == 101, (origin, body)
        assert raw.next_json()["type"] == "welcome"
        raw.close()
    assert_healthy(site.daemon)
    record_outcome(
        f"{MODULE}::test_spoofed_origins_are_refused_403_and_ours_accepted",
        what="WebSocket handshakes with foreign, look-alike, malformed and doubled Origins",
        load=f"{len(refused)} spoofed and {len(accepted_origins(port)) + 1} genuine handshakes",
        faults="foreign hosts, null, file://, host suffix/prefix, other port and scheme, "
        "trailing dot, userinfo, two Origin headers",
        outcome=f"all {len(refused)} refused 403 forbidden with the JSON body; the server's "
        "own, --allowed-origins, --public-url and no Origin opened",
    )
