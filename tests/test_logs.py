"""Log lines: JSON objects for machines, text for people, filtered by level."""

from __future__ import annotations

import io
import json

from twisted.logger import Logger
from twisted.python.failure import Failure

from termrooms.operations.logs import event_as_json_line, make_observer, wants_json


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def emit(observer, level: str = "info", **fields) -> None:
    log = Logger(namespace="termrooms.test", observer=observer)
    getattr(log, level)("room {room} created by {user}", **fields)


def test_json_line_carries_message_level_namespace_and_named_fields():
    stream = io.StringIO()
    emit(make_observer("info", "json", stream), room="lobby", user="ada")
    (line,) = stream.getvalue().splitlines()
    record = json.loads(line)
    assert record["message"] == "room lobby created by ada"
    assert record["level"] == "info"
    assert record["namespace"] == "termrooms.test"
    assert record["room"] == "lobby" and record["user"] == "ada"
    assert record["time"].endswith("Z")


def test_json_line_includes_the_traceback_of_a_failure():
    try:
        raise ValueError("boom")
    except ValueError:
        failure = Failure()
    line = event_as_json_line(
        {"log_format": "oops", "log_failure": failure, "log_time": 0.0, "log_namespace": "x"}
    )
    assert "ValueError: boom" in json.loads(line)["traceback"]


def test_level_filter_drops_less_severe_events():
    stream = io.StringIO()
    observer = make_observer("warn", "json", stream)
    emit(observer, "info", room="a", user="b")
    emit(observer, "error", room="c", user="d")
    assert [json.loads(x)["room"] for x in stream.getvalue().splitlines()] == ["c"]


def test_auto_format_is_text_on_a_terminal_and_json_otherwise(monkeypatch):
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    assert wants_json("auto", io.StringIO())
    assert not wants_json("auto", FakeTerminal())
    assert wants_json("json", FakeTerminal())
    assert not wants_json("text", io.StringIO())


def test_auto_format_is_json_under_systemd_even_on_a_terminal(monkeypatch):
    monkeypatch.setenv("JOURNAL_STREAM", "8:12345")
    assert wants_json("auto", FakeTerminal())


def test_text_format_is_one_readable_line():
    stream = io.StringIO()
    emit(make_observer("info", "text", stream), room="lobby", user="ada")
    assert stream.getvalue().rstrip().endswith("room lobby created by ada")
