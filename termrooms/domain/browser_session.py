"""
Browser sessions: the refresh token in an httpOnly cookie, so page script never reads
it, and a double-submit CSRF token that script does read and sends back in a header.

The CSRF token is derived from the refresh token (a hash with its own prefix), so it
needs no storage, cannot be made without the httpOnly cookie, and tells nothing of it.
Both cookies are ``SameSite=Strict``; the refresh cookie is only sent to ``/api/auth``.

A browser ``Origin`` is allowed when it is the server's own (the ``Host`` it was reached
at) or configured (``--public-url``, ``--allowed-origins``): the rule of the ``/ws``
handshake and of every request that starts or renews a cookie session.

Pure logic: no Twisted, no database; ``termrooms.transport.http.auth`` sets and reads the cookies.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from termrooms.domain.rules import check_fields

REFRESH_COOKIE = "termrooms_refresh"
CSRF_COOKIE = "termrooms_csrf"
CSRF_HEADER = "X-CSRF-Token"
REFRESH_COOKIE_PATH = "/api/auth"  # login, refresh and logout: nothing else needs it
CSRF_COOKIE_PATH = "/"
_CSRF_CONTEXT = b"termrooms-csrf\0"


def csrf_token(refresh_token: str) -> str:
    """The CSRF token bound to a refresh token: base64url, no padding, of a SHA-256."""
    digest = hashlib.sha256(_CSRF_CONTEXT + refresh_token.encode("utf-8")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def csrf_matches(refresh_token: str, presented: str | None) -> bool:
    """Whether the header's token is the one bound to the cookie's refresh token."""
    if presented is None:
        return False
    return hmac.compare_digest(csrf_token(refresh_token).encode(), presented.encode())


def origin_allowed(origin: str, host: str | None, allowed: frozenset[str]) -> bool:
    """A browser Origin is allowed when it is this server's own or configured; one with
    anything but scheme://host[:port] in it is no browser's and never is."""
    parts = urlsplit(origin.strip().lower())
    if (
        not parts.scheme
        or not parts.netloc
        or "@" in parts.netloc
        or parts.path
        or parts.query
        or parts.fragment
    ):
        return False
    normalised = f"{parts.scheme}://{parts.netloc}"
    if normalised in allowed:
        return True
    return host is not None and parts.scheme in ("http", "https") and parts.netloc == host.lower()


def request_origin_allowed(
    origins: Sequence[bytes] | None, host: bytes | None, allowed: frozenset[str]
) -> bool:
    """The rule for a request's raw ``Origin`` headers (``host``: its Host header as sent,
    port included): no Origin is no browser and passes; two are never one browser's."""
    if origins is None:
        return True
    return len(origins) == 1 and origin_allowed(
        origins[0].decode("latin-1"),
        None if host is None else host.decode("latin-1"),
        allowed,
    )


def wants_refresh_cookie(body: dict[str, Any]) -> bool:
    """A login or register body's ``refresh_cookie``: absent is false; not a boolean, 422."""
    value = body.get("refresh_cookie", False)
    if not isinstance(value, bool):
        check_fields(refresh_cookie="must be true or false")
    return value


def _cookie(name: str, value: str, path: str, max_age: int, secure: bool, http_only: bool) -> str:
    attributes = [f"{name}={value}", f"Path={path}"]
    if http_only:
        attributes.append("HttpOnly")
    attributes += ["SameSite=Strict", f"Max-Age={max_age}"]
    if secure:
        attributes.append("Secure")
    return "; ".join(attributes)


def session_cookies(refresh_token: str, max_age: int, secure: bool) -> tuple[str, str]:
    """The two ``Set-Cookie`` values of a browser session: refresh (httpOnly) and CSRF."""
    return (
        _cookie(REFRESH_COOKIE, refresh_token, REFRESH_COOKIE_PATH, max_age, secure, True),
        _cookie(CSRF_COOKIE, csrf_token(refresh_token), CSRF_COOKIE_PATH, max_age, secure, False),
    )


def cleared_cookies(secure: bool) -> tuple[str, str]:
    """``Set-Cookie`` values that make the browser forget both cookies at once."""
    return (
        _cookie(REFRESH_COOKIE, "", REFRESH_COOKIE_PATH, 0, secure, True),
        _cookie(CSRF_COOKIE, "", CSRF_COOKIE_PATH, 0, secure, False),
    )
