"""
Rooms and messages: who may see, join, read and post, and the events that follow. The
HTTP routes and the WebSocket gateway both call these, so a bot posting over HTTP and a
browser sending a frame get the same rules and the same events.

A private room is invisible to anyone who is not a member: every call answers
``not_found`` exactly as for a room that does not exist.
"""

from __future__ import annotations

from typing import Any, Callable

import attrs

from termrooms.bus import EventBus
from termrooms.database import Database
from termrooms.errors import ApiError
from termrooms.events import RoomEvent, clean_body, client_msg_id_problem, event_json
from termrooms.rules import ROOM_NAME, TOPIC_MAX, check_fields, single_line_problem
from termrooms.snowflake import SnowflakeGenerator
from termrooms.store.rooms import (
    Room,
    Standing,
    add_member_txn,
    create_room_txn,
    events_after_txn,
    events_before_txn,
    member_count_txn,
    members_txn,
    post_message_txn,
    remove_member_txn,
    room_by_name_txn,
    rooms_for_user_txn,
    set_read_marker_txn,
    standing_txn,
)
from termrooms.store.users import User
from termrooms.wire import encode_json, iso_time

MAX_PAGE = 200


def encode_event(event: RoomEvent) -> bytes:
    """The one encoding of an event that every subscriber receives."""
    return encode_json(event_json(event))


@attrs.frozen
class RoomView:
    """A room as one user may see it."""

    room: Room
    standing: Standing | None


@attrs.frozen
class Page:
    events: list[RoomEvent]
    has_more: bool


def _not_found(name: Any) -> ApiError:
    return ApiError("not_found", f"No room called {name!r}.")


@attrs.define(eq=False)
class RoomHandler:
    database: Database
    bus: EventBus
    snowflakes: SnowflakeGenerator
    online_in: Callable[[int], list[str]]  # usernames with a socket subscribed to a room

    # ------------------------------------------------------------------ visibility

    async def view(self, name: Any, user: User | None) -> RoomView:
        """The room, if this user may know it exists; not_found otherwise."""
        if not isinstance(name, str) or not ROOM_NAME.match(name):
            raise _not_found(name)
        room, standing = await self.database.run_interaction(self._view_txn, name, user)
        if room is None:
            raise _not_found(name)
        if room.visibility == "private" and not (
            standing is not None and standing.role is not None and not standing.banned
        ):
            if not (user is not None and user.role == "admin"):
                raise _not_found(name)
        return RoomView(room, standing)

    @staticmethod
    async def _view_txn(cursor: Any, name: str, user: User | None) -> tuple[Any, Any]:
        room = await room_by_name_txn(cursor, name)
        if room is None or user is None:
            return room, None
        return room, await standing_txn(cursor, room.id, user.id)

    async def member_view(self, name: Any, user: User) -> RoomView:
        """As view(), for calls only members may make (reading a public room is not one)."""
        view = await self.view(name, user)
        if view.standing is None or view.standing.role is None:
            if view.room.visibility == "private":
                raise _not_found(name)
            raise ApiError("forbidden", f"Join {view.room.name} first.")
        return view

    # ------------------------------------------------------------------ rooms

    async def list_rooms(self, user: User) -> list[dict[str, Any]]:
        rows = await self.database.run_interaction(rooms_for_user_txn, user.id)
        return [
            {
                "id": str(room_id),
                "name": name,
                "topic": topic,
                "visibility": visibility,
                "member_count": member_count,
                "online_count": len(self.online_in(room_id)),
                **({} if unread is None else {"unread": unread}),
            }
            for room_id, name, topic, visibility, _, _, member_count, unread in rows
        ]

    async def create_room(
        self, user: User, name: Any, topic: Any, visibility: Any, request_id: str | None
    ) -> Room:
        check_fields(
            name=None
            if isinstance(name, str) and ROOM_NAME.match(name)
            else "must be 1-32 characters of A-Z a-z 0-9 - _",
            topic=None
            if topic is None
            else single_line_problem(topic, TOPIC_MAX)
            if isinstance(topic, str)
            else "must be text",
            visibility=None
            if visibility in ("public", "private")
            else 'must be "public" or "private"',
        )
        room, joined = await self.database.run_interaction(
            create_room_txn,
            self.snowflakes.next_id(),
            self.snowflakes.next_id(),
            name,
            topic or "",
            visibility,
            user.id,
            request_id,
        )
        self.publish(joined)
        return room

    async def room_json(self, view: RoomView) -> dict[str, Any]:
        room = view.room
        count = await self.database.run_interaction(member_count_txn, room.id)
        shown = {
            "id": str(room.id),
            "name": room.name,
            "topic": room.topic,
            "visibility": room.visibility,
            "member_count": count,
            "online_count": len(self.online_in(room.id)),
            "created_at": iso_time(room.created_at),
            "last_seq": room.last_seq,
        }
        if view.standing is not None and view.standing.role is not None:
            shown["unread"] = max(0, room.last_seq - view.standing.read_seq)
            shown["role"] = view.standing.role
        return shown

    async def join(self, name: Any, user: User) -> RoomView:
        """Become a member: any public room, or a private one the user was invited to."""
        view = (
            await self.view(name, user)
            if user.role == "admin"
            else await self._joinable(name, user)
        )
        if view.standing is not None and view.standing.banned:
            raise ApiError("banned", f"You are banned from {view.room.name}.")
        joined = await self.database.run_interaction(
            add_member_txn, view.room.id, user.id, self.snowflakes.next_id()
        )
        if joined is not None:
            self.publish(joined)
        return await self.view(name, user)

    async def _joinable(self, name: Any, user: User) -> RoomView:
        if not isinstance(name, str) or not ROOM_NAME.match(name):
            raise _not_found(name)
        room, standing = await self.database.run_interaction(self._view_txn, name, user)
        if room is None:
            raise _not_found(name)
        if room.visibility == "private" and not (standing.role is not None or standing.invited):
            raise _not_found(name)
        return RoomView(room, standing)

    async def leave(self, name: Any, user: User) -> None:
        view = await self.member_view(name, user)
        left = await self.database.run_interaction(
            remove_member_txn, view.room.id, user.id, self.snowflakes.next_id()
        )
        if left is not None:
            self.publish(left)

    async def members(self, name: Any, user: User) -> list[dict[str, Any]]:
        view = await self.member_view(name, user)
        online = set(self.online_in(view.room.id))
        rows = await self.database.run_interaction(members_txn, view.room.id)
        return [
            {
                "username": username,
                "display_name": display_name,
                "role": role,
                "online": username in online,
                "last_seen_at": iso_time(last_seen_at) if last_seen_at else None,
            }
            for _, username, display_name, role, last_seen_at in rows
        ]

    # ------------------------------------------------------------------ messages

    async def history(
        self, name: Any, user: User | None, before: int | None, after: int | None, limit: int
    ) -> Page:
        """Events oldest first; has_more says whether more lie in the direction of travel."""
        view = await self.view(name, user)
        if view.room.visibility == "private" and (
            view.standing is None or view.standing.role is None
        ):
            raise _not_found(name)
        if before is not None and after is not None:
            check_fields(before="give before or after, not both")
        if after is not None:
            events = await self.database.run_interaction(
                events_after_txn, view.room.id, after, limit + 1
            )
            return Page(events[:limit], len(events) > limit)
        events = await self.database.run_interaction(
            events_before_txn, view.room.id, before, limit + 1
        )
        return Page(events[-limit:] if events else [], len(events) > limit)

    async def post(
        self, name: Any, user: User, body: Any, client_msg_id: Any, action: bool = False
    ) -> tuple[RoomEvent, bool]:
        """Store a message (or find the one this client_msg_id already stored); publish new ones."""
        check_fields(
            client_msg_id=None if client_msg_id is None else client_msg_id_problem(client_msg_id)
        )
        text = clean_body(body)
        view = await self.member_view(name, user)
        if view.standing.muted:
            raise ApiError("muted", f"You are muted in {view.room.name}.")
        event, new = await self.database.run_interaction(
            post_message_txn,
            self.snowflakes.next_id(),
            view.room.id,
            user.id,
            text,
            client_msg_id,
            action,
        )
        if new:
            self.publish(event)
        return event, new

    async def mark_read(self, name: Any, user: User, seq: int) -> None:
        view = await self.member_view(name, user)
        await self.database.run_interaction(set_read_marker_txn, view.room.id, user.id, seq)

    async def events_after(self, room_id: int, after_seq: int, limit: int) -> list[RoomEvent]:
        """For catching a subscriber up: a page of events after ``after_seq``."""
        return await self.database.run_interaction(events_after_txn, room_id, after_seq, limit)

    def publish(self, event: RoomEvent) -> None:
        """Hand a committed event to its room's subscribers."""
        self.bus.publish(event.room_id, event.seq, encode_event(event))
