"""
The web site: every request gets a request id (a sane incoming ``X-Request-ID`` is kept,
else one is made), echoed in the response and written in one access-log line with its
status and duration. The query string is never logged: ``/ws?token=`` carries a secret.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

from twisted.logger import Logger
from twisted.web.resource import IResource
from twisted.web.server import Request, Site

_log = Logger(namespace="termrooms.access")
_ACCEPTABLE_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:/+=-]{1,128}$")


class TermroomsRequest(Request):
    """A request that knows its id and when it started."""

    request_id: str = ""
    started: float = 0.0

    def process(self) -> None:
        self.started = time.monotonic()
        incoming = self.getHeader(b"x-request-id")
        if incoming is not None and _ACCEPTABLE_REQUEST_ID.match(incoming):
            self.request_id = incoming.decode("ascii")
        else:
            self.request_id = uuid.uuid4().hex
        self.setHeader(b"x-request-id", self.request_id.encode("ascii"))
        super().process()

    def processingFailed(self, reason: Any) -> Any:
        # Twisted would render a traceback page; never show one to a client.
        _log.failure("unhandled error (request {request_id})", reason, request_id=self.request_id)
        body = b'{"detail":"Something went wrong on our side.","error_code":"internal_error"}'
        self.setResponseCode(500)
        self.setHeader(b"content-type", b"application/json")
        self.setHeader(b"content-length", b"%d" % len(body))
        self.write(body)
        self.finish()
        return reason


class TermroomsSite(Site):
    """twisted.web Site with structured access logs and no tracebacks to clients."""

    requestFactory = TermroomsRequest
    displayTracebacks = False
    noisy = False  # "Starting factory" lines say nothing an operator needs

    def __init__(self, resource: IResource, **kwargs: Any) -> None:
        super().__init__(resource, requestFactory=TermroomsRequest, **kwargs)

    def log(self, request: TermroomsRequest) -> None:  # type: ignore[override]
        duration_ms = (time.monotonic() - request.started) * 1000 if request.started else 0.0
        _log.info(
            "{method} {path} {status} {duration_ms:.1f}ms",
            method=request.method.decode("ascii", "replace"),
            path=request.path.decode("utf-8", "replace"),
            status=request.code,
            duration_ms=duration_ms,
            request_id=request.request_id,
            client=getattr(request.getClientAddress(), "host", None),
            user_id=getattr(request, "user_id", None),
        )
