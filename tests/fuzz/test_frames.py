"""
Every client frame of the contract, valid, almost valid and hostile, and the bytes that
carry them, fed to the real gateway of an in-process server over a real WebSocket.
"""

from __future__ import annotations

import pytest
import pytest_twisted
from hypothesis import given, settings

from fuzz.fuzzing import FrameFuzzer, run
from fuzz.strategies import frame_payloads
from support import HOSTILE, add_user, bearer, config_for, login, record_outcome, start

PROFILE = "fuzz-hostile" if HOSTILE else "fuzz"
EXAMPLES = 5000 if HOSTILE else 300


async def fuzz_target(running) -> FrameFuzzer:
    """Users fuzzer and victim, the public lobby (fuzzer's) and a private room (victim's)."""
    tokens = {}
    for name in ("fuzzer", "victim"):
        await add_user(running, name)
        status, session = await login(running, name)
        assert status == 200, session
        tokens[name] = session["access_token"]
    for owner, room, visibility in (("fuzzer", "lobby", "public"), ("victim", "fuzz-private", "private")):
        status, body, _ = await running.request(
            "POST",
            "/api/rooms",
            json={"name": room, "visibility": visibility},
            headers=bearer(tokens[owner]),
        )
        assert status == 201, body
    ws_url = running.url.replace("http://", "ws://") + "/ws?token=" + tokens["fuzzer"]
    live = {"access_token": tokens["fuzzer"], "other_token": tokens["victim"]}
    return FrameFuzzer(ws_url, live)


@pytest_twisted.async_yield_fixture
async def fuzzer(fresh_migrated_database_url, tmp_path):
    config = config_for(fresh_migrated_database_url, tmp_path, no_rate_limits=True)
    running = await start(config)
    target = await fuzz_target(running)
    target.base_url = running.url
    yield target
    target.close()
    await running.stop()


@pytest.mark.skip(reason="unfinished: the first run hung before any example finished (issue #10)")
def test_every_frame_gets_its_answer_an_error_or_a_contract_close(fuzzer):
    @settings(settings.get_profile(PROFILE), max_examples=EXAMPLES)
    @given(payload=frame_payloads)
    def feed(payload):
        run(fuzzer.feed(payload))

    feed()
    run(fuzzer.ping_works())
    tried = sum(fuzzer.outcomes.values())
    assert tried >= EXAMPLES // 2
    summary = ", ".join(f"{n} {what}" for what, n in fuzzer.outcomes.most_common())
    record_outcome(
        "fuzz/test_frames::test_every_frame_gets_its_answer_an_error_or_a_contract_close",
        what="every WebSocket client frame gets its answer, a contract error or a 1007/1008/1009 close",
        load=f"{tried} fuzzed frames on one in-process server, each followed by an ordered probe",
        faults="valid, almost-valid and hostile join/leave/send/command/typing/read/ping/auth, "
        "unknown types, non-objects, duplicate keys, NaN/1e309, 10,000-deep nesting, lone "
        "surrogates, invalid UTF-8, binary and over-64-KiB frames",
        outcome=f"no silence, no internal_error, no 1006/1011; {summary}",
        sent=tried,
    )
