"""
Rooms, memberships and room events.

Every stored room event takes the next seq of its room in the transaction that stores
it: the room's row is updated (``last_seq + 1``) and locked by that update, so events of
one room commit one at a time, in seq order, and a rolled-back transaction gives its seq
back. Nothing is ever numbered twice or skipped.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Mapping

import attrs
from psycopg2 import errors as pg_errors

from termrooms.domain.errors import ApiError
from termrooms.domain.events import Removal, RoomEvent
from termrooms.domain.notices import UserNotice
from termrooms.domain.rules import DIRECT_ROOM_PREFIX
from termrooms.storage.audit import insert_audit_txn
from termrooms.storage.blocks import BLOCKS, blocks, other_user_id_txn
from termrooms.storage.notices import notify_user_txn


@attrs.frozen
class Room:
    id: int
    name: str
    topic: str
    visibility: str
    created_at: datetime
    last_seq: int
    kind: str  # "room", or "direct": two members' own (sql/0006_direct_rooms.sql)


@attrs.frozen
class Standing:
    """A user's place in a room: role (None when not a member), bans, mutes, invitations;
    in a direct room, the other member and whether they block this user."""

    role: str | None
    banned: bool
    muted_until: datetime | None
    muted: bool
    invited: bool
    read_seq: int
    peer: str | None = None
    blocked: bool = False


_ROOM_FIELDS = ("id", "name", "topic", "visibility", "created_at", "last_seq", "kind")  # Room's
_ROOM_COLUMNS = ", ".join(_ROOM_FIELDS)
# RoomEvent's fields, in its order.
# A message_edited event shows its message as it is now: body (null once deleted),
# mentions and edited_at, so every copy of a message agrees with the newest.
EVENT_COLUMNS = (
    "e.id, e.room_id, r.name, e.seq, e.type, e.created_at, u.username, t.username,"
    " e.target_event_id,"
    " CASE WHEN e.type = 'message_edited' THEN m.body ELSE e.body END,"
    " e.client_msg_id, e.action,"
    " CASE WHEN e.type = 'message_edited' THEN coalesce(m.data, '{}') ELSE e.data END,"
    " CASE WHEN e.type = 'message_edited' THEN m.deleted_at ELSE e.deleted_at END,"
    " CASE WHEN e.type = 'message_edited' THEN m.edited_at ELSE e.edited_at END"
)
# What EVENT_COLUMNS reads beside room_events e, for queries that pick e their own way.
EVENT_JOINS = (
    " JOIN rooms r ON r.id = e.room_id"
    " LEFT JOIN users u ON u.id = e.user_id"
    " LEFT JOIN users t ON t.id = e.target_user_id"
    " LEFT JOIN room_events m ON e.type = 'message_edited' AND m.id = e.target_event_id"
)
_EVENT_FROM = f" FROM room_events e{EVENT_JOINS}"
_EVENT_SELECT = f"SELECT {EVENT_COLUMNS}{_EVENT_FROM}"


def event_of_row(row: tuple[Any, ...]) -> RoomEvent:
    """A RoomEvent from the EVENT_COLUMNS of a row."""
    return RoomEvent(*row)


async def room_by_name_txn(cursor: Any, name: str) -> Room | None:
    """A live room by name, in any case."""
    await cursor.execute(
        f"SELECT {_ROOM_COLUMNS} FROM rooms WHERE lower(name) = lower(%s) AND deleted_at IS NULL",
        (name,),
    )
    row = cursor.fetchone()
    return Room(*row) if row else None


def _standing(row: tuple[Any, ...]) -> Standing:
    role, read_seq, banned, muted, muted_until, invited, peer, blocked = row
    return Standing(
        role=role,
        banned=banned,
        muted_until=muted_until,
        muted=muted,
        invited=invited,
        read_seq=read_seq or 0,
        peer=peer,
        blocked=blocked,
    )


# Of rooms r, for %(user)s: the other member of a direct room (NULL for other rooms),
# and whether they block %(user)s.
_PEER = (
    "(SELECT p.username FROM users p WHERE p.id = CASE WHEN r.direct_low = %(user)s"
    "        THEN r.direct_high ELSE r.direct_low END)"
)
_BLOCKED_BY_PEER = (
    "EXISTS (SELECT 1 FROM user_blocks k WHERE k.blocked_id = %(user)s"
    "        AND k.blocker_id IN (r.direct_low, r.direct_high))"
)


async def room_view_txn(
    cursor: Any, name: str, user_id: int
) -> tuple[Room | None, Standing | None]:
    """A live room by name and where the user stands in it, in one round trip."""
    await cursor.execute(
        f"SELECT {', '.join('r.' + field for field in _ROOM_FIELDS)},"
        # where the user stands: the role, and bans and mutes still in force
        "        m.role, m.read_seq,"
        "        EXISTS (SELECT 1 FROM room_bans b WHERE b.room_id = r.id"
        "                AND b.user_id = %(user)s"
        "                AND (b.expires_at IS NULL OR b.expires_at > now())),"
        "        x.user_id IS NOT NULL, x.expires_at,"
        "        EXISTS (SELECT 1 FROM room_invitations i WHERE i.room_id = r.id"
        "                AND i.user_id = %(user)s),"
        f"       {_PEER}, {_BLOCKED_BY_PEER}"
        "   FROM rooms r"
        "   LEFT JOIN memberships m ON m.room_id = r.id AND m.user_id = %(user)s"
        "   LEFT JOIN room_mutes x ON x.room_id = r.id AND x.user_id = %(user)s"
        "         AND (x.expires_at IS NULL OR x.expires_at > now())"
        "  WHERE lower(r.name) = lower(%(name)s) AND r.deleted_at IS NULL",
        {"name": name, "user": user_id},
    )
    row = cursor.fetchone()
    if row is None:
        return None, None
    fields = len(_ROOM_FIELDS)
    return Room(*row[:fields]), _standing(row[fields:])


async def append_event_txn(
    cursor: Any,
    event_id: int,
    room_id: int,
    event_type: str,
    *,
    user_id: int | None = None,
    target_user_id: int | None = None,
    target_event_id: int | None = None,
    body: str | None = None,
    client_msg_id: str | None = None,
    action: bool = False,
    data: Mapping[str, Any] | None = None,
) -> RoomEvent:
    """Store one event with the room's next seq (see the module docstring); one round trip."""
    extras = dict(data or {})
    await cursor.execute(
        "WITH bumped AS ("
        "   UPDATE rooms SET last_seq = last_seq + 1, last_event_at = clock_timestamp()"
        "    WHERE id = %(room)s"
        "   RETURNING last_seq, name),"
        " stored AS ("
        "   INSERT INTO room_events (id, room_id, seq, type, user_id, target_user_id,"
        "                            target_event_id, body, client_msg_id, action, data)"
        "   SELECT %(id)s, %(room)s, bumped.last_seq, %(type)s, %(user)s, %(target)s,"
        "          %(target_event)s, %(body)s, %(client_msg_id)s, %(action)s, %(data)s"
        "     FROM bumped"
        "   RETURNING seq, created_at)"
        " SELECT stored.seq, stored.created_at, bumped.name,"
        "        (SELECT username FROM users WHERE id = %(user)s),"
        "        (SELECT username FROM users WHERE id = %(target)s)"
        "   FROM stored, bumped",
        {
            "room": room_id,
            "id": event_id,
            "type": event_type,
            "user": user_id,
            "target": target_user_id,
            "target_event": target_event_id,
            "body": body,
            "client_msg_id": client_msg_id,
            "action": action,
            "data": json.dumps(extras),
        },
    )
    seq, created_at, room_name, user, target_user = cursor.fetchone()
    return RoomEvent(
        id=event_id,
        room_id=room_id,
        room_name=room_name,
        seq=seq,
        type=event_type,
        created_at=created_at,
        user=user,
        target_user=target_user,
        target_event_id=target_event_id,
        body=body,
        client_msg_id=client_msg_id,
        action=action,
        data=extras,
    )


@attrs.frozen
class Draft:
    """A message to store, as a sender asked for it."""

    event_id: int
    author_id: int
    body: str
    client_msg_id: str | None
    action: bool = False
    # The names the body writes as @name (mentions.written_names); the statement that
    # stores it keeps those of the room's members then.
    written_names: tuple[str, ...] = ()


# The room's members among lowercased names, as their usernames are stored, in the order
# the names are given: who a message's @names mention.
_MEMBERS_NAMED = (
    "SELECT u.id, u.username"
    "  FROM unnest(%(names)s::text[]) WITH ORDINALITY AS c (name, at)"
    "  JOIN users u ON lower(u.username) = c.name"
    "  JOIN memberships m ON m.room_id = %(room)s AND m.user_id = u.id"
    " ORDER BY c.at"
)


# One statement, so one round trip and one commit, for messages to any number of rooms:
# the UPDATE of each room's row takes the room's lock and its seqs, the INSERT stores
# the drafts that are new, and a draft whose client_msg_id its author already stored in
# that room gets the original back. A retry committed by another instance after this
# statement's snapshot was taken is caught by room_events_client_msg_id_key (a
# UniqueViolation; the same statement again finds it).
def _post_messages(naming: bool) -> str:
    """The statement that stores a batch; ``naming``: some drafts write @names, so it
    also keeps who they mention. The statement without is the one most batches take:
    it costs nothing for mentions. A retry's stored message comes back as its id alone
    (post_messages_txn reads it then): planning the join that reads an event, on every
    batch, cost more than the rare second statement."""
    names = ", %(names)s::text[]" if naming else ""
    mention = (
        f""", mention AS (
    -- The names written that are members' now, as their usernames are stored, in the
    -- order first written. A member who blocks the author is named, but it does not
    -- count (no row).
    SELECT f.n, array_agg(u.id ORDER BY c.at)
               FILTER (WHERE NOT {blocks("u.id", "f.user_id")}) AS user_ids,
           jsonb_build_object('mentions', jsonb_agg(u.username ORDER BY c.at)) AS data
      FROM fresh f
     CROSS JOIN LATERAL unnest(string_to_array(f.names, ' ')) WITH ORDINALITY AS c (name, at)
      JOIN users u ON lower(u.username) = c.name
      JOIN memberships m ON m.room_id = f.room_id AND m.user_id = u.id
     WHERE f.names <> ''
     GROUP BY f.n
)"""
        if naming
        else ""
    )
    data = "coalesce(mn.data, '{}'::jsonb)" if naming else "'{}'::jsonb"
    named = " LEFT JOIN mention mn ON mn.n = f.n" if naming else ""
    mentioned = (
        """, mentioned AS (
    INSERT INTO message_mentions (event_id, room_id, seq, user_id)
    SELECT s.id, s.room_id, s.seq, unnest(mn.user_ids)
      FROM stored s JOIN fresh f ON f.id = s.id JOIN mention mn ON mn.n = f.n
)"""
        if naming
        else ""
    )
    return f"""
WITH draft AS (
    SELECT * FROM unnest(%(rooms)s::bigint[], %(ids)s::bigint[], %(authors)s::bigint[],
                         %(bodies)s::text[], %(keys)s::text[], %(actions)s::boolean[]{names})
           WITH ORDINALITY AS d (room_id, id, user_id, body, client_msg_id, action,
                                 {"names, " if naming else ""}n)
), known AS (
    SELECT d.n, e.id FROM draft d
      JOIN room_events e ON e.room_id = d.room_id AND e.user_id = d.user_id
                        AND e.client_msg_id = d.client_msg_id
), fresh AS (
    SELECT d.*, row_number() OVER (PARTITION BY d.room_id ORDER BY d.n) AS k,
           count(*) OVER (PARTITION BY d.room_id) AS total
      FROM draft d WHERE d.n NOT IN (SELECT n FROM known)
){mention}, added AS (
    SELECT room_id, count(*) AS n FROM fresh GROUP BY room_id
), bumped AS (
    UPDATE rooms r SET last_seq = r.last_seq + a.n, last_event_at = clock_timestamp()
      FROM added a WHERE r.id = a.room_id
    RETURNING r.id, r.last_seq, r.name
), stored AS (
    INSERT INTO room_events (id, room_id, seq, type, user_id, body, client_msg_id, action,
                             data)
    SELECT f.id, f.room_id, b.last_seq - f.total + f.k, 'message', f.user_id, f.body,
           f.client_msg_id, f.action, {data}
      FROM fresh f JOIN bumped b ON b.id = f.room_id{named}
    RETURNING id, room_id, seq, created_at, data
){mentioned}
SELECT f.n, true, s.id, f.room_id, b.name, s.seq, 'message', s.created_at, u.username,
       NULL, NULL, f.body, f.client_msg_id, f.action, s.data, NULL, NULL
  FROM stored s JOIN fresh f ON f.id = s.id JOIN bumped b ON b.id = f.room_id
  LEFT JOIN users u ON u.id = f.user_id
UNION ALL
SELECT k.n, false, k.id{", NULL" * 14} FROM known k
"""


_POST_MESSAGES = _post_messages(naming=False)
_POST_NAMING_MESSAGES = _post_messages(naming=True)


async def post_messages_txn(
    cursor: Any, messages: list[tuple[int, Draft]]
) -> list[tuple[RoomEvent, bool]]:
    """
    Store (room id, draft) messages in one statement (one commit for the lot), each
    unless its author already stored its client_msg_id in that room; returns, in order,
    (event, is new). Each room's new messages take its next seqs in the order given. A
    client_msg_id twice in the batch is stored once: the second is a retry of the first.
    """
    unique: list[tuple[int, Draft]] = []
    first_of: dict[tuple[int, int, str], int] = {}
    position: list[int] = []  # index into unique of each message
    for room_id, draft in messages:
        if draft.client_msg_id is not None:
            key = (room_id, draft.author_id, draft.client_msg_id)
            if key in first_of:
                position.append(first_of[key])
                continue
            first_of[key] = len(unique)
        position.append(len(unique))
        unique.append((room_id, draft))
    naming = any(d.written_names for _, d in unique)
    await cursor.execute(
        _POST_NAMING_MESSAGES if naming else _POST_MESSAGES,
        {
            "rooms": [room_id for room_id, _ in unique],
            "ids": [d.event_id for _, d in unique],
            "authors": [d.author_id for _, d in unique],
            "bodies": [d.body for _, d in unique],
            "keys": [d.client_msg_id for _, d in unique],
            "actions": [d.action for _, d in unique],
            "names": [" ".join(d.written_names) for _, d in unique],
        },
    )
    rows = cursor.fetchall()
    found = {n: (event_of_row(row), True) for n, new, *row in rows if new}
    retried = {event_id: n for n, new, event_id, *_ in rows if not new}
    if retried:
        await cursor.execute(f"{_EVENT_SELECT} WHERE e.id = ANY(%s)", (list(retried),))
        found.update((retried[row[0]], (event_of_row(row), False)) for row in cursor.fetchall())
    results = []
    seen: set[int] = set()
    for index in position:
        event, new = found[index + 1]  # WITH ORDINALITY counts from 1
        results.append((event, new and index not in seen))
        seen.add(index)
    return results


async def events_after_txn(
    cursor: Any, room_id: int, after_seq: int, limit: int
) -> list[RoomEvent]:
    """Up to ``limit`` events with seq > after_seq, oldest first."""
    await cursor.execute(
        f"{_EVENT_SELECT} WHERE e.room_id = %s AND e.seq > %s ORDER BY e.seq LIMIT %s",
        (room_id, after_seq, limit),
    )
    return [event_of_row(row) for row in cursor.fetchall()]


async def events_before_txn(
    cursor: Any, room_id: int, before_seq: int | None, limit: int
) -> list[RoomEvent]:
    """Up to ``limit`` events with seq < before_seq (or the newest), oldest first."""
    await cursor.execute(
        f"{_EVENT_SELECT} WHERE e.room_id = %s AND (%s::bigint IS NULL OR e.seq < %s)"
        " ORDER BY e.seq DESC LIMIT %s",
        (room_id, before_seq, before_seq, limit),
    )
    return [event_of_row(row) for row in reversed(cursor.fetchall())]


async def oldest_seq_txn(cursor: Any, room_id: int) -> int | None:
    await cursor.execute("SELECT min(seq) FROM room_events WHERE room_id = %s", (room_id,))
    (oldest,) = cursor.fetchone()
    return oldest


async def create_room_txn(
    cursor: Any,
    room_id: int,
    event_id: int,
    name: str,
    topic: str,
    visibility: str,
    creator_id: int,
    request_id: str | None = None,
) -> tuple[Room, RoomEvent]:
    """A room with its creator as owner, and the creator's member_joined event (seq 1)."""
    try:
        await cursor.execute(
            "INSERT INTO rooms (id, name, topic, visibility, created_by)"
            f" VALUES (%s, %s, %s, %s, %s) RETURNING {_ROOM_COLUMNS}",
            (room_id, name, topic, visibility, creator_id),
        )
    except pg_errors.UniqueViolation:
        raise ApiError("name_taken", f"A room called {name!r} exists.") from None
    room = Room(*cursor.fetchone())
    await cursor.execute(
        "INSERT INTO memberships (room_id, user_id, role) VALUES (%s, %s, 'owner')",
        (room_id, creator_id),
    )
    joined = await append_event_txn(cursor, event_id, room_id, "member_joined", user_id=creator_id)
    await insert_audit_txn(
        cursor,
        "room.create",
        actor_id=creator_id,
        room_id=room_id,
        data={"name": name, "visibility": visibility},
        request_id=request_id,
    )
    return attrs.evolve(room, last_seq=joined.seq), joined


async def open_direct_txn(
    cursor: Any, room_id: int, event_ids: tuple[int, int], user_id: int, username: str
) -> tuple[Room, list[RoomEvent]]:
    """
    The direct room of the user and ``username``, created with both as members (and
    their member_joined events, returned) when the pair has none yet. The pair's unique
    index decides a race: a second opener's INSERT waits for the first's commit, does
    nothing, and reads the room the first made. The peer's account is held, so it cannot
    be deleted half way; a peer who blocks the user refuses (``forbidden``). No audit
    row: who talks to whom is theirs, not the server's admins' business.
    """
    peer_id = await other_user_id_txn(cursor, user_id, username, lock=True)
    await cursor.execute(f"SELECT {BLOCKS}", {"blocker": peer_id, "blocked": user_id})
    if cursor.fetchone()[0]:
        raise ApiError("forbidden", f"{username} does not take direct messages from you.")
    pair = {"low": min(user_id, peer_id), "high": max(user_id, peer_id)}
    await cursor.execute(
        "INSERT INTO rooms (id, name, visibility, created_by, kind, direct_low, direct_high)"
        " VALUES (%(id)s, %(name)s, 'private', %(user)s, 'direct', %(low)s, %(high)s)"
        f" ON CONFLICT (direct_low, direct_high) DO NOTHING RETURNING {_ROOM_COLUMNS}",
        {"id": room_id, "name": f"{DIRECT_ROOM_PREFIX}{room_id}", "user": user_id, **pair},
    )
    row = cursor.fetchone()
    if row is None:
        await cursor.execute(
            f"SELECT {_ROOM_COLUMNS} FROM rooms"
            " WHERE direct_low = %(low)s AND direct_high = %(high)s",
            pair,
        )
        return Room(*cursor.fetchone()), []
    await cursor.execute(
        "INSERT INTO memberships (room_id, user_id) VALUES (%s, %s), (%s, %s)",
        (room_id, user_id, room_id, peer_id),
    )
    joined = [
        await append_event_txn(cursor, event_id, room_id, "member_joined", user_id=member)
        for event_id, member in zip(event_ids, (user_id, peer_id), strict=True)
    ]
    return attrs.evolve(Room(*row), last_seq=joined[-1].seq), joined


async def add_member_txn(
    cursor: Any, room_id: int, user_id: int, event_id: int
) -> RoomEvent | None:
    """Make the user a member (member_joined), or None when they already are one."""
    await cursor.execute(
        "INSERT INTO memberships (room_id, user_id, role) VALUES (%s, %s, 'member')"
        " ON CONFLICT DO NOTHING RETURNING 1",
        (room_id, user_id),
    )
    if cursor.fetchone() is None:
        return None
    return await append_event_txn(cursor, event_id, room_id, "member_joined", user_id=user_id)


async def remove_member_txn(
    cursor: Any, room_id: int, user_id: int, event_id: int
) -> RoomEvent | None:
    """End a membership (member_left), or None when there was none."""
    await cursor.execute(
        "DELETE FROM memberships WHERE room_id = %s AND user_id = %s RETURNING 1",
        (room_id, user_id),
    )
    if cursor.fetchone() is None:
        return None
    event = await append_event_txn(cursor, event_id, room_id, "member_left", user_id=user_id)
    await notify_removal_txn(cursor, Removal(room_id, user_id, event.seq))
    return event


ROOM_EVENTS_CHANNEL = "termrooms_room_events"
ROOM_REMOVALS_CHANNEL = "termrooms_room_removals"


async def notify_removal_txn(cursor: Any, removal: Removal) -> None:
    """Every instance hears of it when the transaction commits, whether Redis is up or not."""
    await cursor.execute("SELECT pg_notify(%s, %s)", (ROOM_REMOVALS_CHANNEL, removal.payload()))


async def hint_event_txn(cursor: Any, room_id: int, seq: int) -> None:
    """Tell every instance that the room has events up to ``seq`` (Redis could not)."""
    await cursor.execute("SELECT pg_notify(%s, %s)", (ROOM_EVENTS_CHANNEL, f"{room_id} {seq}"))


def parse_event_hint(payload: str) -> tuple[int, int]:
    room, seq = payload.split()
    return int(room), int(seq)


async def last_seqs_txn(cursor: Any, room_ids: list[int]) -> dict[int, int]:
    """The latest committed seq of each room: what the periodic check compares."""
    await cursor.execute("SELECT id, last_seq FROM rooms WHERE id = ANY(%s)", (room_ids,))
    return dict(cursor.fetchall())


async def rooms_for_user_txn(cursor: Any, user_id: int) -> list[tuple[Any, ...]]:
    """Public rooms and the user's private and direct ones: (room columns..., member_count,
    unread, mentions after the read marker, kind, the direct room's other member)."""
    await cursor.execute(
        "SELECT r.id, r.name, r.topic, r.visibility, r.created_at, r.last_seq,"
        "       (SELECT count(*) FROM memberships c WHERE c.room_id = r.id),"
        "       CASE WHEN m.user_id IS NULL THEN NULL ELSE r.last_seq - m.read_seq END,"
        "       CASE WHEN m.user_id IS NULL THEN 0 ELSE"
        "         (SELECT count(*) FROM message_mentions x WHERE x.user_id = %(user)s"
        "             AND x.room_id = r.id AND x.seq > m.read_seq) END,"
        f"      r.kind, {_PEER}"
        "  FROM rooms r"
        "  LEFT JOIN memberships m ON m.room_id = r.id AND m.user_id = %(user)s"
        " WHERE r.deleted_at IS NULL AND (r.visibility = 'public' OR m.user_id IS NOT NULL)"
        " ORDER BY lower(r.name)",
        {"user": user_id},
    )
    return cursor.fetchall()


async def members_txn(cursor: Any, room_id: int) -> list[tuple[Any, ...]]:
    """(user id, username, display_name, role, last_seen_at) of every member."""
    await cursor.execute(
        "SELECT u.id, u.username, u.display_name, m.role, m.last_seen_at"
        "  FROM memberships m JOIN users u ON u.id = m.user_id"
        " WHERE m.room_id = %s ORDER BY lower(u.username)",
        (room_id,),
    )
    return cursor.fetchall()


async def member_count_txn(cursor: Any, room_id: int) -> int:
    await cursor.execute("SELECT count(*) FROM memberships WHERE room_id = %s", (room_id,))
    return cursor.fetchone()[0]


async def set_read_marker_txn(cursor: Any, room_id: int, user_id: int, seq: int) -> None:
    """Move the read marker forward (never back, never past the room's last event)."""
    await cursor.execute(
        "UPDATE memberships m SET read_seq = least(greatest(m.read_seq, %s), r.last_seq)"
        "  FROM rooms r WHERE r.id = m.room_id AND m.room_id = %s AND m.user_id = %s",
        (seq, room_id, user_id),
    )


async def touch_last_seen_txn(cursor: Any, seen: list[tuple[int, int, datetime]]) -> None:
    """Record when members were last seen, many at once (one statement, not one a message)."""
    if not seen:
        return
    values = ",".join(["(%s::bigint, %s::bigint, %s::timestamptz)"] * len(seen))
    await cursor.execute(
        "UPDATE memberships m SET last_seen_at = greatest(m.last_seen_at, v.seen)"
        f"  FROM (VALUES {values}) AS v (room_id, user_id, seen)"
        " WHERE m.room_id = v.room_id AND m.user_id = v.user_id",
        [value for row in seen for value in row],
    )


async def edit_message_txn(
    cursor: Any,
    room_id: int,
    message_id: int,
    author_id: int,
    body: str,
    written_names: tuple[str, ...],
    event_id: int,
) -> tuple[RoomEvent, RoomEvent, list[int]] | None:
    """
    Replace a message's body (its author's alone: ``forbidden`` otherwise) and store
    ``message_edited`` pointing at it; None when there is no such message, or it was
    deleted. Returns the message as it is now, the edit's event, and the users the edit
    newly mentions (each mention counts from the edit's seq).
    """
    await cursor.execute(
        "SELECT user_id, deleted_at IS NOT NULL FROM room_events"
        " WHERE id = %s AND room_id = %s AND type = 'message' FOR UPDATE",
        (message_id, room_id),
    )
    row = cursor.fetchone()
    if row is None or row[1]:
        return None
    if row[0] != author_id:
        raise ApiError("forbidden", "Only its author edits a message.")
    await cursor.execute(_MEMBERS_NAMED, {"room": room_id, "names": list(written_names)})
    named = cursor.fetchall()
    mentions = [username for _, username in named]
    data = {"mentions": mentions} if mentions else {}
    # The event keeps only what it points at: read, it shows its message as it is then.
    event = await append_event_txn(
        cursor, event_id, room_id, "message_edited", user_id=author_id, target_event_id=message_id
    )
    # Who the message mentions now but those who block its author (as when posted).
    await cursor.execute(
        "WITH counted AS ("
        "   SELECT n.user_id FROM unnest(%(users)s::bigint[]) AS n (user_id)"
        f"   WHERE NOT {blocks('n.user_id', '%(author)s')}),"
        " gone AS ("
        "   DELETE FROM message_mentions WHERE event_id = %(message)s"
        "      AND user_id NOT IN (SELECT user_id FROM counted) RETURNING user_id)"
        " INSERT INTO message_mentions (event_id, room_id, seq, user_id)"
        " SELECT %(message)s, %(room)s, %(seq)s, user_id FROM counted"
        " ON CONFLICT DO NOTHING RETURNING user_id",
        {
            "message": message_id,
            "room": room_id,
            "seq": event.seq,
            "author": author_id,
            "users": [user_id for user_id, _ in named],
        },
    )
    newly = [user_id for (user_id,) in cursor.fetchall()]
    for user_id in newly:
        if user_id != author_id:
            notice = UserNotice(user_id, "mention", room_id, event.seq)
            await notify_user_txn(cursor, notice, author_id)
    await cursor.execute(
        "UPDATE room_events SET body = %s, data = (data - 'mentions') || %s::jsonb,"
        "       edited_at = now()"
        " WHERE id = %s",
        (body, json.dumps(data), message_id),
    )
    await cursor.execute(
        f"{_EVENT_SELECT} WHERE e.id = ANY(%s) ORDER BY e.seq", ([message_id, event_id],)
    )
    message, edited = (event_of_row(row) for row in cursor.fetchall())
    return message, edited, newly


async def mentions_page_txn(
    cursor: Any, user_id: int, before_id: int | None, limit: int
) -> tuple[list[RoomEvent], bool]:
    """The messages that mention the user, newest first, from rooms they may still read
    (public ones, their own, any but a direct room for a server admin), and whether older
    ones exist."""
    await cursor.execute(
        f"SELECT {EVENT_COLUMNS}{_EVENT_FROM}"
        "  JOIN message_mentions x ON x.event_id = e.id AND x.user_id = %(user)s"
        " WHERE r.deleted_at IS NULL AND e.deleted_at IS NULL"
        "   AND (%(before)s::bigint IS NULL OR x.event_id < %(before)s)"
        "   AND (r.visibility = 'public'"
        "        OR EXISTS (SELECT 1 FROM memberships my"
        "                    WHERE my.room_id = x.room_id AND my.user_id = %(user)s)"
        "        OR r.kind = 'room' AND EXISTS (SELECT 1 FROM users me"
        "                    WHERE me.id = %(user)s AND me.role = 'admin'"
        "                    AND NOT EXISTS (SELECT 1 FROM room_bans b"
        "                                     WHERE b.room_id = x.room_id AND b.user_id = me.id"
        "                                       AND (b.expires_at IS NULL"
        "                                            OR b.expires_at > now()))))"
        " ORDER BY x.event_id DESC LIMIT %(limit)s",
        {"user": user_id, "before": before_id, "limit": limit + 1},
    )
    rows = cursor.fetchall()
    return [event_of_row(row) for row in rows[:limit]], len(rows) > limit


# Where a stored event's data names a user by username, as it was when stored: a
# message's mentions, a task's creator and assignee, a poll's creator and voters.
_RENAME_IN_EVENTS = """
UPDATE room_events e SET data = coalesce(CASE
  WHEN e.type = 'message' THEN jsonb_set(e.data, '{mentions}', (
      SELECT jsonb_agg(CASE WHEN m = o.old THEN o.new ELSE m END ORDER BY i)
        FROM jsonb_array_elements(e.data->'mentions') WITH ORDINALITY AS x (m, i)))
  WHEN e.type IN ('task_created', 'task_updated') THEN jsonb_set(jsonb_set(e.data,
      '{task,created_by}', CASE WHEN e.data->'task'->'created_by' = o.old THEN o.new
                                ELSE e.data->'task'->'created_by' END),
      '{task,assignee}', CASE WHEN e.data->'task'->'assignee' = o.old THEN o.new
                              ELSE e.data->'task'->'assignee' END)
  ELSE jsonb_set(jsonb_set(e.data,
      '{poll,created_by}', CASE WHEN e.data->'poll'->'created_by' = o.old THEN o.new
                                ELSE e.data->'poll'->'created_by' END),
      '{poll,options}', (
      SELECT jsonb_agg(CASE WHEN jsonb_typeof(opt->'voters') = 'array' THEN
               jsonb_set(opt, '{voters}', coalesce((
                 SELECT jsonb_agg(CASE WHEN v = o.old THEN o.new ELSE v END ORDER BY j)
                   FROM jsonb_array_elements(opt->'voters') WITH ORDINALITY AS y (v, j)),
                 '[]'::jsonb))
             ELSE opt END ORDER BY k)
        FROM jsonb_array_elements(e.data->'poll'->'options') WITH ORDINALITY AS z (opt, k)))
  END, e.data)
  FROM (SELECT to_jsonb(%(old)s::text) AS old, to_jsonb(%(new)s::text) AS new,
               jsonb_build_object('n', %(old)s::text) AS named) o
 WHERE e.type IN ('message', 'task_created', 'task_updated', 'poll_created', 'poll_closed')
   AND jsonb_path_exists(e.data, '$ ? (exists(@.mentions[*] ? (@ == $n))'
                                 ' || @.task.created_by == $n || @.task.assignee == $n'
                                 ' || @.poll.created_by == $n'
                                 ' || exists(@.poll.options[*].voters[*] ? (@ == $n)))',
                         o.named)
"""


async def rename_in_events_txn(cursor: Any, old: str, new: str) -> None:
    """Every stored event that names ``old`` (see _RENAME_IN_EVENTS) names ``new``
    instead: a deleted account's name goes from the copies in events too."""
    await cursor.execute(_RENAME_IN_EVENTS, {"old": old, "new": new})
