"""Invite codes: shown once, stored only as a SHA-256 hash. Pure logic."""

from __future__ import annotations

import hashlib
import secrets

DEFAULT_INVITE_USES = 1
DEFAULT_INVITE_EXPIRY = "7d"


def new_invite_code() -> str:
    """A code with 128 bits of randomness, safe in URLs and easy to paste."""
    return secrets.token_urlsafe(16)


def invite_code_hash(code: str) -> bytes:
    return hashlib.sha256(code.encode("utf-8")).digest()
