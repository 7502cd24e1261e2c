"""
Room events and WebSocket frames as the contract (../shared/spec/protocol.md, WebSocket)
writes them: the message body rules, the JSON of every stored room event, the schema check
of every client frame and the builders of every ephemeral server frame. Written once so the
gateway, the HTTP history routes and the slash commands all put the same shapes on the wire.

Pure logic: no Twisted, no database.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, ClassVar

import attrs

from termrooms.domain.errors import ApiError
from termrooms.domain.rules import ROOM_NAME, check_fields
from termrooms.domain.wire import iso_time, user_json

__all__ = [
    "BODY_MAX",
    "CLIENT_FRAME_TYPES",
    "CLIENT_MSG_ID_MAX",
    "EVENT_TYPES",
    "LINE_MAX",
    "MAX_SEQ",
    "MEMBER_EVENT_TYPES",
    "MODERATION_EVENT_TYPES",
    "PRESENCE_STATUSES",
    "REF_MAX",
    "TOKEN_MAX",
    "AuthFrame",
    "ClientFrame",
    "CommandFrame",
    "JoinFrame",
    "LeaveFrame",
    "PingFrame",
    "ReadFrame",
    "Ref",
    "RoomEvent",
    "SendFrame",
    "TypingFrame",
    "ack_frame",
    "authed_frame",
    "body_problem",
    "clean_body",
    "client_msg_id_problem",
    "error_frame",
    "event_json",
    "frame_ref",
    "history_truncated_frame",
    "joined_frame",
    "parse_client_frame",
    "pong_frame",
    "presence_frame",
    "reply_frame",
    "typing_frame",
    "welcome_frame",
]

BODY_MAX = 4000
CLIENT_MSG_ID_MAX = 128
# A slash command line is not a body: "/me " plus a full body must fit, and the command
# parser applies the finer rules (body rules for /me, and so on) to its arguments.
LINE_MAX = 8192
# Access tokens are a few hundred characters; this only bounds what we bother verifying.
TOKEN_MAX = 4096
REF_MAX = 64
# seq and since are BIGINT in PostgreSQL.
MAX_SEQ = 2**63 - 1

# The room_events_type_check constraint of the newest sql/ delta, name for name.
EVENT_TYPES: frozenset[str] = frozenset(
    {
        "message",
        "message_deleted",
        "member_joined",
        "member_left",
        "topic_changed",
        "member_kicked",
        "member_banned",
        "member_unbanned",
        "member_muted",
        "member_unmuted",
        "role_changed",
        "task_created",
        "task_updated",
        "task_deleted",
        "poll_created",
        "poll_closed",
        "message_edited",
        "retro_started",
        "retro_phase_changed",
        "retro_closed",
    }
)
# Events whose `user` is the member the event is about; nothing else is added.
MEMBER_EVENT_TYPES: frozenset[str] = frozenset({"member_joined", "member_left"})
# Events whose `user` is the moderator and `target` the member acted upon.
MODERATION_EVENT_TYPES: frozenset[str] = frozenset(
    {"member_kicked", "member_banned", "member_unbanned", "member_muted", "member_unmuted"}
)
# What each retro event carries from its data (protocol-v1.1.md, Retrospectives).
_RETRO_EXTRAS: Mapping[str, tuple[str, ...]] = {
    "retro_started": ("retro", "title"),
    "retro_phase_changed": ("retro", "phase"),
    "retro_closed": ("retro", "top"),
}
# Extras a moderation event carries from its data when they are set.
_MODERATION_EXTRAS = ("reason", "duration_s", "expires_at")

PRESENCE_STATUSES: frozenset[str] = frozenset({"online", "offline"})

# A client's correlation value, echoed in reply and error frames.
Ref = str | int | None


# ------------------------------------------------------------------ text rules


def _has_lone_surrogate(text: str) -> bool:
    """JSON can carry "\\ud800"; such a str cannot be encoded to UTF-8 for PostgreSQL."""
    return any("\ud800" <= c <= "\udfff" for c in text)


def _has_c0_control(text: str, allowed: str) -> bool:
    """The contract's rule: no NUL or other C0 control character outside ``allowed``."""
    return any(c < " " and c not in allowed for c in text)


def body_problem(body: object) -> str | None:
    """Why ``body`` is not an acceptable message body, or None when it is."""
    if not isinstance(body, str):
        return "must be a string"
    stripped = body.rstrip()
    if not 1 <= len(stripped) <= BODY_MAX:
        return f"must be 1-{BODY_MAX} characters after stripping trailing whitespace"
    if _has_c0_control(stripped, "\n\t"):
        return "must not contain control characters other than newline and tab"
    if _has_lone_surrogate(stripped):
        return "must be valid Unicode text"
    return None


def clean_body(body: object) -> str:
    """The body as stored: trailing whitespace stripped; a 422 naming ``body`` otherwise."""
    check_fields(body=body_problem(body))
    assert isinstance(body, str)
    return body.rstrip()


def client_msg_id_problem(client_msg_id: object) -> str | None:
    """Why ``client_msg_id`` is not acceptable, or None when it is."""
    if not isinstance(client_msg_id, str) or not 1 <= len(client_msg_id) <= CLIENT_MSG_ID_MAX:
        return f"must be a string of 1-{CLIENT_MSG_ID_MAX} characters"
    if any(unicodedata.category(c) == "Cc" for c in client_msg_id):
        return "must not contain control characters"
    if _has_lone_surrogate(client_msg_id):
        return "must be valid Unicode text"
    return None


def _line_problem(line: object) -> str | None:
    if not isinstance(line, str) or not line.strip() or len(line) > LINE_MAX:
        return f"must be a non-blank string of at most {LINE_MAX} characters"
    if _has_c0_control(line, "\n\t"):
        return "must not contain control characters other than newline and tab"
    if _has_lone_surrogate(line):
        return "must be valid Unicode text"
    return None


def _room_problem(room: object) -> str | None:
    # fullmatch: ROOM_NAME ends in $, which also matches before a trailing newline.
    if not isinstance(room, str) or not ROOM_NAME.fullmatch(room):
        return "must be 1-32 characters of A-Z a-z 0-9 - _"
    return None


def _seq_problem(value: object) -> str | None:
    # bool is an int subclass; floats (even 5.0) are refused so nothing is silently rounded.
    if type(value) is not int or not 0 <= value <= MAX_SEQ:
        return f"must be an integer from 0 to {MAX_SEQ}"
    return None


def _event_id_problem(value: object) -> str | None:
    """An event id as the wire writes ids: a decimal string of a positive 63-bit integer."""
    if (
        not isinstance(value, str)
        or not value.isascii()
        or not value.isdigit()
        or len(value) > 19
        or not 0 < int(value) < 2**63
    ):
        return "must be an event id: a decimal string"
    return None


def _token_problem(token: object) -> str | None:
    if not isinstance(token, str) or not 1 <= len(token) <= TOKEN_MAX:
        return f"must be a string of 1-{TOKEN_MAX} characters"
    return None


def _ref_problem(ref: object) -> str | None:
    if ref is None:
        return None
    # Compare ints numerically: str() of a huge int raises (sys.int_info.str_digits_check).
    if type(ref) is int and -(10 ** (REF_MAX - 1)) < ref < 10**REF_MAX:
        return None
    if isinstance(ref, str) and len(ref) <= REF_MAX and not _has_lone_surrogate(ref):
        return None
    return f"must be a string or integer of at most {REF_MAX} characters"


# ------------------------------------------------------------------ room events


def _aware(instance: Any, attribute: attrs.Attribute, value: datetime) -> None:
    """A naive datetime would be read as local time by iso_time: refuse it early."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{attribute.name} must be timezone-aware")


@attrs.frozen
class RoomEvent:
    """One row of room_events, with the names the wire shows instead of the ids it keeps."""

    id: int
    room_id: int
    room_name: str  # as shown (as created), not as the client typed it
    seq: int
    type: str = attrs.field(validator=attrs.validators.in_(EVENT_TYPES))
    created_at: datetime = attrs.field(validator=_aware)
    user: str | None = None  # author, member or actor username; None for system events
    target_user: str | None = None  # username acted upon (moderation, role_changed)
    target_event_id: int | None = None  # message_deleted: the deleted message's id
    body: str | None = None
    client_msg_id: str | None = None
    action: bool = False
    data: Mapping[str, Any] = attrs.field(factory=dict)  # topic, role, reason, mentions...
    deleted_at: datetime | None = None
    edited_at: datetime | None = None  # a message's last edit (message_edited: its message's)


def _wire_value(value: Any) -> Any:
    return iso_time(value) if isinstance(value, datetime) else value


def _message_text(event: RoomEvent, shown: dict[str, Any]) -> None:
    """A message's body, mentions and last edit; a deleted message keeps its seq (no
    gaps) but never shows its text, nor who it named, again."""
    deleted = event.deleted_at is not None
    shown["body"] = None if deleted else event.body
    shown["mentions"] = [] if deleted else list(event.data.get("mentions", ()))
    shown["edited_at"] = None if event.edited_at is None else iso_time(event.edited_at)


def event_json(event: RoomEvent) -> dict[str, Any]:
    """The event exactly as the contract shows it, the same live, on join and in history."""
    shown: dict[str, Any] = {
        "type": event.type,
        "id": str(event.id),
        "room": event.room_name,
        "seq": event.seq,
        "ts": iso_time(event.created_at),
        "user": event.user,
    }
    if event.type == "message":
        _message_text(event, shown)
        shown["client_msg_id"] = event.client_msg_id
        shown["action"] = event.action
    elif event.type == "message_edited":
        # Read from storage as its message is now: the current body, mentions, edit time.
        target = event.target_event_id
        shown["target"] = None if target is None else str(target)
        _message_text(event, shown)
    elif event.type == "message_deleted":
        target = event.target_event_id
        shown["target"] = None if target is None else str(target)
    elif event.type == "topic_changed":
        shown["topic"] = event.data.get("topic", "")
    elif event.type == "role_changed":
        shown["target"] = event.target_user
        shown["role"] = event.data.get("role")
    elif event.type in ("task_created", "task_updated"):
        shown["task"] = event.data.get("task")
        if event.type == "task_updated":
            shown["changes"] = list(event.data.get("changes", ()))
    elif event.type == "task_deleted":
        shown["target"] = event.data.get("target")
    elif event.type in ("poll_created", "poll_closed"):
        shown["poll"] = event.data.get("poll")
    elif event.type in _RETRO_EXTRAS:
        for key in _RETRO_EXTRAS[event.type]:
            shown[key] = event.data.get(key)
    elif event.type in MODERATION_EVENT_TYPES:
        shown["target"] = event.target_user
        for key in _MODERATION_EXTRAS:
            if event.data.get(key) is not None:
                shown[key] = _wire_value(event.data[key])
    return shown


# ------------------------------------------------------------------ client frames


@attrs.frozen
class JoinFrame:
    """Subscribe to a room; with ``since``, replay every event after that seq first."""

    type: ClassVar[str] = "join"
    room: str
    since: int | None = None
    ref: Ref = None


@attrs.frozen
class LeaveFrame:
    """Unsubscribe; membership stays."""

    type: ClassVar[str] = "leave"
    room: str
    ref: Ref = None


@attrs.frozen
class SendFrame:
    """Post a message; ``client_msg_id`` makes a retry after a reconnect store nothing new."""

    type: ClassVar[str] = "send"
    room: str
    body: str  # already cleaned: trailing whitespace stripped
    client_msg_id: str
    ref: Ref = None


@attrs.frozen
class EditFrame:
    """Replace the body of one's own message ``id`` (v1.1 Editing)."""

    type: ClassVar[str] = "edit"
    room: str
    id: int
    body: str  # already cleaned, as a send's
    ref: Ref = None


@attrs.frozen
class CommandFrame:
    """Run a slash command line in the context of a room, or of none (v1.1: /help, /msg,
    /query, /ignore, /unignore and the others that need no room work without one)."""

    type: ClassVar[str] = "command"
    room: str | None
    line: str
    ref: Ref = None


@attrs.frozen
class TypingFrame:
    """Tell the room's other subscribers that the user is typing; not stored."""

    type: ClassVar[str] = "typing"
    room: str
    ref: Ref = None


@attrs.frozen
class ReadFrame:
    """Store the user's read marker."""

    type: ClassVar[str] = "read"
    room: str
    seq: int
    ref: Ref = None


@attrs.frozen
class PingFrame:
    """Application-level liveness check."""

    type: ClassVar[str] = "ping"
    ref: Ref = None


@attrs.frozen
class AuthFrame:
    """Renew the connection's access token before it expires."""

    type: ClassVar[str] = "auth"
    token: str = attrs.field(repr=False)  # never in a log line
    ref: Ref = None


ClientFrame = (
    JoinFrame
    | LeaveFrame
    | SendFrame
    | EditFrame
    | CommandFrame
    | TypingFrame
    | ReadFrame
    | PingFrame
    | AuthFrame
)

CLIENT_FRAME_TYPES: frozenset[str] = frozenset(
    {"join", "leave", "send", "edit", "command", "typing", "read", "ping", "auth"}
)


def frame_ref(frame: object) -> Ref:
    """The ``ref`` to echo in an error frame, even when the frame itself is refused."""
    if isinstance(frame, Mapping):
        ref = frame.get("ref")
        if _ref_problem(ref) is None:
            return ref
    return None


def parse_client_frame(frame: object) -> ClientFrame:
    """
    Check a decoded frame against its type's schema before anything acts on it.

    Not an object or no string ``type``: ``invalid_json`` (as the gateway answers already);
    an unknown type: ``bad_request``; a missing or wrong field: one ``validation_error``
    naming every such field. Unknown extra fields are ignored.
    """
    if not isinstance(frame, Mapping) or not isinstance(frame.get("type"), str):
        raise ApiError("invalid_json", "A frame is a JSON object with a type.")
    kind = frame["type"]
    if kind not in CLIENT_FRAME_TYPES:
        raise ApiError("bad_request", f"Unknown frame type {kind[:64]!r}.")

    get = frame.get
    problems: dict[str, str | None] = {}
    if kind not in ("ping", "auth") and not (kind == "command" and get("room") is None):
        problems["room"] = _room_problem(get("room"))
    if kind == "join" and get("since") is not None:
        problems["since"] = _seq_problem(get("since"))
    elif kind == "send":
        problems["body"] = body_problem(get("body"))
        problems["client_msg_id"] = client_msg_id_problem(get("client_msg_id"))
    elif kind == "edit":
        problems["id"] = _event_id_problem(get("id"))
        problems["body"] = body_problem(get("body"))
    elif kind == "command":
        problems["line"] = _line_problem(get("line"))
    elif kind == "read":
        problems["seq"] = _seq_problem(get("seq"))
    elif kind == "auth":
        problems["token"] = _token_problem(get("token"))
    problems["ref"] = _ref_problem(get("ref"))
    check_fields(**problems)

    ref = get("ref")
    if kind == "join":
        return JoinFrame(room=frame["room"], since=get("since"), ref=ref)
    if kind == "leave":
        return LeaveFrame(room=frame["room"], ref=ref)
    if kind == "send":
        return SendFrame(
            room=frame["room"],
            body=frame["body"].rstrip(),
            client_msg_id=frame["client_msg_id"],
            ref=ref,
        )
    if kind == "edit":
        body = frame["body"].rstrip()
        return EditFrame(room=frame["room"], id=int(frame["id"]), body=body, ref=ref)
    if kind == "command":
        return CommandFrame(room=get("room"), line=frame["line"], ref=ref)
    if kind == "typing":
        return TypingFrame(room=frame["room"], ref=ref)
    if kind == "read":
        return ReadFrame(room=frame["room"], seq=frame["seq"], ref=ref)
    if kind == "ping":
        return PingFrame(ref=ref)
    return AuthFrame(token=frame["token"], ref=ref)


# ------------------------------------------------------------------ server frames


def welcome_frame(user: Any, server_id: str, heartbeat_s: int) -> dict[str, Any]:
    """The first frame of every connection: who the token belongs to, and the heartbeat."""
    return {
        "type": "welcome",
        "user": user_json(user),
        "server_id": server_id,
        "heartbeat_s": heartbeat_s,
    }


def joined_frame(room: str, topic: str, last_seq: int, online: Iterable[str]) -> dict[str, Any]:
    """Answer to join; any replayed events follow it, so ``last_seq`` is where live starts."""
    return {
        "type": "joined",
        "room": room,
        "topic": topic,
        "last_seq": last_seq,
        "online": list(online),
    }


def ack_frame(client_msg_id: str, event_id: int, seq: int) -> dict[str, Any]:
    """Sent only once the message is committed; a retried send gets the same ack."""
    return {"type": "ack", "client_msg_id": client_msg_id, "id": str(event_id), "seq": seq}


def reply_frame(ref: Ref, ok: bool, text: str) -> dict[str, Any]:
    """Answer to a slash command; ``ref`` is the command frame's, null when it had none."""
    return {"type": "reply", "ref": ref, "ok": ok, "text": text}


def typing_frame(room: str, user: str) -> dict[str, Any]:
    """Relayed to the room's other subscribers; never stored."""
    return {"type": "typing", "room": room, "user": user}


def presence_frame(room: str, user: str, status: str) -> dict[str, Any]:
    """A member of the room came online or went offline."""
    if status not in PRESENCE_STATUSES:
        raise ValueError(f"presence status must be online or offline, not {status!r}")
    return {"type": "presence", "room": room, "user": user, "status": status}


def error_frame(error: ApiError, ref: Ref = None) -> dict[str, Any]:
    """
    The contract's error body as a frame, echoing the failed frame's ``ref``.

    ``retry_after`` (seconds) is added when set: over a WebSocket there is no Retry-After
    header to carry it.
    """
    frame: dict[str, Any] = {"type": "error", **error.body(), "ref": ref}
    if error.retry_after is not None:
        frame["retry_after"] = error.retry_after
    return frame


def history_truncated_frame(room: str, oldest_seq: int) -> dict[str, Any]:
    """Sent instead of a silent gap when ``since`` is older than retention kept."""
    return {"type": "history_truncated", "room": room, "oldest_seq": oldest_seq}


def pong_frame() -> dict[str, Any]:
    """Answer to ping."""
    return {"type": "pong"}


def authed_frame(expires_in: int) -> dict[str, Any]:
    """Answer to auth: seconds until the renewed token expires."""
    return {"type": "authed", "expires_in": expires_in}


@attrs.frozen
class Removal:
    """A user (None: everyone) stops receiving a room once its event ``after_seq`` is out."""

    room_id: int
    user_id: int | None
    after_seq: int

    def payload(self) -> str:
        user = "*" if self.user_id is None else str(self.user_id)
        return f"{self.room_id} {user} {self.after_seq}"

    @classmethod
    def from_payload(cls, payload: str) -> "Removal":
        room, user, seq = payload.split()
        return cls(int(room), None if user == "*" else int(user), int(seq))
