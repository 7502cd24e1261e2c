"""
Tasks, as the contract's Tasks section has them (../shared/spec/protocol-v1.1.md): a
task is personal (only its creator ever sees it) or belongs to a room. What a request
may set, what a task looks like on the wire, and who may change it.

Pure logic: no Twisted, no database.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

import attrs

from termrooms.domain.errors import ApiError
from termrooms.domain.roles import Action, Actor, may
from termrooms.domain.rules import check_fields, text_problem
from termrooms.domain.wire import iso_time

TITLE_MAX = 200
DESCRIPTION_MAX = 2000
TASK_STATUSES = ("pending", "in_progress", "completed")
OPEN_STATUSES = ("pending", "in_progress")  # a task is open while it is not completed
TASK_FIELDS = ("title", "description", "status", "assignee")  # what PUT and PATCH set
TASK_PAGE_DEFAULT = 50
TASK_PAGE_MAX = 200
TASK_NUMBER_MAX = 2**31 - 1  # numbers are an INTEGER column
_STATUS_PROBLEM = "must be pending, in_progress or completed"


@attrs.frozen
class Task:
    """One row of tasks, with the names the wire shows instead of the ids it keeps."""

    id: int
    room_id: int | None  # None: personal
    room: str | None
    number: int
    title: str
    description: str
    status: str
    user_id: int  # the creator
    created_by: str
    assignee_id: int | None
    assignee: str | None
    source: Mapping[str, Any] | None
    created_at: datetime
    updated_at: datetime

    @property
    def personal(self) -> bool:
        return self.room_id is None


def task_json(task: Task) -> dict[str, Any]:
    """The task exactly as the contract shows it, in answers, frames and stored events."""
    return {
        "id": str(task.id),
        "title": task.title,
        "description": task.description,
        "status": task.status,
        "user_id": str(task.user_id),
        "created_at": iso_time(task.created_at),
        "updated_at": iso_time(task.updated_at),
        "room": task.room,
        "number": task.number,
        "assignee": task.assignee,
        "created_by": task.created_by,
        "source": None if task.source is None else dict(task.source),
    }


@attrs.frozen
class TaskChanges:
    """What a create or an update sets; ``assignee`` is a username, "" to unassign."""

    title: str | None = None
    description: str | None = None
    status: str | None = None
    assignee: str | None = None

    def changed_fields(self, task: Task, assignee_id: int | None) -> tuple[str, ...]:
        """The fields whose value this changes on ``task`` (``assignee_id``: whom the
        assignee given resolves to), in the contract's order: ``changes`` of an event.
        A field set to the value it has is no change, so re-sending the assignee there
        is not a new assignment."""
        now = {"title": task.title, "description": task.description, "status": task.status}
        changed = [name for name, value in now.items() if getattr(self, name) not in (None, value)]
        if self.assignee is not None and assignee_id != task.assignee_id:
            changed.append("assignee")
        return tuple(changed)


def task_frame(task: Task) -> dict[str, Any]:
    """A personal task as it changed, to its owner's sockets."""
    return {"type": "task", "task": task_json(task)}


def task_deleted_frame(task_id: int) -> dict[str, Any]:
    return {"type": "task", "deleted": str(task_id)}


def parse_task_changes(body: Mapping[str, Any], *, creating: bool) -> TaskChanges:
    """The fields of a POST (``title`` required) or PUT/PATCH body; a 422 names each bad one.

    ``assignee`` null clears the assignee (kept as "" so that "not given" stays None).
    """
    problems: dict[str, str | None] = {}
    title = body.get("title")
    if title is not None or creating:
        problems["title"] = title_problem(title)
    description = body.get("description")
    if description is not None:
        problems["description"] = text_problem(description, 0, DESCRIPTION_MAX)
    status = body.get("status")
    if status is not None and status not in TASK_STATUSES:
        problems["status"] = _STATUS_PROBLEM
    assignee = body.get("assignee")
    if assignee is not None and (not isinstance(assignee, str) or not assignee):
        problems["assignee"] = "must be a username or null"
    if not creating and not any(name in body for name in TASK_FIELDS):
        problems["title"] = "give at least one of title, description, status, assignee"
    check_fields(**problems)
    cleared = "assignee" in body and assignee is None
    return TaskChanges(
        title=title.strip() if isinstance(title, str) else None,
        description=description,
        status=status,
        assignee="" if cleared else assignee,
    )


def title_problem(value: object) -> str | None:
    """What is wrong with a title, or None: one rule for the route and for ``/todo add``."""
    return text_problem(value, 1, TITLE_MAX)


def parse_status_filter(value: str | None) -> str | None:
    """``?status=``: one of the statuses, or a 422 naming it."""
    if value is not None and value not in TASK_STATUSES:
        check_fields(status=_STATUS_PROBLEM)
    return value


def may_update_task(actor: Actor, *, is_creator: bool, is_assignee: bool) -> bool:
    """A room task is updated by its creator, its assignee, and moderators and above,
    while they are members who are not banned."""
    return may(actor, Action.READ) and (
        is_creator or is_assignee or may(actor, Action.MANAGE_TASKS)
    )


def may_delete_task(actor: Actor, *, is_creator: bool) -> bool:
    """A room task is deleted by its creator, and moderators and above."""
    return may_update_task(actor, is_creator=is_creator, is_assignee=False)


def task_not_found() -> ApiError:
    """What anyone gets for a task they may not see: the same as for no task at all."""
    return ApiError("not_found", "No such task.")
