"""``/api/rooms/*``: thin routes over RoomHandler."""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from typing import Any

from termrooms.domain.events import event_json
from termrooms.domain.mentions import MENTIONS_PAGE_DEFAULT, MENTIONS_PAGE_MAX
from termrooms.domain.rules import check_fields
from termrooms.handlers.rooms import MAX_PAGE, RoomHandler
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

ROOM_SCHEMA = {
    "type": "object",
    "required": ["id", "name", "kind", "topic", "visibility", "member_count", "online_count"],
    "properties": {
        "id": {"type": "string"},
        "name": {"type": "string"},
        "kind": {"enum": ["room", "direct"]},
        "peer": {
            "type": "string",
            "description": "direct rooms: the other member's username",
        },
        "topic": {"type": "string"},
        "visibility": {"enum": ["public", "private"]},
        "member_count": {"type": "integer"},
        "online_count": {"type": "integer"},
        "unread": {"type": "integer"},
        "mentions": {
            "type": "integer",
            "description": "Messages that mention you after your read marker (GET /api/rooms).",
        },
        "role": {"enum": ["owner", "moderator", "member"]},
        "created_at": {"type": "string", "format": "date-time"},
        "last_seq": {"type": "integer"},
    },
}
EVENT_SCHEMA = {
    "type": "object",
    "required": ["type", "id", "room", "seq", "ts", "user"],
    "properties": {
        "type": {"type": "string"},
        "id": {"type": "string"},
        "room": {"type": "string"},
        "seq": {"type": "integer"},
        "ts": {"type": "string", "format": "date-time"},
        "user": {"type": ["string", "null"]},
        "body": {"type": ["string", "null"], "description": "message, message_edited"},
        "mentions": {
            "type": "array",
            "items": {"type": "string"},
            "description": "message, message_edited: the members named as @name",
        },
        "edited_at": {
            "type": ["string", "null"],
            "format": "date-time",
            "description": "message, message_edited: the message's last edit",
        },
    },
}
MEMBER_SCHEMA = {
    "type": "object",
    "required": ["username", "display_name", "role", "online", "last_seen_at"],
    "properties": {
        "username": {"type": "string"},
        "display_name": {"type": "string"},
        "role": {"enum": ["owner", "moderator", "member"]},
        "online": {"type": "boolean"},
        "last_seen_at": {"type": ["string", "null"], "format": "date-time"},
    },
}
MAX_DURATION_S = 3650 * 86400
SEQ_QUERY = {"type": "integer", "minimum": 0}
_USERNAME_BODY = {
    "type": "object",
    "required": ["username"],
    "properties": {"username": {"type": "string", "pattern": "^[A-Za-z0-9._-]{3,32}$"}},
}


def register_room_routes(router: Router, server: Any) -> None:
    """Rooms, membership, history and posting; ``server`` is the TermroomsServer."""

    def rooms() -> RoomHandler:
        return server.get_room_handler()

    user_of = partial(signed_in_user, server)

    async def maybe_user_of(request: ApiRequest) -> Any:
        """The caller when a token is sent; public rooms are readable without one."""
        if request.getHeader(b"authorization") is None:
            return None
        return await user_of(request)

    @router.route(
        "/api/rooms",
        "GET",
        summary="Public rooms and the caller's private and direct rooms, with unread counts.",
        tags=("rooms",),
        auth=True,
        responses={200: {"type": "array", "items": ROOM_SCHEMA}, 401: None},
    )
    async def list_rooms(request: ApiRequest) -> list[dict[str, Any]]:
        return await rooms().list_rooms(await user_of(request))

    @router.route(
        "/api/rooms",
        "POST",
        summary="Create a room; the caller is its owner.",
        tags=("rooms",),
        auth=True,
        request_body={
            "type": "object",
            "required": ["name", "visibility"],
            "properties": {
                "name": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,32}$"},
                "topic": {"type": "string"},
                "visibility": {"enum": ["public", "private"]},
            },
        },
        responses={201: ROOM_SCHEMA, 400: None, 401: None, 409: None, 422: None},
    )
    async def create_room(request: ApiRequest) -> JsonResponse:
        user = await user_of(request)
        body = json_body(request)
        room = await rooms().create_room(
            user, body.get("name"), body.get("topic"), body.get("visibility"), request.request_id
        )
        view = await rooms().view(room.name, user)
        return JsonResponse(await rooms().room_json(view), 201)

    @router.route(
        "/api/dms",
        "POST",
        summary="Open the direct room with a user: 201 when created, 200 when it exists.",
        tags=("direct messages",),
        auth=True,
        request_body=_USERNAME_BODY,
        responses={200: ROOM_SCHEMA, 201: ROOM_SCHEMA, 400: None, 401: None, 403: None,
                   404: None, 422: None},
    )  # fmt: skip
    async def open_direct(request: ApiRequest) -> JsonResponse:
        user = await user_of(request)
        view, created = await rooms().open_direct(user, json_body(request).get("username"))
        return JsonResponse(await rooms().room_json(view), 201 if created else 200)

    @router.route(
        "/api/blocks",
        "GET",
        summary="The users the caller blocks.",
        tags=("direct messages",),
        auth=True,
        responses={
            200: {
                "type": "object",
                "required": ["blocks"],
                "properties": {"blocks": {"type": "array", "items": {"type": "string"}}},
            },
            401: None,
        },
    )
    async def blocks(request: ApiRequest) -> dict[str, Any]:
        return {"blocks": await rooms().blocks(await user_of(request))}

    @router.route(
        "/api/blocks",
        "POST",
        summary="Block a user: no direct room or notify from them, their mentions do not count.",
        tags=("direct messages",),
        auth=True,
        request_body=_USERNAME_BODY,
        responses={204: None, 400: None, 401: None, 404: None, 422: None},
    )
    async def block(request: ApiRequest) -> JsonResponse:
        user = await user_of(request)
        await rooms().block(user, json_body(request).get("username"))
        return JsonResponse(None, 204)

    @router.route(
        "/api/blocks/<username>",
        "DELETE",
        summary="Lift a block (none: 204 too).",
        tags=("direct messages",),
        auth=True,
        responses={204: None, 401: None, 404: None, 422: None},
    )
    async def unblock(request: ApiRequest, username: str) -> JsonResponse:
        await rooms().unblock(await user_of(request), username)
        return JsonResponse(None, 204)

    @router.route(
        "/api/rooms/<name>",
        "GET",
        summary="A room: for its members, or for anyone when it is public.",
        tags=("rooms",),
        responses={200: ROOM_SCHEMA, 401: None, 404: None},
    )
    async def get_room(request: ApiRequest, name: str) -> dict[str, Any]:
        return await rooms().room_json(await rooms().view(name, await maybe_user_of(request)))

    @router.route(
        "/api/rooms/<name>/join",
        "POST",
        summary="Join a public room, or a private one the caller was invited to.",
        tags=("rooms",),
        auth=True,
        responses={200: ROOM_SCHEMA, 401: None, 403: None, 404: None},
    )
    async def join(request: ApiRequest, name: str) -> dict[str, Any]:
        view = await rooms().join(name, await user_of(request))
        return await rooms().room_json(view)

    @router.route(
        "/api/rooms/<name>/leave",
        "POST",
        summary="Leave a room (end the membership).",
        tags=("rooms",),
        auth=True,
        responses={204: None, 401: None, 403: None, 404: None},
    )
    async def leave(request: ApiRequest, name: str) -> JsonResponse:
        await rooms().leave(name, await user_of(request))
        return JsonResponse(None, 204)

    @router.route(
        "/api/rooms/<name>/members",
        "GET",
        summary="The room's members, with their roles and who is online.",
        tags=("rooms",),
        auth=True,
        responses={200: {"type": "array", "items": MEMBER_SCHEMA}, 401: None, 403: None, 404: None},
    )
    async def members(request: ApiRequest, name: str) -> list[dict[str, Any]]:
        return await rooms().members(name, await user_of(request))

    @router.route(
        "/api/mentions",
        "GET",
        summary="The messages that mention you, newest first, from rooms you may still read.",
        tags=("rooms",),
        auth=True,
        query=cursor_query(MENTIONS_PAGE_MAX),
        responses={200: page_schema("events", EVENT_SCHEMA), 401: None, 422: None},
    )
    async def mentions(request: ApiRequest) -> dict[str, Any]:
        user = await user_of(request)
        limit = query_int(request, "limit", 1, MENTIONS_PAGE_MAX)
        events, has_more = await rooms().mentions(
            user, query_int(request, "before", 1), MENTIONS_PAGE_DEFAULT if limit is None else limit
        )
        return {"events": [event_json(event) for event in events], "has_more": has_more}

    @router.route(
        "/api/rooms/<name>/messages",
        "GET",
        summary="History, oldest first: ?before=SEQ or ?after=SEQ, limit 1-200 (default 50).",
        tags=("rooms",),
        query={"before": SEQ_QUERY, "after": SEQ_QUERY, "limit": {"type": "integer"}},
        responses={
            200: {
                "type": "object",
                "required": ["events", "has_more"],
                "properties": {
                    "events": {"type": "array", "items": EVENT_SCHEMA},
                    "has_more": {"type": "boolean"},
                },
            },
            401: None,
            404: None,
            422: None,
        },
    )
    async def history(request: ApiRequest, name: str) -> dict[str, Any]:
        user = await maybe_user_of(request)
        before = query_int(request, "before", 0)
        after = query_int(request, "after", 0)
        limit = query_int(request, "limit", 1, MAX_PAGE)
        page = await rooms().history(name, user, before, after, 50 if limit is None else limit)
        return {"events": [event_json(e) for e in page.events], "has_more": page.has_more}

    @router.route(
        "/api/rooms/<name>/messages",
        "POST",
        summary="Post a message (bots, scripts); a repeated client_msg_id stores nothing new.",
        tags=("rooms",),
        auth=True,
        request_body={
            "type": "object",
            "required": ["body"],
            "properties": {"body": {"type": "string"}, "client_msg_id": {"type": "string"}},
        },
        responses={
            201: EVENT_SCHEMA,
            400: None,
            401: None,
            403: None,
            404: None,
            422: None,
            429: None,
        },
    )
    async def post_message(request: ApiRequest, name: str) -> JsonResponse:
        user = await user_of(request)
        body = json_body(request)
        event, _ = await rooms().post(name, user, body.get("body"), body.get("client_msg_id"))
        # A retry answers exactly as the original did.
        return JsonResponse(event_json(event), 201)

    @router.route(
        "/api/rooms/<name>",
        "PATCH",
        summary="Set the topic (moderator and above).",
        tags=("rooms",),
        auth=True,
        request_body={
            "type": "object",
            "required": ["topic"],
            "properties": {"topic": {"type": "string", "maxLength": 512}},
        },
        responses={200: ROOM_SCHEMA, 401: None, 403: None, 404: None, 422: None},
    )
    async def patch_room(request: ApiRequest, name: str) -> dict[str, Any]:
        user = await user_of(request)
        body = json_body(request)
        if "topic" not in body:
            check_fields(topic="is required")
        await rooms().set_topic(name, user, body["topic"])
        return await rooms().room_json(await rooms().view(name, user))

    @router.route(
        "/api/rooms/<name>",
        "DELETE",
        summary="Delete the room (owner or server admin); its history is kept.",
        tags=("rooms",),
        auth=True,
        responses={204: None, 401: None, 403: None, 404: None},
    )
    async def delete_room(request: ApiRequest, name: str) -> JsonResponse:
        await rooms().delete_room(name, await user_of(request), request.request_id)
        return JsonResponse(None, 204)

    @router.route(
        "/api/rooms/<name>/members",
        "POST",
        summary="Invite a user into the room (moderator and above); they may then join.",
        tags=("rooms",),
        auth=True,
        request_body={
            "type": "object",
            "required": ["username"],
            "properties": {"username": {"type": "string"}},
        },
        responses={204: None, 401: None, 403: None, 404: None, 422: None},
    )
    async def invite_member(request: ApiRequest, name: str) -> JsonResponse:
        user = await user_of(request)
        body = json_body(request)
        await rooms().invite(name, user, body.get("username"), request.request_id)
        return JsonResponse(None, 204)

    @router.route(
        "/api/rooms/<name>/messages/<message_id>",
        "DELETE",
        summary="Delete a message: its author, or a moderator and above. Emits message_deleted.",
        tags=("rooms",),
        auth=True,
        responses={204: None, 401: None, 403: None, 404: None},
    )
    async def delete_message(request: ApiRequest, name: str, message_id: str) -> JsonResponse:
        user = await user_of(request)
        await rooms().delete_message(name, user, path_id(message_id))
        return JsonResponse(None, 204)

    @router.route(
        "/api/rooms/<name>/messages/<message_id>",
        "PATCH",
        summary="Edit your message: replaces its body, stores message_edited; answers the"
        " message as it now is.",
        tags=("rooms",),
        auth=True,
        request_body={
            "type": "object",
            "required": ["body"],
            "properties": {"body": {"type": "string"}},
        },
        responses={200: EVENT_SCHEMA, 400: None, 401: None, 403: None, 404: None, 422: None},
    )
    async def edit_message(request: ApiRequest, name: str, message_id: str) -> dict[str, Any]:
        user = await user_of(request)
        message, _, _ = await rooms().edit_message(
            name, user, path_id(message_id), lambda: json_body(request).get("body")
        )
        return event_json(message)

    @router.route(
        "/api/rooms/<name>/moderation",
        "POST",
        summary="kick, ban, unban, mute, unmute, op or deop a user (moderator and above).",
        tags=("rooms",),
        auth=True,
        request_body={
            "type": "object",
            "required": ["action", "username"],
            "properties": {
                "action": {"enum": ["kick", "ban", "unban", "mute", "unmute", "op", "deop"]},
                "username": {"type": "string"},
                "reason": {"type": "string", "maxLength": 512},
                "duration_s": {"type": "integer", "minimum": 1},
            },
        },
        responses={200: EVENT_SCHEMA, 401: None, 403: None, 404: None, 422: None},
    )
    async def moderate(request: ApiRequest, name: str) -> dict[str, Any]:
        user = await user_of(request)
        body = json_body(request)
        duration_s = body.get("duration_s")
        if duration_s is not None and (
            isinstance(duration_s, bool)
            or not isinstance(duration_s, int)
            or not 1 <= duration_s <= MAX_DURATION_S
        ):
            check_fields(duration_s=f"must be whole seconds from 1 to {MAX_DURATION_S}")
        event = await rooms().moderate(
            name,
            user,
            body.get("action"),
            body.get("username"),
            body.get("reason"),
            None if duration_s is None else timedelta(seconds=duration_s),
            request.request_id,
        )
        return event_json(event)
