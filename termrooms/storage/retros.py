"""Retrospectives in PostgreSQL: a retro and its participants, entries, groups, votes and
happiness scores, its events and audit rows.

Every change is one transaction that locks the retro row first and checks the phase on
what it read under that lock: a phase change (FOR UPDATE) waits for the changes under
way (FOR SHARE) and every change after it sees the new phase. Grouping takes the retro
FOR UPDATE, so two people moving entries of one retro take turns and a group is never
left empty; a voter's participant row is locked FOR UPDATE, so two votes of one person
never spend the same vote. Every child is read through its retro's id.

A board is read for one reader in one statement: all entries and groups, the totals of
votes and scores, and only the reader's own votes and score; never anyone else's.
"""

from __future__ import annotations

from typing import Any, Callable

from termrooms.domain.errors import ApiError
from termrooms.domain.events import RoomEvent
from termrooms.domain.retros import (
    CLOSED,
    Board,
    Entry,
    Group,
    NewRetro,
    RetroHead,
    entry_not_found,
    group_not_found,
    no_votes_left,
    refuse_change,
    refuse_move,
    refuse_unless_participant,
    retro_open,
    top_groups,
)
from termrooms.domain.roles import Actor
from termrooms.domain.rules import field_error
from termrooms.domain.tasks import Task, TaskChanges
from termrooms.storage.audit import insert_audit_txn
from termrooms.storage.rooms import append_event_txn
from termrooms.storage.tasks import actor_in_txn, create_task_txn, retro_tasks_txn

# Run on the retro as locked and on where the caller stands in its room; raises to refuse.
RetroCheck = Callable[[RetroHead, Actor], None]

_HEAD_SELECT = (
    "SELECT x.id, x.room_id, r.name, x.title, x.phase, x.facilitator_id, f.username,"
    "       x.columns, x.votes_per_participant, x.anonymous, x.focus_group_id,"
    "       x.created_at, x.closed_at"
)
_HEAD_FROM = (
    "  FROM retros x JOIN rooms r ON r.id = x.room_id JOIN users f ON f.id = x.facilitator_id"
)
# Board's parts after the head, for the reader %(reader)s (NULL: no one).
_BOARD_SELECT = (
    _HEAD_SELECT + ","
    " ARRAY(SELECT u.username FROM retro_participants p JOIN users u ON u.id = p.user_id"
    "        WHERE p.retro_id = x.id ORDER BY p.joined_at, p.user_id),"
    " EXISTS (SELECT 1 FROM retro_participants p"
    "          WHERE p.retro_id = x.id AND p.user_id = %(reader)s),"
    " (SELECT json_agg(json_build_array(e.id, e.column_index, e.text, e.user_id, u.username,"
    "                                   e.group_id) ORDER BY e.column_index, e.id)"
    "    FROM retro_entries e JOIN users u ON u.id = e.user_id WHERE e.retro_id = x.id),"
    " (SELECT json_agg(json_build_array(g.id, g.column_index, g.title,"
    "          ARRAY(SELECT e.id FROM retro_entries e"
    "                 WHERE e.retro_id = x.id AND e.group_id = g.id ORDER BY e.id),"
    "          (SELECT coalesce(sum(v.count), 0) FROM retro_votes v"
    "            WHERE v.retro_id = x.id AND v.group_id = g.id)) ORDER BY g.column_index, g.id)"
    "    FROM retro_groups g WHERE g.retro_id = x.id),"
    " (SELECT json_object_agg(v.group_id, v.count) FROM retro_votes v"
    "   WHERE v.retro_id = x.id AND v.user_id = %(reader)s),"
    " ARRAY(SELECT count(h.user_id) FROM generate_series(1, 5) AS s (score)"
    "        LEFT JOIN retro_happiness h ON h.retro_id = x.id AND h.score = s.score"
    "        GROUP BY s.score ORDER BY s.score),"
    " (SELECT h.score FROM retro_happiness h"
    "   WHERE h.retro_id = x.id AND h.user_id = %(reader)s)" + _HEAD_FROM
)


def _head(row: tuple[Any, ...]) -> RetroHead:
    (retro_id, room_id, room, title, phase, facilitator_id, facilitator, columns, votes,
     anonymous, focus_id, created_at, closed_at) = row[:13]  # fmt: skip
    return RetroHead(
        id=retro_id,
        room_id=room_id,
        room=room,
        title=title,
        phase=phase,
        facilitator_id=facilitator_id,
        facilitator=facilitator,
        columns=tuple(columns),
        votes_per_participant=votes,
        anonymous=anonymous,
        focus_id=focus_id,
        created_at=created_at,
        closed_at=closed_at,
    )


def _board(row: tuple[Any, ...], reader_id: int | None, tasks: list[Task]) -> Board:
    head = _head(row)
    participants, participant, entries, groups, my_votes, answers, my_score = row[13:]
    earlier = [
        task for task in tasks if task.status != "completed" and _source_retro(task) < head.id
    ]
    return Board(
        head=head,
        reader_id=reader_id,
        participants=tuple(participants),
        participant=participant,
        entries=tuple(Entry(*entry) for entry in entries or ()),
        groups=tuple(
            Group(group_id, column, title, tuple(entry_ids), votes)
            for group_id, column, title, entry_ids, votes in groups or ()
        ),
        my_votes={int(group_id): n for group_id, n in (my_votes or {}).items()},
        answers=tuple(answers),  # five counts, one per score, by the query
        my_score=my_score,
        actions=tuple(task for task in tasks if _source_retro(task) == head.id),
        carried_over=tuple(earlier),
    )


def _source_retro(task: Task) -> int:
    assert task.source is not None  # retro_tasks_txn reads retros' tasks alone
    return int(task.source["retro"])


async def head_txn(
    cursor: Any, room_id: int, retro_id: int, *, lock: str | None = None
) -> RetroHead | None:
    """The room's retro; ``lock`` "SHARE" or "UPDATE" locks its row."""
    query = _HEAD_SELECT + _HEAD_FROM + " WHERE x.id = %(retro)s AND x.room_id = %(room)s"
    if lock is not None:
        assert lock in ("SHARE", "UPDATE")
        query += f" FOR {lock} OF x"
    await cursor.execute(query, {"retro": retro_id, "room": room_id})
    row = cursor.fetchone()
    return _head(row) if row else None


async def board_txn(
    cursor: Any, room_id: int, retro_id: int, reader_id: int | None
) -> Board | None:
    """The room's retro as drawn for ``reader_id``."""
    boards, _ = await _boards(cursor, room_id, reader_id, "x.id = %(retro)s", retro_id, 1)
    return boards[0] if boards else None


async def boards_page_txn(
    cursor: Any, room_id: int, reader_id: int, before_id: int | None, limit: int
) -> tuple[list[Board], bool]:
    """The room's newest ``limit`` retros (older than ``before_id``), newest first."""
    where = "(%(retro)s::bigint IS NULL OR x.id < %(retro)s)"
    return await _boards(cursor, room_id, reader_id, where, before_id, limit)


async def _boards(
    cursor: Any, room_id: int, reader_id: int | None, where: str, retro_id: Any, limit: int
) -> tuple[list[Board], bool]:
    await cursor.execute(
        _BOARD_SELECT + f" WHERE x.room_id = %(room)s AND {where}"
        " ORDER BY x.id DESC LIMIT %(limit)s",
        {"room": room_id, "retro": retro_id, "reader": reader_id, "limit": limit + 1},
    )
    rows = cursor.fetchall()[: limit + 1]
    if not rows:
        return [], False
    tasks = await retro_tasks_txn(cursor, room_id, [row[0] for row in rows[:limit]])
    return [_board(row, reader_id, tasks) for row in rows[:limit]], len(rows) > limit


async def _read_back(cursor: Any, head: RetroHead, reader_id: int) -> Board:
    board = await board_txn(cursor, head.room_id, head.id, reader_id)
    assert board is not None  # locked by the caller
    return board


async def _locked(
    cursor: Any, room_id: int, retro_id: int, user_id: int, lock: str
) -> tuple[RetroHead, Actor] | None:
    head = await head_txn(cursor, room_id, retro_id, lock=lock)
    if head is None:
        return None
    return head, await actor_in_txn(cursor, room_id, user_id)


async def refuse_unknown_parts_txn(
    cursor: Any, retro_id: int, entry_id: int | None, group_id: int | None
) -> None:
    """404 unless the entry and the group (each when given) are this retro's."""
    if entry_id is not None:
        await cursor.execute(
            "SELECT 1 FROM retro_entries WHERE id = %s AND retro_id = %s", (entry_id, retro_id)
        )
        if cursor.fetchone() is None:
            raise entry_not_found()
    if group_id is not None:
        await _group_of(cursor, retro_id, group_id)


async def _participate(cursor: Any, retro_id: int, user_id: int) -> bool:
    """Make the user a participant; whether they were not one before."""
    await cursor.execute(
        "INSERT INTO retro_participants (retro_id, user_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
        (retro_id, user_id),
    )
    return bool(cursor.rowcount)


async def _is_participant(cursor: Any, retro_id: int, user_id: int, *, lock: bool) -> bool:
    await cursor.execute(
        "SELECT 1 FROM retro_participants WHERE retro_id = %s AND user_id = %s"
        + (" FOR UPDATE" if lock else ""),
        (retro_id, user_id),
    )
    return cursor.fetchone() is not None


# ------------------------------------------------------------------ the retro


async def create_retro_txn(
    cursor: Any,
    retro_id: int,
    room_id: int,
    user_id: int,
    new: NewRetro,
    event_id: int,
    request_id: str | None,
    check: Callable[[Actor], None],
) -> tuple[Board, RoomEvent]:
    """Start a retro with its facilitator as first participant; 409 ``retro_open`` when
    the room has one open (the unique index decides between two starting at once)."""
    check(await actor_in_txn(cursor, room_id, user_id))
    await cursor.execute(
        "INSERT INTO retros (id, room_id, facilitator_id, title, columns,"
        "                    votes_per_participant, anonymous)"
        " SELECT %(id)s, id, %(user)s, coalesce(%(title)s, 'Retro ' || to_char(now(), 'YYYY-MM-DD')),"
        "        %(columns)s, %(votes)s, %(anonymous)s"
        "   FROM rooms WHERE id = %(room)s AND deleted_at IS NULL"
        " ON CONFLICT (room_id) WHERE phase <> 'closed' DO NOTHING RETURNING title",
        {
            "id": retro_id,
            "room": room_id,
            "user": user_id,
            "title": new.title,
            "columns": list(new.columns),
            "votes": new.votes_per_participant,
            "anonymous": new.anonymous,
        },
    )
    row = cursor.fetchone()
    if row is None:
        await cursor.execute("SELECT 1 FROM rooms WHERE id = %s AND deleted_at IS NULL", (room_id,))
        if cursor.fetchone() is None:  # deleted since the caller looked it up
            raise ApiError("not_found", "No such room.")
        raise retro_open()
    await _participate(cursor, retro_id, user_id)
    data = {"retro": str(retro_id), "title": row[0]}
    event = await append_event_txn(
        cursor, event_id, room_id, "retro_started", user_id=user_id, data=data
    )
    await _audit(cursor, "retro.start", room_id, user_id, data, request_id)
    board = await board_txn(cursor, room_id, retro_id, user_id)
    assert board is not None  # inserted just now
    return board, event


async def join_txn(
    cursor: Any, room_id: int, retro_id: int, user_id: int, check: RetroCheck
) -> tuple[Board, bool] | None:
    """Take part; whether the user was not a participant before."""
    locked = await _locked(cursor, room_id, retro_id, user_id, "SHARE")
    if locked is None:
        return None
    head, actor = locked
    check(head, actor)
    refuse_change(head, "participants")
    joined = await _participate(cursor, retro_id, user_id)
    return await _read_back(cursor, head, user_id), joined


async def move_phase_txn(
    cursor: Any,
    room_id: int,
    retro_id: int,
    user_id: int,
    phase: str,
    event_id: int,
    request_id: str | None,
    check: RetroCheck,
) -> tuple[Board, RoomEvent] | None:
    """One step forwards or back. Leaving ``collect`` makes a group of each entry not in
    one; closing stores ``retro_closed`` with the top groups."""
    locked = await _locked(cursor, room_id, retro_id, user_id, "UPDATE")
    if locked is None:
        return None
    head, actor = locked
    check(head, actor)
    refuse_move(head, phase)
    if head.phase == "collect":
        await cursor.execute(
            "INSERT INTO retro_groups (id, retro_id, column_index)"
            " SELECT id, retro_id, column_index FROM retro_entries"
            "  WHERE retro_id = %(retro)s AND group_id IS NULL;"
            "UPDATE retro_entries SET group_id = id"
            " WHERE retro_id = %(retro)s AND group_id IS NULL",
            {"retro": retro_id},
        )
    # Focus is for the discussion: going back before it, nothing is being discussed
    # (and no focused group can be emptied away by grouping).
    await cursor.execute(
        "UPDATE retros SET phase = %(phase)s,"
        "       closed_at = CASE WHEN %(phase)s = 'closed' THEN now() END,"
        "       focus_group_id = CASE WHEN %(phase)s IN ('discuss', 'closed')"
        "                        THEN focus_group_id END"
        " WHERE id = %(retro)s",
        {"phase": phase, "retro": retro_id},
    )
    board = await _read_back(cursor, head, user_id)
    if phase == CLOSED:
        data: dict[str, Any] = {"retro": str(retro_id), "top": top_groups(board)}
        event_type = "retro_closed"
    else:
        data = {"retro": str(retro_id), "phase": phase}
        event_type = "retro_phase_changed"
    event = await append_event_txn(
        cursor, event_id, room_id, event_type, user_id=user_id, data=data
    )
    await _audit(
        cursor,
        "retro.phase",
        room_id,
        user_id,
        {"retro": str(retro_id), "phase": phase},
        request_id,
    )
    return board, event


async def focus_txn(
    cursor: Any,
    room_id: int,
    retro_id: int,
    user_id: int,
    group_id: int | None,
    check: RetroCheck,
) -> Board | None:
    locked = await _locked(cursor, room_id, retro_id, user_id, "UPDATE")
    if locked is None:
        return None
    head, actor = locked
    if group_id is not None:
        await _group_of(cursor, retro_id, group_id)
    check(head, actor)
    refuse_change(head, "focus")
    await cursor.execute(
        "UPDATE retros SET focus_group_id = %s WHERE id = %s", (group_id, retro_id)
    )
    return await _read_back(cursor, head, user_id)


# ------------------------------------------------------------------ entries


async def add_entry_txn(
    cursor: Any,
    room_id: int,
    retro_id: int,
    user_id: int,
    entry_id: int,
    column: int,
    text: str,
    check: RetroCheck,
) -> tuple[Board, bool] | None:
    """An entry in ``column``; in a retro that is not anonymous its author takes part."""
    locked = await _locked(cursor, room_id, retro_id, user_id, "SHARE")
    if locked is None:
        return None
    head, actor = locked
    check(head, actor)
    refuse_change(head, "entries")
    joined = False if head.anonymous else await _participate(cursor, retro_id, user_id)
    await cursor.execute(
        "INSERT INTO retro_entries (id, retro_id, user_id, column_index, text)"
        " VALUES (%s, %s, %s, %s, %s)",
        (entry_id, retro_id, user_id, column, text),
    )
    return await _read_back(cursor, head, user_id), joined


async def change_entry_txn(
    cursor: Any,
    room_id: int,
    retro_id: int,
    user_id: int,
    entry_id: int,
    text: str | None,
    column: int | None,
    check: RetroCheck,
) -> Board | None:
    """Change one's own entry; moved to another column, it leaves its group."""
    own = await _own_entry(cursor, room_id, retro_id, user_id, entry_id, check)
    if own is None:
        return None
    head, group_id, old_column = own
    leaves = column is not None and column != old_column
    await cursor.execute(
        "UPDATE retro_entries SET text = coalesce(%(text)s, text),"
        "       column_index = coalesce(%(column)s, column_index),"
        "       group_id = CASE WHEN %(leaves)s THEN NULL ELSE group_id END"
        " WHERE id = %(id)s",
        {"text": text, "column": column, "leaves": leaves, "id": entry_id},
    )
    if leaves and group_id is not None:
        await _drop_if_empty(cursor, retro_id, group_id)
    return await _read_back(cursor, head, user_id)


async def delete_entry_txn(
    cursor: Any, room_id: int, retro_id: int, user_id: int, entry_id: int, check: RetroCheck
) -> Board | None:
    own = await _own_entry(cursor, room_id, retro_id, user_id, entry_id, check)
    if own is None:
        return None
    head, group_id, _ = own
    await cursor.execute("DELETE FROM retro_entries WHERE id = %s", (entry_id,))
    if group_id is not None:
        await _drop_if_empty(cursor, retro_id, group_id)
    return await _read_back(cursor, head, user_id)


async def _own_entry(
    cursor: Any, room_id: int, retro_id: int, user_id: int, entry_id: int, check: RetroCheck
) -> tuple[RetroHead, int | None, int] | None:
    """The retro, and the entry's group and column, locked for its author's change while
    collecting; None when the retro is gone, 404 unless the entry is this retro's."""
    locked = await _locked(cursor, room_id, retro_id, user_id, "SHARE")
    if locked is None:
        return None
    head, actor = locked
    await cursor.execute(
        "SELECT user_id, group_id, column_index FROM retro_entries"
        " WHERE id = %s AND retro_id = %s FOR UPDATE",
        (entry_id, retro_id),
    )
    row = cursor.fetchone()
    if row is None:
        raise entry_not_found()
    author_id, group_id, column = row
    check(head, actor)
    if author_id != user_id:
        raise ApiError("forbidden", "Only its author changes an entry.")
    refuse_change(head, "entries")
    return head, group_id, column


# ------------------------------------------------------------------ groups


async def move_entry_txn(
    cursor: Any,
    room_id: int,
    retro_id: int,
    user_id: int,
    group_id: int,
    entry_id: int,
    check: RetroCheck,
) -> Board | None:
    """Put an entry into a group of its column; the group it leaves goes if emptied."""
    locked = await _locked(cursor, room_id, retro_id, user_id, "UPDATE")
    if locked is None:
        return None
    head, actor = locked
    group_column = await _group_of(cursor, retro_id, group_id)
    await cursor.execute(
        "SELECT group_id, column_index FROM retro_entries WHERE id = %s AND retro_id = %s",
        (entry_id, retro_id),
    )
    row = cursor.fetchone()
    if row is None:
        raise entry_not_found()
    old_group, column = row
    check(head, actor)
    refuse_unless_participant(await _is_participant(cursor, retro_id, user_id, lock=False))
    if column != group_column:
        raise field_error("entry", "must be in the group's column")
    refuse_change(head, "groups")
    if old_group != group_id:
        await cursor.execute(
            "UPDATE retro_entries SET group_id = %s WHERE id = %s", (group_id, entry_id)
        )
        if old_group is not None:
            await _drop_if_empty(cursor, retro_id, old_group)
    return await _read_back(cursor, head, user_id)


async def title_group_txn(
    cursor: Any,
    room_id: int,
    retro_id: int,
    user_id: int,
    group_id: int,
    title: str,
    check: RetroCheck,
) -> Board | None:
    locked = await _locked(cursor, room_id, retro_id, user_id, "UPDATE")
    if locked is None:
        return None
    head, actor = locked
    await _group_of(cursor, retro_id, group_id)
    check(head, actor)
    refuse_unless_participant(await _is_participant(cursor, retro_id, user_id, lock=False))
    refuse_change(head, "groups")
    await cursor.execute("UPDATE retro_groups SET title = %s WHERE id = %s", (title, group_id))
    return await _read_back(cursor, head, user_id)


async def _group_of(cursor: Any, retro_id: int, group_id: int) -> int:
    """The group's column; 404 unless it is this retro's."""
    await cursor.execute(
        "SELECT column_index FROM retro_groups WHERE id = %s AND retro_id = %s",
        (group_id, retro_id),
    )
    row = cursor.fetchone()
    if row is None:
        raise group_not_found()
    return row[0]


async def _drop_if_empty(cursor: Any, retro_id: int, group_id: int) -> None:
    """An emptied group disappears, and the votes on it go back to their voters."""
    await cursor.execute(
        "DELETE FROM retro_groups g WHERE g.id = %(group)s AND g.retro_id = %(retro)s"
        " AND NOT EXISTS (SELECT 1 FROM retro_entries e"
        "                  WHERE e.retro_id = %(retro)s AND e.group_id = %(group)s)",
        {"group": group_id, "retro": retro_id},
    )


# ------------------------------------------------------------------ votes, happiness


async def vote_txn(
    cursor: Any,
    room_id: int,
    retro_id: int,
    user_id: int,
    group_id: int,
    spend: bool,
    check: RetroCheck,
) -> tuple[Board, bool] | None:
    """Spend one vote on the group (``spend``) or take one back. The voter's participant
    row is locked while their votes are counted: two tabs never spend one vote twice."""
    locked = await _locked(cursor, room_id, retro_id, user_id, "SHARE")
    if locked is None:
        return None
    head, actor = locked
    await _group_of(cursor, retro_id, group_id)
    check(head, actor)
    await cursor.execute(
        "SELECT count FROM retro_votes WHERE retro_id = %s AND user_id = %s AND group_id = %s",
        (retro_id, user_id, group_id),
    )
    row = cursor.fetchone()
    if not spend and row is None:
        raise field_error("group", "has none of your votes to take back")
    refuse_change(head, "votes")
    joined = await _participate(cursor, retro_id, user_id)
    await _is_participant(cursor, retro_id, user_id, lock=True)
    if spend:
        await cursor.execute(
            "SELECT coalesce(sum(count), 0) FROM retro_votes WHERE retro_id = %s AND user_id = %s",
            (retro_id, user_id),
        )
        if cursor.fetchone()[0] >= head.votes_per_participant:
            raise no_votes_left()
        await cursor.execute(
            "INSERT INTO retro_votes (retro_id, group_id, user_id, count) VALUES (%s, %s, %s, 1)"
            " ON CONFLICT (retro_id, user_id, group_id)"
            " DO UPDATE SET count = retro_votes.count + 1",
            (retro_id, group_id, user_id),
        )
    else:
        await cursor.execute(
            "UPDATE retro_votes SET count = count - 1"
            " WHERE retro_id = %(retro)s AND user_id = %(user)s AND group_id = %(group)s;"
            "DELETE FROM retro_votes WHERE retro_id = %(retro)s AND user_id = %(user)s"
            " AND group_id = %(group)s AND count = 0",
            {"retro": retro_id, "user": user_id, "group": group_id},
        )
    return await _read_back(cursor, head, user_id), joined


async def happiness_txn(
    cursor: Any, room_id: int, retro_id: int, user_id: int, score: int, check: RetroCheck
) -> tuple[Board, bool] | None:
    """Score happiness, replacing one's earlier score."""
    locked = await _locked(cursor, room_id, retro_id, user_id, "SHARE")
    if locked is None:
        return None
    head, actor = locked
    check(head, actor)
    refuse_change(head, "happiness")
    joined = await _participate(cursor, retro_id, user_id)
    await cursor.execute(
        "INSERT INTO retro_happiness (retro_id, user_id, score) VALUES (%s, %s, %s)"
        " ON CONFLICT (retro_id, user_id) DO UPDATE SET score = excluded.score",
        (retro_id, user_id, score),
    )
    return await _read_back(cursor, head, user_id), joined


async def add_action_txn(
    cursor: Any,
    room_id: int,
    retro_id: int,
    user_id: int,
    task_id: int,
    changes: TaskChanges,
    event_id: int,
    request_id: str | None,
    check: RetroCheck,
) -> tuple[Task, RoomEvent] | None:
    """An action item: a room task whose ``source`` is the retro, made by a participant
    in the same transaction that saw the retro open."""
    locked = await _locked(cursor, room_id, retro_id, user_id, "SHARE")
    if locked is None:
        return None
    head, actor = locked
    check(head, actor)
    refuse_unless_participant(await _is_participant(cursor, retro_id, user_id, lock=False))
    refuse_change(head, "actions")
    task, event = await create_task_txn(
        cursor,
        task_id,
        room_id,
        user_id,
        changes,
        event_id,
        request_id,
        lambda _: None,  # the member check above was made on this transaction's reads
        source={"retro": str(retro_id)},
    )
    assert event is not None  # a room task's
    return task, event


async def _audit(
    cursor: Any,
    action: str,
    room_id: int,
    user_id: int,
    data: dict[str, Any],
    request_id: str | None,
) -> None:
    await insert_audit_txn(
        cursor, action, actor_id=user_id, room_id=room_id, data=data, request_id=request_id
    )


async def retros_of_user_txn(cursor: Any, user_id: int) -> dict[str, list[Any]]:
    """What a user put into retros, for their data export: the entries they wrote, their
    votes and their happiness scores (theirs alone to see)."""
    await cursor.execute(
        "SELECT e.retro_id, r.name, x.title, x.columns[e.column_index + 1], e.text,"
        "       e.created_at"
        "  FROM retro_entries e JOIN retros x ON x.id = e.retro_id"
        "  JOIN rooms r ON r.id = x.room_id"
        " WHERE e.user_id = %s ORDER BY e.id",
        (user_id,),
    )
    entries = cursor.fetchall()
    await cursor.execute(
        "SELECT v.retro_id, v.group_id, v.count FROM retro_votes v"
        " WHERE v.user_id = %s ORDER BY v.retro_id, v.group_id",
        (user_id,),
    )
    votes = cursor.fetchall()
    await cursor.execute(
        "SELECT h.retro_id, h.score FROM retro_happiness h"
        " WHERE h.user_id = %s ORDER BY h.retro_id",
        (user_id,),
    )
    return {"entries": entries, "votes": votes, "happiness": cursor.fetchall()}
