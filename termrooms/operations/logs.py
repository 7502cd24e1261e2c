"""
Log output: text on a terminal, one JSON object a line under systemd (journald and log
shippers read those without a parser of ours), filtered by level.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Callable

from twisted.logger import (
    FileLogObserver,
    FilteringLogObserver,
    ILogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    formatEvent,
    formatEventAsClassicLogText,
)

_LEVELS = {
    "debug": LogLevel.debug,
    "info": LogLevel.info,
    "warn": LogLevel.warn,
    "error": LogLevel.error,
    "critical": LogLevel.critical,
}


def wants_json(log_format: str, stream: IO[str]) -> bool:
    """``auto`` means JSON unless a person is watching a terminal."""
    if log_format != "auto":
        return log_format == "json"
    if os.environ.get("JOURNAL_STREAM"):
        return True
    try:
        return not stream.isatty()
    except ValueError:  # a closed stream
        return True


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def event_as_json_line(event: dict[str, Any]) -> str:
    """
    One compact JSON line: time, level, namespace, the formatted message, every named
    field of the event (so ``room`` and ``request_id`` can be queried), and a traceback
    when the event carries a failure.
    """
    level = event.get("log_level")
    record: dict[str, Any] = {
        "time": datetime.fromtimestamp(event.get("log_time", 0), timezone.utc)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z"),
        "level": level.name if level is not None else "info",
        "namespace": event.get("log_namespace", "-"),
        "message": formatEvent(event),
    }
    for key, value in event.items():
        if not key.startswith("log_") and key not in record and key != "message":
            record[key] = _plain(value)
    failure = event.get("log_failure")
    if failure is not None:
        record["traceback"] = failure.getTraceback()
    return json.dumps(record, ensure_ascii=False) + "\n"


def _text_line(event: dict[str, Any]) -> str | None:
    return formatEventAsClassicLogText(event)


def make_observer(log_level: str, log_format: str, stream: IO[str] | None = None) -> ILogObserver:
    """The process's log observer, for twistd and the ``termrooms`` command alike."""
    out = stream if stream is not None else sys.stdout
    formatter: Callable[[dict[str, Any]], str | None] = (
        event_as_json_line if wants_json(log_format, out) else _text_line
    )
    predicate = LogLevelFilterPredicate(defaultLogLevel=_LEVELS[log_level])
    return FilteringLogObserver(FileLogObserver(out, formatter), [predicate])


class ReopenableLogFile:
    """
    The ``--log-file`` stream: appended to, and reopened by name on SIGHUP, so that
    logrotate can rename the file and the next line goes to a new one.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = self._open()

    def _open(self) -> IO[str]:
        return open(self.path, "a", encoding="utf-8", buffering=1)

    def reopen(self) -> None:
        """Write to a file by this name again, created if it was moved away."""
        fresh = self._open()
        stale, self._file = self._file, fresh
        stale.close()

    def write(self, text: str) -> int:
        return self._file.write(text)

    def flush(self) -> None:
        self._file.flush()

    def isatty(self) -> bool:
        return False

    def close(self) -> None:
        self._file.close()
