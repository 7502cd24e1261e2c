"""
The web site: every request gets a request id (a sane incoming ``X-Request-ID`` is kept,
else one is made), echoed in the response and written in one access-log line with its
status, duration, user and room, and counted in the metrics by route template. The
query string and bodies are never logged: ``/ws?token=`` carries a secret.

Every response carries ``X-Content-Type-Options: nosniff``; responses served over TLS
carry ``Strict-Transport-Security``; behind a trusted proxy
the client address is the one its ``X-Forwarded-For`` names.

Slow and greedy clients: a request must arrive whole (line, headers, body) within the
site's deadline of the connection opening or of the previous answer, and a body over
MAX_REQUEST_BODY is refused with 413 as soon as its size shows, before it is read.
Malformed HTTP/1.1 framing is 400 ``bad_request`` with the contract's body.
"""

from __future__ import annotations

import io
import ipaddress
import re
import time
import uuid
from typing import Any, Iterable

from twisted.logger import Logger
from twisted.web.http import RESPONSES, HTTPChannel, _GenericHTTPChannelProtocol
from twisted.web.resource import IResource
from twisted.web.server import Site

from termrooms.domain.errors import ApiError
from termrooms.domain.wire import encode_json
from termrooms.operations.metrics import Meters, Network, address_allowed
from termrooms.transport.http.request import UNMATCHED_ROUTE, ApiRequest
from termrooms.transport.http.router import MAX_JSON_BODY

_log = Logger(namespace="termrooms.access")
_ACCEPTABLE_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:/+=-]{1,128}$")
HSTS = b"max-age=31536000"
MAX_REQUEST_BODY = MAX_JSON_BODY  # every body this server takes is a JSON object
DEFAULT_REQUEST_SECONDS = 10.0
# After a 400 or 413, how long what the client still sends is read and dropped before
# the connection closes: closing on unread data resets it, and the answer could be lost.
REFUSED_LINGER_SECONDS = 2.0


def forwarded_client(peer: str, forwarded_for: Iterable[bytes], trusted: Iterable[Network]) -> str:
    """The client behind a chain of trusted proxies: the rightmost X-Forwarded-For address
    that is not itself a trusted proxy (the ones left of it could be forged)."""
    trusted = tuple(trusted)
    if not trusted or not address_allowed(peer, trusted):
        return peer
    hops = [hop.strip() for header in forwarded_for for hop in header.decode("latin-1").split(",")]
    client = peer
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            break  # garbage: trust nothing further left
        client = hop
        if not address_allowed(hop, trusted):
            break
    return client


class TermroomsRequest(ApiRequest):
    """A request that knows its id and when it started."""

    channel: TermroomsChannel
    started: float = 0.0
    body_refused = False
    _body_bytes = 0

    def process(self) -> None:
        self.started = time.monotonic()
        peer = getattr(self.getClientAddress(), "host", None) or "local"
        forwarded = self.requestHeaders.getRawHeaders(b"x-forwarded-for", ())
        self.client_host = forwarded_client(peer, forwarded, self.channel.site.trusted_proxies)
        self.setHeader(b"x-content-type-options", b"nosniff")  # every answer, API JSON too
        if self.isSecure():
            self.setHeader(b"strict-transport-security", HSTS)
        incoming = self.getHeader(b"x-request-id")
        if incoming is not None and _ACCEPTABLE_REQUEST_ID.match(incoming):
            self.request_id = incoming.decode("ascii")
        else:
            self.request_id = uuid.uuid4().hex
        self.setHeader(b"x-request-id", self.request_id.encode("ascii"))
        super().process()

    def gotLength(self, length: int | None) -> None:
        # Twisted would spool a large body to a temporary file before anyone looks at it.
        if length is not None and length > MAX_REQUEST_BODY:
            self.content = io.BytesIO()
            self._refuse_body()
        else:
            super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self.body_refused:
            return  # dropped unread
        self._body_bytes += len(data)
        if self._body_bytes > MAX_REQUEST_BODY:  # chunked: its size shows as it grows
            self._refuse_body()
            return
        super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if self.body_refused:
            # Answered already; the body's end came in the same read as its excess, and
            # Twisted stopped the channel's timer for the request: start the linger again.
            self.channel.setTimeout(REFUSED_LINGER_SECONDS)
            return
        super().requestReceived(command, path, version)

    def _refuse_body(self) -> None:
        self.body_refused = True
        self.requestHeaders.removeHeader(b"expect")  # no "100 Continue" after the refusal
        self.channel.refuse(
            ApiError("payload_too_large", f"The body is over {MAX_REQUEST_BODY} bytes.")
        )

    def processingFailed(self, reason: Any) -> Any:
        # Twisted would render a traceback page; never show one to a client.
        _log.failure("unhandled error (request {request_id})", reason, request_id=self.request_id)
        body = b'{"detail":"Something went wrong on our side.","error_code":"internal_error"}'
        self.setResponseCode(500)
        self.setHeader(b"content-type", b"application/json")
        self.setHeader(b"content-length", b"%d" % len(body))
        self.error_code = "internal_error"
        self.write(body)
        self.finish()
        return reason


class TermroomsChannel(HTTPChannel):
    """
    An HTTP/1.1 connection whose idle timeout is a deadline, and whose refusals carry
    the contract's error body.

    Twisted restarts its timer on every byte, so a client sending a header a byte a
    second (slowloris) would hold its connection for ever; here the timer runs from the
    connection's start, or the end of the previous answer, until the request has fully
    arrived, and is not reset. Twisted answers malformed framing with a bare 400 (and an
    overlong header line with none) and closes at once, on data still unread.
    """

    site: TermroomsSite  # set by the site that builds the channel
    _refused = False

    def resetTimeout(self) -> None:
        pass

    def refuse(self, error: ApiError) -> None:
        """Answer ``error`` before the request is parsed whole, then read and drop what
        the client still sends until it stops or REFUSED_LINGER_SECONDS pass; close."""
        if self._refused:
            return
        self._refused = True
        transport = self.transport
        assert transport is not None  # a channel refuses only what it is reading
        body = encode_json(error.body())
        transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"x-content-type-options: nosniff\r\nconnection: close\r\n\r\n%s"
            % (error.status, RESPONSES[error.status], len(body), body)
        )
        self.setRawMode()  # no line after this one is parsed: nothing is smuggled in
        self.setTimeout(REFUSED_LINGER_SECONDS)
        self.site.meters.error(error.error_code, "http")
        peer = getattr(transport.getPeer(), "host", None) or "local"
        _log.info(
            "request refused ({client}): {status} {error_code}",
            client=peer,
            status=error.status,
            error_code=error.error_code,
        )

    def rawDataReceived(self, data: bytes) -> None:
        if not self._refused:
            super().rawDataReceived(data)

    def _respondToBadRequestAndDisconnect(self) -> None:
        self.refuse(ApiError("bad_request", "This is not a valid HTTP/1.1 request."))

    def lineLengthExceeded(self, line: bytes) -> None:
        self._respondToBadRequestAndDisconnect()


class TermroomsSite(Site):
    """twisted.web Site with structured access logs, no tracebacks to clients, and a
    deadline for each request to arrive in (``timeout``, seconds)."""

    requestFactory = TermroomsRequest
    displayTracebacks = False
    noisy = False  # "Starting factory" lines say nothing an operator needs

    def __init__(
        self,
        resource: IResource,
        meters: Meters | None = None,
        trusted_proxies: Iterable[Network] = (),
        timeout: float = DEFAULT_REQUEST_SECONDS,
        **kwargs: Any,
    ) -> None:
        super().__init__(resource, requestFactory=TermroomsRequest, timeout=timeout, **kwargs)
        self.meters = meters or Meters()
        self.trusted_proxies = tuple(trusted_proxies)

    def protocol(self) -> Any:
        # Twisted's own factory, with the channel swapped (it has no hook for that).
        return _GenericHTTPChannelProtocol(TermroomsChannel())

    def log(self, request: TermroomsRequest) -> None:  # type: ignore[override]  # it makes only these
        seconds = time.monotonic() - request.started if request.started else 0.0
        method = request.method.decode("ascii", "replace")
        matched = request.route != UNMATCHED_ROUTE
        self.meters.http_request(
            method if matched else "other", request.route, request.code, seconds
        )
        if request.error_code is not None:
            self.meters.error(request.error_code, "http")
        _log.info(
            "{method} {path} {status} {duration_ms:.1f}ms",
            method=method,
            path=request.path.decode("utf-8", "replace"),
            status=request.code,
            duration_ms=seconds * 1000,
            request_id=request.request_id,
            client=request.client_host,
            user_id=request.user_id,
            route=request.route,
            room=request.room,
            error_code=request.error_code,
        )
