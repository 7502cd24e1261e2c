"""Invite codes: shown once, stored only as a SHA-256 hash. Pure logic."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from termrooms.domain.rules import parse_duration

DEFAULT_INVITE_USES = 1
DEFAULT_INVITE_EXPIRY = "7d"
INVITE_EXPIRY_MIN, INVITE_EXPIRY_MAX = timedelta(seconds=60), timedelta(days=365)


def parse_invite_expiry(text: str) -> timedelta:
    """An invite's lifetime like ``7d``, a minute to a year; ValueError otherwise. A longer
    one would overflow timedelta or the datetime it is added to (an OverflowError)."""
    try:
        duration = parse_duration(text)
    except OverflowError:
        duration = None
    if duration is None or not INVITE_EXPIRY_MIN <= duration <= INVITE_EXPIRY_MAX:
        raise ValueError(f"{text!r} is not a lifetime from a minute to a year")
    return duration


def new_invite_code() -> str:
    """A code with 128 bits of randomness, safe in URLs and easy to paste."""
    return secrets.token_urlsafe(16)


def invite_code_hash(code: str) -> bytes:
    return hashlib.sha256(code.encode("utf-8")).digest()
