"""
The contract's input rules (../shared/spec/protocol.md, Conventions) and small value
parsers shared by the HTTP API, WebSocket frames, slash commands and the CLI.

Pure logic: no I/O.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import timedelta

from termrooms.domain.errors import ApiError, FieldError

USERNAME = re.compile(r"^[A-Za-z0-9._-]{3,32}\Z")
ROOM_NAME = re.compile(r"^[A-Za-z0-9_-]{1,32}\Z")
PASSWORD_MIN, PASSWORD_MAX = 8, 128
DISPLAY_NAME_MAX = 64
TOPIC_MAX = 512
REASON_MAX = 512
_DURATION_PART = re.compile(r"(\d+)([smhdw])")
_DURATION = re.compile(r"^(?:\d+[smhdw])+$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def username_problem(username: object) -> str | None:
    """Why ``username`` is not acceptable, or None when it is."""
    if not isinstance(username, str) or not USERNAME.match(username):
        return "must be 3-32 characters of A-Z a-z 0-9 . - _"
    return None


#: Direct rooms are named ``dm-<room id>`` by the server; nobody names a room so.
DIRECT_ROOM_PREFIX = "dm-"


def new_room_name_problem(name: object) -> str | None:
    """Why ``name`` is no good for a room about to be created, or None when it is."""
    if not isinstance(name, str) or not ROOM_NAME.match(name):
        return "must be 1-32 characters of A-Z a-z 0-9 - _"
    if name.lower().startswith(DIRECT_ROOM_PREFIX):
        return f"must not start with {DIRECT_ROOM_PREFIX!r}, which direct rooms carry"
    return None


#: Deleted accounts are renamed ``deleted-<id>`` (their messages keep that author).
DELETED_USERNAME_PREFIX = "deleted-"


def new_username_problem(username: object) -> str | None:
    """As ``username_problem``, for a name about to be taken: ``deleted-...`` belongs to
    deleted accounts, so nobody passes for one, nor takes the name a deletion will need."""
    problem = username_problem(username)
    if problem is None and str(username).lower().startswith(DELETED_USERNAME_PREFIX):
        return f"must not start with {DELETED_USERNAME_PREFIX!r}, which deleted accounts carry"
    return problem


def password_problem(password: object) -> str | None:
    """Why ``password`` is not acceptable, or None when it is."""
    if not isinstance(password, str) or not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        return f"must be {PASSWORD_MIN}-{PASSWORD_MAX} characters"
    if not is_utf8_text(password):
        return "must be text that UTF-8 can carry (no lone surrogates)"
    return None


def is_utf8_text(text: str) -> bool:
    """Whether ``text`` encodes as UTF-8: a JSON ``\\ud800`` escape decodes to a lone
    surrogate, which argon2 and PostgreSQL cannot take."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_fields(**problems: str | None) -> None:
    """Raise one 422 naming every field that has a problem."""
    errors = tuple(FieldError(field, message) for field, message in problems.items() if message)
    if errors:
        raise _validation_error(errors)


def field_error(field: str, message: str) -> ApiError:
    """check_fields' 422 for one field, for callers that ``raise`` it themselves."""
    return _validation_error((FieldError(field, message),))


def _validation_error(errors: tuple[FieldError, ...]) -> ApiError:
    return ApiError(
        "validation_error",
        "; ".join(f"{e.field} {e.message}" for e in errors),
        validation_errors=errors,
    )


def parse_duration(text: str) -> timedelta:
    """``10m``, ``7d``, ``1h30m`` -> timedelta; ValueError for anything else or zero."""
    compact = text.strip().lower()
    if not _DURATION.match(compact):
        raise ValueError(f"{text!r} is not a duration like 30s, 10m, 2h, 7d or 1h30m")
    seconds = sum(int(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(compact))
    if seconds <= 0:
        raise ValueError(f"{text!r} is not a positive duration")
    return timedelta(seconds=seconds)


def text_problem(value: object, shortest: int, longest: int) -> str | None:
    """Why ``value`` is no good as a title, description, question or option, or None:
    text of ``shortest``-``longest`` characters (not counting the blanks around it when
    it may not be empty) that PostgreSQL can store."""
    if not isinstance(value, str):
        return "must be text"
    length = len(value.strip()) if shortest else len(value)
    if not shortest <= length <= longest:
        return f"must be {shortest}-{longest} characters"
    if not is_utf8_text(value):
        return "must be valid Unicode text"
    if "\x00" in value:
        return "must not contain NUL"
    return None


def one_line(text: str) -> str:
    """Text on one line, each run of blanks and line breaks one space: a line in a list."""
    return " ".join(text.split())


def single_line_problem(text: str, limit: int) -> str | None:
    """Why ``text`` is no good as a topic or reason, or None: one line, no controls."""
    if len(text) > limit:
        return f"must be at most {limit} characters"
    if any(unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp") for c in text):
        return "must be one line without control characters"
    return None


def display_name_problem(name: str) -> str | None:
    """Why ``name`` is no good as a display name, or None when it is."""
    if not name:
        return f"must be 1-{DISPLAY_NAME_MAX} characters"
    return single_line_problem(name, DISPLAY_NAME_MAX)
