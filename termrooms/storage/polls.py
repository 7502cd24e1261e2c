"""Polls in PostgreSQL: a poll, its options and votes, its events and audit rows.

A poll and its results are read in one statement, so the counts, the voters and the
reader's own choices always agree. A vote holds the poll row FOR SHARE (votes go
side by side; a close waits for them and its final results hold them) and the voter's
membership row FOR UPDATE (two tabs of one voter replace each other's vote in turn).
Closing takes the poll row FOR UPDATE and sets ``closed_at`` once: whichever instance's
timer gets there first closes it, the others skip it (SKIP LOCKED, then ``closed_at``).
"""

from __future__ import annotations

from typing import Any, Callable

import attrs

from termrooms.domain.errors import ApiError
from termrooms.domain.events import RoomEvent
from termrooms.domain.polls import NewPoll, Poll, PollOption, poll_closed, poll_json
from termrooms.domain.roles import Actor
from termrooms.storage.audit import insert_audit_txn
from termrooms.storage.rooms import append_event_txn
from termrooms.storage.tasks import actor_in_txn

# Every instance hears of a poll that will close by itself, and when (seconds from now):
# whichever instance's timer comes first closes it, even if the one it was made on stops.
POLLS_CLOSING_CHANNEL = "termrooms_polls_closing"
# Poll's fields, in its order, for the reader %(reader)s (NULL: no one, ``mine`` null).
# Voters' names never leave the database for an anonymous poll.
_POLL_SELECT = (
    "SELECT p.id, p.room_id, r.name, p.question,"
    "       (SELECT json_agg(json_build_array(o.text, coalesce(v.votes, 0),"
    "                                          CASE WHEN NOT p.anonymous"
    "                                          THEN coalesce(v.voters, '{}') END)"
    "                        ORDER BY o.option_index)"
    "          FROM poll_options o"
    "          LEFT JOIN (SELECT pv.option_index, count(*) AS votes,"
    "                            array_agg(u.username ORDER BY pv.voted_at, u.username)"
    "                            AS voters"
    "                       FROM poll_votes pv JOIN users u ON u.id = pv.user_id"
    "                      WHERE pv.poll_id = p.id GROUP BY pv.option_index) v"
    "            ON v.option_index = o.option_index"
    "         WHERE o.poll_id = p.id),"
    "       p.multiple, p.anonymous,"
    "       p.closed_at IS NOT NULL OR coalesce(p.closes_at <= now(), false),"
    "       p.closes_at, p.user_id, c.username,"
    "       (SELECT count(DISTINCT pv.user_id) FROM poll_votes pv WHERE pv.poll_id = p.id),"
    "       CASE WHEN %(reader)s::bigint IS NOT NULL THEN"
    "         ARRAY(SELECT pv.option_index FROM poll_votes pv"
    "                WHERE pv.poll_id = p.id AND pv.user_id = %(reader)s"
    "                ORDER BY pv.option_index) END"
    "  FROM polls p"
    "  JOIN rooms r ON r.id = p.room_id"
    "  JOIN users c ON c.id = p.user_id"
)
# Run on the poll as locked and on where the caller stands in its room; raises to refuse.
PollCheck = Callable[[Poll, Actor], None]


def _poll(row: tuple[Any, ...]) -> Poll:
    (poll_id, room_id, room, question, options, multiple, anonymous, closed, closes_at,
     user_id, created_by, voters, mine) = row  # fmt: skip
    return Poll(
        id=poll_id,
        room_id=room_id,
        room=room,
        question=question,
        options=tuple(
            PollOption(text, votes, None if names is None else tuple(names))
            for text, votes, names in options
        ),
        multiple=multiple,
        anonymous=anonymous,
        closed=closed,
        closes_at=closes_at,
        user_id=user_id,
        created_by=created_by,
        voters=voters,
        mine=None if mine is None else tuple(mine),
    )


async def poll_txn(
    cursor: Any, room_id: int, poll_id: int, reader_id: int | None, *, lock: str | None = None
) -> Poll | None:
    """The room's poll with its results; ``lock`` "SHARE" or "UPDATE" locks its row."""
    query = _POLL_SELECT + " WHERE p.id = %(poll)s AND p.room_id = %(room)s"
    if lock is not None:
        assert lock in ("SHARE", "UPDATE")
        query += f" FOR {lock} OF p"
    await cursor.execute(query, {"poll": poll_id, "room": room_id, "reader": reader_id})
    row = cursor.fetchone()
    return _poll(row) if row else None


async def polls_page_txn(
    cursor: Any,
    room_id: int,
    reader_id: int,
    *,
    open_only: bool,
    before_id: int | None,
    limit: int,
) -> tuple[list[Poll], bool]:
    """The room's newest ``limit`` polls (older than ``before_id``), newest first."""
    where = " WHERE p.room_id = %(room)s AND (%(before)s::bigint IS NULL OR p.id < %(before)s)"
    if open_only:
        where += " AND p.closed_at IS NULL AND (p.closes_at IS NULL OR p.closes_at > now())"
    await cursor.execute(
        _POLL_SELECT + where + " ORDER BY p.id DESC LIMIT %(limit)s",
        {"room": room_id, "reader": reader_id, "before": before_id, "limit": limit + 1},
    )
    rows = cursor.fetchall()
    return [_poll(row) for row in rows[:limit]], len(rows) > limit


async def create_poll_txn(
    cursor: Any,
    poll_id: int,
    room_id: int,
    user_id: int,
    new: NewPoll,
    event_id: int,
    request_id: str | None,
    check: Callable[[Actor], None],
) -> tuple[Poll, RoomEvent]:
    """Store the poll and its options, and its ``poll_created`` event."""
    check(await actor_in_txn(cursor, room_id, user_id))
    await cursor.execute(
        "INSERT INTO polls (id, room_id, user_id, question, multiple, anonymous, closes_at)"
        " SELECT %(id)s, id, %(user)s, %(question)s, %(multiple)s, %(anonymous)s,"
        "        now() + make_interval(secs => %(closes_in)s)"
        "   FROM rooms WHERE id = %(room)s AND deleted_at IS NULL",
        {
            "id": poll_id,
            "room": room_id,
            "user": user_id,
            "question": new.question,
            "multiple": new.multiple,
            "anonymous": new.anonymous,
            "closes_in": new.closes_in_s,
        },
    )
    if cursor.rowcount == 0:  # the room was deleted since the caller looked it up
        raise ApiError("not_found", "No such room.")
    await cursor.execute(
        "INSERT INTO poll_options (poll_id, option_index, text)"
        " SELECT %s, index - 1, text FROM unnest(%s::text[]) WITH ORDINALITY AS o(text, index)",
        (poll_id, list(new.options)),
    )
    if new.closes_in_s is not None:
        await cursor.execute(
            "SELECT pg_notify(%s, %s)", (POLLS_CLOSING_CHANNEL, str(new.closes_in_s))
        )
    poll = await poll_txn(cursor, room_id, poll_id, user_id)
    assert poll is not None  # inserted just now
    event = await _recorded(cursor, "poll_created", poll, user_id, event_id)
    await _audit(cursor, "poll.create", poll, user_id, request_id)
    return poll, event


async def vote_txn(
    cursor: Any,
    room_id: int,
    poll_id: int,
    user_id: int,
    choose: Callable[[Poll], tuple[int, ...]],
    check: PollCheck,
) -> Poll | None:
    """Replace the voter's choices with ``choose(poll)`` (a 422 when they do not fit the
    poll); None when there is no such poll. A closed poll is a 409, after the 422."""
    poll = await poll_txn(cursor, room_id, poll_id, user_id, lock="SHARE")
    if poll is None:
        return None
    check(poll, await actor_in_txn(cursor, room_id, user_id))
    choices = choose(poll)
    if poll.closed:
        raise poll_closed()
    await cursor.execute(
        "SELECT 1 FROM memberships WHERE room_id = %s AND user_id = %s FOR UPDATE",
        (room_id, user_id),
    )
    if cursor.fetchone() is None:  # left or was removed since the check
        raise ApiError("forbidden", "Join the room first.")
    await cursor.execute(
        "DELETE FROM poll_votes WHERE poll_id = %s AND user_id = %s", (poll_id, user_id)
    )
    if choices:
        await cursor.execute(
            "INSERT INTO poll_votes (poll_id, user_id, option_index)"
            " SELECT %s, %s, unnest(%s::smallint[])",
            (poll_id, user_id, list(choices)),
        )
    return await poll_txn(cursor, room_id, poll_id, user_id)


async def close_poll_txn(
    cursor: Any,
    room_id: int,
    poll_id: int,
    user_id: int,
    event_id: int,
    request_id: str | None,
    check: PollCheck,
) -> tuple[Poll, RoomEvent] | None:
    """Close by hand: ``check`` first (403), then 409 when it is closed already."""
    poll = await poll_txn(cursor, room_id, poll_id, user_id, lock="UPDATE")
    if poll is None:
        return None
    check(poll, await actor_in_txn(cursor, room_id, user_id))
    if poll.closed:
        raise poll_closed()
    return await _closed(cursor, poll, user_id, event_id, request_id)


async def close_due_polls_txn(
    cursor: Any, next_id: Callable[[], int], limit: int
) -> list[tuple[Poll, RoomEvent]]:
    """Close up to ``limit`` polls whose ``closes_at`` has passed; rows another instance
    is closing right now are skipped (it stores their events)."""
    await cursor.execute(
        "SELECT id, room_id FROM polls WHERE closed_at IS NULL AND closes_at <= now()"
        " ORDER BY closes_at LIMIT %s FOR UPDATE SKIP LOCKED",
        (limit,),
    )
    closed = []
    for poll_id, room_id in cursor.fetchall():
        poll = await poll_txn(cursor, room_id, poll_id, None)
        assert poll is not None  # locked above
        closed.append(await _closed(cursor, poll, None, next_id(), None))
    return closed


async def next_closing_txn(cursor: Any) -> float | None:
    """In how many seconds, by the database's clock, the next open poll closes by itself
    (None: none will)."""
    await cursor.execute(
        "SELECT extract(epoch FROM min(closes_at) - now())::float8"
        "  FROM polls WHERE closed_at IS NULL AND closes_at IS NOT NULL"
    )
    return cursor.fetchone()[0]


async def _closed(
    cursor: Any, poll: Poll, user_id: int | None, event_id: int, request_id: str | None
) -> tuple[Poll, RoomEvent]:
    """Set ``closed_at`` (a timer's close: when it was due), store ``poll_closed`` with
    the final results, and the audit row."""
    await cursor.execute(
        "UPDATE polls SET closed_at = CASE WHEN %s THEN least(now(), closes_at) ELSE now() END"
        " WHERE id = %s",
        (user_id is None, poll.id),
    )
    final = await poll_txn(cursor, poll.room_id, poll.id, None)
    assert final is not None  # locked by the caller
    event = await _recorded(cursor, "poll_closed", final, user_id, event_id)
    await _audit(cursor, "poll.close", final, user_id, request_id)
    return final, event


async def _recorded(
    cursor: Any, event_type: str, poll: Poll, user_id: int | None, event_id: int
) -> RoomEvent:
    """The stored event, the same for every reader: no one's ``mine``."""
    shown = poll_json(attrs.evolve(poll, mine=None))
    return await append_event_txn(
        cursor, event_id, poll.room_id, event_type, user_id=user_id, data={"poll": shown}
    )


async def _audit(
    cursor: Any, action: str, poll: Poll, user_id: int | None, request_id: str | None
) -> None:
    await insert_audit_txn(
        cursor,
        action,
        actor_id=user_id,
        room_id=poll.room_id,
        data={"poll": str(poll.id), "question": poll.question},
        request_id=request_id,
    )


async def polls_of_user_txn(cursor: Any, user_id: int) -> dict[str, list[Any]]:
    """The polls a user created and the choices they made, for their data export."""
    await cursor.execute(
        _POLL_SELECT + " WHERE p.user_id = %(reader)s ORDER BY p.id", {"reader": user_id}
    )
    created = [_poll(row) for row in cursor.fetchall()]
    await cursor.execute(
        "SELECT v.poll_id, r.name, v.option_index, o.text, v.voted_at"
        "  FROM poll_votes v"
        "  JOIN poll_options o USING (poll_id, option_index)"
        "  JOIN polls p ON p.id = v.poll_id JOIN rooms r ON r.id = p.room_id"
        " WHERE v.user_id = %s ORDER BY v.poll_id, v.option_index",
        (user_id,),
    )
    return {"created": created, "votes": cursor.fetchall()}
