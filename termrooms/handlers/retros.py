"""Retrospectives between the routes and storage: who may do what, in the contract's
order of refusals (404, 403, 422, 409: a hidden retro is never confirmed, a body is
read only once the caller may act), and the coalesced ``retro_update`` frames.

Each change is checked twice: here on what the caller's room view says (so a bad body
is told after a 403, never before), and again in its transaction on what it read under
the retro's lock, which is the check that counts."""

from __future__ import annotations

from typing import Any, Callable, Mapping

import attrs
from twisted.internet.interfaces import IReactorTime

from termrooms.domain.errors import ApiError
from termrooms.domain.retros import (
    RETRO_UPDATE_EVERY_SECONDS,
    Board,
    RetroHead,
    column_index,
    id_or_none,
    may_start_retro,
    parse_entry_text,
    parse_group_title,
    parse_id,
    parse_new_retro,
    parse_phase,
    parse_score,
    refuse_unless_facilitator,
    retro_not_found,
    update_frame,
)
from termrooms.domain.roles import Action, Actor
from termrooms.domain.snowflake import SnowflakeGenerator
from termrooms.domain.tasks import Task, parse_task_changes
from termrooms.domain.wire import encode_json
from termrooms.handlers.rooms import RoomHandler, RoomView, actor_of, refuse_unless_member
from termrooms.handlers.updates import Coalescer
from termrooms.storage.database import Database
from termrooms.storage.retros import (
    RetroCheck,
    add_action_txn,
    add_entry_txn,
    board_txn,
    boards_page_txn,
    change_entry_txn,
    create_retro_txn,
    delete_entry_txn,
    focus_txn,
    happiness_txn,
    head_txn,
    join_txn,
    move_entry_txn,
    move_phase_txn,
    refuse_unknown_parts_txn,
    title_group_txn,
    vote_txn,
)
from termrooms.storage.users import User

ReadBody = Callable[[], Mapping[str, Any]]
# A retro_update's key: the room (id and name), the retro, the part that changed.
_UpdateKey = tuple[int, str, int, str]


def _member(head: RetroHead, actor: Actor) -> None:
    refuse_unless_member(actor, head.room)


def _facilitator(user: User) -> RetroCheck:
    def check(head: RetroHead, actor: Actor) -> None:
        refuse_unless_member(actor, head.room)
        refuse_unless_facilitator(head, user.id)

    return check


@attrs.define(eq=False)
class RetroHandler:
    """A room's retros; their events go out as the room's messages do, every other
    change as a ``retro_update`` naming the part that changed."""

    database: Database
    rooms: RoomHandler
    snowflakes: SnowflakeGenerator
    clock: IReactorTime
    _updates: Coalescer[_UpdateKey] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._updates = Coalescer(self.clock, RETRO_UPDATE_EVERY_SECONDS, self._send_update)

    # ---------------------------------------------------------------- reading

    async def get(self, user: User, room: Any, retro_id: int) -> Board:
        view = await self.rooms.view(room, user)
        return await self._board(view, retro_id, user)

    async def page(
        self, user: User, room: Any, *, before_id: int | None, limit: int
    ) -> tuple[list[Board], bool]:
        """The room's retros, newest first, each as the caller's board."""
        view = await self.rooms.view(room, user)
        return await self.database.run_autocommit(
            boards_page_txn, view.room.id, user.id, before_id, limit
        )

    async def newest(self, user: User, room: Any) -> Board | None:
        """The room's newest retro (the open one, if any: only one may be), for the
        commands, which name none."""
        boards, _ = await self.page(user, room, before_id=None, limit=1)
        return boards[0] if boards else None

    # ---------------------------------------------------------------- the retro

    async def start(
        self, user: User, room: Any, body: Mapping[str, Any], request_id: str | None
    ) -> Board:
        view = await self.rooms.member_view(room, user, Action.START_RETROS)
        new = parse_new_retro(body)

        def check(actor: Actor) -> None:
            refuse_unless_member(actor, view.room.name)
            if not may_start_retro(actor):
                raise ApiError("forbidden", "Moderators and above start retros.")

        board, event = await self.database.run_interaction(
            create_retro_txn,
            self.snowflakes.next_id(),
            view.room.id,
            user.id,
            new,
            self.snowflakes.next_id(),
            request_id,
            check,
        )
        self.rooms.publish(event)
        return board

    async def join(self, user: User, room: Any, retro_id: int) -> Board:
        head, _ = await self._may_change(user, room, retro_id)
        joined = await self._run(join_txn, head, user, _member)
        return self._joined(head, joined)

    async def move(
        self, user: User, room: Any, retro_id: int, read_body: ReadBody, request_id: str | None
    ) -> Board:
        """Move to the phase the body names: the facilitator, one step at a time."""
        head, body = await self._may_change(user, room, retro_id, read_body, facilitator=True)
        phase = parse_phase(body)
        moved = await self.database.run_interaction(
            move_phase_txn,
            head.room_id,
            head.id,
            user.id,
            phase,
            self.snowflakes.next_id(),
            request_id,
            _facilitator(user),
        )
        if moved is None:
            raise retro_not_found()
        board, event = moved
        self.rooms.publish(event)
        return board

    async def focus(self, user: User, room: Any, retro_id: int, read_body: ReadBody) -> Board:
        head, body = await self._may_change(
            user, room, retro_id, read_body, facilitator=True, body_ids=("group",)
        )
        group_id = parse_id(body, "group", nullable=True)
        board = await self._run(focus_txn, head, user, _facilitator(user), group_id)
        self._update(head, "focus")
        return board

    # ---------------------------------------------------------------- entries

    async def add_entry(
        self, user: User, room: Any, retro_id: int, read_body: ReadBody
    ) -> tuple[Board, int]:
        """The board after adding, and the new entry's id."""
        head, body = await self._may_change(user, room, retro_id, read_body)
        column = column_index(head.columns, body.get("column"))
        text = parse_entry_text(body, required=True)
        assert text is not None  # required
        entry_id = self.snowflakes.next_id()
        joined = await self._run(add_entry_txn, head, user, _member, entry_id, column, text)
        self._update(head, "entries")
        return self._joined(head, joined), entry_id

    async def change_entry(
        self, user: User, room: Any, retro_id: int, entry_id: int, read_body: ReadBody
    ) -> Board:
        head, body = await self._may_change(user, room, retro_id, read_body, entry=entry_id)
        column = None if body.get("column") is None else column_index(head.columns, body["column"])
        text = parse_entry_text(body, required=column is None)
        board = await self._run(change_entry_txn, head, user, _member, entry_id, text, column)
        self._update(head, "entries")
        return board

    async def delete_entry(self, user: User, room: Any, retro_id: int, entry_id: int) -> None:
        head, _ = await self._may_change(user, room, retro_id, entry=entry_id)
        await self._run(delete_entry_txn, head, user, _member, entry_id)
        self._update(head, "entries")

    # ---------------------------------------------------------------- groups

    async def move_entry(
        self, user: User, room: Any, retro_id: int, group_id: int, read_body: ReadBody
    ) -> Board:
        head, body = await self._may_change(
            user, room, retro_id, read_body, group=group_id, body_ids=("entry",)
        )
        entry_id = parse_id(body, "entry")
        board = await self._run(move_entry_txn, head, user, _member, group_id, entry_id)
        self._update(head, "groups")
        return board

    async def title_group(
        self, user: User, room: Any, retro_id: int, group_id: int, read_body: ReadBody
    ) -> Board:
        head, body = await self._may_change(user, room, retro_id, read_body, group=group_id)
        title = parse_group_title(body)
        board = await self._run(title_group_txn, head, user, _member, group_id, title)
        self._update(head, "groups")
        return board

    # ---------------------------------------------------------------- votes, happiness

    async def vote(self, user: User, room: Any, retro_id: int, read_body: ReadBody) -> Board:
        head, body = await self._may_change(user, room, retro_id, read_body, body_ids=("group",))
        group_id = parse_id(body, "group")
        return await self._vote(head, user, group_id, spend=True)

    async def unvote(self, user: User, room: Any, retro_id: int, group_id: int) -> Board:
        head, _ = await self._may_change(user, room, retro_id, group=group_id)
        return await self._vote(head, user, group_id, spend=False)

    async def _vote(self, head: RetroHead, user: User, group_id: Any, *, spend: bool) -> Board:
        joined = await self._run(vote_txn, head, user, _member, group_id, spend)
        self._update(head, "votes")
        return self._joined(head, joined)

    async def happiness(self, user: User, room: Any, retro_id: int, read_body: ReadBody) -> Board:
        head, body = await self._may_change(user, room, retro_id, read_body)
        score = parse_score(body)
        joined = await self._run(happiness_txn, head, user, _member, score)
        self._update(head, "happiness")
        return self._joined(head, joined)

    async def add_action(
        self, user: User, room: Any, retro_id: int, read_body: ReadBody, request_id: str | None
    ) -> Task:
        """An action item: a room task (with its event and audit row) from the retro."""
        head, body = await self._may_change(user, room, retro_id, read_body)
        changes = parse_task_changes(
            {"title": body.get("title"), "assignee": body.get("assignee")}, creating=True
        )
        added = await self.database.run_interaction(
            add_action_txn,
            head.room_id,
            head.id,
            user.id,
            self.snowflakes.next_id(),
            changes,
            self.snowflakes.next_id(),
            request_id,
            _member,
        )
        if added is None:
            raise retro_not_found()
        task, event = added
        self.rooms.publish(event)
        self._update(head, "actions")
        return task

    # ---------------------------------------------------------------- helpers

    async def _board(self, view: RoomView, retro_id: int, user: User) -> Board:
        if not 0 < retro_id < 2**63:
            raise retro_not_found()
        board = await self.database.run_autocommit(board_txn, view.room.id, retro_id, user.id)
        if board is None:
            raise retro_not_found()
        return board

    async def _may_change(
        self,
        user: User,
        room: Any,
        retro_id: int,
        read_body: ReadBody | None = None,
        *,
        entry: int | None = None,
        group: int | None = None,
        body_ids: tuple[str, ...] = (),
        facilitator: bool = False,
    ) -> tuple[RetroHead, Mapping[str, Any]]:
        """The retro and the request's body, once the caller may see the retro and the
        entry or group that the path (or ``body_ids`` of the body) names (404), and may
        change it (403), as their room view says. The body is read once the retro is
        known visible; the transaction checks everything again under the retro's lock."""
        view = await self.rooms.view(room, user)
        if not 0 < retro_id < 2**63:
            raise retro_not_found()
        head = await self.database.run_autocommit(head_txn, view.room.id, retro_id)
        if head is None:
            raise retro_not_found()
        body = {} if read_body is None else read_body()
        named = {"entry": entry, "group": group}
        for field in body_ids:  # a malformed one is the 422 of the parse that follows
            named[field] = id_or_none(body, field)
        await self.database.run_autocommit(
            refuse_unknown_parts_txn, head.id, named["entry"], named["group"]
        )
        refuse_unless_member(actor_of(view, user), head.room)
        if facilitator:
            refuse_unless_facilitator(head, user.id)
        return head, body

    async def _run(
        self,
        interaction: Callable[..., Any],
        head: RetroHead,
        user: User,
        check: RetroCheck,
        *args: Any,
    ) -> Any:
        """Run a change of the retro; its result, or 404 when the retro is gone."""
        result = await self.database.run_interaction(
            interaction, head.room_id, head.id, user.id, *args, check
        )
        if result is None:
            raise retro_not_found()
        return result

    def _joined(self, head: RetroHead, changed: tuple[Board, bool]) -> Board:
        board, joined = changed
        if joined:
            self._update(head, "participants")
        return board

    def _update(self, head: RetroHead, part: str) -> None:
        self._updates.changed((head.room_id, head.room, head.id, part))

    def stop(self) -> None:
        self._updates.stop()

    def _send_update(self, key: _UpdateKey) -> None:
        room_id, room, retro_id, part = key
        self.rooms.bus.publish(room_id, None, encode_json(update_frame(room, retro_id, part)))
