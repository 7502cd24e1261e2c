"""
Shapes of what goes on the wire: times, ids and the user object, written once so every
route and frame agrees with the contract. Pure.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any


def iso_time(moment: datetime) -> str:
    """ISO 8601 UTC with milliseconds and a Z, as the contract writes every time."""
    utc = moment.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def user_json(user: Any) -> dict[str, Any]:
    """``{id, username, display_name, role, created_at}``; ids are decimal strings."""
    return {
        "id": str(user.id),
        "username": user.username,
        "display_name": user.display_name,
        "role": user.role,
        "created_at": iso_time(user.created_at),
    }


def encode_json(value: Any) -> bytes:
    """Compact UTF-8 JSON, as every response and frame is written."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _reject_constant(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON")


def decode_json(data: bytes) -> Any:
    """RFC 8259 JSON from a client: ValueError for anything else, including NaN and
    Infinity and nesting too deep for the parser (which would raise RecursionError)."""
    try:
        return json.loads(data, parse_constant=_reject_constant)
    except RecursionError:
        raise ValueError("nested too deeply") from None
