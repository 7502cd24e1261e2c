"""Tasks in PostgreSQL: personal and room tasks, their numbers, events and audit rows.

Every change is one transaction that locks what it changes, checks its rule on what
it read under that lock (``check``, from the handler), stores the room event of a room
task and writes the audit row: a task never changes without its event and its row.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Mapping

from termrooms.domain.errors import ApiError
from termrooms.domain.events import RoomEvent
from termrooms.domain.notices import UserNotice
from termrooms.domain.roles import Actor
from termrooms.domain.rules import field_error
from termrooms.domain.tasks import Task, TaskChanges, task_json
from termrooms.storage.audit import insert_audit_txn
from termrooms.storage.moderation import STANDING_OF_USER, target_txn
from termrooms.storage.notices import notify_user_txn
from termrooms.storage.rooms import append_event_txn

# Task's fields, in its order, from tasks t joined to the names the wire shows.
_TASK_COLUMNS = (
    "SELECT t.id, t.room_id, r.name, t.number, t.title, t.description, t.status,"
    "       t.user_id, c.username, t.assignee_id, a.username, t.source,"
    "       t.created_at, t.updated_at"
)
_TASK_NAMES = (
    "  JOIN users c ON c.id = t.user_id"
    "  LEFT JOIN users a ON a.id = t.assignee_id"
    "  LEFT JOIN rooms r ON r.id = t.room_id"
)
_TASK_SELECT = f"{_TASK_COLUMNS} FROM tasks t{_TASK_NAMES}"
# Run on the task as locked, and on where the caller stands in its room (None for a
# personal task); raises ApiError to refuse.
TaskCheck = Callable[[Task, Actor | None], None]


async def actor_in_txn(cursor: Any, room_id: int, user_id: int) -> Actor:
    """Where the user stands in the room now, read in the caller's transaction."""
    await cursor.execute(
        "SELECT EXISTS (SELECT 1 FROM rooms WHERE id = %(room)s AND kind = 'direct'),"
        f" {STANDING_OF_USER} WHERE u.id = %(user)s",
        {"room": room_id, "user": user_id},
    )
    direct, admin, role, banned, muted = cursor.fetchone()
    return Actor(room_role=role, server_admin=admin, muted=muted, banned=banned, direct=direct)


async def task_txn(cursor: Any, task_id: int, *, lock: bool = False) -> Task | None:
    """A task that is not deleted (and whose room is not), locked for update if asked."""
    query = _TASK_SELECT + " WHERE t.id = %s AND t.deleted_at IS NULL AND r.deleted_at IS NULL"
    await cursor.execute(query + " FOR UPDATE OF t" if lock else query, (task_id,))
    row = cursor.fetchone()
    return Task(*row) if row else None


async def room_task_txn(cursor: Any, room_id: int, number: int) -> Task | None:
    """The room's task numbered ``number`` (tasks_room_number_key), if not deleted."""
    await cursor.execute(
        _TASK_SELECT + " WHERE t.room_id = %s AND t.number = %s"
        " AND t.deleted_at IS NULL AND r.deleted_at IS NULL",
        (room_id, number),
    )
    row = cursor.fetchone()
    return Task(*row) if row else None


async def _assignee_id(
    cursor: Any, room_id: int | None, user_id: int, username: str | None
) -> int | None:
    """The id to assign (None: nobody): a member of the room who is not banned, or on a
    personal task its owner; read in the transaction that assigns, else a 422."""
    if not username:
        return None
    target = await target_txn(cursor, room_id or 0, username)
    if room_id is None:
        if target is None or target.id != user_id:
            raise field_error("assignee", "must be yourself on a personal task")
        return user_id
    if target is None or target.room_role is None or target.banned:
        raise field_error("assignee", "must be a member of the room")
    return target.id


async def create_task_txn(
    cursor: Any,
    task_id: int,
    room_id: int | None,
    user_id: int,
    changes: TaskChanges,
    event_id: int,
    request_id: str | None,
    check: Callable[[Actor | None], None],
    *,
    source: Mapping[str, Any] | None = None,
) -> tuple[Task, RoomEvent | None]:
    """Store a task with the next number of its room (or of its creator's personal ones);
    ``source`` says where it came from (``{"retro": ID}`` for a retro's action)."""
    if room_id is None:
        check(None)
        await cursor.execute(
            "UPDATE users SET last_task_number = last_task_number + 1 WHERE id = %s"
            " RETURNING last_task_number",
            (user_id,),
        )
    else:
        check(await actor_in_txn(cursor, room_id, user_id))
        await cursor.execute(
            "UPDATE rooms SET last_task_number = last_task_number + 1"
            " WHERE id = %s AND deleted_at IS NULL RETURNING last_task_number",
            (room_id,),
        )
    row = cursor.fetchone()
    if row is None:  # the room was deleted since the caller looked it up
        raise ApiError("not_found", "No such room.")
    (number,) = row
    assignee_id = await _assignee_id(cursor, room_id, user_id, changes.assignee)
    await cursor.execute(
        "INSERT INTO tasks (id, room_id, user_id, number, title, description, status,"
        "                   assignee_id, source)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            task_id,
            room_id,
            user_id,
            number,
            changes.title,
            changes.description or "",
            changes.status or "pending",
            assignee_id,
            None if source is None else json.dumps(source),
        ),
    )
    task = await task_txn(cursor, task_id)
    assert task is not None  # inserted just now
    return task, await _recorded(cursor, "task.create", task, user_id, event_id, request_id)


async def update_task_txn(
    cursor: Any,
    task_id: int,
    user_id: int,
    changes: TaskChanges,
    event_id: int,
    request_id: str | None,
    check: TaskCheck,
) -> tuple[Task, RoomEvent | None] | None:
    """Change what ``changes`` sets; None when there is no such task (any more). When
    no value changes, nothing is written (no event, audit row or notice): a retried
    PATCH is no second change."""
    task = await _locked_and_checked(cursor, task_id, user_id, check)
    if task is None:
        return None
    assignee_id = await _assignee_id(cursor, task.room_id, user_id, changes.assignee)
    changed = changes.changed_fields(task, assignee_id)
    if not changed:
        return task, None
    await cursor.execute(
        "UPDATE tasks SET title = coalesce(%(title)s, title),"
        "       description = coalesce(%(description)s, description),"
        "       status = coalesce(%(status)s, status),"
        "       assignee_id = CASE WHEN %(assign)s THEN %(assignee)s ELSE assignee_id END,"
        "       updated_at = now()"
        " WHERE id = %(id)s",
        {
            "id": task_id,
            "title": changes.title,
            "description": changes.description,
            "status": changes.status,
            "assign": changes.assignee is not None,
            "assignee": assignee_id,
        },
    )
    updated = await task_txn(cursor, task_id)
    assert updated is not None  # locked above
    event = await _recorded(cursor, "task.update", updated, user_id, event_id, request_id, changed)
    return updated, event


async def delete_task_txn(
    cursor: Any,
    task_id: int,
    user_id: int,
    event_id: int,
    request_id: str | None,
    check: TaskCheck,
) -> tuple[Task, RoomEvent | None] | None:
    """Soft delete (purged by retention after 7 days); None when there is no such task."""
    task = await _locked_and_checked(cursor, task_id, user_id, check)
    if task is None:
        return None
    await cursor.execute("UPDATE tasks SET deleted_at = now() WHERE id = %s", (task_id,))
    return task, await _recorded(cursor, "task.delete", task, user_id, event_id, request_id)


async def _locked_and_checked(
    cursor: Any, task_id: int, user_id: int, check: TaskCheck
) -> Task | None:
    """The task locked for the change, once ``check`` passed on it and on where the
    user stands in its room now; None when it is gone."""
    task = await task_txn(cursor, task_id, lock=True)
    if task is None:
        return None
    actor = None if task.room_id is None else await actor_in_txn(cursor, task.room_id, user_id)
    check(task, actor)
    return task


async def _recorded(
    cursor: Any,
    action: str,
    task: Task,
    actor_id: int,
    event_id: int,
    request_id: str | None,
    changes: tuple[str, ...] = (),
) -> RoomEvent | None:
    """The audit row of a change, and the room event of a room task's."""
    audit: dict[str, Any] = {"task": str(task.id), "number": task.number}
    if changes:
        audit["changes"] = list(changes)
    if not task.personal:
        audit["title"] = task.title  # a personal task's text is its owner's alone
    await insert_audit_txn(
        cursor,
        action,
        actor_id=actor_id,
        room_id=task.room_id,
        data=audit,
        request_id=request_id,
    )
    if task.room_id is None:
        kind = "task_deleted" if action == "task.delete" else "task"
        await notify_user_txn(cursor, UserNotice(task.user_id, kind, task.id))
        return None
    if action == "task.delete":
        data: dict[str, Any] = {"target": str(task.id)}
        event_type = "task_deleted"
    else:
        data = {"task": task_json(task)}
        event_type = "task_created" if action == "task.create" else "task_updated"
        if changes:
            data["changes"] = list(changes)
    event = await append_event_txn(
        cursor, event_id, task.room_id, event_type, user_id=actor_id, data=data
    )
    assigned = action == "task.create" or "assignee" in changes
    if assigned and task.assignee_id is not None and task.assignee_id != actor_id:
        notice = UserNotice(task.assignee_id, "task_assigned", task.room_id, event.seq)
        await notify_user_txn(cursor, notice, actor_id)
    return event


# The ids of a page, newest first, from tasks alone: read in id order from an index,
# a page costs ``limit`` rows and never a sort of all the list's.
_PAGE_OF_IDS = (
    " AND t.deleted_at IS NULL"
    " AND (%(status)s::text IS NULL OR t.status = %(status)s)"
    " AND (NOT %(by_assignee)s OR t.assignee_id IS NOT DISTINCT FROM %(assignee)s)"
    " AND (%(before)s::bigint IS NULL OR t.id < %(before)s)"
    " ORDER BY t.id DESC LIMIT %(limit)s"
)
_ROOM_TASKS = (  # tasks_room_idx; the room's liveness is one check, not a join per row
    "t.room_id = %(room)s"
    " AND EXISTS (SELECT 1 FROM rooms r WHERE r.id = %(room)s AND r.deleted_at IS NULL)"
)
_MY_TASKS = (  # personal, or assigned in a live room the user is a member of
    "((t.room_id IS NULL AND t.user_id = %(user)s)"
    " OR (t.room_id IS NOT NULL AND t.assignee_id = %(user)s"
    "     AND EXISTS (SELECT 1 FROM rooms r WHERE r.id = t.room_id AND r.deleted_at IS NULL)"
    "     AND EXISTS (SELECT 1 FROM memberships m"
    "                  WHERE m.room_id = t.room_id AND m.user_id = %(user)s)))"
)


async def tasks_page_txn(
    cursor: Any,
    *,
    room_id: int | None,
    user_id: int,
    status: str | None,
    assignee_id: int | None,
    assignee_filter: bool,
    before_id: int | None,
    limit: int,
) -> tuple[list[Task], bool]:
    """A page of tasks, newest ``limit`` (older than ``before_id``), oldest first, and
    whether older ones exist. ``room_id`` None: the user's own list (personal tasks, and
    room tasks assigned to them in live rooms they are still a member of). The page's rows
    are picked from tasks alone, then joined to the names: joined first, PostgreSQL
    without statistics for users and rooms expected few rows and sorted all of them."""
    which = _ROOM_TASKS if room_id is not None else _MY_TASKS
    picked = f"SELECT t.* FROM tasks t WHERE {which}{_PAGE_OF_IDS}"
    # The page's rows read once, through the index, then named: "id IN (picked ids)"
    # read tasks a second time, and a small table whole.
    await cursor.execute(
        f"{_TASK_COLUMNS} FROM ({picked}) t{_TASK_NAMES} ORDER BY t.id DESC",
        {
            "room": room_id,
            "user": user_id,
            "status": status,
            "by_assignee": assignee_filter,
            "assignee": assignee_id,
            "before": before_id,
            "limit": limit + 1,
        },
    )
    rows = cursor.fetchall()
    tasks = [Task(*row) for row in rows[:limit]]
    tasks.reverse()
    return tasks, len(rows) > limit


async def retro_tasks_txn(cursor: Any, room_id: int, retro_ids: list[int]) -> list[Task]:
    """The room's tasks from retros, oldest first, that the boards of ``retro_ids`` show:
    each one's actions, and the open ones from earlier retros (tasks_retro_idx)."""
    await cursor.execute(
        _TASK_SELECT + " WHERE t.room_id = %(room)s AND t.source IS NOT NULL"
        " AND t.deleted_at IS NULL AND (t.status <> 'completed'"
        "      OR (t.source->>'retro')::bigint = ANY(%(retros)s))"
        " ORDER BY t.id",
        {"room": room_id, "retros": retro_ids},
    )
    return [Task(*row) for row in cursor.fetchall()]


async def tasks_of_user_txn(cursor: Any, user_id: int) -> list[Task]:
    """Every stored task the user created or is assigned, for their data export."""
    await cursor.execute(
        _TASK_SELECT + " WHERE t.user_id = %(user)s OR t.assignee_id = %(user)s ORDER BY t.id",
        {"user": user_id},
    )
    return [Task(*row) for row in cursor.fetchall()]


async def delete_personal_tasks_txn(cursor: Any, user_id: int) -> None:
    """An account's personal tasks go with it; its room tasks stay with their rooms."""
    await cursor.execute("DELETE FROM tasks WHERE user_id = %s AND room_id IS NULL", (user_id,))
