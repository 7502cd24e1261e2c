"""
What the operator's ``users`` and ``rooms`` commands print: tables for a person, JSON for
a script. Pure logic: no I/O.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Sequence

from termrooms.domain.wire import iso_time


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, headers first; the last column is not padded."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = []
    for row in (headers, *rows):
        cells = [str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def account_state(disabled_at: datetime | None, deleted_at: datetime | None) -> str:
    if deleted_at is not None:
        return "deleted"
    return "disabled" if disabled_at is not None else "active"


def short_time(when: datetime | None) -> str:
    """A time as an operator reads it in a table: UTC to the minute, ``-`` for never."""
    if when is None:
        return "-"
    return when.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M")


USER_HEADERS = ("NAME", "ROLE", "STATE", "CREATED (UTC)", "LAST LOGIN (UTC)")


def user_table_row(user: Any) -> tuple[str, ...]:
    return (
        user.username,
        user.role,
        account_state(user.disabled_at, user.deleted_at),
        short_time(user.created_at),
        short_time(user.last_login_at),
    )


def user_json(user: Any) -> dict[str, Any]:
    return {
        "id": str(user.id),
        "username": user.username,
        "role": user.role,
        "state": account_state(user.disabled_at, user.deleted_at),
        "created_at": iso_time(user.created_at),
        "disabled_at": _iso_or_none(user.disabled_at),
        "deleted_at": _iso_or_none(user.deleted_at),
        "last_login_at": _iso_or_none(user.last_login_at),
    }


ROOM_HEADERS = (
    "NAME",
    "VISIBILITY",
    "STATE",
    "MEMBERS",
    "EVENTS",
    "CREATED BY",
    "CREATED (UTC)",
    "LAST EVENT (UTC)",
)


def room_table_row(room: Any) -> tuple[str, ...]:
    return (
        room.name,
        room.visibility,
        "deleted" if room.deleted_at is not None else "live",
        str(room.members),
        str(room.last_seq),
        room.created_by,
        short_time(room.created_at),
        short_time(room.last_event_at),
    )


def room_json(room: Any) -> dict[str, Any]:
    return {
        "id": str(room.id),
        "name": room.name,
        "visibility": room.visibility,
        "state": "deleted" if room.deleted_at is not None else "live",
        "members": room.members,
        "last_seq": room.last_seq,
        "created_by": room.created_by,
        "created_at": iso_time(room.created_at),
        "last_event_at": _iso_or_none(room.last_event_at),
        "deleted_at": _iso_or_none(room.deleted_at),
    }


def _iso_or_none(when: datetime | None) -> str | None:
    return None if when is None else iso_time(when)
