"""
Running slash commands: parsed by the pure ``termrooms.domain.commands``, carried out by the
same RoomHandler, TaskHandler, PollHandler, RetroHandler and SearchHandler methods the REST routes call,
so a command and its route always agree (permissions, stored events, audit rows, notifications).
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable

import attrs

from termrooms.domain.commands import (
    Command,
    CommandError,
    help_lines,
    may_use,
    needs_no_room,
    parse_command,
)
from termrooms.domain.errors import ApiError
from termrooms.domain.polls import Poll
from termrooms.domain.retros import CLOSED, PHASES, board_json, board_lines, status_line
from termrooms.domain.rules import ROOM_NAME, one_line
from termrooms.domain.search import COMMAND_RESULTS, SearchResult, unmarked
from termrooms.domain.tasks import OPEN_STATUSES, TASK_PAGE_DEFAULT, Task
from termrooms.domain.wire import iso_time
from termrooms.handlers.polls import PollHandler
from termrooms.handlers.retros import RetroHandler
from termrooms.handlers.rooms import RoomHandler, actor_of
from termrooms.handlers.search import SearchHandler
from termrooms.handlers.tasks import TaskHandler
from termrooms.operations.metrics import Meters
from termrooms.storage.database import Database
from termrooms.storage.users import User, set_display_name_txn

# Moderation commands and the REST moderation action they are.
_MODERATION = ("kick", "ban", "unban", "mute", "unmute", "op", "deop")
# /todo's subcommands that set task N's status: the status, and the reply's verb.
_TODO_STATUS = {
    "start": ("in_progress", "started"),
    "done": ("completed", "done"),
    "reopen": ("pending", "reopened"),
}


@attrs.frozen
class CommandOutcome:
    """The reply, and what the connection should subscribe to or drop."""

    ok: bool
    text: str
    subscribe: str | None = None  # a room to join on this connection (/join)
    unsubscribe: str | None = None  # a room to stop receiving (/part)


@attrs.define(eq=False)
class CommandRunner:
    rooms: RoomHandler
    database: Database
    tasks: TaskHandler
    polls: PollHandler
    search: SearchHandler
    retros: RetroHandler
    meters: Meters = attrs.Factory(Meters)

    async def run(self, room_name: str | None, user: User, line: str) -> CommandOutcome:
        """Run a line in the context of a room, or of none (a command frame without one)."""
        try:
            command = parse_command(line)
        except CommandError as e:
            return CommandOutcome(False, str(e))
        self.meters.command(command.name)
        try:
            return await self._run(command, room_name, user)
        except ApiError as e:
            return CommandOutcome(False, e.detail)

    async def _run(self, command: Any, room_name: str | None, user: User) -> CommandOutcome:
        name = command.name
        if name == "help":
            usable = needs_no_room if room_name is None else await self._usable(room_name, user)
            return CommandOutcome(True, "\n".join(help_lines(usable)))
        if name == "join":
            return await self._join(command.room, user)
        if name in ("msg", "query"):
            view, _ = await self.rooms.open_direct(user, command.user)
            if name == "query":
                return CommandOutcome(True, f"opened {view.room.name}", subscribe=view.room.name)
            await self.rooms.post(view.room.name, user, command.text, None)
            return CommandOutcome(True, f"sent to {command.user}", subscribe=view.room.name)
        if name == "ignore":
            await self.rooms.block(user, command.user)
            return CommandOutcome(True, f"ignoring {command.user}")
        if name == "unignore":
            await self.rooms.unblock(user, command.user)
            return CommandOutcome(True, f"no longer ignoring {command.user}")
        if name == "rooms":
            listed = await self.rooms.list_rooms(user)
            shown = [
                f"{r['name']} (with {r['peer']})" if "peer" in r else r["name"] for r in listed
            ]
            return CommandOutcome(True, "rooms: " + (", ".join(shown) or "none"))
        if name == "nick":
            await self.database.run_interaction(set_display_name_txn, user.id, command.text)
            return CommandOutcome(True, f"you are now shown as {command.text}")
        target = command.room or room_name
        if target is None:  # a command frame without a room
            return CommandOutcome(False, f"/{name} works in a room: send it with one")
        return await self._in_room(command, target, user)

    async def _in_room(self, command: Any, room_name: str, user: User) -> CommandOutcome:
        """The commands that act in a room: ``room_name`` (for /part, the one it names)."""
        name = command.name
        if name == "part":
            await self.rooms.leave(room_name, user)
            return CommandOutcome(True, f"left {room_name}", unsubscribe=room_name)
        if name == "me":
            await self.rooms.post(room_name, user, command.text, None, action=True)
            return CommandOutcome(True, "")
        if name == "topic":
            await self.rooms.set_topic(room_name, user, command.text)
            return CommandOutcome(True, f"topic set to {command.text!r}")
        if name == "who":
            room_id = (await self.rooms.member_view(room_name, user)).room.id
            online = (await self.rooms.online_in([room_id])).get(room_id, [])
            return CommandOutcome(True, "online: " + (", ".join(online) or "nobody"))
        if name == "invite":
            await self.rooms.invite(room_name, user, command.user, None)
            return CommandOutcome(True, f"invited {command.user} to {room_name}")
        if name in _MODERATION:
            await self.rooms.moderate(
                room_name, user, name, command.user, command.text or None, command.duration
            )
            return CommandOutcome(True, f"{name}: {command.user}")
        if name == "delete":
            await self.rooms.delete_message(room_name, user, command.event_id)
            return CommandOutcome(True, f"deleted {command.event_id}")
        if name == "todo":
            return await self._todo(command, room_name, user)
        if name == "poll":
            return await self._poll(command, room_name, user)
        if name == "search":
            return await self._search(command.text, user)
        if name == "retro":
            return await self._retro(command, room_name, user)
        return CommandOutcome(False, f"/{name} is not available here")

    async def _usable(self, room_name: str, user: User) -> Callable[[str], bool]:
        """Which commands /help lists: the room's, by the user's role in it; outside any
        room (one that does not exist for the user), those that need none."""
        try:
            view = await self.rooms.view(room_name, user)
        except ApiError as e:
            if e.error_code != "not_found":
                raise
            return needs_no_room
        return partial(may_use, actor_of(view, user))

    async def _join(self, room: str, user: User) -> CommandOutcome:
        """/join: join the room, creating it (public) when it does not exist."""
        if not ROOM_NAME.match(room):
            return CommandOutcome(False, f"{room!r} is not a room name")
        try:
            await self.rooms.join(room, user)
        except ApiError as e:
            if e.error_code != "not_found":
                raise
            try:
                await self.rooms.create_room(user, room, "", "public", None)
            except ApiError as taken:
                if taken.error_code != "name_taken":
                    raise
                raise e from None  # a private room of that name: it does not exist for you
        return CommandOutcome(True, f"joined {room}", subscribe=room)

    async def _todo(self, command: Command, room_name: str, user: User) -> CommandOutcome:
        """/todo and its subcommands; task N is looked up in the room, then changed by id
        as PATCH and DELETE /api/tasks/{id} change it."""
        sub = command.sub
        if sub is None:
            room_id = await self.tasks.room_id_for(user, room_name)
            return CommandOutcome(True, await self._open_tasks(user, room_id))
        if sub == "mine":
            return CommandOutcome(True, await self._open_tasks(user, None))
        if sub == "add":
            body = {"title": command.text, "room": room_name}
            if command.user is not None:
                body["assignee"] = command.user
            added = await self.tasks.create(user, body, None)
            return CommandOutcome(True, f"added {_numbered(added)}")
        task = await self.tasks.numbered(user, room_name, command.number)
        if sub == "del":
            await self.tasks.delete(user, task.id, None)
            return CommandOutcome(True, f"deleted {_numbered(task)}")
        if sub == "assign":
            changed = await self.tasks.update(
                user, task.id, lambda: {"assignee": command.user}, None
            )
            return CommandOutcome(True, f"assigned {_numbered(changed)} to @{changed.assignee}")
        status, verb = _TODO_STATUS[sub]
        changed = await self.tasks.update(user, task.id, lambda: {"status": status}, None)
        return CommandOutcome(True, f"{verb} {_numbered(changed)}")

    async def _poll(self, command: Command, room_name: str, user: User) -> CommandOutcome:
        """/poll and its subcommands, on the room's newest (open) poll, as the poll routes
        do them; options are numbered from 1 here, from 0 in the API."""
        if command.sub == "new":
            body = {
                "question": command.text,
                "options": list(command.options),
                "multiple": command.multiple,
            }
            started = await self.polls.create(user, room_name, body, None)
            return CommandOutcome(True, "started " + _results(started))
        newest = await self.polls.newest(user, room_name, open_only=command.sub is not None)
        if newest is None:
            return CommandOutcome(False, "no open poll here" if command.sub else "no poll here")
        if command.sub == "close":
            closed = await self.polls.close(user, room_name, newest.id, None)
            return CommandOutcome(True, "closed " + _results(closed))
        if command.sub == "vote":
            count = len(newest.options)
            if max(command.choices) > count:
                return CommandOutcome(False, f"the poll has options 1-{count}")
            choices = [number - 1 for number in command.choices]
            voted = await self.polls.vote(user, room_name, newest.id, lambda: {"choices": choices})
            return CommandOutcome(True, "voted in " + _results(voted))
        return CommandOutcome(True, _results(newest))

    async def _retro(self, command: Command, room_name: str, user: User) -> CommandOutcome:
        """/retro and its subcommands, on the room's open retro (for /retro and /retro
        show, its newest), as the retro routes do them."""
        sub = command.sub
        if sub == "start":
            body = {} if command.text is None else {"title": command.text}
            started = await self.retros.start(user, room_name, body, None)
            return CommandOutcome(True, "started " + status_line(board_json(started)))
        board = await self.retros.newest(user, room_name)
        if board is None or (sub not in (None, "show") and board.head.phase == CLOSED):
            return CommandOutcome(False, "no open retro here: /retro start [TITLE] starts one")
        retro_id = board.head.id
        if sub is None:
            return CommandOutcome(True, status_line(board_json(board)))
        if sub == "show":
            return CommandOutcome(True, "\n".join(board_lines(board_json(board))))
        if sub in ("next", "back", "close"):
            at = PHASES.index(board.head.phase)
            phase = {"next": PHASES[min(at + 1, len(PHASES) - 1)], "back": PHASES[max(at - 1, 0)]}
            to = phase.get(sub, CLOSED)
            moved = await self.retros.move(user, room_name, retro_id, lambda: {"phase": to}, None)
            return CommandOutcome(True, "moved: " + status_line(board_json(moved)))
        if sub == "add":
            column = _column_named(board.head.columns, command.column or "")
            if column is None:
                numbered = ", ".join(f"{n}. {c}" for n, c in enumerate(board.head.columns, 1))
                return CommandOutcome(False, f"no single column {command.column!r}: {numbered}")
            entry: dict[str, Any] = {"column": column, "text": command.text}
            await self.retros.add_entry(user, room_name, retro_id, lambda: entry)
            return CommandOutcome(True, f"added to {column}")
        if sub in ("vote", "unvote"):
            groups = board.ordered_groups()
            if not groups or not 1 <= (command.number or 0) <= len(groups):
                return CommandOutcome(False, f"the board has groups 1-{len(groups)}: /retro show")
            group = groups[(command.number or 0) - 1]
            if sub == "vote":
                voted = await self.retros.vote(
                    user, room_name, retro_id, lambda: {"group": str(group.id)}
                )
            else:
                voted = await self.retros.unvote(user, room_name, retro_id, group.id)
            name = one_line(voted.group_name(group))
            return CommandOutcome(
                True, f"{sub}d {command.number}. {name}; votes left: {voted.votes_left}"
            )
        if sub == "happy":
            await self.retros.happiness(
                user, room_name, retro_id, lambda: {"score": command.number}
            )
            return CommandOutcome(True, f"happiness: {command.number}/5 (nobody sees whose it is)")
        action: dict[str, Any] = {"title": command.text, "assignee": command.user}
        task = await self.retros.add_action(user, room_name, retro_id, lambda: action, None)
        return CommandOutcome(True, f"added action {_numbered(task)}")

    async def _search(self, text: str, user: User) -> CommandOutcome:
        """/search: the newest results of GET /api/search?q=TEXT, a line each."""
        results, has_more = await self.search.search(
            user, text, room=None, author=None, before_id=None, limit=COMMAND_RESULTS
        )
        if not results:
            return CommandOutcome(True, "no messages found")
        lines = [_result_line(result) for result in results]
        if has_more:
            lines.append(f"(older results not shown: the newest {COMMAND_RESULTS})")
        return CommandOutcome(True, "\n".join(lines))

    async def _open_tasks(self, user: User, room_id: int | None) -> str:
        """The open tasks of a room (``room_id`` from room_id_for) or, without one, mine:
        a line each, oldest first, as GET /api/tasks?status= pages them."""
        shown: list[Task] = []
        older = False
        for status in OPEN_STATUSES:
            page, has_more = await self.tasks.page(
                user,
                room_id=room_id,
                status=status,
                assignee=None,
                before_id=None,
                limit=TASK_PAGE_DEFAULT,
            )
            shown += page
            older = older or has_more
        if not shown:
            return "no open tasks"
        shown.sort(key=lambda task: task.id)
        lines = [_task_line(task, mine=room_id is None) for task in shown]
        if older:
            lines.append(
                f"(older open tasks not shown: the newest {TASK_PAGE_DEFAULT} of each status)"
            )
        return "\n".join(lines)


def _column_named(columns: tuple[str, ...], typed: str) -> str | None:
    """/retro add's COLUMN: its number from 1, or a prefix of one name alone (any case)."""
    if typed.isdigit() and 1 <= int(typed) <= len(columns):
        return columns[int(typed) - 1]
    matches = [c for c in columns if c.casefold().startswith(typed.casefold())]
    return matches[0] if len(matches) == 1 else None


def _title(task: Task) -> str:
    """The title on one line, whatever line breaks it holds: a task a line in the lists."""
    return " ".join(task.title.splitlines())


def _numbered(task: Task) -> str:
    return f"#{task.number} {_title(task)}"


def _task_line(task: Task, *, mine: bool) -> str:
    """``#3 [in_progress] title (@assignee)``; in my list, prefixed with where it is."""
    line = f"#{task.number} [{task.status}] {_title(task)}"
    if task.assignee is not None:
        line += f" (@{task.assignee})"
    if mine:
        line = f"{task.room or 'personal'} {line}"
    return line


def _result_line(result: SearchResult) -> str:
    """``ROOM TS USER: SNIPPET``, the snippet on one line and without its marks."""
    event = result.event
    shown = " ".join(unmarked(result.snippet).split())
    return f"{event.room_name} {iso_time(event.created_at)} {event.user}: {shown}"


def _results(poll: Poll) -> str:
    """``poll: QUESTION (open, 3 voters)`` then ``* 1. OPTION: 2 (ada, bob)`` for each
    option, ``*`` marking the caller's own choices."""
    state = "closed" if poll.closed else "open, several choices" if poll.multiple else "open"
    voters = "1 voter" if poll.voters == 1 else f"{poll.voters} voters"
    lines = [f"poll: {poll.question} ({state}, {voters})"]
    mine = poll.mine or ()
    for index, option in enumerate(poll.options):
        line = f"{'*' if index in mine else ' '} {index + 1}. {option.text}: {option.votes}"
        if option.voters:
            line += f" ({', '.join(option.voters)})"
        lines.append(line)
    return "\n".join(lines)
