"""The one JSON reader of client bodies and frames refuses what is not RFC 8259 JSON with
the contract's invalid_json, never an unhandled RecursionError (a 500, a dropped socket)."""

from __future__ import annotations

import io

import pytest

from fuzz.strategies import DEEP
from support import record_outcome
from termrooms.domain.errors import ApiError
from termrooms.transport.http.router import json_body

HOSTILE_BODIES = [
    b"[" * DEEP + b"]" * DEEP,
    b'{"a":' * DEEP + b"1" + b"}" * DEEP,
    b'{"uses":NaN}',
    b'{"uses":Infinity}',
    b"\xff\xfe",
    b"",
    b"{",
    b'{"type":"ping"}}',
    b"{'type': 'ping'}",
]


class _Request:
    def __init__(self, data: bytes) -> None:
        self.content = io.BytesIO(data)


def test_hostile_bodies_are_invalid_json_not_a_crash():
    refused = 0
    for data in HOSTILE_BODIES:
        with pytest.raises(ApiError) as raised:
            json_body(_Request(data))
        assert raised.value.error_code == "invalid_json", data[:40]
        refused += 1
    record_outcome(
        "fuzz/test_json_decoding::test_hostile_bodies_are_invalid_json_not_a_crash",
        what="the JSON reader of bodies and frames refuses non-JSON with invalid_json",
        load=f"{refused} hostile bodies",
        faults="10,000-deep arrays and objects, NaN, Infinity, invalid UTF-8, truncated JSON",
        outcome=f"all {refused} refused as invalid_json, none raised RecursionError",
    )
