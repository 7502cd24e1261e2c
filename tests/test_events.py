"""Tests for termrooms.domain.events: body rules, room event JSON, client frames, server frames."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from support import third_party_imports
from termrooms.domain import events
from termrooms.domain.errors import ApiError, FieldError
from termrooms.domain.events import (
    EVENT_TYPES,
    MAX_SEQ,
    AuthFrame,
    CommandFrame,
    JoinFrame,
    LeaveFrame,
    PingFrame,
    ReadFrame,
    RoomEvent,
    SendFrame,
    TypingFrame,
    ack_frame,
    authed_frame,
    body_problem,
    clean_body,
    client_msg_id_problem,
    error_frame,
    event_json,
    frame_ref,
    history_truncated_frame,
    joined_frame,
    parse_client_frame,
    pong_frame,
    presence_frame,
    reply_frame,
    typing_frame,
    welcome_frame,
)

TS = datetime(2025, 3, 4, 5, 6, 7, 891234, tzinfo=UTC)
TS_WIRE = "2025-03-04T05:06:07.891Z"
SCHEMA_DELTAS = "sql"


def field_errors(error: ApiError) -> list[str]:
    return [e.field for e in error.validation_errors]


def refused_fields(frame: object) -> list[str]:
    with pytest.raises(ApiError) as caught:
        parse_client_frame(frame)
    assert caught.value.error_code == "validation_error"
    assert caught.value.status == 422
    return field_errors(caught.value)


# ------------------------------------------------------------------ message bodies


@pytest.mark.parametrize(
    "body,stored",
    [
        ("hello", "hello"),
        ("hello  \t\n\r\n  ", "hello"),
        ("  leading kept", "  leading kept"),
        ("line one\nline two\n", "line one\nline two"),
        ("col\tcol", "col\tcol"),
        ("x", "x"),
        ("x" * 4000, "x" * 4000),
        ("x" * 4000 + " " * 500, "x" * 4000),
        ("émoji 🎉 and 中文", "émoji 🎉 and 中文"),
        ("DEL \x7f and C1 \x85x are not C0", "DEL \x7f and C1 \x85x are not C0"),
    ],
)
def test_acceptable_bodies_are_stored_without_trailing_whitespace(body, stored):
    assert body_problem(body) is None
    assert clean_body(body) == stored


def test_a_4001_character_body_is_refused():
    with pytest.raises(ApiError) as caught:
        clean_body("x" * 4001)
    assert caught.value.error_code == "validation_error"
    assert caught.value.validation_errors == (
        FieldError("body", "must be 1-4000 characters after stripping trailing whitespace"),
    )


def test_length_counts_characters_not_bytes():
    assert clean_body("é" * 4000) == "é" * 4000
    assert body_problem("🎉" * 4001)


@pytest.mark.parametrize("body", ["", " ", "\n\n\t ", "\u3000\xa0"])
def test_blank_bodies_are_refused(body):
    with pytest.raises(ApiError) as caught:
        clean_body(body)
    assert field_errors(caught.value) == ["body"]


@pytest.mark.parametrize(
    "body",
    ["nul\x00inside", "bell\x07", "esc \x1b[31mred", "cr\rinside", "a\x0bb", "a\x0cb", "\x00"],
)
def test_control_characters_are_refused(body):
    with pytest.raises(ApiError) as caught:
        clean_body(body)
    assert caught.value.validation_errors == (
        FieldError("body", "must not contain control characters other than newline and tab"),
    )


def test_trailing_control_whitespace_is_stripped_not_stored():
    # \r, \x0b, \x0c and \x1c-\x1f count as whitespace: stripped off the end, refused inside.
    assert clean_body("windows line\r\n") == "windows line"
    assert clean_body("a\x1f\x0b\x0c") == "a"


def test_lone_surrogates_are_refused():
    body = json.loads('"half a pair \\ud83c"')
    with pytest.raises(ApiError) as caught:
        clean_body(body)
    assert caught.value.validation_errors == (FieldError("body", "must be valid Unicode text"),)


@pytest.mark.parametrize("body", [None, 42, 4.2, True, ["hi"], {"text": "hi"}, b"hi"])
def test_non_string_bodies_are_refused(body):
    with pytest.raises(ApiError) as caught:
        clean_body(body)
    assert caught.value.validation_errors == (FieldError("body", "must be a string"),)


@given(st.text(max_size=4100))
def test_every_cleaned_body_passes_the_schema_checks(body):
    """Whatever clean_body lets through, room_events' CHECK constraints accept."""
    try:
        stored = clean_body(body)
    except ApiError as e:
        assert field_errors(e) == ["body"]
        return
    assert 1 <= len(stored) <= 4000
    assert not re.search("[\x00-\x08\x0b-\x1f]", stored)
    stored.encode("utf-8")
    assert stored == stored.rstrip()


@pytest.mark.parametrize("value", ["a", "x" * 128, "uuid-1234-abcd", "with space", "ünï"])
def test_acceptable_client_msg_ids(value):
    assert client_msg_id_problem(value) is None


@pytest.mark.parametrize(
    "value", ["", "x" * 129, "tab\there", "nl\n", "del\x7f", "c1\x85", None, 7, True, ["a"]]
)
def test_unacceptable_client_msg_ids(value):
    assert client_msg_id_problem(value)


# ------------------------------------------------------------------ room events


def make_event(type: str, **fields) -> RoomEvent:
    defaults = dict(
        id=7301234567890123456, room_id=42, room_name="Lobby", seq=17, created_at=TS, user="ada"
    )
    return RoomEvent(type=type, **{**defaults, **fields})


COMMON = {
    "id": "7301234567890123456",
    "room": "Lobby",
    "seq": 17,
    "ts": TS_WIRE,
    "user": "ada",
}


def test_event_types_match_the_schema_constraint():
    """The newest delta's constraint is the one in force."""
    schema = "".join(path.read_text() for path in sorted(Path(SCHEMA_DELTAS).glob("*.sql")))
    pattern = r"room_events_type_check CHECK \(type IN \((.*?)\)\)"
    *_, constraint = re.findall(pattern, schema, re.S)
    assert EVENT_TYPES == set(re.findall(r"'([a-z_]+)'", constraint))


def test_message_event():
    event = make_event("message", body="hello\nworld", client_msg_id="c-1")
    assert event_json(event) == {
        "type": "message",
        **COMMON,
        "body": "hello\nworld",
        "client_msg_id": "c-1",
        "action": False,
        "mentions": [],
        "edited_at": None,
    }


def test_a_message_shows_its_mentions_and_last_edit():
    edited = make_event(
        "message",
        body="ask @Bob",
        data={"mentions": ["bob"]},
        edited_at=datetime(2026, 11, 24, 9, 30, 1, 500000, tzinfo=timezone.utc),
    )
    shown = event_json(edited)
    assert shown["mentions"] == ["bob"] and shown["edited_at"] == "2026-11-24T09:30:01.500Z"


def test_message_edited_shows_its_message_as_it_is_now():
    event = make_event(
        "message_edited",
        target_event_id=42,
        body="fixed",
        data={"mentions": ["ada"]},
        edited_at=datetime(2026, 11, 24, 9, 30, 1, tzinfo=timezone.utc),
    )
    assert event_json(event) == {
        "type": "message_edited",
        **COMMON,
        "target": "42",
        "body": "fixed",
        "mentions": ["ada"],
        "edited_at": "2026-11-24T09:30:01.000Z",
    }
    deleted = attrs.evolve(event, deleted_at=datetime(2026, 11, 24, 10, tzinfo=timezone.utc))
    assert event_json(deleted)["body"] is None


def test_me_action_message_without_client_msg_id():
    event = make_event("message", body="waves", action=True)
    assert event_json(event) == {
        "type": "message",
        **COMMON,
        "body": "waves",
        "client_msg_id": None,
        "action": True,
        "mentions": [],
        "edited_at": None,
    }


def test_deleted_message_keeps_its_seq_but_not_its_text():
    event = make_event(
        "message", body="oops @bob", client_msg_id="c-2", deleted_at=TS, data={"mentions": ["bob"]}
    )
    assert event_json(event) == {
        "type": "message",
        **COMMON,
        "body": None,
        "client_msg_id": "c-2",
        "action": False,
        "mentions": [],
        "edited_at": None,
    }


def test_message_deleted_event_targets_the_message_id_as_a_string():
    event = make_event("message_deleted", target_event_id=2**63 - 1)
    assert event_json(event) == {
        "type": "message_deleted",
        **COMMON,
        "target": "9223372036854775807",
    }


@pytest.mark.parametrize("type", ["member_joined", "member_left"])
def test_member_joined_and_left_carry_only_the_common_fields(type):
    event = make_event(type, data={"ignored": True})
    assert event_json(event) == {"type": type, **COMMON}


def test_topic_changed_event():
    event = make_event("topic_changed", data={"topic": "welcome all"})
    assert event_json(event) == {"type": "topic_changed", **COMMON, "topic": "welcome all"}


def test_topic_cleared_is_an_empty_topic():
    assert event_json(make_event("topic_changed", data={"topic": ""}))["topic"] == ""


def test_role_changed_event():
    event = make_event("role_changed", target_user="bob", data={"role": "moderator"})
    assert event_json(event) == {
        "type": "role_changed",
        **COMMON,
        "target": "bob",
        "role": "moderator",
    }


@pytest.mark.parametrize(
    "type",
    ["member_kicked", "member_banned", "member_unbanned", "member_muted", "member_unmuted"],
)
def test_moderation_events_without_extras(type):
    event = make_event(type, target_user="mallory")
    assert event_json(event) == {"type": type, **COMMON, "target": "mallory"}


def test_kick_carries_its_reason():
    event = make_event("member_kicked", target_user="mallory", data={"reason": "spam"})
    assert event_json(event) == {
        "type": "member_kicked",
        **COMMON,
        "target": "mallory",
        "reason": "spam",
    }


def test_mute_carries_duration_and_expiry():
    expires = TS + timedelta(minutes=10)
    event = make_event(
        "member_muted",
        target_user="mallory",
        data={"reason": None, "duration_s": 600, "expires_at": expires, "internal": "x"},
    )
    assert event_json(event) == {
        "type": "member_muted",
        **COMMON,
        "target": "mallory",
        "duration_s": 600,
        "expires_at": "2025-03-04T05:16:07.891Z",
    }


def test_expiry_read_back_from_jsonb_as_a_string_is_passed_through():
    event = make_event(
        "member_banned",
        target_user="mallory",
        data={"reason": "flood", "duration_s": 86400, "expires_at": "2025-03-05T05:06:07.891Z"},
    )
    assert event_json(event) == {
        "type": "member_banned",
        **COMMON,
        "target": "mallory",
        "reason": "flood",
        "duration_s": 86400,
        "expires_at": "2025-03-05T05:06:07.891Z",
    }


def test_system_event_has_a_null_user():
    assert event_json(make_event("member_left", user=None))["user"] is None


def test_every_event_type_is_rendered_and_is_json():
    for type in EVENT_TYPES:
        shown = event_json(make_event(type, body="b", target_user="t", target_event_id=1))
        assert list(shown)[:6] == ["type", "id", "room", "seq", "ts", "user"]
        assert json.loads(json.dumps(shown)) == shown


@pytest.mark.parametrize(
    "moment,wire",
    [
        (datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC), "2025-01-02T03:04:05.000Z"),
        (datetime(2025, 1, 2, 3, 4, 5, 999999, tzinfo=UTC), "2025-01-02T03:04:05.999Z"),
        (
            datetime(2025, 1, 2, 5, 4, 5, 120000, tzinfo=timezone(timedelta(hours=2))),
            "2025-01-02T03:04:05.120Z",
        ),
    ],
)
def test_ts_is_utc_with_milliseconds_and_z(moment, wire):
    ts = event_json(make_event("member_joined", created_at=moment))["ts"]
    assert ts == wire
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", ts)


def test_naive_times_are_refused():
    with pytest.raises(ValueError):
        make_event("member_joined", created_at=datetime(2025, 1, 2, 3, 4, 5))


def test_unknown_event_types_are_refused():
    with pytest.raises(ValueError):
        make_event("member_teleported")


def test_room_event_is_frozen():
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        make_event("member_joined").seq = 18


# ------------------------------------------------------------------ client frames


@pytest.mark.parametrize(
    "frame,parsed",
    [
        ({"type": "join", "room": "Lobby"}, JoinFrame(room="Lobby")),
        ({"type": "join", "room": "lobby", "since": 0}, JoinFrame(room="lobby", since=0)),
        ({"type": "join", "room": "a", "since": None}, JoinFrame(room="a")),
        ({"type": "join", "room": "x" * 32, "since": MAX_SEQ}, JoinFrame("x" * 32, MAX_SEQ)),
        ({"type": "leave", "room": "dev-ops_2"}, LeaveFrame(room="dev-ops_2")),
        (
            {"type": "send", "room": "Lobby", "body": "hi  \n", "client_msg_id": "c-1"},
            SendFrame(room="Lobby", body="hi", client_msg_id="c-1"),
        ),
        (
            {"type": "command", "room": "Lobby", "line": "/topic hello", "ref": 3},
            CommandFrame(room="Lobby", line="/topic hello", ref=3),
        ),
        ({"type": "typing", "room": "Lobby"}, TypingFrame(room="Lobby")),
        ({"type": "read", "room": "Lobby", "seq": 0}, ReadFrame(room="Lobby", seq=0)),
        ({"type": "read", "room": "Lobby", "seq": MAX_SEQ}, ReadFrame("Lobby", MAX_SEQ)),
        ({"type": "ping"}, PingFrame()),
        ({"type": "auth", "token": "eyJ.a.b"}, AuthFrame(token="eyJ.a.b")),
    ],
)
def test_valid_frames_parse(frame, parsed):
    assert parse_client_frame(frame) == parsed
    assert parse_client_frame(frame).type == frame["type"]


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "join", "room": "Lobby"},
        {"type": "leave", "room": "Lobby"},
        {"type": "send", "room": "Lobby", "body": "hi", "client_msg_id": "c"},
        {"type": "command", "room": "Lobby", "line": "/who"},
        {"type": "typing", "room": "Lobby"},
        {"type": "read", "room": "Lobby", "seq": 3},
        {"type": "ping"},
        {"type": "auth", "token": "t"},
    ],
)
@pytest.mark.parametrize("ref", ["req-1", "", 0, -5, 10**63, "r" * 64])
def test_ref_is_carried_on_every_frame_type(frame, ref):
    assert parse_client_frame({**frame, "ref": ref}).ref == ref


@pytest.mark.parametrize("ref", [True, 1.5, {"a": 1}, ["a"], "r" * 65, 10**64, -(10**63)])
def test_bad_refs_are_refused(ref):
    assert refused_fields({"type": "ping", "ref": ref}) == ["ref"]


def test_extra_unknown_fields_are_ignored():
    frame = {"type": "typing", "room": "Lobby", "extra": {"deep": [1, 2]}, "user": "admin"}
    assert parse_client_frame(frame) == TypingFrame(room="Lobby")


BAD_ROOMS = [
    None,
    "",
    "x" * 33,
    "has space",
    "dot.ted",
    "slash/room",
    "Lobby\n",
    "émile",
    "Ｌobby",
    42,
    True,
    ["Lobby"],
    {"name": "Lobby"},
]


@pytest.mark.parametrize(
    ("type", "room"),
    [
        (type, room)
        for type in ["join", "leave", "command", "typing", "read", "send"]
        for room in BAD_ROOMS
        if not (type == "command" and room is None)  # v1.1: a command may name no room
    ],
)
def test_bad_room_names_are_refused(type, room):
    frame = {"type": type, "room": room, "body": "b", "client_msg_id": "c", "line": "/x", "seq": 1}
    assert refused_fields(frame) == ["room"]


@pytest.mark.parametrize("type", ["join", "leave", "typing", "read", "send"])
def test_room_is_required(type):
    frame = {"type": type, "body": "b", "client_msg_id": "c", "line": "/x", "seq": 1}
    assert refused_fields(frame) == ["room"]


@pytest.mark.parametrize("frame", [{}, {"room": None}])
def test_a_command_frame_may_name_no_room(frame):
    """v1.1 Direct messages: /msg, /query, /ignore, /unignore and /help work without one."""
    parsed = parse_client_frame({"type": "command", "line": "/help", **frame})
    assert parsed == CommandFrame(room=None, line="/help")


HOSTILE_SEQS = [-1, MAX_SEQ + 1, 10**100, 1.0, 2.5, float("inf"), float("nan"), True, False]
HOSTILE_SEQS += ["5", [5], {"seq": 5}]


@pytest.mark.parametrize("since", HOSTILE_SEQS)
def test_bad_since_is_refused(since):
    assert refused_fields({"type": "join", "room": "Lobby", "since": since}) == ["since"]


@pytest.mark.parametrize("seq", [*HOSTILE_SEQS, None])
def test_bad_read_seq_is_refused(seq):
    assert refused_fields({"type": "read", "room": "Lobby", "seq": seq}) == ["seq"]


def test_read_seq_is_required():
    assert refused_fields({"type": "read", "room": "Lobby"}) == ["seq"]


def test_huge_json_integers_are_refused_not_crashed_on():
    frame = json.loads('{"type":"read","room":"Lobby","seq":' + "9" * 4000 + "}")
    assert refused_fields(frame) == ["seq"]


@pytest.mark.parametrize(
    "body,client_msg_id,fields",
    [
        (None, "c", ["body"]),
        ("   ", "c", ["body"]),
        ("x" * 4001, "c", ["body"]),
        ("nul\x00", "c", ["body"]),
        ({"text": "hi"}, "c", ["body"]),
        ("hi", None, ["client_msg_id"]),
        ("hi", "", ["client_msg_id"]),
        ("hi", "x" * 129, ["client_msg_id"]),
        ("hi", 12345, ["client_msg_id"]),
        ("hi", "new\nline", ["client_msg_id"]),
        (None, None, ["body", "client_msg_id"]),
    ],
)
def test_bad_send_frames_name_every_bad_field(body, client_msg_id, fields):
    frame = {"type": "send", "room": "Lobby", "body": body, "client_msg_id": client_msg_id}
    assert refused_fields(frame) == fields


def test_send_requires_client_msg_id():
    assert refused_fields({"type": "send", "room": "Lobby", "body": "hi"}) == ["client_msg_id"]


def test_every_bad_field_is_named_in_one_error():
    frame = {"type": "send", "room": "no spaces", "body": 1, "client_msg_id": 2, "ref": 1.5}
    assert refused_fields(frame) == ["room", "body", "client_msg_id", "ref"]


@pytest.mark.parametrize(
    "line", [None, "", "   ", 7, ["/who"], "x" * 8193, "/topic bell\x07", "/me \x00"]
)
def test_bad_command_lines_are_refused(line):
    assert refused_fields({"type": "command", "room": "Lobby", "line": line}) == ["line"]


def test_command_line_may_span_lines():
    frame = {"type": "command", "room": "Lobby", "line": "/me waves\n\tand bows"}
    assert parse_client_frame(frame).line == "/me waves\n\tand bows"


@pytest.mark.parametrize("token", [None, "", 42, {"t": 1}, "x" * 4097])
def test_bad_auth_tokens_are_refused(token):
    assert refused_fields({"type": "auth", "token": token}) == ["token"]


def test_auth_frame_never_shows_its_token():
    assert "secret-token" not in repr(parse_client_frame({"type": "auth", "token": "secret-token"}))


@pytest.mark.parametrize("type", ["subscribe", "", "JOIN", "welcome", "error", "x" * 10000])
def test_unknown_frame_types_are_a_bad_request(type):
    with pytest.raises(ApiError) as caught:
        parse_client_frame({"type": type, "room": "Lobby"})
    assert caught.value.error_code == "bad_request"
    assert len(caught.value.detail) < 200


@pytest.mark.parametrize(
    "frame", [None, [], "ping", 42, {"room": "Lobby"}, {"type": None}, {"type": 1}, {"type": []}]
)
def test_frames_that_are_not_objects_with_a_type_are_invalid_json(frame):
    with pytest.raises(ApiError) as caught:
        parse_client_frame(frame)
    assert caught.value.error_code == "invalid_json"


def test_ref_of_a_refused_frame_can_still_be_echoed():
    frame = {"type": "read", "room": "Lobby", "seq": -1, "ref": "r-9"}
    with pytest.raises(ApiError):
        parse_client_frame(frame)
    assert frame_ref(frame) == "r-9"


@pytest.mark.parametrize("frame", [None, [], {"type": "ping"}, {"ref": 1.5}, {"ref": "r" * 65}])
def test_frame_ref_is_none_when_there_is_nothing_safe_to_echo(frame):
    assert frame_ref(frame) is None


@pytest.mark.parametrize("type", sorted(events.CLIENT_FRAME_TYPES))
def test_parsing_never_raises_anything_but_api_errors_on_hostile_frames(type):
    hostile = [None, True, -1, 2**70, 1e308, "", "x" * 100000, [], {}, {"$ne": 1}, "\ud800"]
    for value in hostile:
        frame = {k: value for k in ("room", "since", "body", "client_msg_id", "line", "seq")}
        frame.update(type=type, token=value, ref=value)
        try:
            parse_client_frame(frame)
        except ApiError as e:
            assert e.error_code == "validation_error"


# ------------------------------------------------------------------ server frames


@attrs.frozen
class User:
    id: int
    username: str
    display_name: str
    role: str
    created_at: datetime


def test_welcome_frame():
    user = User(99, "ada", "Ada L.", "admin", TS)
    assert welcome_frame(user, "node-1", 30) == {
        "type": "welcome",
        "user": {
            "id": "99",
            "username": "ada",
            "display_name": "Ada L.",
            "role": "admin",
            "created_at": TS_WIRE,
        },
        "server_id": "node-1",
        "heartbeat_s": 30,
    }


def test_joined_frame():
    assert joined_frame("Lobby", "hi", 12, iter(["ada", "bob"])) == {
        "type": "joined",
        "room": "Lobby",
        "topic": "hi",
        "last_seq": 12,
        "online": ["ada", "bob"],
    }


def test_ack_frame_sends_the_id_as_a_string():
    assert ack_frame("c-1", 7301234567890123456, 5) == {
        "type": "ack",
        "client_msg_id": "c-1",
        "id": "7301234567890123456",
        "seq": 5,
    }


def test_reply_frame():
    assert reply_frame("r1", True, "Topic set.") == {
        "type": "reply",
        "ref": "r1",
        "ok": True,
        "text": "Topic set.",
    }
    assert reply_frame(None, False, "Usage: /kick USER [REASON]")["ref"] is None


def test_typing_frame():
    assert typing_frame("Lobby", "ada") == {"type": "typing", "room": "Lobby", "user": "ada"}


@pytest.mark.parametrize("status", ["online", "offline"])
def test_presence_frame(status):
    assert presence_frame("Lobby", "ada", status) == {
        "type": "presence",
        "room": "Lobby",
        "user": "ada",
        "status": status,
    }


def test_presence_frame_refuses_other_statuses():
    with pytest.raises(ValueError):
        presence_frame("Lobby", "ada", "away")


def test_error_frame_echoes_the_ref():
    assert error_frame(ApiError("muted", "You are muted here."), "r-2") == {
        "type": "error",
        "detail": "You are muted here.",
        "error_code": "muted",
        "ref": "r-2",
    }


def test_error_frame_without_ref():
    assert error_frame(ApiError("not_found", "No such room."))["ref"] is None


def test_error_frame_lists_validation_errors():
    with pytest.raises(ApiError) as caught:
        parse_client_frame({"type": "read", "room": "Lobby", "seq": -1, "ref": 4})
    assert error_frame(caught.value, 4) == {
        "type": "error",
        "detail": "seq must be an integer from 0 to 9223372036854775807",
        "error_code": "validation_error",
        "validation_errors": [
            {"field": "seq", "message": "must be an integer from 0 to 9223372036854775807"}
        ],
        "ref": 4,
    }


def test_error_frame_carries_retry_after_when_rate_limited():
    error = ApiError("rate_limited", "Slow down.", retry_after=3)
    assert error_frame(error, None) == {
        "type": "error",
        "detail": "Slow down.",
        "error_code": "rate_limited",
        "ref": None,
        "retry_after": 3,
    }


def test_history_truncated_frame():
    assert history_truncated_frame("Lobby", 501) == {
        "type": "history_truncated",
        "room": "Lobby",
        "oldest_seq": 501,
    }


def test_pong_frame():
    assert pong_frame() == {"type": "pong"}


def test_authed_frame():
    assert authed_frame(900) == {"type": "authed", "expires_in": 900}


# ------------------------------------------------------------------ purity


def test_module_is_pure():
    assert third_party_imports(events) == {
        "attrs",
        "termrooms.domain.errors",
        "termrooms.domain.rules",
        "termrooms.domain.wire",
    }
