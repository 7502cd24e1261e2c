"""
Every client frame of the contract, valid, almost valid and hostile, and the bytes that
carry them, fed over real WebSockets to the gateway of an in-process server and of a real
daemon process.

Hypothesis only draws the frames (a synchronous ``@given`` that collects them, no I/O);
the reactor then sends them one by one. Driving the reactor from inside each example
(``blockon`` per example, from a synchronous test) hung: the example waited on a reactor
that pytest-twisted only turns while the test itself is awaited.
"""

from __future__ import annotations

import json
import time

import pytest_twisted
import treq
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import reactor
from twisted.internet.task import deferLater

from fuzz.fuzzing import FAILURE_MARKS, FrameFuzzer
from fuzz.strategies import (
    Live,
    Payload,
    bodies,
    client_msg_ids,
    command_lines,
    frame_payloads,
    refs,
    room_names,
    seqs,
)
from support import (
    HOSTILE,
    PASSWORD,
    add_user,
    bearer,
    config_for,
    record_outcome,
    run_termrooms,
    start,
    with_timeout,
)

PROFILE = "fuzz-hostile" if HOSTILE else "fuzz"
EXAMPLES = 5000 if HOSTILE else 1000
DAEMON_EXAMPLES = 2000 if HOSTILE else 400
FAULTS = (
    "valid, almost-valid and hostile join/leave/send/command/typing/read/ping/auth, unknown "
    "types, non-objects, duplicate keys, NaN/1e309, 10,000-deep nesting, lone surrogates, "
    "invalid UTF-8, binary and over-64-KiB frames"
)


def _valid(kind: str, **fields: st.SearchStrategy) -> st.SearchStrategy:
    frame = st.fixed_dictionaries({"type": st.just(kind), **fields}, optional={"ref": refs})
    return frame.map(lambda value: Payload(value=value))


# Frames every field of which is valid: frame_payloads seldom draws one (a hostile field or
# extra key spoils most), so without these the answers themselves would go almost untried.
rooms = st.sampled_from(["lobby", "lobby", "fuzz-private"]) | room_names  # mostly one that exists
valid_frames = st.one_of(
    _valid("join", room=rooms),
    _valid("join", room=rooms, since=seqs),
    _valid("leave", room=rooms),
    _valid("send", room=rooms, body=bodies, client_msg_id=client_msg_ids),
    _valid("command", room=rooms, line=command_lines()),
    _valid("typing", room=rooms),
    _valid("read", room=rooms, seq=seqs),
    _valid("ping"),
    _valid("auth", token=st.just(Live("access_token"))),
)


def drawn_frames(examples: int) -> list[Payload]:
    """``examples`` payloads drawn by Hypothesis, without touching the reactor."""
    drawn: list[Payload] = []

    @settings(settings.get_profile(PROFILE), max_examples=examples, database=None)
    @given(payload=frame_payloads | valid_frames)
    def collect(payload: Payload) -> None:
        drawn.append(payload)

    collect()
    return drawn


async def call(base_url: str, method: str, path: str, **kwargs) -> tuple[int, dict]:
    response = await with_timeout(treq.request(method, base_url + path, **kwargs), 60)
    return response.code, json.loads(await response.content())


async def fuzz_target(base_url: str) -> FrameFuzzer:
    """Users fuzzer and victim (already made) log in; the public lobby is the fuzzer's, a
    private room the victim's."""
    tokens = {}
    for name in ("fuzzer", "victim"):
        status, session = await call(
            base_url, "POST", "/api/auth/login", json={"username": name, "password": PASSWORD}
        )
        assert status == 200, session
        tokens[name] = session["access_token"]
    for owner, room, visibility in (
        ("fuzzer", "lobby", "public"),
        ("victim", "fuzz-private", "private"),
    ):
        status, body = await call(
            base_url,
            "POST",
            "/api/rooms",
            json={"name": room, "visibility": visibility},
            headers=bearer(tokens[owner]),
        )
        assert status == 201, body
    ws_url = base_url.replace("http://", "ws://") + "/ws?token=" + tokens["fuzzer"]
    live = {"access_token": tokens["fuzzer"], "other_token": tokens["victim"]}
    return FrameFuzzer(ws_url, live)


async def feed_all(fuzzer: FrameFuzzer, payloads: list[Payload]) -> int:
    """Each payload judged by the oracle; a closed connection is reopened for the next."""
    for payload in payloads:
        await fuzzer.feed(payload)
    await fuzzer.ping_works()
    fuzzer.close()
    return sum(fuzzer.outcomes.values())


def summary(fuzzer: FrameFuzzer) -> str:
    return ", ".join(f"{n} {what}" for what, n in fuzzer.outcomes.most_common())


@pytest_twisted.ensureDeferred
async def test_every_frame_gets_its_answer_an_error_or_a_contract_close(
    fresh_migrated_database_url, tmp_path
):
    payloads = drawn_frames(EXAMPLES)
    running = await start(config_for(fresh_migrated_database_url, tmp_path, no_rate_limits=True))
    try:
        for name in ("fuzzer", "victim"):
            await add_user(running, name)
        fuzzer = await fuzz_target(running.url)
        tried = await feed_all(fuzzer, payloads)
    finally:
        await running.stop()
    assert tried == len(payloads) >= EXAMPLES // 2
    record_outcome(
        "fuzz/test_frames::test_every_frame_gets_its_answer_an_error_or_a_contract_close",
        what="every WebSocket client frame gets its answer, a contract error or a 1007/1008/1009 close",
        load=f"{tried} fuzzed frames on one in-process server, each followed by an ordered probe",
        faults=FAULTS,
        outcome=f"no silence, no internal_error, no 1006/1011; {summary(fuzzer)}",
        sent=tried,
    )


def unhandled_failures(log: str) -> list[str]:
    """Lines of a daemon's JSON log that record an unhandled failure or a critical event."""
    found = []
    for line in log.splitlines():
        if any(mark in line for mark in FAILURE_MARKS):
            found.append(line)
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and (event.get("level") == "critical" or "traceback" in event):
            found.append(line)
    return found


@pytest_twisted.ensureDeferred
async def test_a_daemon_fed_fuzzed_frames_stays_healthy_and_logs_no_failure(
    fresh_migrated_database_url, daemons
):
    payloads = drawn_frames(DAEMON_EXAMPLES)
    for name in ("fuzzer", "victim"):
        run_termrooms(
            [
                "create-user",
                name,
                "--password-stdin",
                "--database-url",
                fresh_migrated_database_url,
            ],
            input=PASSWORD + "\n",
            check=True,
        )
    daemon = daemons(
        [
            "--database-url",
            fresh_migrated_database_url,
            "--no-migrate",
            "--no-rate-limits",
            "--argon2-memory-kib",
            "8192",
            "--argon2-time-cost",
            "1",
        ]
    )
    await wait_for_health(daemon.base_url)
    fuzzer = await fuzz_target(daemon.base_url)
    tried = await feed_all(fuzzer, payloads)

    response = await with_timeout(treq.get(daemon.base_url + "/health"), 30)
    assert response.code == 200, await response.content()
    await fuzzer.ping_works()
    assert daemon.process.poll() is None, daemon.log()
    failures = unhandled_failures(daemon.log())
    assert not failures, "\n".join(failures)
    assert tried == len(payloads) >= DAEMON_EXAMPLES // 2
    record_outcome(
        "fuzz/test_frames::test_a_daemon_fed_fuzzed_frames_stays_healthy_and_logs_no_failure",
        what="a real daemon fed fuzzed WebSocket frames stays healthy and logs no unhandled failure",
        load=f"{tried} fuzzed frames over real sockets to one twistd process",
        faults=FAULTS,
        outcome=f"/health 200, a fresh connection gets pong, no Unhandled/Traceback/"
        f"log_failure/critical line in its JSON log; {summary(fuzzer)}",
        sent=tried,
    )


async def wait_for_health(base_url: str, timeout: float = 60) -> None:
    """The daemon answers /health 200 (its schema check done), within a generous deadline."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            response = await with_timeout(treq.get(base_url + "/health"), 10)
            if response.code == 200:
                return
        except Exception:  # noqa: BLE001 (not listening yet: try again)
            pass
        assert time.monotonic() < deadline, "the daemon's /health never answered 200"
        await deferLater(reactor, 0.2)
