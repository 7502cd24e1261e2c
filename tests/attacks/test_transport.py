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
import ssl
import struct
import threading
import time
import urllib.request
import zlib
from pathlib import Path
from typing import Any, Iterator

import attrs
import pytest
from test_tls import self_signed

from support import HOSTILE, Daemon, free_port, record_outcome, run_termrooms, start_daemon

MODULE = "attacks/test_transport"
PASSWORD = "correct horse battery"
DEADLINE_SECONDS = 2  # --http-request-timeout of the daemons here
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
    # A writer thread and the reading thread's pongs share the socket: whole frames only.
    _sending: threading.Lock = attrs.field(factory=threading.Lock)

    @classmethod
    def open(
        cls,
        port: int,
        timeout: float = 10.0,
        tls: ssl.SSLContext | None = None,
        receive_buffer: int | None = None,
    ) -> "Raw":
        sock = socket.socket()
        if receive_buffer is not None:  # before connecting, so the window stays small
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.settimeout(timeout)
        sock.connect(("127.0.0.1", port))
        if tls is not None:
            sock = tls.wrap_socket(sock, server_hostname="localhost")
        return cls(sock)

    def send(self, data: bytes) -> None:
        with self._sending:
            self.sock.sendall(data)

    def send_each(self, frames: list[bytes]) -> None:
        """One frame at a time, so a pong the reader answers meanwhile goes between two."""
        for each in frames:
            self.send(each)

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


def open_websockets(daemon: Daemon) -> float:
    """The daemon's own count of its open WebSockets (its /metrics gauge)."""
    with urllib.request.urlopen(daemon.base_url + "/metrics", timeout=20) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("termrooms_websocket_connections "):
                return float(line.split()[1])
    raise AssertionError("no termrooms_websocket_connections in /metrics")


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
            "--http-request-timeout",
            f"{DEADLINE_SECONDS}s",
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
    try:
        assert made.daemon.stop(timeout=30) == 0  # SIGTERM: the drain ends
    finally:
        if made.daemon.process.poll() is None:
            made.daemon.process.kill()
            made.daemon.process.wait(10)


@pytest.fixture
def small_site(databases, migrated_template, tmp_path) -> Iterator[Site]:
    """A daemon of this test's own holding at most 4 WebSockets."""
    made = start_site(databases, migrated_template, tmp_path, "--max-connections", "4")
    yield made
    try:
        assert made.daemon.stop(timeout=30) == 0  # SIGTERM: the drain ends
    finally:
        if made.daemon.process.poll() is None:
            made.daemon.process.kill()
            made.daemon.process.wait(10)


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


# --------------------------------------------------------------------------- bodies


def post_head(port: int, extra: str) -> bytes:
    return (
        f"POST /api/auth/login HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\n{extra}\r\n"
    ).encode("latin-1")


def test_oversized_bodies_are_refused_413_before_they_are_read(site):
    daemon = site.daemon
    gigabytes = 64 if HOSTILE else 10
    before = rss_kib(daemon)
    pushed_total = 0
    outcomes = []

    # A declared Content-Length over the limit: refused on the headers alone, the body
    # never spooled to memory or disk, even while the client keeps pushing it.
    for extra in (f"Content-Length: {gigabytes * 2**30}\r\n", "Content-Length: 65537\r\n"):
        raw = Raw.open(daemon.port)
        raw.send(post_head(daemon.port, extra))
        status, headers, body = raw.read_response()
        assert (status, json.loads(body)["error_code"]) == (413, "payload_too_large")
        assert headers["connection"] == ["close"]
        pushed = 0
        chunk = b" " * 65536
        try:
            while pushed < (2**30 if HOSTILE else 64 * 2**20):
                raw.sock.sendall(chunk)
                pushed += len(chunk)
        except OSError:
            pass  # the server closed: it will not read a body it refused
        pushed_total += pushed
        assert raw.closed_by_server(timeout=15)
        outcomes.append(pushed)
        raw.close()

    # The same with Expect: 100-continue: the refusal, and no 100 after it.
    raw = Raw.open(daemon.port)
    raw.send(post_head(daemon.port, "Content-Length: 1000000\r\nExpect: 100-continue\r\n"))
    status, _, _ = raw.read_response()
    assert status == 413
    assert raw.closed_by_server(timeout=15) and raw.received == b""
    raw.close()

    # A chunked body that grows past the limit: refused as soon as it does.
    raw = Raw.open(daemon.port)
    raw.send(post_head(daemon.port, "Transfer-Encoding: chunked\r\n"))
    sent = 0
    try:
        while sent < 64 * 2**20 and b"\r\n\r\n" not in raw.received:
            raw.send(b"4000\r\n" + b" " * 0x4000 + b"\r\n")
            sent += 0x4000
            raw.sock.settimeout(0.001)
            try:
                raw._fill()
            except (TimeoutError, ConnectionError):
                pass
            raw.sock.settimeout(10)
    except OSError:
        pass
    raw.sock.settimeout(10)
    status, _, body = raw.read_response()
    assert (status, json.loads(body)["error_code"]) == (413, "payload_too_large")
    assert sent < 2 * 2**20  # noticed early, not after the client was done
    raw.close()

    # ... and a whole chunked body over the limit, its end in the same write.
    raw = Raw.open(daemon.port)
    raw.send(
        post_head(daemon.port, "Transfer-Encoding: chunked\r\n")
        + b"4000\r\n" + b" " * 0x4000 + b"\r\n" + b"4000\r\n" + b" " * 0x4000 + b"\r\n"
        + b"10000\r\n" + b" " * 0x10000 + b"\r\n0\r\n\r\n"
    )
    status, _, _ = raw.read_response()
    assert status == 413
    assert raw.closed_by_server(timeout=15)
    raw.close()

    # Bodies within the limit are still read: 64 KiB exactly is parsed (and is no JSON).
    status, body = http(daemon, "POST", "/api/auth/login", b"{" + b" " * (MAX_BODY - 2) + b"}")
    assert (status, body["error_code"]) == (422, "validation_error")
    status, body = http(daemon, "POST", "/api/auth/login", b"{" + b" " * (MAX_BODY - 1) + b"}")
    assert (status, body["error_code"]) == (413, "payload_too_large")

    after = rss_kib(daemon)
    assert after - before < 50 * 1024, (before, after)  # KiB: not the gigabytes pushed
    assert spooled_bytes(daemon) < 2**20
    assert_healthy(daemon)
    record_outcome(
        f"{MODULE}::test_oversized_bodies_are_refused_413_before_they_are_read",
        what="HTTP bodies over the 64 KiB limit: declared, with 100-continue, chunked",
        load=f"Content-Length of {gigabytes} GiB and 65537, {pushed_total // 2**20} MiB pushed "
        f"after the refusal, a chunked body of {sent // 1024} KiB",
        faults="huge Content-Length, Expect: 100-continue, chunked body without end",
        outcome=f"each answered 413 payload_too_large on the headers (chunked: at {sent // 1024} "
        f"KiB) and closed; RSS {before // 1024} -> {after // 1024} MiB, nothing spooled to disk",
    )


def test_gzip_bodies_are_not_inflated(site):
    bomb = zlib.compress(b"{" + b" " * (512 * 2**20) + b"}", 9)  # 512 MiB of JSON, ~500 KiB
    small_bomb = zlib.compress(b" " * (64 * 2**20), 9)[:60000]  # under the limit, compressed
    before = rss_kib(site.daemon)
    answers = []
    for body in (bomb, small_bomb):
        started = time.monotonic()
        status, error = http(
            site.daemon,
            "POST",
            "/api/auth/login",
            body,
            {"Content-Type": "application/json", "Content-Encoding": "gzip"},
        )
        answers.append((status, error["error_code"], round(time.monotonic() - started, 2)))
    assert [a[:2] for a in answers] == [(413, "payload_too_large"), (400, "invalid_json")]
    after = rss_kib(site.daemon)
    assert after - before < 50 * 1024, (before, after)
    assert_healthy(site.daemon)
    record_outcome(
        f"{MODULE}::test_gzip_bodies_are_not_inflated",
        what="Content-Encoding: gzip request bodies (compression bombs)",
        load=f"a {len(bomb) // 1024} KiB body inflating to 512 MiB, a 60000-byte one to 64 MiB",
        faults="gzip bombs as JSON bodies",
        outcome=f"answered {answers[0][0]} and {answers[1][0]} invalid_json without inflating; "
        f"RSS {before // 1024} -> {after // 1024} MiB",
    )


def test_ambiguous_or_malformed_requests_are_400_and_nothing_is_smuggled(site):
    daemon = site.daemon
    smuggled = f"GET /api/rooms/smuggled HTTP/1.1\r\nHost: 127.0.0.1:{daemon.port}\r\n\r\n"
    heads = {
        "Content-Length and Transfer-Encoding": "Content-Length: 5\r\n"
        "Transfer-Encoding: chunked\r\n",
        "two Content-Lengths": "Content-Length: 5\r\nContent-Length: 50\r\n",
        "a negative Content-Length": "Content-Length: -5\r\n",
        "a Content-Length that is no number": "Content-Length: 5, 5\r\n",
        "an unknown Transfer-Encoding": "Transfer-Encoding: gzip, chunked\r\n",
        "a header line without a colon": "Content-Length 5\r\n",
        "headers over 16 KiB": f"X-Padding: {'x' * 17000}\r\n",
        "a header with a NUL": "X-Evil: a\x00b\r\n",
    }
    answers = {}
    for name, head in heads.items():
        raw = Raw.open(daemon.port)
        raw.send(post_head(daemon.port, head) + b"0\r\n\r\n" + smuggled.encode())
        try:
            status, headers, body = raw.read_response()
        except ConnectionError:
            answers[name] = (None, raw.received)  # closed without an answer
            continue
        is_json = headers.get("content-type") == ["application/json"]
        answers[name] = (status, json.loads(body)["error_code"] if is_json else body)
        assert raw.closed_by_server(timeout=15), name
        assert b"HTTP/1.1" not in raw.received, name  # the smuggled request went unanswered
        raw.close()
    assert answers == dict.fromkeys(heads, (400, "bad_request"))
    assert "/api/rooms/smuggled" not in daemon.log()
    assert_healthy(daemon)
    record_outcome(
        f"{MODULE}::test_ambiguous_or_malformed_requests_are_400_and_nothing_is_smuggled",
        what="request smuggling and malformed HTTP/1.1 framing",
        load=f"{len(heads)} malformed requests, each followed by a pipelined GET",
        faults=", ".join(heads),
        outcome=f"all {len(heads)} answered 400 bad_request with the JSON body and closed; "
        "no pipelined request behind them was served",
    )


# --------------------------------------------------------------------------- slow clients


def test_slow_and_idle_clients_are_cut_off_at_the_deadline_while_others_are_served(site):
    daemon = site.daemon
    count = 200 if HOSTILE else 40
    started = time.monotonic()
    slow = [Raw.open(daemon.port) for _ in range(count)]
    request = f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{daemon.port}\r\nX-Slow: ".encode()
    # An idle kept-alive connection, and an upgrade request that stops half-way.
    idle = Raw.open(daemon.port)
    idle.send(f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{daemon.port}\r\n\r\n".encode())
    assert idle.read_response()[0] == 200
    half_open = Raw.open(daemon.port)
    half_open.send(upgrade_request(daemon.port, site.token)[:-30])

    dropped_after: dict[int, float] = {}
    served = 0
    position = 0
    while len(dropped_after) < count and time.monotonic() - started < DEADLINE_SECONDS + 30:
        for number, raw in enumerate(slow):  # a byte each, a few times a second
            if number in dropped_after:
                continue
            try:
                raw.send(request[position : position + 1] or b"x")
            except OSError:
                dropped_after[number] = time.monotonic() - started
        position += 1
        assert http(daemon, "GET", "/health")[0] == 200  # a normal client, served throughout
        served += 1
        time.sleep(0.25)
    assert len(dropped_after) == count, f"{count - len(dropped_after)} slow clients kept"
    assert min(dropped_after.values()) >= DEADLINE_SECONDS * 0.9
    assert idle.closed_by_server(timeout=15)
    assert half_open.closed_by_server(timeout=15)
    for raw in [*slow, idle, half_open]:
        raw.close()
    assert_healthy(daemon)
    record_outcome(
        f"{MODULE}::test_slow_and_idle_clients_are_cut_off_at_the_deadline_while_others_are_served",
        what="slowloris: request headers a byte at a time; idle keep-alive; half-sent upgrade",
        load=f"{count} slow clients, a normal /health request every 0.25 s ({served} served)",
        faults="headers never finished, a kept-alive connection left idle, an upgrade "
        "request stopped half-way",
        outcome=f"all {count} slow clients dropped {min(dropped_after.values()):.1f}-"
        f"{max(dropped_after.values()):.1f} s after connecting (deadline {DEADLINE_SECONDS} s), "
        f"the idle and half-open ones too; all {served} normal requests answered 200",
    )


def test_a_flood_of_silent_connections_is_reaped_and_others_are_served(site):
    daemon = site.daemon
    count = 800 if HOSTILE else 200
    silent = [Raw.open(daemon.port) for _ in range(count)]
    opened = time.monotonic()
    raw, status, _, _ = handshake(daemon.port, site.token)
    assert status == 101 and raw.next_json()["type"] == "welcome"
    assert ping_pong(raw)  # a WebSocket opened during the flood
    assert http(daemon, "GET", "/health")[0] == 200
    still_open = [s for s in silent if not s.closed_by_server(timeout=0.01)]
    reaped = [s.closed_by_server(timeout=DEADLINE_SECONDS + 15) for s in still_open]
    waited = time.monotonic() - opened
    assert all(reaped)
    assert ping_pong(raw)  # the WebSocket is no request: the deadline does not touch it
    raw.close()
    for s in silent:
        s.close()
    assert_healthy(daemon)
    record_outcome(
        f"{MODULE}::test_a_flood_of_silent_connections_is_reaped_and_others_are_served",
        what="raw TCP connections that never send a byte",
        load=f"{count} silent connections at once",
        faults="connection flood without requests",
        outcome=f"a WebSocket and /health were served during the flood; all {count} were "
        f"closed by the server within {waited:.1f} s; the WebSocket stayed open",
    )


# --------------------------------------------------------------------------- connection flood


def refused_full(raw: Raw, status: int, headers: dict, body: bytes) -> bool:
    return (
        status == 503
        and json.loads(body)["error_code"] == "unavailable"
        and int(headers["retry-after"][0]) >= 1
    )


def test_websockets_beyond_the_maximum_get_503_and_the_admitted_keep_working(small_site):
    daemon, token = small_site.daemon, small_site.token
    maximum, extra = 4, (40 if HOSTILE else 12)

    # All at once, on an empty server: handshakes still authenticating count too.
    racing = [Raw.open(daemon.port) for _ in range(maximum + extra)]
    for raw in racing:
        raw.send(upgrade_request(daemon.port, token))
    answers = [raw.read_response() for raw in racing]
    admitted = [raw for raw, (status, _, _) in zip(racing, answers, strict=True) if status == 101]
    full = [raw for raw, answer in zip(racing, answers, strict=True) if refused_full(raw, *answer)]
    assert (len(admitted), len(full)) == (maximum, extra), [a[0] for a in answers]
    for raw in full:
        assert raw.closed_by_server(timeout=15)
    for raw in admitted:
        assert raw.next_json()["type"] == "welcome"

    # One at a time, while full: refused; the admitted ones and HTTP keep working.
    for _ in range(extra):
        raw, *answer = handshake(daemon.port, token)
        assert refused_full(raw, *answer)
        raw.close()
    assert all(ping_pong(raw) for raw in admitted)
    assert http(daemon, "GET", "/health")[0] == 200
    admitted[0].send_frame(0x1, json.dumps({"type": "join", "room": "lobby"}).encode())
    assert admitted[0].next_json()["type"] in ("error", "joined")

    # Two close: two new ones are admitted, the next is refused again.
    for raw in admitted[:2]:
        raw.send_frame(0x8, struct.pack("!H", 1000))
        assert raw.close_code() == 1000
        raw.close()

    def readmitted() -> Raw | None:
        raw, status, _, _ = handshake(daemon.port, token)
        if status == 101:
            return raw
        raw.close()
        return None

    fresh: list[Raw] = []
    deadline = time.monotonic() + 15
    while len(fresh) < 2 and time.monotonic() < deadline:
        raw = readmitted()
        if raw is not None:
            fresh.append(raw)
        else:
            time.sleep(0.1)
    assert len(fresh) == 2
    raw, *answer = handshake(daemon.port, token)
    assert refused_full(raw, *answer)
    for raw in fresh:
        assert raw.next_json()["type"] == "welcome"
    assert all(ping_pong(raw) for raw in admitted[2:])
    for raw in [*fresh, *admitted[2:]]:
        raw.close()

    # Handshakes dropped while their token is checked, and refused ones, give their
    # slot back: afterwards the server admits its maximum again.
    abandoned = 5 * maximum
    for _ in range(abandoned):
        raw, status, _, _ = handshake(daemon.port, "forged")
        assert status == 401
        raw.close()
    for _ in range(abandoned):
        raw = Raw.open(daemon.port)
        raw.send(upgrade_request(daemon.port, token))
        raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        raw.close()  # a reset, at once
    again: list[Raw] = []
    deadline = time.monotonic() + 15
    while len(again) < maximum and time.monotonic() < deadline:
        raw = readmitted()
        if raw is not None:
            again.append(raw)
        else:
            time.sleep(0.1)
    assert len(again) == maximum
    raw, *answer = handshake(daemon.port, token)
    assert refused_full(raw, *answer)
    for raw in again:
        raw.close()
    wait_for(lambda: open_websockets(daemon) == 0, 15, "no WebSocket left open")
    assert_healthy(daemon)
    record_outcome(
        f"{MODULE}::test_websockets_beyond_the_maximum_get_503_and_the_admitted_keep_working",
        what="WebSocket handshakes beyond --max-connections",
        load=f"--max-connections {maximum}; {maximum + extra} handshakes at once, then {extra} "
        "one by one, then abandoned and refused ones",
        faults="connection flood past the maximum, racing handshakes, handshakes reset "
        "before their token was checked, forged tokens",
        outcome=f"exactly {maximum} admitted of {maximum + extra} racing; every other one 503 "
        "unavailable with Retry-After; the admitted kept answering ping; after 2 closed, 2 "
        f"new ones were admitted and the next refused; after {abandoned} handshakes reset "
        f"mid-authentication and {abandoned} refused 401, {maximum} were admitted again",
    )


# --------------------------------------------------------------------------- frames


def test_compression_is_never_negotiated_and_a_compressed_frame_is_a_protocol_error(site):
    offers = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    raw, status, headers, _ = handshake(site.daemon.port, site.token, extra=offers)
    assert status == 101
    assert "sec-websocket-extensions" not in headers
    assert raw.next_json()["type"] == "welcome"
    # A deflate bomb sent as a compressed frame anyway (RSV1): 1002, nothing inflated.
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = deflater.compress(b"x" * (256 * 2**20)) + deflater.flush(zlib.Z_SYNC_FLUSH)
    before = rss_kib(site.daemon)
    raw.send_frame(0x1, bomb[:-4], rsv1=True)
    assert raw.close_code() == 1002
    raw.close()
    after = rss_kib(site.daemon)
    assert after - before < 50 * 1024, (before, after)
    assert_healthy(site.daemon)
    record_outcome(
        f"{MODULE}::test_compression_is_never_negotiated_and_a_compressed_frame_is_a_protocol_error",
        what="permessage-deflate offers and compressed (RSV1) frames",
        load=f"a {len(bomb) // 1024} KiB deflate stream inflating to 256 MiB",
        faults="compression offered in the handshake, a compressed frame sent anyway",
        outcome=f"no extension negotiated; the RSV1 frame closed the socket 1002; RSS "
        f"{before // 1024} -> {after // 1024} MiB",
    )


def test_oversized_messages_close_1009_at_the_limit_whole_or_fragmented(site):
    daemon, token = site.daemon, site.token
    closes = {}
    # At the limit exactly: read (and answered: it is no JSON object).
    raw = open_socket(daemon, token)
    raw.send_frame(0x1, b" " * MAX_MESSAGE)
    assert raw.next_json()["error_code"] == "invalid_json"
    assert ping_pong(raw)
    # One byte over: 1009.
    raw.send_frame(0x1, b" " * (MAX_MESSAGE + 1))
    closes["one frame, 64 KiB + 1"] = raw.close_code()
    raw.close()
    # Fragments under the limit each, over it together.
    raw = open_socket(daemon, token)
    for number in range(4):
        raw.send_frame(0x0 if number else 0x1, b" " * 20000, fin=number == 3)
    closes["4 fragments of 20000"] = raw.close_code()
    raw.close()
    # A frame header announcing a terabyte, its payload never sent.
    raw = open_socket(daemon, token)
    raw.send(bytes([0x81, 0x80 | 127]) + struct.pack("!Q", 2**40) + os.urandom(4) + b"x" * 10)
    closes["a header announcing 1 TiB"] = raw.close_code()
    raw.close()
    # A fragmented message never finished, continuing in fragments of a byte.
    raw = open_socket(daemon, token)
    raw.send_frame(0x1, b" ", fin=False)
    for _ in range(MAX_MESSAGE // 4096 + 1):
        raw.send_frame(0x0, b" " * 4096, fin=False)
    closes["endless fragments"] = raw.close_code()
    raw.close()
    assert closes == dict.fromkeys(closes, 1009)
    assert_healthy(daemon)
    record_outcome(
        f"{MODULE}::test_oversized_messages_close_1009_at_the_limit_whole_or_fragmented",
        what="WebSocket messages at and over the 64 KiB limit",
        load="a 64 KiB message, then 64 KiB + 1; 4 fragments of 20000 bytes; a 1 TiB header; "
        "an unfinished message in 4 KiB fragments",
        faults="oversized, fragmented, announced-but-never-sent and endless messages",
        outcome="64 KiB was read and answered invalid_json; each of the 4 others closed 1009",
    )


def test_a_frame_flood_is_answered_sparingly_then_closed_4008(site):
    frames = 20000 if HOSTILE else 5000
    raw = open_socket(site.daemon, site.token)
    raw.send(b"".join(frame(0x1, b'{"type":"ping"}') for _ in range(frames)))
    answers: dict[str, int] = {}
    while True:
        opcode, payload = raw.read_frame()
        if opcode == 0x8:
            code = struct.unpack("!H", payload[:2])[0]
            break
        kind = json.loads(payload).get("error_code") or json.loads(payload)["type"]
        answers[kind] = answers.get(kind, 0) + 1
    raw.close()
    assert code == 4008
    assert answers["rate_limited"] >= 1
    # The flood is not amplified: a burst of pongs, a handful of errors, then the close.
    assert sum(answers.values()) <= 40, answers
    assert_healthy(site.daemon)
    record_outcome(
        f"{MODULE}::test_a_frame_flood_is_answered_sparingly_then_closed_4008",
        what="a WebSocket client writing frames as fast as TCP takes them, reading nothing",
        load=f"{frames} ping frames in one write",
        faults="frame flood past --ws-rate-limit",
        outcome=f"answered {answers} then closed 4008; the daemon stayed healthy",
    )


def test_a_client_that_never_reads_is_closed_4009_over_tcp_and_tls(
    databases, migrated_template, tmp_path
):
    key, cert = self_signed(tmp_path)
    tls_port = free_port()
    made = start_site(
        databases,
        migrated_template,
        tmp_path,
        "--listen",
        f"ssl:{tls_port}:interface=127.0.0.1:privateKey={key}:certKey={cert}",
        "--no-rate-limits",
        "--slow-consumer-bytes",
        "65536",
    )
    daemon = made.daemon
    tls = ssl.create_default_context(cafile=str(cert))
    try:
        status, _ = http(
            daemon,
            "POST",
            "/api/rooms",
            json.dumps({"name": "lobby", "visibility": "public"}).encode(),
            {"Content-Type": "application/json", "Authorization": f"Bearer {made.token}"},
        )
        assert status == 201
        messages = 6000 if HOSTILE else 2500
        outcomes = {}
        before = rss_kib(daemon)
        for transport, port, context in (("tcp", daemon.port, None), ("tls", tls_port, tls)):
            sleepy = Raw.open(port, tls=context, receive_buffer=4096)
            sleepy.send(upgrade_request(port, made.token))
            assert sleepy.read_response()[0] == 101
            assert sleepy.next_json()["type"] == "welcome"
            sleepy.send_frame(0x1, json.dumps({"type": "join", "room": "lobby"}).encode())
            assert sleepy.next_json()["type"] == "joined"
            # From here on it reads nothing while the room fills.
            writer = open_socket(daemon, made.token)
            body = "x" * 3900
            # Written from a thread while its acks are read here, as a client does: the
            # server stops reading a connection whose frames wait unanswered, so one
            # write of everything would wait on acks that nobody reads.
            writer.sock.settimeout(60)
            writing = threading.Thread(
                target=writer.send_each,
                args=(
                    [
                        frame(0x1, json.dumps(send_frame(transport, number, body)).encode())
                        for number in range(messages)
                    ],
                ),
            )
            writing.start()
            last = f"{transport}-{messages - 1}"
            while True:
                answer = writer.next_json()
                if answer.get("type") == "ack" and answer["client_msg_id"] == last:
                    break
            writing.join()
            writer.close()
            peak = rss_kib(daemon)
            # Its 4009 close frame waits behind what it did not read, so the server drops
            # it after the close handshake's timeout: the daemon's log tells the code.
            peer = f"127.0.0.1:{sleepy.sock.getsockname()[1]}"
            wait_for(lambda p=peer: close_logged(daemon, p) is not None, 30, f"{transport} closed")
            sleepy.close()
            outcomes[transport] = (close_logged(daemon, peer), peak - before)
        assert {t: o[0] for t, o in outcomes.items()} == {"tcp": 4009, "tls": 4009}, outcomes
        assert all(o[1] < 100 * 1024 for o in outcomes.values()), outcomes  # KiB
        assert_healthy(daemon)
    finally:
        daemon.stop()
    record_outcome(
        f"{MODULE}::test_a_client_that_never_reads_is_closed_4009_over_tcp_and_tls",
        what="a WebSocket client that stops reading while its room fills, over TCP and TLS",
        load=f"{messages} messages of 3900 characters per transport, --slow-consumer-bytes 64 KiB",
        faults="a reader with a 4 KiB receive window that never reads",
        outcome="closed 4009 over both; "
        + "; ".join(
            f"{t}: RSS +{o[1] // 1024} MiB at the peak"
            for t, o in outcomes.items()
        ),
        sent=2 * messages,
    )


def close_logged(daemon: Daemon, peer: str) -> int | None:
    """The code the daemon logged closing the WebSocket of ``peer`` (host:port)."""
    for line in daemon.log().splitlines():
        if peer in line and '"closed_by": "server"' in line:
            return json.loads(line)["code"]
    return None


def send_frame(transport: str, number: int, body: str) -> dict:
    return {
        "type": "send",
        "room": "lobby",
        "body": body,
        "client_msg_id": f"{transport}-{number}",
    }


def test_a_flood_of_control_pings_from_a_client_that_never_reads_is_cut_off(site):
    daemon = site.daemon
    pings = 1_000_000 if HOSTILE else 300_000
    raw = Raw.open(daemon.port, receive_buffer=4096)
    raw.send(upgrade_request(daemon.port, site.token))
    assert raw.read_response()[0] == 101
    peer = f"127.0.0.1:{raw.sock.getsockname()[1]}"
    before = rss_kib(daemon)
    ping = frame(0x9, b"p" * 125)  # the largest control frame; each asks for a pong
    batch = ping * 1000
    sent = 0
    try:
        while sent < pings:
            raw.send(batch)
            sent += 1000
    except OSError:
        pass  # the server gave up on it
    peak = rss_kib(daemon)
    wait_for(lambda: close_logged(daemon, peer) is not None, 30, "the pinger closed")
    code = close_logged(daemon, peer)
    raw.close()
    assert code == 4008
    assert peak - before < 20 * 1024, (before, peak)  # KiB: pongs did not pile up unsent
    assert_healthy(daemon)
    record_outcome(
        f"{MODULE}::test_a_flood_of_control_pings_from_a_client_that_never_reads_is_cut_off",
        what="WebSocket ping control frames at line rate from a client that reads nothing",
        load=f"up to {pings} pings of 125 bytes ({sent} written before the server stopped it)",
        faults="control-frame flood, 4 KiB receive window never read",
        outcome=f"closed {code}; RSS {before // 1024} -> {peak // 1024} MiB",
    )
