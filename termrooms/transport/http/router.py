"""
The HTTP router: a Klein app whose routes are declared together with their OpenAPI
spec, and whose every error, unknown routes and wrong methods included, is the
contract's JSON error body. Route handlers stay thin: parse, call a handler, return.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Mapping, cast
from urllib.parse import unquote_to_bytes

import attrs
from klein import Klein
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource
from werkzeug.exceptions import MethodNotAllowed, NotFound

from termrooms import __version__
from termrooms.domain.errors import RETRY_AFTER_SECONDS, ApiError, DatabaseUnavailable, FieldError
from termrooms.domain.wire import decode_json, encode_json
from termrooms.transport.http.openapi import RouteSpec, build_document
from termrooms.transport.http.request import ApiRequest

_log = Logger()

# A handler returns a JsonResponse, a JSON-able value (200), or JSON already encoded.
Handler = Callable[..., Awaitable["JsonResponse | bytes | Mapping[str, Any] | list[Any]"]]
# Runs before every route's handler (the HTTP rate limits); raises ApiError to refuse.
Guard = Callable[[ApiRequest, RouteSpec], Awaitable[None]]


@attrs.frozen
class JsonResponse:
    """A handler's answer when it is not a plain 200 with a JSON body."""

    body: Any
    status: int = 200
    headers: Mapping[str, str] = attrs.field(factory=dict)


def write_json(request: ApiRequest, response: JsonResponse) -> bytes:
    """Set status and headers on the request; return the encoded body (empty for 204)."""
    request.setResponseCode(response.status)
    if response.status >= 400 and isinstance(response.body, dict):
        request.error_code = response.body.get("error_code")  # for the log and the metrics
    for name, value in response.headers.items():
        request.setHeader(name, value)
    if response.status == 204:
        return b""
    request.setHeader(b"content-type", b"application/json")
    return encode_json(response.body)


MAX_JSON_BODY = 64 * 1024


def json_body(request: ApiRequest, max_bytes: int = MAX_JSON_BODY) -> dict[str, Any]:
    """The request's JSON object body, or the contract's 400 / 413 / 422."""
    content = request.content
    assert content is not None  # twisted.web reads the body before it processes a request
    content.seek(0, 2)
    if content.tell() > max_bytes:
        raise ApiError("payload_too_large", f"The body is over {max_bytes} bytes.")
    content.seek(0)
    try:
        body = decode_json(content.read() or b"null")
    except ValueError:  # UnicodeDecodeError is one too
        raise ApiError("invalid_json", "The body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise ApiError("invalid_json", "The body must be a JSON object.")
    return body


def cursor_query(limit_max: int) -> dict[str, Any]:
    """The query parameters of a cursor page (``before=ID``, ``limit``), for OpenAPI."""
    return {
        "before": {"type": "string", "pattern": "^[0-9]+$"},
        "limit": {"type": "integer", "minimum": 1, "maximum": limit_max},
    }


def page_schema(key: str, item: Mapping[str, Any]) -> dict[str, Any]:
    """A cursor page's answer, ``{KEY: [...], "has_more": bool}``, for OpenAPI."""
    return {
        "type": "object",
        "required": [key, "has_more"],
        "properties": {key: {"type": "array", "items": item}, "has_more": {"type": "boolean"}},
    }


def path_id(text: str) -> int:
    """A path's id (a task's, a poll's); anything but digits names nothing: 0, which no
    row has, so the answer is the 404 of a hidden one."""
    return int(text) if text.isascii() and text.isdigit() and len(text) < 20 else 0


def query_text(request: ApiRequest, name: str) -> str | None:
    """A text query parameter (the first, if repeated), None when absent."""
    values = request.args.get(name.encode())
    return values[0].decode("utf-8", "replace") if values else None


def query_int(request: ApiRequest, name: str, low: int, high: int = 2**63 - 1) -> int | None:
    """An integer query parameter within [low, high], None when absent, else a 422."""
    values = request.args.get(name.encode())
    if not values:
        return None
    try:
        number = int(values[0])
    except ValueError:
        number = low - 1
    if not low <= number <= high:
        raise ApiError(
            "validation_error",
            f"{name} must be a whole number from {low} to {high}",
            validation_errors=(FieldError(name, f"must be a whole number from {low} to {high}"),),
        )
    return number


def error_response(error: ApiError) -> JsonResponse:
    headers = {}
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    return JsonResponse(error.body(), error.status, headers)


class Utf8PathResource(Resource):
    """Klein's resource behind a check that the path is UTF-8: Klein itself answers a
    plain-text 400 and logs an error, where the contract wants its JSON error body."""

    isLeaf = True

    def __init__(self, inner: Resource) -> None:
        super().__init__()
        self.inner = inner

    def render(self, request: ApiRequest) -> Any:
        try:
            unquote_to_bytes(request.path).decode("utf-8")
        except UnicodeDecodeError:
            error = ApiError("bad_request", "The URL's path is not UTF-8.")
            return write_json(request, error_response(error))
        return self.inner.render(request)


class Router:
    """One server's routes; built per server so tests each get their own."""

    def __init__(self) -> None:
        self.app = Klein()
        self.specs: list[RouteSpec] = []
        self.guard: Guard | None = None
        self.unguarded_paths: frozenset[str] = frozenset()
        self._openapi: bytes | None = None
        self._install_error_handlers()

    def route(
        self,
        path: str,
        method: str,
        *,
        summary: str,
        responses: Mapping[int, Mapping[str, Any] | None],
        tags: tuple[str, ...] = (),
        auth: bool = False,
        request_body: Mapping[str, Any] | None = None,
        query: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> Callable[[Handler], Handler]:
        """Declare a route: Klein serves it and the OpenAPI document describes it."""

        def declare(handler: Handler) -> Handler:
            spec = RouteSpec(
                method=method,
                path=path,
                summary=summary,
                responses=dict(responses),
                tags=tags,
                auth=auth,
                request_body=request_body,
                query=dict(query or {}),
            )
            self.specs.append(spec)
            self._openapi = None

            async def endpoint(request: ApiRequest, **kwargs: Any) -> bytes:
                request.route = path  # the template, not the path: bounded metric labels
                request.room = kwargs.get("name")
                if self.guard is not None and path not in self.unguarded_paths:
                    await self.guard(request, spec)
                result = await handler(request, **kwargs)
                if isinstance(result, bytes):
                    if not request.responseHeaders.hasHeader(b"content-type"):
                        request.setHeader(b"content-type", b"application/json")
                    return result
                if not isinstance(result, JsonResponse):
                    result = JsonResponse(result)
                return write_json(request, result)

            endpoint.__name__ = f"{method.lower()}_{handler.__name__}"
            # Named by method and path, which are unique: Klein's endpoint names are a
            # table, and two handlers of one name would silently serve one route.
            self.app.route(path, methods=[method], endpoint=f"{method} {path}")(endpoint)
            return handler

        return declare

    def guard_with(
        self,
        guard: Guard,
        answers: Mapping[int, Mapping[str, Any] | None],
        unguarded_paths: frozenset[str] = frozenset(),
    ) -> None:
        """Run ``guard`` before every route but ``unguarded_paths``, whose routes are
        documented as possibly giving ``answers`` too."""
        self.guard = guard
        self.unguarded_paths = unguarded_paths
        self.specs = [
            spec
            if spec.path in unguarded_paths
            else attrs.evolve(spec, responses={**answers, **spec.responses})
            for spec in self.specs
        ]
        self._openapi = None

    def openapi_json(self) -> bytes:
        """The OpenAPI document of every route declared so far, encoded once."""
        if self._openapi is None:
            document = build_document(self.specs, version=__version__)
            self._openapi = encode_json(document)
        return self._openapi

    def _install_error_handlers(self) -> None:
        def answer(kind: type[Exception], respond: ErrorAnswer) -> None:
            def handler(request: IRequest, failure: Failure) -> bytes:
                # Klein hands its error handlers the request our site made.
                api_request = cast(ApiRequest, request)
                return write_json(api_request, error_response(respond(api_request, failure)))

            self.app.handle_errors(kind)(handler)

        answer(ApiError, lambda request, failure: cast(ApiError, failure.value))
        answer(DatabaseUnavailable, _database_unavailable)
        answer(NotFound, lambda request, failure: ApiError("not_found", "No such resource."))
        answer(MethodNotAllowed, _method_not_allowed)
        answer(Exception, _internal_error)


# What an error handler answers for a failure of its kind (as the contract's body).
ErrorAnswer = Callable[[ApiRequest, Failure], ApiError]


def _database_unavailable(request: ApiRequest, failure: Failure) -> ApiError:
    _log.warn(
        "request {request_id} failed: {reason}",
        request_id=request.request_id,
        reason=failure.getErrorMessage(),
    )
    return ApiError(
        "unavailable",
        "The database is unavailable; try again shortly.",
        retry_after=RETRY_AFTER_SECONDS,
    )


def _method_not_allowed(request: ApiRequest, failure: Failure) -> ApiError:
    valid = cast(MethodNotAllowed, failure.value).valid_methods
    allowed = ", ".join(sorted(valid or ()))
    request.setHeader("Allow", allowed)
    return ApiError("method_not_allowed", f"Allowed methods: {allowed}.")


def _internal_error(request: ApiRequest, failure: Failure) -> ApiError:
    _log.failure(
        "unhandled error in {method} {path} (request {request_id})",
        failure=failure,
        method=request.method.decode("ascii", "replace"),
        path=request.path.decode("utf-8", "replace"),
        request_id=request.request_id,
    )
    return ApiError("internal_error", "Something went wrong on our side.")
