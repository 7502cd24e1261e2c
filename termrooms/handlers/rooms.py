"""
Rooms and messages: who may see, join, read and post, and the events that follow. The
HTTP routes and the WebSocket gateway both call these, so a bot posting over HTTP and a
browser sending a frame get the same rules and the same events.

A private room is invisible to anyone who is not a member: every call answers
``not_found`` exactly as for a room that does not exist. A direct room is a private room
of two members that a server admin does not see either (domain/roles.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable, Callable

import attrs

from termrooms.cluster.bus import EventBus
from termrooms.cluster.limits import NoRateLimiter, RateLimiter
from termrooms.domain.errors import ApiError
from termrooms.domain.events import (
    Removal,
    RoomEvent,
    clean_body,
    client_msg_id_problem,
    event_json,
)
from termrooms.domain.mentions import written_names
from termrooms.domain.notices import UserNotice
from termrooms.domain.ratelimit import RateLimit
from termrooms.domain.roles import (
    HIERARCHICAL_ACTIONS,
    Action,
    Actor,
    effective_role,
    may,
    may_act_on,
    may_delete_message,
    may_join,
    may_read,
    role_after,
)
from termrooms.domain.rules import (
    REASON_MAX,
    ROOM_NAME,
    TOPIC_MAX,
    check_fields,
    field_error,
    new_room_name_problem,
    single_line_problem,
    username_problem,
)
from termrooms.domain.snowflake import SnowflakeGenerator
from termrooms.domain.wire import encode_json, iso_time
from termrooms.handlers.writer import RoomWriter
from termrooms.storage.blocks import block_txn, blocked_names_txn, unblock_txn
from termrooms.storage.database import Database
from termrooms.storage.moderation import (
    Target,
    delete_message_txn,
    delete_room_txn,
    invite_txn,
    message_author_txn,
    moderate_txn,
    set_topic_txn,
    target_txn,
)
from termrooms.storage.notices import notify_message_txn
from termrooms.storage.rooms import (
    Draft,
    Room,
    Standing,
    add_member_txn,
    create_room_txn,
    edit_message_txn,
    events_after_txn,
    events_before_txn,
    member_count_txn,
    members_txn,
    mentions_page_txn,
    open_direct_txn,
    remove_member_txn,
    room_by_name_txn,
    room_view_txn,
    rooms_for_user_txn,
    set_read_marker_txn,
)
from termrooms.storage.users import User

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


def actor_of(view: RoomView, user: User) -> Actor:
    standing = view.standing
    return Actor(
        room_role=standing.role if standing else None,
        server_admin=user.role == "admin",
        muted=bool(standing and standing.muted),
        banned=bool(standing and standing.banned),
        direct=view.room.kind == "direct",
        blocked=bool(standing and standing.blocked),
    )


def _no_such_message() -> ApiError:
    return ApiError("not_found", "No such message in this room.")


def _not_found(name: Any) -> ApiError:
    return ApiError("not_found", f"No room called {name!r}.")


@attrs.define(eq=False)
class RoomHandler:
    database: Database
    bus: EventBus
    snowflakes: SnowflakeGenerator
    # Usernames with a socket subscribed to each room, on any instance.
    online_in: Callable[[list[int]], Awaitable[dict[int, list[str]]]]
    writer: RoomWriter = attrs.field(
        default=attrs.Factory(lambda self: RoomWriter(self.database), takes_self=True)
    )
    # Told when a user (or everyone) must stop receiving a room, on this instance at once;
    # the others hear of it from the transaction's NOTIFY.
    on_removed: Callable[[Removal], Any] = lambda removal: None
    # Messages per user, over every connection, HTTP and every instance; None: no limit.
    limiter: RateLimiter = attrs.field(factory=NoRateLimiter)
    send_limit: RateLimit | None = None

    # ------------------------------------------------------------------ visibility

    async def _lookup(self, name: Any, user: User | None) -> RoomView:
        """The room and the user's standing in it, before any visibility rule."""
        if not isinstance(name, str) or not ROOM_NAME.match(name):
            raise _not_found(name)
        if user is None:
            room, standing = await self.database.run_autocommit(room_by_name_txn, name), None
        else:
            room, standing = await self.database.run_autocommit(room_view_txn, name, user.id)
        if room is None:
            raise _not_found(name)
        return RoomView(room, standing)

    async def view(self, name: Any, user: User | None) -> RoomView:
        """The room, if this user may know it exists; not_found otherwise."""
        view = await self._lookup(name, user)
        room = view.room
        if user is None:
            if room.visibility != "public":
                raise _not_found(name)
        elif not may_read(actor_of(view, user), public=room.visibility == "public"):
            raise _not_found(name)
        return view

    async def member_view(self, name: Any, user: User, action: Action = Action.READ) -> RoomView:
        """As view(), for what only members may do; ``action`` must be the user's to take."""
        view = await self.view(name, user)
        actor = actor_of(view, user)
        refuse_unless_member(actor, view.room.name)
        if action is Action.SEND and actor.muted:
            raise ApiError("muted", f"You are muted in {view.room.name}.")
        if action is Action.SEND and actor.blocked:
            raise ApiError("forbidden", f"{_peer(view)} does not take direct messages from you.")
        if not may(actor, action):
            raise ApiError("forbidden", f"Your role in {view.room.name} does not allow that.")
        return view

    # ------------------------------------------------------------------ rooms

    async def list_rooms(self, user: User) -> list[dict[str, Any]]:
        rows = await self.database.run_interaction(rooms_for_user_txn, user.id)
        online = await self.online_in([row[0] for row in rows])
        return [
            {
                "id": str(room_id),
                "name": name,
                "kind": kind,
                **({"peer": peer} if kind == "direct" else {}),
                "topic": topic,
                "visibility": visibility,
                "member_count": member_count,
                "online_count": len(online.get(room_id, ())),
                **({} if unread is None else {"unread": unread}),
                "mentions": mentions,
            }
            for (
                room_id,
                name,
                topic,
                visibility,
                _,
                _,
                member_count,
                unread,
                mentions,
                kind,
                peer,
            ) in rows
        ]

    async def create_room(
        self, user: User, name: Any, topic: Any, visibility: Any, request_id: str | None
    ) -> Room:
        check_fields(
            name=new_room_name_problem(name),
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
        online = await self.online_in([room.id])
        shown = {
            "id": str(room.id),
            "name": room.name,
            "kind": room.kind,
            **({"peer": _peer(view)} if room.kind == "direct" else {}),
            "topic": room.topic,
            "visibility": room.visibility,
            "member_count": count,
            "online_count": len(online.get(room.id, ())),
            "created_at": iso_time(room.created_at),
            "last_seq": room.last_seq,
        }
        if view.standing is not None and view.standing.role is not None:
            shown["unread"] = max(0, room.last_seq - view.standing.read_seq)
            shown["role"] = view.standing.role
        return shown

    async def join(self, name: Any, user: User) -> RoomView:
        """Become a member: any public room, or a private one the user was invited to."""
        view = await self._lookup(name, user)
        room, standing = view.room, view.standing
        actor = actor_of(view, user)
        public = room.visibility == "public"
        invited = standing is not None and standing.invited
        if not may_join(actor, public=public, invited=invited):
            # A private room is not there for a banned user, as for anyone who may not
            # see it: "banned" would tell them it still exists (kept invitation or not).
            if actor.banned and public:
                raise ApiError("banned", f"You are banned from {room.name}.")
            raise _not_found(name)
        joined = await self.database.run_interaction(
            add_member_txn, view.room.id, user.id, self.snowflakes.next_id()
        )
        if joined is not None:
            self.publish(joined)
        return await self.view(name, user)

    async def leave(self, name: Any, user: User) -> None:
        view = await self.member_view(name, user, Action.LEAVE)
        left = await self.database.run_interaction(
            remove_member_txn, view.room.id, user.id, self.snowflakes.next_id()
        )
        if left is not None:
            self.publish(left)
        # No longer a member: none of the user's sockets receives the room any more.
        self.on_removed(Removal(view.room.id, user.id, left.seq if left else 0))

    async def members(self, name: Any, user: User) -> list[dict[str, Any]]:
        view = await self.member_view(name, user)
        online = set((await self.online_in([view.room.id])).get(view.room.id, ()))
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
        view = await self.view(name, user)  # members, and an admin, read a private room
        if before is not None and after is not None:
            check_fields(before="give before or after, not both")
        if after is not None:
            events = await self.database.run_autocommit(
                events_after_txn, view.room.id, after, limit + 1
            )
            return Page(events[:limit], len(events) > limit)
        events = await self.database.run_autocommit(
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
        await self._limit_send(user)
        view = await self.member_view(name, user, Action.SEND)
        draft = Draft(
            self.snowflakes.next_id(), user.id, text, client_msg_id, action, written_names(text)
        )
        event, new = await self.writer.post(view.room.id, draft)
        if new:
            self.publish(event)
            mentions = event.data.get("mentions", ())
            if view.room.kind == "direct" or any(name != user.username for name in mentions):
                await self.database.run_autocommit(
                    notify_message_txn, event.id, event.room_id, event.seq, user.id
                )
        return event, new

    async def _limit_send(self, user: User) -> None:
        """Refuse a flood before it costs a lookup or a commit."""
        if self.send_limit is None:
            return
        decision = await self.limiter.hit(f"send:{user.id}", self.send_limit)
        if not decision.allowed:
            raise ApiError(
                "rate_limited",
                f"Too many messages; try again in {decision.retry_after} s.",
                retry_after=decision.retry_after,
            )

    async def mark_read(self, name: Any, user: User, seq: int) -> None:
        view = await self.member_view(name, user)
        await self.database.run_interaction(set_read_marker_txn, view.room.id, user.id, seq)

    # ------------------------------------------------------------------ changing rooms

    async def set_topic(self, name: Any, user: User, topic: Any) -> RoomEvent:
        view = await self.member_view(name, user, Action.SET_TOPIC)  # 404 and 403 first
        if not isinstance(topic, str):
            check_fields(topic="must be text")
        check_fields(topic=single_line_problem(topic, TOPIC_MAX))
        event = await self.database.run_interaction(
            set_topic_txn, view.room.id, topic, user.id, self.snowflakes.next_id()
        )
        self.publish(event)
        return event

    async def delete_room(self, name: Any, user: User, request_id: str | None) -> None:
        view = await self.member_view(name, user, Action.DELETE_ROOM)
        await self.database.run_interaction(delete_room_txn, view.room.id, user.id, request_id)
        self.on_removed(Removal(view.room.id, None, 0))

    async def invite(self, name: Any, user: User, username: Any, request_id: str | None) -> None:
        view = await self.member_view(name, user, Action.INVITE)
        target = await self._target(view, username)
        await self.database.run_interaction(
            invite_txn, view.room.id, target.id, user.id, request_id
        )

    async def edit_message(
        self, name: Any, user: User, message_id: Any, read_body: Callable[[], Any]
    ) -> tuple[RoomEvent, RoomEvent, list[int]]:
        """Its author replaces a message's body: the message as it is now, the stored
        ``message_edited`` (published), and who the edit newly mentions. ``read_body``
        is called once the message is known and the caller its author: a 422 never
        tells anyone about a message they may not edit."""
        view = await self.member_view(name, user)
        if not isinstance(message_id, int) or not 0 < message_id < 2**63:
            raise _no_such_message()
        found = await self.database.run_autocommit(message_author_txn, view.room.id, message_id)
        if found is None or found[1]:
            raise _no_such_message()
        if found[0] != user.id:
            raise ApiError("forbidden", "Only its author edits a message.")
        text = clean_body(read_body())
        edited = await self.database.run_interaction(
            edit_message_txn,
            view.room.id,
            message_id,
            user.id,
            text,
            written_names(text),
            self.snowflakes.next_id(),
        )
        if edited is None:  # deleted meanwhile
            raise _no_such_message()
        self.publish(edited[1])
        return edited

    async def delete_message(self, name: Any, user: User, message_id: Any) -> RoomEvent:
        view = await self.member_view(name, user)
        if not isinstance(message_id, int) or not 0 < message_id < 2**63:
            raise _no_such_message()
        found = await self.database.run_interaction(message_author_txn, view.room.id, message_id)
        if found is None or found[1]:
            raise _no_such_message()
        if not may_delete_message(actor_of(view, user), is_author=found[0] == user.id):
            raise ApiError("forbidden", "Only moderators delete other people's messages.")
        event = await self.database.run_interaction(
            delete_message_txn, view.room.id, message_id, user.id, self.snowflakes.next_id()
        )
        self.publish(event)
        return event

    async def moderate(
        self,
        name: Any,
        user: User,
        action: Any,
        username: Any,
        reason: Any = None,
        duration: timedelta | None = None,
        request_id: str | None = None,
    ) -> RoomEvent:
        """kick, ban, unban, mute, unmute, op or deop: a stored event and an audit row."""
        act = _hierarchical_action(action)
        if reason is not None and (
            not isinstance(reason, str) or single_line_problem(reason, REASON_MAX)
        ):
            check_fields(reason=f"must be one line of at most {REASON_MAX} characters")
        view = await self.member_view(name, user, act)
        target = await self._target(view, username)
        if not may_act_on(
            actor_of(view, user),
            target.room_role,
            target.server_admin,
            act,
            target_is_self=target.id == user.id,
        ):
            raise ApiError("forbidden", f"You may not {act.value} {target.username} here.")
        new_role = None
        if act in (Action.OP, Action.DEOP):
            try:
                new_role = role_after(act, target.room_role).value
            except ValueError as e:
                check_fields(username=str(e))
        elif act is Action.KICK and target.room_role is None:
            raise ApiError("not_found", f"{target.username} is not in {view.room.name}.")
        elif act is Action.UNBAN and not target.banned:
            check_fields(username=f"{target.username} is not banned here")
        elif act is Action.UNMUTE and not target.muted:
            check_fields(username=f"{target.username} is not muted here")
        expires_at = None
        if duration is not None and act in (Action.BAN, Action.MUTE):
            expires_at = datetime.now(timezone.utc) + duration
        event = await self.database.run_interaction(
            moderate_txn,
            view.room.id,
            act.value,
            user.id,
            target.id,
            self.snowflakes.next_id(),
            reason=reason,
            expires_at=expires_at,
            new_role=new_role,
            duration_s=None if duration is None else int(duration.total_seconds()),
            request_id=request_id,
        )
        self.publish(event)
        if act in (Action.KICK, Action.BAN):
            self.on_removed(Removal(view.room.id, target.id, event.seq))
        return event

    async def _target(self, view: RoomView, username: Any) -> Target:
        target = await self.database.run_interaction(target_txn, view.room.id, _username(username))
        if target is None:
            raise ApiError("not_found", f"No user called {username!r}.")
        return target

    # ------------------------------------------------------------------ direct rooms

    async def open_direct(self, user: User, username: Any) -> tuple[RoomView, bool]:
        """The direct room with ``username`` (POST /api/dms, /msg, /query), and whether
        this call created it."""
        ids = (self.snowflakes.next_id(), self.snowflakes.next_id())
        room, joined = await self.database.run_interaction(
            open_direct_txn, self.snowflakes.next_id(), ids, user.id, _username(username)
        )
        for event in joined:
            self.publish(event)
        return await self.view(room.name, user), bool(joined)

    async def block(self, user: User, username: Any) -> None:
        await self.database.run_interaction(block_txn, user.id, _username(username))

    async def unblock(self, user: User, username: Any) -> None:
        await self.database.run_interaction(unblock_txn, user.id, _username(username))

    async def blocks(self, user: User) -> list[str]:
        return await self.database.run_autocommit(blocked_names_txn, user.id)

    async def mentions(
        self, user: User, before_id: int | None, limit: int
    ) -> tuple[list[RoomEvent], bool]:
        """The messages that mention the user (GET /api/mentions), newest first."""
        return await self.database.run_autocommit(mentions_page_txn, user.id, before_id, limit)

    async def notify_frame(self, notice: UserNotice) -> dict[str, Any] | None:
        """The ``notify`` frame of a notice (a mention, a DM, an assignment): the room
        event it points at, read now (None once retention took it)."""
        events = await self.events_after(notice.ref, notice.seq - 1, 1)
        if not events or events[0].seq != notice.seq:
            return None
        event = events[0]
        return {
            "type": "notify",
            "reason": notice.kind,
            "room": event.room_name,
            "event": event_json(event),
        }

    async def events_after(self, room_id: int, after_seq: int, limit: int) -> list[RoomEvent]:
        """For catching a subscriber up: a page of events after ``after_seq``."""
        return await self.database.run_autocommit(events_after_txn, room_id, after_seq, limit)

    def publish(self, event: RoomEvent) -> None:
        """Hand a committed event to its room's subscribers."""
        self.bus.publish(event.room_id, event.seq, encode_event(event))


def refuse_unless_member(actor: Actor, room: str) -> None:
    """``banned`` or ``forbidden`` unless the actor is a member of the room (a server
    admin counts as one), wherever their standing was read."""
    if actor.banned:  # a ban also ends the membership: say which it is
        raise ApiError("banned", f"You are banned from {room}.")
    if effective_role(actor) is None:
        raise ApiError("forbidden", f"Join {room} first.")


def _peer(view: RoomView) -> str | None:
    """A direct room's other member, as the viewer sees them."""
    return view.standing.peer if view.standing is not None else None


def _username(username: Any) -> str:
    """A username given to act on, or a 422 on ``username``."""
    if not isinstance(username, str) or username_problem(username):
        check_fields(username="must be a username")
    return username


def _hierarchical_action(action: Any) -> Action:
    """The moderation action named, or a 422: only these are done to a person."""
    try:
        act = Action(action)
    except ValueError:
        act = None
    if act is None or act not in HIERARCHICAL_ACTIONS:
        raise field_error("action", "must be kick, ban, unban, mute, unmute, op or deop")
    return act
