"""Tasks between the routes and storage: who sees which task, who changes it, and in
which order refusals come (401, 404, 403, 422: a hidden task is never confirmed)."""

from __future__ import annotations

from typing import Any, Callable, Mapping

import attrs

from termrooms.domain.errors import ApiError
from termrooms.domain.notices import UserNotice
from termrooms.domain.roles import Actor
from termrooms.domain.rules import check_fields, username_problem
from termrooms.domain.snowflake import SnowflakeGenerator
from termrooms.domain.tasks import (
    Task,
    may_delete_task,
    may_update_task,
    parse_status_filter,
    parse_task_changes,
    task_deleted_frame,
    task_frame,
    task_not_found,
)
from termrooms.handlers.rooms import RoomHandler, actor_of
from termrooms.storage.database import Database
from termrooms.storage.moderation import target_txn
from termrooms.storage.tasks import (
    TaskCheck,
    create_task_txn,
    delete_task_txn,
    room_task_txn,
    task_txn,
    tasks_page_txn,
    update_task_txn,
)
from termrooms.storage.users import User


@attrs.define(eq=False)
class TaskHandler:
    """Personal and room tasks; a room task's events go out as the room's messages do."""

    database: Database
    rooms: RoomHandler
    snowflakes: SnowflakeGenerator

    async def create(self, user: User, body: Mapping[str, Any], request_id: str | None) -> Task:
        room = body.get("room")
        room_id = None
        if room is not None:
            view = await self.rooms.member_view(room, user)  # 404 hidden, 403 not a member
            room_id = view.room.id
        changes = parse_task_changes(body, creating=True)

        def check(actor: Actor | None) -> None:
            if actor is not None and not may_update_task(actor, is_creator=True, is_assignee=False):
                raise ApiError("forbidden", "Join the room first.")

        task, event = await self.database.run_interaction(
            create_task_txn,
            self.snowflakes.next_id(),
            room_id,
            user.id,
            changes,
            self.snowflakes.next_id(),
            request_id,
            check,
        )
        if event is not None:
            self.rooms.publish(event)
        return task

    async def get(self, user: User, task_id: Any) -> Task:
        task, _ = await self._visible(user, task_id)
        return task

    async def numbered(self, user: User, room: str, number: Any) -> Task:
        """A room's task by its ``number`` (what ``/todo`` names), for whoever may see it:
        the room's 404 when the room is hidden, the task's when there is no such task."""
        room_id = (await self.rooms.view(room, user)).room.id
        if not isinstance(number, int):
            raise task_not_found()
        task = await self.database.run_autocommit(room_task_txn, room_id, number)
        if task is None:
            raise task_not_found()
        return task

    async def update(
        self,
        user: User,
        task_id: Any,
        read_body: Callable[[], Mapping[str, Any]],
        request_id: str | None,
    ) -> Task:
        """``read_body`` is called once the task is known visible and changeable: a body's
        400 or 422 never tells anyone that a hidden task exists."""
        task, actor = await self._visible(user, task_id)
        check = _refuse_unless(user, deleting=False)
        check(task, actor)
        changes = parse_task_changes(read_body(), creating=False)
        changed = await self.database.run_interaction(
            update_task_txn,
            task.id,
            user.id,
            changes,
            self.snowflakes.next_id(),
            request_id,
            check,
        )
        if changed is None:
            raise task_not_found()
        updated, event = changed
        if event is not None:
            self.rooms.publish(event)
        return updated

    async def delete(self, user: User, task_id: Any, request_id: str | None) -> None:
        task, actor = await self._visible(user, task_id)
        check = _refuse_unless(user, deleting=True)
        check(task, actor)
        deleted = await self.database.run_interaction(
            delete_task_txn, task.id, user.id, self.snowflakes.next_id(), request_id, check
        )
        if deleted is None:
            raise task_not_found()
        if deleted[1] is not None:
            self.rooms.publish(deleted[1])

    async def room_id_for(self, user: User, room: str | None) -> int | None:
        """The id of the room whose tasks are listed, if the user may read it (else 404)."""
        if room is None:
            return None
        return (await self.rooms.view(room, user)).room.id

    async def page(
        self,
        user: User,
        *,
        room_id: int | None,
        status: str | None,
        assignee: str | None,
        before_id: int | None,
        limit: int,
    ) -> tuple[list[Task], bool]:
        """A room's tasks (``room_id`` from room_id_for) or, without a room, mine."""
        parse_status_filter(status)
        assignee_id = None
        if assignee == "me":
            assignee_id = user.id
        elif assignee is not None:
            if username_problem(assignee):
                check_fields(assignee="must be a username or me")
            target = await self.database.run_autocommit(target_txn, room_id or 0, assignee)
            # Nobody by that name: an empty page, as for a user assigned nothing.
            assignee_id = target.id if target is not None else 0
        return await self.database.run_autocommit(
            tasks_page_txn,
            room_id=room_id,
            user_id=user.id,
            status=status,
            assignee_id=assignee_id,
            assignee_filter=assignee is not None,
            before_id=before_id,
            limit=limit,
        )

    async def frame_for(self, notice: UserNotice) -> dict[str, Any] | None:
        """The ``task`` frame a personal task's notice stands for, read now (None when it
        no longer applies)."""
        if notice.kind == "task_deleted":
            return task_deleted_frame(notice.ref)
        task = await self.database.run_autocommit(task_txn, notice.ref)
        if task is None or task.user_id != notice.user_id:
            return None  # deleted since: its own notice follows
        return task_frame(task)

    async def _visible(self, user: User, task_id: Any) -> tuple[Task, Actor | None]:
        """The task, if this user may see it, and where they stand in its room."""
        if not isinstance(task_id, int) or not 0 < task_id < 2**63:
            raise task_not_found()
        task = await self.database.run_autocommit(task_txn, task_id)
        if task is None:
            raise task_not_found()
        if task.room is None:
            if task.user_id != user.id:
                raise task_not_found()
            return task, None
        try:
            view = await self.rooms.view(task.room, user)
        except ApiError as e:
            if e.error_code == "not_found":  # the room is hidden, and so is its task
                raise task_not_found() from None
            raise
        return task, actor_of(view, user)


def _refuse_unless(user: User, *, deleting: bool) -> TaskCheck:
    """The rule for changing a task, run before the body is read and again in the
    transaction, on the task and the standing it locked and read."""

    def check(task: Task, actor: Actor | None) -> None:
        if actor is None:
            if task.user_id != user.id:
                raise task_not_found()
            return
        is_creator = task.user_id == user.id
        if actor.banned:
            raise ApiError("banned", "You are banned from this room.")
        if deleting:
            allowed = may_delete_task(actor, is_creator=is_creator)
        else:
            allowed = may_update_task(
                actor, is_creator=is_creator, is_assignee=task.assignee_id == user.id
            )
        if not allowed:
            raise ApiError("forbidden", _FORBIDDEN_DELETE if deleting else _FORBIDDEN_UPDATE)

    return check


_FORBIDDEN_UPDATE = "Only its creator, its assignee and moderators change this task."
_FORBIDDEN_DELETE = "Only its creator and moderators delete this task."
