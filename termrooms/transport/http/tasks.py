"""``/api/tasks``: thin routes over TaskHandler."""

from __future__ import annotations

from functools import partial
from typing import Any

from termrooms.domain.tasks import (
    DESCRIPTION_MAX,
    TASK_PAGE_DEFAULT,
    TASK_PAGE_MAX,
    TASK_STATUSES,
    TITLE_MAX,
    task_json,
)
from termrooms.handlers.tasks import TaskHandler
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

TASK_SCHEMA = {
    "type": "object",
    "required": [
        "id",
        "title",
        "description",
        "status",
        "user_id",
        "created_at",
        "updated_at",
        "room",
        "number",
        "assignee",
        "created_by",
        "source",
    ],
    "properties": {
        "id": {"type": "string"},
        "title": {"type": "string", "minLength": 1, "maxLength": TITLE_MAX},
        "description": {"type": "string", "maxLength": DESCRIPTION_MAX},
        "status": {"enum": list(TASK_STATUSES)},
        "user_id": {"type": "string"},
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
        "room": {"type": ["string", "null"]},
        "number": {"type": "integer", "minimum": 1},
        "assignee": {"type": ["string", "null"]},
        "created_by": {"type": "string"},
        "source": {"type": ["object", "null"]},
    },
}
_CHANGES = {
    "title": {"type": "string", "minLength": 1, "maxLength": TITLE_MAX},
    "description": {"type": "string", "maxLength": DESCRIPTION_MAX},
    "status": {"enum": list(TASK_STATUSES)},
    "assignee": {"type": ["string", "null"]},
}


def register_task_routes(router: Router, server: Any) -> None:
    """Personal and room tasks; ``server`` is the TermroomsServer."""

    def tasks() -> TaskHandler:
        return server.get_task_handler()

    user_of = partial(signed_in_user, server)

    @router.route(
        "/api/tasks",
        "POST",
        summary="Create a task: in a room (its members), or personal (only you see it).",
        tags=("tasks",),
        auth=True,
        request_body={
            "type": "object",
            "required": ["title"],
            "properties": {**_CHANGES, "room": {"type": "string"}},
        },
        responses={201: TASK_SCHEMA, 400: None, 401: None, 403: None, 404: None, 422: None},
    )
    async def create_task(request: ApiRequest) -> JsonResponse:
        user = await user_of(request)
        task = await tasks().create(user, json_body(request), request.request_id)
        return JsonResponse(task_json(task), 201)

    @router.route(
        "/api/tasks",
        "GET",
        summary="A room's tasks, or without ?room= yours: personal ones and those assigned"
        " to you; oldest first within a page, ?before=ID pages back.",
        tags=("tasks",),
        auth=True,
        query={
            "room": {"type": "string"},
            "status": {"enum": list(TASK_STATUSES)},
            "assignee": {"type": "string"},
            **cursor_query(TASK_PAGE_MAX),
        },
        responses={200: page_schema("tasks", TASK_SCHEMA), 401: None, 404: None, 422: None},
    )
    async def list_tasks(request: ApiRequest) -> dict[str, Any]:
        user = await user_of(request)
        room_id = await tasks().room_id_for(user, query_text(request, "room"))
        before = query_int(request, "before", 1)
        limit = query_int(request, "limit", 1, TASK_PAGE_MAX)
        page, has_more = await tasks().page(
            user,
            room_id=room_id,
            status=query_text(request, "status"),
            assignee=query_text(request, "assignee"),
            before_id=before,
            limit=TASK_PAGE_DEFAULT if limit is None else limit,
        )
        return {"tasks": [task_json(task) for task in page], "has_more": has_more}

    @router.route(
        "/api/tasks/<task_id>",
        "GET",
        summary="One task, for whoever may see it (404 for anyone else).",
        tags=("tasks",),
        auth=True,
        responses={200: TASK_SCHEMA, 401: None, 404: None},
    )
    async def get_task(request: ApiRequest, task_id: str) -> dict[str, Any]:
        user = await user_of(request)
        return task_json(await tasks().get(user, path_id(task_id)))

    async def update(request: ApiRequest, task_id: str) -> dict[str, Any]:
        user = await user_of(request)
        handler = tasks()
        task = await handler.update(
            user, path_id(task_id), lambda: json_body(request), request.request_id
        )
        return task_json(task)

    for method in ("PUT", "PATCH"):
        router.route(
            "/api/tasks/<task_id>",
            method,
            summary="Change any of title, description, status, assignee (its creator, its"
            " assignee, moderators and above).",
            tags=("tasks",),
            auth=True,
            request_body={"type": "object", "properties": _CHANGES},
            responses={
                200: TASK_SCHEMA,
                400: None,
                401: None,
                403: None,
                404: None,
                422: None,
            },
        )(update)

    @router.route(
        "/api/tasks/<task_id>",
        "DELETE",
        summary="Delete a task (its creator, moderators and above); purged after 7 days.",
        tags=("tasks",),
        auth=True,
        responses={204: None, 401: None, 403: None, 404: None},
    )
    async def delete_task(request: ApiRequest, task_id: str) -> JsonResponse:
        user = await user_of(request)
        await tasks().delete(user, path_id(task_id), request.request_id)
        return JsonResponse(None, 204)
