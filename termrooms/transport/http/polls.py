"""``/api/rooms/{name}/polls``: thin routes over PollHandler."""

from __future__ import annotations

from functools import partial
from typing import Any

from termrooms.domain.polls import (
    CLOSES_IN_MAX,
    CLOSES_IN_MIN,
    OPTION_MAX,
    OPTIONS_MAX,
    OPTIONS_MIN,
    POLL_PAGE_DEFAULT,
    POLL_PAGE_MAX,
    QUESTION_MAX,
    poll_json,
)
from termrooms.domain.rules import check_fields
from termrooms.handlers.polls import PollHandler
from termrooms.transport.http.auth import signed_in_user
from termrooms.transport.http.request import ApiRequest
from termrooms.transport.http.router import (
    JsonResponse,
    Router,
    cursor_query,
    json_body,
    page_schema,
    path_id,
    query_int,
    query_text,
)

_OPTION_SCHEMA = {
    "type": "object",
    "required": ["text", "votes", "voters"],
    "properties": {
        "text": {"type": "string", "minLength": 1, "maxLength": OPTION_MAX},
        "votes": {"type": "integer", "minimum": 0},
        "voters": {
            "type": ["array", "null"],
            "items": {"type": "string"},
            "description": "Who chose it, in the order they voted; null when anonymous.",
        },
    },
}
POLL_SCHEMA = {
    "type": "object",
    "required": [
        "id",
        "room",
        "question",
        "options",
        "multiple",
        "anonymous",
        "closed",
        "closes_at",
        "created_by",
        "voters",
        "mine",
    ],
    "properties": {
        "id": {"type": "string"},
        "room": {"type": "string"},
        "question": {"type": "string", "minLength": 1, "maxLength": QUESTION_MAX},
        "options": {
            "type": "array",
            "minItems": OPTIONS_MIN,
            "maxItems": OPTIONS_MAX,
            "items": _OPTION_SCHEMA,
        },
        "multiple": {"type": "boolean"},
        "anonymous": {"type": "boolean"},
        "closed": {"type": "boolean"},
        "closes_at": {"type": ["string", "null"], "format": "date-time"},
        "created_by": {"type": "string"},
        "voters": {"type": "integer", "minimum": 0, "description": "How many people voted."},
        "mine": {
            "type": ["array", "null"],
            "items": {"type": "integer", "minimum": 0},
            "description": "The caller's choices (option indexes from 0).",
        },
    },
}
_ANSWERS = {401: None, 403: None, 404: None}


def register_poll_routes(router: Router, server: Any) -> None:
    """A room's polls; ``server`` is the TermroomsServer."""

    def polls() -> PollHandler:
        return server.get_poll_handler()

    user_of = partial(signed_in_user, server)

    @router.route(
        "/api/rooms/<name>/polls",
        "POST",
        summary="Start a poll in the room (any member who may send).",
        tags=("polls",),
        auth=True,
        request_body={
            "type": "object",
            "required": ["question", "options"],
            "properties": {
                "question": {"type": "string", "minLength": 1, "maxLength": QUESTION_MAX},
                "options": {
                    "type": "array",
                    "minItems": OPTIONS_MIN,
                    "maxItems": OPTIONS_MAX,
                    "uniqueItems": True,
                    "items": {"type": "string", "minLength": 1, "maxLength": OPTION_MAX},
                },
                "multiple": {"type": "boolean", "default": False},
                "anonymous": {"type": "boolean", "default": False},
                "closes_in_s": {
                    "type": "integer",
                    "minimum": CLOSES_IN_MIN,
                    "maximum": CLOSES_IN_MAX,
                },
            },
        },
        responses={201: POLL_SCHEMA, 400: None, **_ANSWERS, 422: None},
    )
    async def create_poll(request: ApiRequest, name: str) -> JsonResponse:
        user = await user_of(request)
        poll = await polls().create(user, name, json_body(request), request.request_id)
        return JsonResponse(poll_json(poll), 201)

    @router.route(
        "/api/rooms/<name>/polls",
        "GET",
        summary="The room's polls, newest first; ?open=true for open ones alone.",
        tags=("polls",),
        auth=True,
        query={"open": {"enum": ["true", "false"]}, **cursor_query(POLL_PAGE_MAX)},
        responses={200: page_schema("polls", POLL_SCHEMA), 401: None, 404: None, 422: None},
    )
    async def list_polls(request: ApiRequest, name: str) -> dict[str, Any]:
        user = await user_of(request)
        open_only = query_text(request, "open")
        if open_only not in (None, "true", "false"):
            check_fields(open="must be true or false")
        limit = query_int(request, "limit", 1, POLL_PAGE_MAX)
        page, has_more = await polls().page(
            user,
            name,
            open_only=open_only == "true",
            before_id=query_int(request, "before", 1),
            limit=POLL_PAGE_DEFAULT if limit is None else limit,
        )
        return {"polls": [poll_json(poll) for poll in page], "has_more": has_more}

    @router.route(
        "/api/rooms/<name>/polls/<poll_id>",
        "GET",
        summary="One poll with its results, and your own choices in `mine`.",
        tags=("polls",),
        auth=True,
        responses={200: POLL_SCHEMA, 401: None, 404: None},
    )
    async def get_poll(request: ApiRequest, name: str, poll_id: str) -> dict[str, Any]:
        user = await user_of(request)
        return poll_json(await polls().get(user, name, path_id(poll_id)))

    @router.route(
        "/api/rooms/<name>/polls/<poll_id>/vote",
        "POST",
        summary="Vote: replaces your earlier choices; [] withdraws (members).",
        tags=("polls",),
        auth=True,
        request_body={
            "type": "object",
            "required": ["choices"],
            "properties": {
                "choices": {
                    "type": "array",
                    "uniqueItems": True,
                    "items": {"type": "integer", "minimum": 0, "maximum": OPTIONS_MAX - 1},
                }
            },
        },
        responses={200: POLL_SCHEMA, 400: None, **_ANSWERS, 409: None, 422: None},
    )
    async def vote(request: ApiRequest, name: str, poll_id: str) -> dict[str, Any]:
        user = await user_of(request)
        poll = await polls().vote(user, name, path_id(poll_id), lambda: json_body(request))
        return poll_json(poll)

    @router.route(
        "/api/rooms/<name>/polls/<poll_id>/close",
        "POST",
        summary="Close the poll now (its creator, moderators and above).",
        tags=("polls",),
        auth=True,
        responses={200: POLL_SCHEMA, **_ANSWERS, 409: None},
    )
    async def close(request: ApiRequest, name: str, poll_id: str) -> dict[str, Any]:
        user = await user_of(request)
        return poll_json(await polls().close(user, name, path_id(poll_id), request.request_id))
