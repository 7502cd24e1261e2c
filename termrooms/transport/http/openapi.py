"""
The OpenAPI 3.1 document, built from the route specs the router collects as routes are
declared, so every route appears in it by being written. Pure: dicts in, dict out.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

import attrs

ERROR_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "required": ["detail", "error_code"],
    "properties": {
        "detail": {"type": "string"},
        "error_code": {"type": "string"},
        "validation_errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}

_KLEIN_PARAMETER = re.compile(r"<(?:[^:>]+:)?([^>]+)>")
_REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    400: "Bad request",
    401: "Not authenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Payload too large",
    422: "Validation error",
    429: "Rate limited",
    500: "Internal error",
    503: "Unavailable",
}


@attrs.frozen
class RouteSpec:
    """What the documentation says about one route."""

    method: str
    path: str
    summary: str
    responses: Mapping[int, Mapping[str, Any] | None]
    tags: tuple[str, ...] = ()
    auth: bool = False
    request_body: Mapping[str, Any] | None = None
    query: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)

    @property
    def openapi_path(self) -> str:
        return _KLEIN_PARAMETER.sub(r"{\1}", self.path)

    @property
    def path_parameters(self) -> list[str]:
        return _KLEIN_PARAMETER.findall(self.path)


def _operation(spec: RouteSpec) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": spec.summary, "responses": {}}
    if spec.tags:
        operation["tags"] = list(spec.tags)
    if spec.auth:
        operation["security"] = [{"bearerAuth": []}]
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in spec.path_parameters
    ] + [
        {"name": name, "in": "query", "required": False, "schema": dict(schema)}
        for name, schema in spec.query.items()
    ]
    if parameters:
        operation["parameters"] = parameters
    if spec.request_body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": dict(spec.request_body)}},
        }
    responses = dict(spec.responses)
    if spec.request_body is not None:  # json_body's answers to a body it cannot read
        responses = {400: None, 413: None, **responses}
    for status, schema in sorted(responses.items()):
        response: dict[str, Any] = {"description": _REASONS.get(status, str(status))}
        if status >= 400:
            schema = {"$ref": "#/components/schemas/Error"}
        if schema is not None:
            response["content"] = {"application/json": {"schema": dict(schema)}}
        operation["responses"][str(status)] = response
    return operation


def build_document(specs: Iterable[RouteSpec], *, version: str) -> dict[str, Any]:
    """The whole document for the given routes."""
    paths: dict[str, dict[str, Any]] = {}
    for spec in specs:
        paths.setdefault(spec.openapi_path, {})[spec.method.lower()] = _operation(spec)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "termrooms",
            "version": version,
            "description": "Self-hosted realtime chat rooms. The WebSocket protocol at "
            "/ws is described in docs/protocol.md.",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": {"Error": dict(ERROR_SCHEMA)},
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
    }
