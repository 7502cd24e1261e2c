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

import pytest_twisted
import treq
from hypothesis import given, settings

from fuzz.fuzzing import FrameFuzzer
from fuzz.strategies import Payload, frame_payloads
from support import (
    HOSTILE,
    PASSWORD,
    add_user,
    bearer,
    config_for,
    record_outcome,
    start,
    with_timeout,
)

PROFILE = "fuzz-hostile" if HOSTILE else "fuzz"
EXAMPLES = 5000 if HOSTILE else 300
FAULTS = (
    "valid, almost-valid and hostile join/leave/send/command/typing/read/ping/auth, unknown "
    "types, non-objects, duplicate keys, NaN/1e309, 10,000-deep nesting, lone surrogates, "
    "invalid UTF-8, binary and over-64-KiB frames"
)


def drawn_frames(examples: int) -> list[Payload]:
    """``examples`` payloads drawn by Hypothesis, without touching the reactor."""
    drawn: list[Payload] = []

    @settings(settings.get_profile(PROFILE), max_examples=examples, database=None)
    @given(payload=frame_payloads)
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
    for owner, room, visibility in (("fuzzer", "lobby", "public"), ("victim", "fuzz-private", "private")):
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
