"""``/api/rooms/{name}/retros``: thin routes over RetroHandler."""

from __future__ import annotations

from functools import partial
from typing import Any

from termrooms.domain.retros import (
    COLUMN_NAME_MAX,
    COLUMNS_MAX,
    COLUMNS_MIN,
    ENTRY_MAX,
    GROUP_TITLE_MAX,
    PHASES,
    RETRO_PAGE_DEFAULT,
    RETRO_PAGE_MAX,
    SCORE_MAX,
    SCORE_MIN,
    TITLE_MAX,
    VOTES_DEFAULT,
    VOTES_MAX,
    VOTES_MIN,
    Board,
    board_json,
    summary_markdown,
    votes_json,
)
from termrooms.domain.tasks import TITLE_MAX as TASK_TITLE_MAX
from termrooms.domain.tasks import task_json
from termrooms.handlers.retros import RetroHandler
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
)
from termrooms.transport.http.tasks import TASK_SCHEMA

_ID = {"type": "string", "pattern": "^[0-9]+$"}
_NULLABLE_ID = {"type": ["string", "null"], "pattern": "^[0-9]+$"}
ENTRY_SCHEMA = {
    "type": "object",
    "required": ["id", "column", "text", "mine", "author", "group"],
    "properties": {
        "id": _ID,
        "column": {"type": "string"},
        "text": {
            "type": ["string", "null"],
            "maxLength": ENTRY_MAX,
            "description": "Null for another's entry while collecting.",
        },
        "mine": {"type": "boolean"},
        "author": {"type": ["string", "null"], "description": "Null in an anonymous retro."},
        "group": _NULLABLE_ID,
    },
}
_GROUP_SCHEMA = {
    "type": "object",
    "required": ["id", "column", "title", "entries", "votes"],
    "properties": {
        "id": _ID,
        "column": {"type": "string"},
        "title": {"type": "string", "maxLength": GROUP_TITLE_MAX},
        "entries": {"type": "array", "items": _ID},
        "votes": {
            "type": ["integer", "null"],
            "minimum": 0,
            "description": "The total; null until the vote phase ends.",
        },
    },
}
_MY_VOTES = {
    "type": "object",
    "additionalProperties": {"type": "integer", "minimum": 1},
    "description": "The caller's own votes, by group id.",
}
VOTES_SCHEMA = {
    "type": "object",
    "required": ["my_votes", "votes_left"],
    "properties": {"my_votes": _MY_VOTES, "votes_left": {"type": "integer", "minimum": 0}},
}
RETRO_SCHEMA = {
    "type": "object",
    "required": [
        "id",
        "room",
        "title",
        "phase",
        "facilitator",
        "columns",
        "votes_per_participant",
        "anonymous",
        "participants",
        "entries",
        "groups",
        "my_votes",
        "votes_left",
        "focus",
        "happiness",
        "actions",
        "carried_over",
        "created_at",
        "closed_at",
    ],  # fmt: skip
    "properties": {
        "id": _ID,
        "room": {"type": "string"},
        "title": {"type": "string", "minLength": 1, "maxLength": TITLE_MAX},
        "phase": {"enum": list(PHASES)},
        "facilitator": {"type": "string"},
        "columns": {"type": "array", "items": {"type": "string"}},
        "votes_per_participant": {"type": "integer", "minimum": VOTES_MIN, "maximum": VOTES_MAX},
        "anonymous": {"type": "boolean"},
        "participants": {"type": "array", "items": {"type": "string"}},
        "entries": {"type": "array", "items": ENTRY_SCHEMA},
        "groups": {"type": "array", "items": _GROUP_SCHEMA},
        "my_votes": _MY_VOTES,
        "votes_left": {"type": "integer", "minimum": 0},
        "focus": _NULLABLE_ID,
        "happiness": {
            "type": "object",
            "required": ["count", "histogram", "mine"],
            "properties": {
                "count": {"type": "integer", "minimum": 0},
                "histogram": {
                    "type": ["object", "null"],
                    "additionalProperties": {"type": "integer", "minimum": 0},
                    "description": 'Answers per score "1".."5"; null before the discussion'
                    " and under 3 answers.",
                },
                "mine": {"type": ["integer", "null"], "minimum": SCORE_MIN, "maximum": SCORE_MAX},
            },
        },
        "actions": {"type": "array", "items": TASK_SCHEMA},
        "carried_over": {"type": "array", "items": TASK_SCHEMA},
        "created_at": {"type": "string", "format": "date-time"},
        "closed_at": {"type": ["string", "null"], "format": "date-time"},
    },
}
_CHANGE = {400: None, 401: None, 403: None, 404: None, 409: None, 422: None}
_RETRO = "/api/rooms/<name>/retros/<retro_id>"


def _object(required: list[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties}


def register_retro_routes(router: Router, server: Any) -> None:
    """A room's retrospectives; ``server`` is the TermroomsServer."""

    def retros() -> RetroHandler:
        return server.get_retro_handler()

    user_of = partial(signed_in_user, server)

    def route(path: str, method: str, summary: str, **spec: Any) -> Any:
        return router.route(path, method, summary=summary, tags=("retros",), auth=True, **spec)

    @route(
        "/api/rooms/<name>/retros",
        "POST",
        "Start a retro in the room (moderators and above); one open retro per room.",
        request_body=_object(
            [],
            title={"type": "string", "minLength": 1, "maxLength": TITLE_MAX},
            columns={
                "type": "array",
                "minItems": COLUMNS_MIN,
                "maxItems": COLUMNS_MAX,
                "items": {"type": "string", "minLength": 1, "maxLength": COLUMN_NAME_MAX},
            },
            votes_per_participant={
                "type": "integer",
                "minimum": VOTES_MIN,
                "maximum": VOTES_MAX,
                "default": VOTES_DEFAULT,
            },
            anonymous={"type": "boolean", "default": True},
        ),
        responses={201: RETRO_SCHEMA, **_CHANGE},
    )
    async def start(request: ApiRequest, name: str) -> JsonResponse:
        user = await user_of(request)
        board = await retros().start(user, name, json_body(request), request.request_id)
        return JsonResponse(board_json(board), 201)

    @route(
        "/api/rooms/<name>/retros",
        "GET",
        "The room's retros, newest first, each as your board.",
        query=cursor_query(RETRO_PAGE_MAX),
        responses={200: page_schema("retros", RETRO_SCHEMA), 401: None, 404: None, 422: None},
    )
    async def list_retros(request: ApiRequest, name: str) -> dict[str, Any]:
        user = await user_of(request)
        limit = query_int(request, "limit", 1, RETRO_PAGE_MAX)
        page, has_more = await retros().page(
            user,
            name,
            before_id=query_int(request, "before", 1),
            limit=RETRO_PAGE_DEFAULT if limit is None else limit,
        )
        return {"retros": [board_json(board) for board in page], "has_more": has_more}

    @route(
        _RETRO,
        "GET",
        "The retro's board as you may see it.",
        responses={200: RETRO_SCHEMA, 401: None, 404: None},
    )
    async def get_retro(request: ApiRequest, name: str, retro_id: str) -> dict[str, Any]:
        user = await user_of(request)
        return board_json(await retros().get(user, name, path_id(retro_id)))

    @route(
        _RETRO + "/summary",
        "GET",
        "The retro as Markdown (text/markdown), showing no more than your board does.",
        responses={200: None, 401: None, 404: None},
    )
    async def summary(request: ApiRequest, name: str, retro_id: str) -> bytes:
        user = await user_of(request)
        board = await retros().get(user, name, path_id(retro_id))
        request.setHeader(b"content-type", b"text/markdown; charset=utf-8")
        return summary_markdown(board).encode("utf-8")

    @route(
        _RETRO + "/join",
        "POST",
        "Take part in the retro (members).",
        responses={200: RETRO_SCHEMA, **_CHANGE},
    )
    async def join(request: ApiRequest, name: str, retro_id: str) -> dict[str, Any]:
        user = await user_of(request)
        return board_json(await retros().join(user, name, path_id(retro_id)))

    @route(
        _RETRO + "/phase",
        "POST",
        "Move the retro one phase forwards or back (its facilitator); closed is final.",
        request_body=_object(["phase"], phase={"enum": list(PHASES)}),
        responses={200: RETRO_SCHEMA, **_CHANGE},
    )
    async def phase(request: ApiRequest, name: str, retro_id: str) -> dict[str, Any]:
        user = await user_of(request)
        board = await retros().move(
            user, name, path_id(retro_id), lambda: json_body(request), request.request_id
        )
        return board_json(board)

    @route(
        _RETRO + "/entries",
        "POST",
        "Add an entry to a column (collect phase; members).",
        request_body=_object(
            ["column", "text"],
            column={"type": "string"},
            text={"type": "string", "minLength": 1, "maxLength": ENTRY_MAX},
        ),
        responses={201: ENTRY_SCHEMA, **_CHANGE},
    )
    async def add_entry(request: ApiRequest, name: str, retro_id: str) -> JsonResponse:
        user = await user_of(request)
        board, entry_id = await retros().add_entry(
            user, name, path_id(retro_id), lambda: json_body(request)
        )
        return JsonResponse(_entry(board, entry_id), 201)

    @route(
        _RETRO + "/entries/<entry_id>",
        "PATCH",
        "Change your own entry's text or column (collect phase).",
        request_body=_object(
            [],
            column={"type": "string"},
            text={"type": "string", "minLength": 1, "maxLength": ENTRY_MAX},
        ),
        responses={200: ENTRY_SCHEMA, **_CHANGE},
    )
    async def change_entry(
        request: ApiRequest, name: str, retro_id: str, entry_id: str
    ) -> dict[str, Any]:
        user = await user_of(request)
        board = await retros().change_entry(
            user, name, path_id(retro_id), path_id(entry_id), lambda: json_body(request)
        )
        return _entry(board, path_id(entry_id))

    @route(
        _RETRO + "/entries/<entry_id>",
        "DELETE",
        "Delete your own entry (collect phase).",
        responses={204: None, **_CHANGE},
    )
    async def delete_entry(
        request: ApiRequest, name: str, retro_id: str, entry_id: str
    ) -> JsonResponse:
        user = await user_of(request)
        await retros().delete_entry(user, name, path_id(retro_id), path_id(entry_id))
        return JsonResponse(None, 204)

    @route(
        _RETRO + "/groups/<group_id>/entries",
        "POST",
        "Move an entry of the same column into the group (group phase; participants).",
        request_body=_object(["entry"], entry=_ID),
        responses={200: RETRO_SCHEMA, **_CHANGE},
    )
    async def move_entry(
        request: ApiRequest, name: str, retro_id: str, group_id: str
    ) -> dict[str, Any]:
        user = await user_of(request)
        board = await retros().move_entry(
            user, name, path_id(retro_id), path_id(group_id), lambda: json_body(request)
        )
        return board_json(board)

    @route(
        _RETRO + "/groups/<group_id>",
        "PATCH",
        "Title the group (group phase; participants).",
        request_body=_object(["title"], title={"type": "string", "maxLength": GROUP_TITLE_MAX}),
        responses={200: RETRO_SCHEMA, **_CHANGE},
    )
    async def title_group(
        request: ApiRequest, name: str, retro_id: str, group_id: str
    ) -> dict[str, Any]:
        user = await user_of(request)
        board = await retros().title_group(
            user, name, path_id(retro_id), path_id(group_id), lambda: json_body(request)
        )
        return board_json(board)

    @route(
        _RETRO + "/votes",
        "POST",
        "Spend one of your votes on a group (vote phase); several on one group allowed.",
        request_body=_object(["group"], group=_ID),
        responses={200: VOTES_SCHEMA, **_CHANGE},
    )
    async def vote(request: ApiRequest, name: str, retro_id: str) -> dict[str, Any]:
        user = await user_of(request)
        board = await retros().vote(user, name, path_id(retro_id), lambda: json_body(request))
        return votes_json(board)

    @route(
        _RETRO + "/votes/<group_id>",
        "DELETE",
        "Take back one of your votes from the group (vote phase).",
        responses={200: VOTES_SCHEMA, **_CHANGE},
    )
    async def unvote(
        request: ApiRequest, name: str, retro_id: str, group_id: str
    ) -> dict[str, Any]:
        user = await user_of(request)
        return votes_json(await retros().unvote(user, name, path_id(retro_id), path_id(group_id)))

    @route(
        _RETRO + "/focus",
        "POST",
        "Pick the group being discussed (its facilitator; discuss phase); null for none.",
        request_body=_object(["group"], group=_NULLABLE_ID),
        responses={200: RETRO_SCHEMA, **_CHANGE},
    )
    async def focus(request: ApiRequest, name: str, retro_id: str) -> dict[str, Any]:
        user = await user_of(request)
        board = await retros().focus(user, name, path_id(retro_id), lambda: json_body(request))
        return board_json(board)

    @route(
        _RETRO + "/actions",
        "POST",
        'Add an action item: a room task with source {"retro": ID} (participants).',
        request_body=_object(
            ["title"],
            title={"type": "string", "minLength": 1, "maxLength": TASK_TITLE_MAX},
            assignee={"type": ["string", "null"]},
        ),
        responses={201: TASK_SCHEMA, **_CHANGE},
    )
    async def add_action(request: ApiRequest, name: str, retro_id: str) -> JsonResponse:
        user = await user_of(request)
        task = await retros().add_action(
            user, name, path_id(retro_id), lambda: json_body(request), request.request_id
        )
        return JsonResponse(task_json(task), 201)

    @route(
        _RETRO + "/happiness",
        "POST",
        "Score your happiness, replacing your earlier score; nobody sees whose is whose.",
        request_body=_object(
            ["score"], score={"type": "integer", "minimum": SCORE_MIN, "maximum": SCORE_MAX}
        ),
        responses={200: RETRO_SCHEMA, **_CHANGE},
    )
    async def happiness(request: ApiRequest, name: str, retro_id: str) -> dict[str, Any]:
        user = await user_of(request)
        board = await retros().happiness(user, name, path_id(retro_id), lambda: json_body(request))
        return board_json(board)


def _entry(board: Board, entry_id: int) -> dict[str, Any]:
    """One entry of the board as its reader sees it."""
    wanted = str(entry_id)
    return next(entry for entry in board_json(board)["entries"] if entry["id"] == wanted)
