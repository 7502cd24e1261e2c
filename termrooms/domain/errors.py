"""
The contract's errors: every failure a client sees is an ApiError carrying a stable
``error_code``, a human ``detail`` and the HTTP status that code always maps to.

Pure logic: the HTTP and WebSocket layers render these; nothing here does I/O.
"""

from __future__ import annotations

from typing import Any, Mapping

import attrs

# error_code -> HTTP status, as ../shared/spec/protocol.md lists them (plus additions).
STATUS_BY_ERROR_CODE: Mapping[str, int] = {
    "invalid_json": 400,
    "bad_request": 400,
    "unauthorized": 401,
    "invalid_credentials": 401,
    "token_expired": 401,
    "token_invalid": 401,
    "refresh_reused": 401,
    "forbidden": 403,
    "banned": 403,
    "muted": 403,
    "invite_required": 403,
    "invite_invalid": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "name_taken": 409,
    "poll_closed": 409,  # v1.1 Polls
    "retro_open": 409,  # v1.1 Retrospectives
    "retro_closed": 409,
    "wrong_phase": 409,
    "no_votes_left": 409,
    "payload_too_large": 413,
    "validation_error": 422,
    "rate_limited": 429,
    "internal_error": 500,
    "unavailable": 503,
}


@attrs.frozen
class FieldError:
    """One entry of ``validation_errors``: which field, and what is wrong with it."""

    field: str
    message: str


@attrs.frozen
class ApiError(Exception):
    """An error to show the client as the contract's error body."""

    error_code: str
    detail: str
    validation_errors: tuple[FieldError, ...] = ()
    retry_after: int | None = None

    def __attrs_post_init__(self) -> None:
        if self.error_code not in STATUS_BY_ERROR_CODE:
            raise ValueError(f"unknown error_code {self.error_code!r}")

    @property
    def status(self) -> int:
        return STATUS_BY_ERROR_CODE[self.error_code]

    def body(self) -> dict[str, Any]:
        """The JSON body the contract prescribes for this error."""
        body: dict[str, Any] = {"detail": self.detail, "error_code": self.error_code}
        if self.error_code == "validation_error":
            body["validation_errors"] = [
                {"field": e.field, "message": e.message} for e in self.validation_errors
            ]
        return body

    def __str__(self) -> str:
        return f"{self.error_code}: {self.detail}"


# How long a client should wait when the database cannot serve it (503, Retry-After).
RETRY_AFTER_SECONDS = 5


class DatabaseUnavailable(Exception):
    """
    PostgreSQL cannot serve this call now; try again after RETRY_AFTER_SECONDS. Raised by
    storage, answered 503 by the transport, which never imports storage itself.
    """
