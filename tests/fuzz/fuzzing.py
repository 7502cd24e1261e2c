"""
What the fuzz tests do with a drawn frame or body and what they demand of the answer,
shared by the in-process server and the real daemon: one place for the oracle.

A frame gets its answer (``joined``, ``ack``, ``reply``, ``pong``, ``authed``), an
``error`` frame with a contract error_code (echoing a valid ``ref``), silence only where
the contract gives no answer (a valid ``leave``, ``read`` or ``typing``), or a close with
1007 (a text frame that is not UTF-8), 1008 (the fifth bad frame) or 1009 (too big).
Never ``internal_error``, never another close code.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import attrs
import psycopg2
import treq
from twisted.internet.defer import DeferredQueue

from fuzz.strategies import Payload, Route, payload_bytes
from support import WebSocketTestClient, with_timeout, ws_connect
from termrooms.domain.errors import STATUS_BY_ERROR_CODE, ApiError
from termrooms.domain.events import frame_ref, parse_client_frame
from termrooms.transport.gateway.protocol import BAD_FRAMES_BEFORE_CLOSE, MAX_FRAME_BYTES

ANSWERS = {"join": "joined", "send": "ack", "command": "reply", "ping": "pong", "auth": "authed"}
SILENT_WHEN_VALID = {"leave", "read", "typing"}
CLOSED = "__closed__"
# Closes a fuzzed frame may earn: invalid UTF-8, the fifth bad frame, a frame too big.
CLOSE_INVALID_UTF8, CLOSE_POLICY, CLOSE_TOO_BIG = 1007, 1008, 1009
# The marks of an unhandled failure in a daemon's JSON log.
FAILURE_MARKS = ('"log_failure"', '"isError": true', "Unhandled", "Traceback")


@attrs.frozen
class Expectation:
    """What the server must do with one payload, decided without asking the server."""

    close: int | None = None  # a close this payload must cause
    error_code: str | None = None  # an error frame this payload must get
    ref: Any = None  # the ref an error frame must echo
    answer: str | None = None  # the normal answer of a valid frame
    kind: str | None = None
    bad: bool = False  # counts towards the close after BAD_FRAMES_BEFORE_CLOSE


def _reject(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON")


def strict_json(data: bytes) -> Any:
    """RFC 8259 JSON, as the contract means it: no NaN or Infinity; None when it is not."""
    try:
        return json.loads(data, parse_constant=_reject)
    except (ValueError, RecursionError):
        return None


def expectation(payload: Payload, data: bytes) -> Expectation:
    if len(data) > MAX_FRAME_BYTES:
        return Expectation(close=CLOSE_TOO_BIG)
    if payload.binary:
        return Expectation(error_code="invalid_json", bad=True)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return Expectation(close=CLOSE_INVALID_UTF8)
    raw = strict_json(data)
    try:
        frame = parse_client_frame(raw)
    except ApiError as e:
        bad = e.error_code in ("invalid_json", "bad_request")
        return Expectation(error_code=e.error_code, ref=frame_ref(raw), bad=bad)
    return Expectation(answer=ANSWERS.get(frame.type), ref=frame.ref, kind=frame.type)


def check_error_frame(frame: dict, ref: Any) -> None:
    assert frame["error_code"] in STATUS_BY_ERROR_CODE, frame
    assert frame["error_code"] != "internal_error", frame
    assert isinstance(frame["detail"], str) and frame["detail"], frame
    assert frame["ref"] == ref, (frame, ref)
    if frame["error_code"] == "validation_error":
        assert frame["validation_errors"], frame


@attrs.define
class FrameFuzzer:
    """One user's connection to a server, fed one payload at a time and judged."""

    ws_url: str
    live: dict[str, str]
    client: WebSocketTestClient | None = None
    bad_frames: int = 0
    probes: int = 0
    outcomes: Counter = attrs.Factory(Counter)

    async def connect(self) -> None:
        self.client = await ws_connect(self.ws_url)
        queue: DeferredQueue = self.client.frames
        self.client.closed.addCallback(lambda r: queue.put({"type": CLOSED, "code": r[0]}) or r)
        assert (await self.next()).get("type") == "welcome"
        self.bad_frames = 0
        # Subscribed to the lobby, so typing, leave and the room's events have a feed.
        self.client.send({"type": "join", "room": "lobby", "ref": "setup"})
        while (frame := await self.next())["type"] not in ("joined", "error", CLOSED):
            pass
        assert frame["type"] == "joined", frame

    async def next(self) -> dict:
        assert self.client is not None
        return await self.client.next_frame(timeout=30)

    async def ping_works(self) -> None:
        """A fresh connection still gets its pong: the server is still serving."""
        client = await ws_connect(self.ws_url)
        assert (await client.next_frame(timeout=30))["type"] == "welcome"
        client.send({"type": "ping"})
        assert (await client.next_frame(timeout=30))["type"] == "pong"
        client.protocol.sendClose(1000)

    async def feed(self, payload: Payload) -> None:
        if self.client is None:
            await self.connect()
        data = payload_bytes(payload, self.live)
        expected = expectation(payload, data)
        if expected.bad and self.bad_frames + 1 >= BAD_FRAMES_BEFORE_CLOSE:
            expected = attrs.evolve(expected, close=CLOSE_POLICY)
        self.client.protocol.sendMessage(data, isBinary=payload.binary)
        # An ordered frame after it: everything the payload earns arrives before its reply.
        self.probes += 1
        probe = f"probe-{self.probes}"
        self.client.send({"type": "command", "room": "lobby", "line": "/rooms", "ref": probe})
        received = []
        while True:
            frame = await self.next()
            if frame["type"] == CLOSED or (frame["type"] == "reply" and frame["ref"] == probe):
                break
            received.append(frame)
        if frame["type"] == CLOSED:
            assert frame["code"] == expected.close, (frame, expected, payload, received)
            self.outcomes[f"close {frame['code']}"] += 1
            self.client = None
            await self.ping_works()
            return
        assert expected.close is None, (expected, payload, received)
        self.judge(expected, payload, received)
        self.bad_frames += expected.bad

    def judge(self, expected: Expectation, payload: Payload, received: list[dict]) -> None:
        errors = [f for f in received if f["type"] == "error"]
        for error in errors:
            check_error_frame(error, expected.ref)
        if expected.error_code is not None:
            assert [e["error_code"] for e in errors] == [expected.error_code], (payload, received)
            self.outcomes[f"error {expected.error_code}"] += 1
            return
        answers = [f for f in received if f["type"] == expected.answer]
        assert len(errors) <= 1, (payload, received)
        if errors:
            self.outcomes[f"error {errors[0]['error_code']}"] += 1
        elif expected.kind in SILENT_WHEN_VALID:
            self.outcomes[f"{expected.kind} done"] += 1
        else:
            assert answers, (expected, payload, received)
            if expected.kind == "command":
                assert answers[0]["ref"] == expected.ref, (answers, expected)
            self.outcomes[expected.answer] += 1

    def close(self) -> None:
        if self.client is not None:
            self.client.protocol.sendClose(1000)
            self.client = None


# ------------------------------------------------------------------ HTTP bodies

# Rows that only a successful request may add to or take from.
COUNTED_TABLES = ("users", "rooms", "room_events", "invites", "memberships")


def row_counts(database_url: str) -> dict[str, int]:
    with psycopg2.connect(database_url) as connection, connection.cursor() as cursor:
        counts = {}
        for table in COUNTED_TABLES:
            cursor.execute(f"SELECT count(*) FROM {table}")  # noqa: S608 (a fixed name)
            counts[table] = cursor.fetchone()[0]
    connection.close()
    return counts


async def send_body(
    base_url: str, route: Route, path: str, payload: Payload, live: dict[str, str]
) -> tuple[int, bytes, Any]:
    headers = {"Content-Type": "application/json"}
    if route.token is not None:
        headers["Authorization"] = f"Bearer {live[route.token]}"
    response = await with_timeout(
        treq.request(
            route.method, base_url + path, data=payload_bytes(payload, live), headers=headers
        ),
        60,
    )
    return response.code, await response.content(), response.headers


def check_response(status: int, content: bytes, headers: Any, request: Any) -> None:
    """Never a 5xx; a 4xx is the contract's JSON error body with its code's status."""
    assert status < 500, (status, content[:500], request)
    if status < 400:
        return
    assert headers.getRawHeaders(b"content-type") == [b"application/json"], (status, request)
    body = json.loads(content)
    assert STATUS_BY_ERROR_CODE.get(body.get("error_code")) == status, (body, request)
    assert isinstance(body["detail"], str) and body["detail"], body
    if status == 422:
        assert body["validation_errors"], body
