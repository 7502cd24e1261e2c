"""
Hypothesis strategies for everything a client can put on the wire: every WebSocket client
frame of the contract and every JSON body of the HTTP routes, each as valid, almost-valid
and hostile values, and the bytes that carry them (duplicate keys, 10,000-deep nesting,
NaN and 1e309, invalid UTF-8, frames over the size limit).

Values are plain JSON-able Python plus three wrappers the encoder understands: ``Raw``
(JSON text put in as it is), ``Pairs`` (an object whose keys may repeat) and ``Live``
(a value only the running test knows, such as the user's access token).
"""

from __future__ import annotations

import json
import math
from typing import Any
from urllib.parse import quote

import attrs
from hypothesis import strategies as st

from termrooms.domain.events import CLIENT_FRAME_TYPES

# ------------------------------------------------------------------ the encoder


@attrs.frozen
class Raw:
    """JSON text put into the document as it is (deep nesting, bare NaN, 1e309)."""

    text: str


@attrs.frozen
class Pairs:
    """A JSON object written pair by pair, so a key may come twice."""

    items: tuple[tuple[str, Any], ...]


@attrs.frozen
class Live:
    """A value of the running test (an access token, a refresh token), put in at send time."""

    name: str


@attrs.frozen
class Payload:
    """What goes on the wire: a text frame or body, or raw bytes (possibly not UTF-8)."""

    value: Any = None  # encoded with encode(), unless data is set
    data: bytes | None = None  # sent as it is
    binary: bool = False  # a binary WebSocket frame rather than a text one


MISSING = object()  # a field left out of an object


def encode(value: Any, live: dict[str, str], ascii_only: bool = True) -> str:
    """JSON text of ``value``; floats JSON has no word for are written as Python reads them."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, Live):
        return json.dumps(live[value.name])
    if isinstance(value, Pairs):
        return (
            "{"
            + ",".join(
                f"{json.dumps(k, ensure_ascii=ascii_only)}:{encode(v, live, ascii_only)}"
                for k, v in value.items
            )
            + "}"
        )
    if isinstance(value, dict):
        return encode(Pairs(tuple(value.items())), live, ascii_only)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(encode(v, live, ascii_only) for v in value) + "]"
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("1e309" if value > 0 else "-1e309")
    return json.dumps(value, ensure_ascii=ascii_only)


def payload_bytes(payload: Payload, live: dict[str, str]) -> bytes:
    if payload.data is not None:
        return payload.data
    # surrogatepass: a lone surrogate in a non-ASCII encoding becomes invalid UTF-8 bytes.
    return encode(payload.value, live, ascii_only=False).encode("utf-8", "surrogatepass")


def resolved(value: Any, live: dict[str, str]) -> Any:
    """``value`` with every Live replaced, as the server will read it (for the oracle)."""
    if isinstance(value, Live):
        return live[value.name]
    if isinstance(value, Pairs):
        return {k: resolved(v, live) for k, v in value.items}
    if isinstance(value, dict):
        return {k: resolved(v, live) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [resolved(v, live) for v in value]
    return value


# ------------------------------------------------------------------ hostile values

DEEP = 10_000
HUGE_NUMBERS = [2**63, 2**63 - 1, -(2**63) - 1, 2**64, 10**30, -1, 0, 1.5, 5.0, -0.0, 1e-300]
NON_FINITE = [math.inf, -math.inf, math.nan]
HOSTILE_TEXTS = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\x07\x08\x1b[31mred",
    "\r\n",
    "\u202eevil\u202c",  # right-to-left override
    "a\u200bb\u200d\u2060",  # zero-width characters
    "\ufeff",
    "\ud800",  # lone surrogates
    "x\udfffy",
    "'; DROP TABLE users; --",
    "' OR '1'='1",
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "%s%n%x{0}",
    "../../etc/passwd",
    "lobby\n",
    "LOBBY",
    "ünïcödé 😀",
    "\u0000\u0085\u2028\u2029",
    "null",
    "0",
    "x" * 5000,
]
LONG_TEXT = "y" * 70_000  # over the 64 KiB frame and body limits


def deep_nesting(depth: int = DEEP) -> Raw:
    return Raw("[" * depth + "]" * depth)


def deep_objects(depth: int = DEEP) -> Raw:
    return Raw('{"a":' * depth + "1" + "}" * depth)


hostile_texts = st.sampled_from(HOSTILE_TEXTS) | st.text(max_size=40)
numbers = (
    st.sampled_from(HUGE_NUMBERS + NON_FINITE)
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.just(Raw("1e309"))
    | st.just(Raw("-0"))
)
scalars = st.none() | st.booleans() | numbers | hostile_texts
hostile_values = st.one_of(
    scalars,
    st.lists(scalars, max_size=4),
    st.dictionaries(hostile_texts, scalars, max_size=3),
    st.sampled_from([deep_nesting(), deep_objects(), Raw("[" * 100 + "]" * 100)]),
    st.just(LONG_TEXT),
)


def field(valid: st.SearchStrategy, almost: st.SearchStrategy, optional: bool = False):
    """A field's value: mostly valid, else almost valid, hostile, or missing."""
    choices = [valid, valid, almost, hostile_values, st.just(MISSING)]
    if optional:
        choices.append(st.just(MISSING))
    return st.one_of(*choices)


@st.composite
def json_object(draw: Any, fields: dict[str, st.SearchStrategy]) -> Any:
    """An object of these fields, perhaps with extra fields and a key given twice."""
    items = [(k, v) for k, v in ((k, draw(s)) for k, s in fields.items()) if v is not MISSING]
    items += list(draw(st.dictionaries(hostile_texts, hostile_values, max_size=2)).items())
    if items and draw(st.integers(0, 7)) == 0:  # duplicate key: JSON parsers keep the last
        key = draw(st.sampled_from([k for k, _ in items]))
        items.append((key, draw(hostile_values)))
    items = draw(st.permutations(items))
    return Pairs(tuple(items))


# ------------------------------------------------------------------ shared field values

ROOMS = ["lobby", "LOBBY", "fuzz-private", "no-such-room", "Fuzz_New"]
USERNAMES = ["fuzzer", "victim", "FUZZER", "admin-fuzz", "nobody-here"]
safe_text = st.text(
    st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from("\n\t"),
    min_size=1,
    max_size=60,
).filter(lambda s: s.strip())
room_names = st.sampled_from(ROOMS) | st.from_regex(r"\A[A-Za-z0-9_-]{1,32}\Z")
almost_room_names = st.sampled_from(
    ["", "x" * 33, "lob by", "lobby\n", "lobb\u0443", "lobby/..", "lobby%00", "🙂"]
)
usernames = st.sampled_from(USERNAMES) | st.from_regex(r"\A[A-Za-z0-9._-]{3,32}\Z")
almost_usernames = st.sampled_from(["ab", "x" * 33, "fuzz er", "fuzzer\n", "fuzz\u0435r"])
seqs = st.integers(0, 2**63 - 1) | st.sampled_from([0, 1, 2, 3])
almost_seqs = st.sampled_from([-1, 2**63, 2**64, 1.0, 2.5, True, False, "5", None, math.inf])
bodies = safe_text | st.sampled_from(["hello", "tab\there", "x" * 4000, "a\nb\n\n   "])
almost_bodies = st.sampled_from(["", " \n\t", "x" * 4001, "a\x00b", "bell\x07", "\ud800"])
client_msg_ids = st.text(
    st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=128
) | st.uuids().map(str)
almost_client_msg_ids = st.sampled_from(["", "x" * 129, "a\x01", "\ud800", "tab\t"])
refs = st.text(max_size=64) | st.integers(-(10**63) + 1, 10**64 - 1) | st.none()
almost_refs = st.sampled_from([10**64, -(10**63), "r" * 65, 1.5, True, [], {}, "\ud800"])
durations = st.sampled_from(
    ["10m", "1h30m", "7d", "1s", "0s", "-1m", "1e9d", "99999999999999999999w"]
)
event_ids = st.sampled_from(["1", "0", "-1", "99999999999999999999999", "abc", "1e3", str(2**63)])

command_words = st.one_of(
    room_names,
    usernames,
    durations,
    event_ids,
    st.sampled_from(["add", "start", "done", "reopen", "assign", "del", "mine", "@bob", "@"]),
    st.sampled_from(["new", "-m", "vote", "close", "|", "| a | b", "0", "11"]),
    hostile_texts.filter(lambda s: s.strip() and "\n" not in s and " " not in s),
)
COMMANDS = [
    "/help", "/join", "/part", "/me", "/topic", "/who", "/rooms", "/nick", "/invite",
    "/kick", "/ban", "/unban", "/mute", "/unmute", "/op", "/deop", "/delete", "/todo", "/poll",
    "/nope", "",
]  # fmt: skip


@st.composite
def command_lines(draw: Any) -> str:
    words = draw(st.lists(command_words, max_size=3))
    return " ".join([draw(st.sampled_from(COMMANDS)), *words]).strip() or "/help"


almost_lines = st.sampled_from(["", "   ", "/" + "x" * 8192, "/me a\x00b", "/topic \ud800"])
tokens = st.just(Live("access_token")) | st.sampled_from(
    ["", "x" * 4097, "not.a.jwt", "eyJhbGciOiJub25lIn0.e30.", Live("other_token")]
)

# ------------------------------------------------------------------ WebSocket frames

_FRAME_FIELDS: dict[str, dict[str, st.SearchStrategy]] = {
    "join": {"room": field(room_names, almost_room_names), "since": field(seqs, almost_seqs, True)},
    "leave": {"room": field(room_names, almost_room_names)},
    "send": {
        "room": field(room_names, almost_room_names),
        "body": field(bodies, almost_bodies),
        "client_msg_id": field(client_msg_ids, almost_client_msg_ids),
    },
    "edit": {
        "room": field(room_names, almost_room_names),
        "id": field(st.from_regex(r"\A[1-9][0-9]{0,18}\Z"), event_ids | almost_seqs),
        "body": field(bodies, almost_bodies),
    },
    "command": {
        "room": field(room_names, almost_room_names),
        "line": field(command_lines(), almost_lines),
    },
    "typing": {"room": field(room_names, almost_room_names)},
    "read": {"room": field(room_names, almost_room_names), "seq": field(seqs, almost_seqs)},
    "ping": {},
    "auth": {"token": field(tokens, st.sampled_from(["", None, 42]))},
}
assert set(_FRAME_FIELDS) == CLIENT_FRAME_TYPES  # every frame of the contract is fuzzed


def client_frame(kind: str) -> st.SearchStrategy:
    fields = {"type": st.just(kind), **_FRAME_FIELDS[kind], "ref": field(refs, almost_refs, True)}
    return json_object(fields)


known_frames = st.sampled_from(sorted(CLIENT_FRAME_TYPES)).flatmap(client_frame)
unknown_frames = json_object(
    {
        "type": st.sampled_from(["JOIN", "", "welcome", "pong", "error", "__proto__", "x" * 500])
        | hostile_texts,
        "room": field(room_names, almost_room_names, True),
        "ref": field(refs, almost_refs, True),
    }
)
not_objects = st.one_of(
    scalars,
    st.lists(hostile_values, max_size=3),
    st.just(Pairs(())),  # {} : no type
    json_object({"type": hostile_values.filter(lambda v: not isinstance(v, str))}),
    st.sampled_from([deep_nesting(), deep_objects()]),
)
BROKEN_TEXTS = [
    b"",
    b"{",
    b'{"type":"ping"',
    b'{"type":"ping"}}',
    b'\xef\xbb\xbf{"type":"ping"}',  # a byte order mark
    b'{"type":"read","room":"lobby","seq":1e309}',
    b'{"type":"join","room":"lobby","since":NaN}',
    b'{"type":"ping","ref":Infinity}',
    b'{"type":"ping"} {"type":"ping"}',
    b"[" * DEEP + b"]" * DEEP,
    b"{'type': 'ping'}",
    b'{"type":"ping","ref":"\\ud800"}',
]
INVALID_UTF8 = [
    b'{"type":"send","room":"lobby","body":"\xff\xfe","client_msg_id":"u"}',
    b"\xc0\xaf",
]

transport = st.one_of(
    st.sampled_from(BROKEN_TEXTS).map(lambda b: Payload(data=b)),
    st.sampled_from(INVALID_UTF8).map(lambda b: Payload(data=b)),  # a text frame, not UTF-8
    known_frames.map(lambda f: Payload(value=f, binary=True)),
    st.binary(max_size=64).map(lambda b: Payload(data=b, binary=True)),
    st.just(Payload(data=json.dumps({"type": "ping", "pad": LONG_TEXT}).encode())),  # > 64 KiB
)

# Every kind of frame a client can send, weighted towards the contract's frames.
frame_payloads = st.one_of(
    known_frames.map(lambda f: Payload(value=f)),
    known_frames.map(lambda f: Payload(value=f)),
    known_frames.map(lambda f: Payload(value=f)),
    unknown_frames.map(lambda f: Payload(value=f)),
    not_objects.map(lambda f: Payload(value=f)),
    transport,
)

# ------------------------------------------------------------------ HTTP bodies

passwords = st.sampled_from(["correct horse battery"]) | st.text(min_size=8, max_size=128)
almost_passwords = st.sampled_from(["short", "x" * 129, "\ud800" * 8, "pass\x00word", "        "])
invite_codes = st.sampled_from(["", "nope", Live("invite_code")]) | st.text(max_size=40)
refresh_tokens = st.just(Live("refresh_token")) | st.text(max_size=80)
topics = safe_text.filter(lambda s: "\n" not in s) | st.sampled_from(["", "x" * 512])
almost_topics = st.sampled_from(["x" * 513, "line\nbreak", "a\x00b", "\u2028", "\ud800"])
visibilities = st.sampled_from(["public", "private"])
almost_visibilities = st.sampled_from(["PUBLIC", "", "secret", "public "])
expiries = st.integers(60, 365 * 86400) | durations | st.none()
almost_expiries = st.sampled_from([59, 365 * 86400 + 1, 0, -1, "0s", "forever", "1y", 2**63])
actions = st.sampled_from(["kick", "ban", "unban", "mute", "unmute", "op", "deop"])
almost_actions = st.sampled_from(["KICK", "", "delete", "kick "])
reasons = topics
duration_seconds = st.integers(1, 3650 * 86400)
almost_duration_seconds = st.sampled_from([0, -1, 3650 * 86400 + 1, 2**63, 1.5, True, "60"])


@attrs.frozen
class Route:
    """One HTTP route that takes a JSON body: its method, path and the body's fields."""

    method: str
    path: str  # {room} is filled in with a drawn room name
    fields: dict[str, st.SearchStrategy]
    token: str | None = "access_token"  # the Live token to send, if any


ROUTES: dict[str, Route] = {
    "register": Route(
        "POST",
        "/api/auth/register",
        {
            "username": field(usernames, almost_usernames),
            "password": field(passwords, almost_passwords),
            "invite_code": field(invite_codes, hostile_texts, True),
            "refresh_cookie": field(st.booleans(), st.sampled_from([1, "true", None]), True),
        },
        token=None,
    ),
    "login": Route(
        "POST",
        "/api/auth/login",
        {
            "username": field(usernames, almost_usernames),
            "password": field(passwords, almost_passwords),
            "refresh_cookie": field(st.booleans(), st.sampled_from([1, "true", None]), True),
        },
        token=None,
    ),
    "refresh": Route(
        "POST",
        "/api/auth/refresh",
        {"refresh_token": field(refresh_tokens, st.sampled_from(["", None, 0, "x" * 5000]))},
        token=None,
    ),
    "delete_account": Route(
        "DELETE", "/api/auth/me", {"password": field(passwords, almost_passwords)}, "doomed_token"
    ),
    "invite": Route(
        "POST",
        "/api/invites",
        {
            "expires_in": field(expiries, almost_expiries, True),
            "uses": field(st.integers(1, 1_000_000), almost_duration_seconds, True),
        },
        "admin_token",
    ),
    "create_room": Route(
        "POST",
        "/api/rooms",
        {
            "name": field(room_names, almost_room_names),
            "topic": field(topics, almost_topics, True),
            "visibility": field(visibilities, almost_visibilities),
        },
    ),
    "patch_room": Route("PATCH", "/api/rooms/{room}", {"topic": field(topics, almost_topics)}),
    "invite_member": Route(
        "POST", "/api/rooms/{room}/members", {"username": field(usernames, almost_usernames)}
    ),
    "post_message": Route(
        "POST",
        "/api/rooms/{room}/messages",
        {
            "body": field(bodies, almost_bodies),
            "client_msg_id": field(client_msg_ids, almost_client_msg_ids, True),
        },
    ),
    "moderation": Route(
        "POST",
        "/api/rooms/{room}/moderation",
        {
            "action": field(actions, almost_actions),
            "username": field(usernames, almost_usernames),
            "reason": field(reasons, almost_topics, True),
            "duration_s": field(duration_seconds, almost_duration_seconds, True),
        },
    ),
}

body_transport = st.one_of(
    st.sampled_from(BROKEN_TEXTS + INVALID_UTF8).map(lambda b: Payload(data=b)),
    st.just(Payload(data=json.dumps({"pad": LONG_TEXT}).encode())),  # > 64 KiB: 413
    not_objects.map(lambda v: Payload(value=v)),
)


def route_body(route: Route) -> st.SearchStrategy:
    """A body for ``route``: mostly objects of its fields, else broken or hostile JSON."""
    objects = json_object(route.fields).map(lambda v: Payload(value=v))
    return st.one_of(objects, objects, objects, body_transport)


path_rooms = room_names | almost_room_names | st.sampled_from(["%2e%2e", "a%00b", "x" * 300])


@st.composite
def requests(draw: Any) -> tuple[Route, str, Payload]:
    """(route, path with its room filled in, body payload) over every route with a body."""
    route = draw(st.sampled_from(list(ROUTES.values())))
    path = route.path
    if "{room}" in path:
        room = draw(path_rooms)
        path = path.replace("{room}", room if "%" in room else quote(room, safe=""))
    return route, path, draw(route_body(route))
