"""
The slash commands of the contract (../shared/spec/protocol.md, Slash commands), parsed
from a ``command`` frame's line into a typed ``Command``, or refused with a usage line.

The name is case-insensitive (``/JOIN``); arguments keep their case and text arguments
keep their inner whitespace. Decided where the contract is silent:

* ``/topic`` with no text clears the topic (``text == ""``).
* ``/ban USER [DURATION] [REASON]``: a first reason word that ``parse_duration`` accepts
  whole (``1h``, ``7d``, ``1h30m``) is the ban's duration; anything else is reason text.
* ``/mute`` takes no reason, as the contract writes it; a second word must be a duration.
* Durations are at most ``DURATION_MAX``: leave the duration out for "until lifted".
* Topics and reasons are single-line text of at most ``TOPIC_MAX`` / ``REASON_MAX``
  characters; display names 1-``DISPLAY_NAME_MAX``; ``/me`` follows the message body rules.
* A command with subcommands (``/todo``) takes the subcommand as its first word, in any
  case; each form has its own synopsis in ``FORMS``, which a wrong form is answered with.
* ``/todo add TEXT [@user]``: a last word that starts with ``@`` names the assignee
  (``mail a@b`` does not); TEXT follows the task title rules of ``tasks.title_problem``.
* ``/msg USER TEXT``: TEXT follows the message body rules. ``/msg``, ``/query``,
  ``/ignore`` and ``/unignore`` need no room (v1.1, Direct messages).
* ``/poll new [-m] QUESTION | OPTION | OPTION [| ...]``: ``|`` separates the parts, so a
  question or option cannot hold one; the parts follow the rules of ``POST .../polls``.
  ``/poll vote N [N ...]`` takes option numbers from 1, each once.
* ``/search TEXT``: TEXT is the ``q`` of ``GET /api/search``, and follows its rules.
* ``/retro add COLUMN TEXT``: COLUMN is one word, the column's number (from 1) or a
  prefix of its name, which the handler resolves against the retro's columns; TEXT
  follows the entry rules. ``/retro vote N`` and ``unvote N`` number groups from 1 as
  ``/retro show`` lists them; ``/retro happy N`` takes a score of 1-5.

Pure logic: no Twisted, no database. Whether the user may run a command in a room is
roles' question; ``COMMAND_ACTION`` says which ``roles.Action`` each command needs.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

import attrs

from termrooms.domain.errors import ApiError
from termrooms.domain.events import body_problem
from termrooms.domain.polls import OPTIONS_MAX, parse_new_poll
from termrooms.domain.retros import SCORE_MAX, SCORE_MIN, parse_entry_text
from termrooms.domain.retros import TITLE_MAX as RETRO_TITLE_MAX
from termrooms.domain.roles import Action, Actor, may
from termrooms.domain.rules import (
    REASON_MAX,
    ROOM_NAME,
    TOPIC_MAX,
    USERNAME,
    display_name_problem,
    parse_duration,
    single_line_problem,
)
from termrooms.domain.snowflake import MAX_ID
from termrooms.domain.tasks import TASK_NUMBER_MAX, title_problem

__all__ = [
    "COMMAND_ACTION",
    "DURATION_MAX",
    "FORMS",
    "USAGE",
    "Command",
    "CommandError",
    "help_lines",
    "may_use",
    "needs_no_room",
    "parse_command",
]

# Longer is "forever" in practice, and now + duration must stay a valid timestamp.
DURATION_MAX = timedelta(days=3650)

#: Command name -> synopsis, in the contract's order; ``/help`` lists them in this order.
USAGE: dict[str, str] = {
    "help": "/help",
    "join": "/join ROOM",
    "part": "/part [ROOM]",
    "me": "/me ACTION",
    "topic": "/topic TEXT",
    "who": "/who",
    "rooms": "/rooms",
    "nick": "/nick DISPLAY_NAME",
    "invite": "/invite USER",
    "kick": "/kick USER [REASON]",
    "ban": "/ban USER [DURATION like 1d] [REASON]",
    "unban": "/unban USER",
    "mute": "/mute USER [DURATION like 10m]",
    "unmute": "/unmute USER",
    "op": "/op USER",
    "deop": "/deop USER",
    "delete": "/delete EVENT_ID",
    "todo": "/todo [add TEXT [@user] | start N | done N | reopen N | assign N @user | del N"
    " | mine]",
    "poll": "/poll [new [-m] QUESTION | OPTION | OPTION [| ...] ; vote N [N ...] ; close]",
    "msg": "/msg USER TEXT",
    "query": "/query USER",
    "ignore": "/ignore USER",
    "unignore": "/unignore USER",
    "search": "/search TEXT",
    "retro": "/retro [start [TITLE] | show | add COLUMN TEXT | next | back | vote N | unvote N"
    " | happy N | action TEXT [@user] | close]",
}

#: "NAME SUB" -> the synopsis of that subcommand's form, which answers a wrong use of it.
FORMS: dict[str, str] = {
    "todo add": "/todo add TEXT [@user]",
    "todo start": "/todo start N",
    "todo done": "/todo done N",
    "todo reopen": "/todo reopen N",
    "todo assign": "/todo assign N @user",
    "todo del": "/todo del N",
    "todo mine": "/todo mine",
    "poll new": "/poll new [-m] QUESTION | OPTION | OPTION [| ...]",
    "poll vote": "/poll vote N [N ...]",
    "poll close": "/poll close",
    "retro start": "/retro start [TITLE]",
    "retro show": "/retro show",
    "retro add": "/retro add COLUMN TEXT",
    "retro next": "/retro next",
    "retro back": "/retro back",
    "retro vote": "/retro vote N",
    "retro unvote": "/retro unvote N",
    "retro happy": "/retro happy N",
    "retro action": "/retro action TEXT [@user]",
    "retro close": "/retro close",
}

_SUMMARY: dict[str, str] = {
    "help": "list the commands you may use here",
    "join": "join ROOM, creating it as a public room if it does not exist",
    "part": "leave ROOM (default: this room)",
    "me": "say that you do ACTION",
    "topic": "set this room's topic; with no text, clear it",
    "who": "list this room's members",
    "rooms": "list the rooms you can see",
    "nick": "change your display name",
    "invite": "invite USER into this private room",
    "kick": "remove USER from this room",
    "ban": "ban USER from this room, for DURATION or until unbanned",
    "unban": "lift USER's ban",
    "mute": "stop USER sending here, for DURATION or until unmuted",
    "unmute": "let USER send again",
    "op": "make USER a moderator",
    "deop": "make USER a plain member again",
    "delete": "delete the message EVENT_ID",
    "todo": "this room's open tasks; add, start, finish, reopen, assign or delete task N;"
    " mine: your open tasks",
    "poll": "the newest poll's results; start a poll (-m: several choices), vote for"
    " options N of the newest open poll, or close it",
    "msg": "send TEXT to USER in your direct room, opening it if need be",
    "query": "open your direct room with USER",
    "ignore": "block USER: no direct messages or notifications from them",
    "unignore": "lift your block on USER",
    "search": "the newest messages with TEXT in every room you can read",
    "retro": "the room's retro: its phase and counts; start one, show the board, add an"
    " entry to COLUMN, move the phase, vote for group N or take a vote back, score your"
    " happiness 1-5, add an action, close it",
}

#: The least permission under which each command can succeed (None: any signed-in user).
#: The handler still checks the full rule (the target's rank, own or others' message).
COMMAND_ACTION: dict[str, Action | None] = {
    "help": None,
    "join": None,
    "part": None,
    "me": Action.SEND,
    "topic": Action.SET_TOPIC,
    "who": Action.READ,
    "rooms": None,
    "nick": None,
    "invite": Action.INVITE,
    "kick": Action.KICK,
    "ban": Action.BAN,
    "unban": Action.UNBAN,
    "mute": Action.MUTE,
    "unmute": Action.UNMUTE,
    "op": Action.OP,
    "deop": Action.DEOP,
    "delete": Action.DELETE_OWN_MESSAGE,
    "todo": Action.READ,  # members change tasks, anyone who reads the room lists them
    "poll": Action.READ,  # members start polls and vote, anyone who reads sees results
    "msg": None,
    "query": None,
    "ignore": None,
    "unignore": None,
    "search": None,  # every room the caller can read, wherever it is typed
    "retro": Action.READ,  # members take part, anyone who reads the room sees the board
}

_LINE = re.compile(r"/(\S*)\s*(.*)", re.DOTALL)
_FIRST_WORD = re.compile(r"(\S+)\s*(.*)", re.DOTALL)
_EVENT_ID = re.compile(r"[1-9][0-9]{0,18}")
_NUMBER = re.compile(r"[1-9][0-9]{0,9}")
# TEXT and a last word @USER (the @ starting a word); USER is checked by _user.
_TEXT_AT_USER = re.compile(r"(.*?)\s*(?<!\S)@(\S*)", re.DOTALL)
_NAME_SHOWN_MAX = 32


@attrs.frozen
class CommandError(Exception):
    """A line that is not a valid command: ``message`` says why, ``usage`` how instead."""

    usage: str
    message: str

    def __str__(self) -> str:
        return f"{self.message}\n{self.usage}"


@attrs.frozen(kw_only=True)
class Command:
    """One parsed command; only the fields its ``name`` takes are set, the rest are None."""

    name: str
    room: str | None = None  # /join, /part (None: the room the command was sent in)
    sub: str | None = None  # the subcommand, lowercase (None: /todo alone)
    user: str | None = None  # /invite, /kick, /ban, /unban, /mute, /unmute, /op, /deop,
    #                          /todo add and assign (without the @), /msg, /query,
    #                          /ignore, /unignore
    text: str | None = None  # /me action, /topic ("" clears), /nick name, kick/ban reason,
    #                          /todo add's title, /msg's text, /search's TEXT
    duration: timedelta | None = None  # /ban, /mute (None: until lifted)
    event_id: int | None = None  # /delete
    number: int | None = None  # /todo's N: a task's number in its room
    options: tuple[str, ...] = ()  # /poll new's options (its question is ``text``)
    multiple: bool = False  # /poll new -m
    choices: tuple[int, ...] = ()  # /poll vote's option numbers, from 1 as typed
    column: str | None = None  # /retro add's COLUMN, as typed (a number or a prefix)


def may_use(actor: Actor, name: str) -> bool:
    """Whether the actor's role in the room lets them use the command at all."""
    action = COMMAND_ACTION[name]
    return action is None or may(actor, action)


def needs_no_room(name: str) -> bool:
    """Whether any signed-in user may use the command outside every room: what ``/help``
    lists to someone who has no room yet (or names one they may not see)."""
    return COMMAND_ACTION[name] is None


def help_lines(allowed: Callable[[str], bool]) -> list[str]:
    """``/help``'s answer: the synopsis of each command ``allowed(name)`` lets through."""
    return [f"{USAGE[name]}  {_SUMMARY[name]}" for name in USAGE if allowed(name)]


def parse_command(line: str) -> Command:
    """Parse one slash-command line; CommandError with a usage line when it is not one."""
    match = _LINE.fullmatch(line.strip())
    if match is None:
        raise CommandError(_usage("help"), "commands start with /; try /help")
    typed, rest = match.groups()
    name = typed.lower()
    if name not in USAGE:
        raise CommandError(_usage("help"), f"unknown command /{_shown(typed)}; try /help")
    return _PARSERS[name](name, rest)


# ------------------------------------------------------------------ argument parsers
# Each takes the command's name and the rest of the line, stripped at both ends.


def _usage(name: str) -> str:
    """The synopsis of a command, or of a form ("todo done") of one with subcommands."""
    return f"usage: {FORMS[name] if name in FORMS else USAGE[name]}"


def _shown(typed: str) -> str:
    """A typed name as an answer repeats it: a long one shortened."""
    return typed if len(typed) <= _NAME_SHOWN_MAX else typed[:_NAME_SHOWN_MAX] + "…"


def _fail(name: str, message: str) -> CommandError:
    return CommandError(_usage(name), message)


def _words(name: str, rest: str, least: int, most: int) -> list[str]:
    words = rest.split()
    if len(words) < least:
        raise _fail(name, f"/{name} needs more arguments")
    if len(words) > most:
        raise _fail(name, "too many arguments" if most else f"/{name} takes no arguments")
    return words


def _first_word(name: str, rest: str) -> tuple[str, str]:
    match = _FIRST_WORD.fullmatch(rest)
    if match is None:
        raise _fail(name, f"/{name} needs more arguments")
    word, remainder = match.groups()
    return word, remainder


def _room(name: str, word: str) -> str:
    # fullmatch, not match: a pattern ending in $ would also pass "name\n".
    if not ROOM_NAME.fullmatch(word):
        raise _fail(name, f"{word!r} is not a room name (1-32 characters of A-Z a-z 0-9 - _)")
    return word


def _user(name: str, word: str) -> str:
    if not USERNAME.fullmatch(word):
        raise _fail(name, f"{word!r} is not a username (3-32 characters of A-Z a-z 0-9 . - _)")
    return word


def _duration(name: str, word: str) -> timedelta:
    too_long = f"a duration is at most {DURATION_MAX.days}d; leave it out for ever"
    try:
        duration = parse_duration(word)
    except ValueError:
        raise _fail(name, f"{word!r} is not a duration like 30s, 10m, 2h, 7d or 1h30m") from None
    except OverflowError:  # beyond what timedelta holds
        raise _fail(name, too_long) from None
    if duration > DURATION_MAX:
        raise _fail(name, too_long)
    return duration


def _reason(name: str, text: str) -> str | None:
    problem = single_line_problem(text, REASON_MAX)
    if problem:
        raise _fail(name, f"the reason {problem}")
    return text or None


def _no_arguments(name: str, rest: str) -> Command:
    _words(name, rest, 0, 0)
    return Command(name=name)


def _join(name: str, rest: str) -> Command:
    [word] = _words(name, rest, 1, 1)
    return Command(name=name, room=_room(name, word))


def _part(name: str, rest: str) -> Command:
    words = _words(name, rest, 0, 1)
    return Command(name=name, room=_room(name, words[0]) if words else None)


def _me(name: str, rest: str) -> Command:
    if not rest:
        raise _fail(name, "/me needs an action")
    problem = body_problem(rest)
    if problem:
        raise _fail(name, f"the action {problem}")
    return Command(name=name, text=rest.rstrip())


def _topic(name: str, rest: str) -> Command:
    problem = single_line_problem(rest, TOPIC_MAX)
    if problem:
        raise _fail(name, f"the topic {problem}")
    return Command(name=name, text=rest)


def _nick(name: str, rest: str) -> Command:
    problem = display_name_problem(rest)
    if problem:
        raise _fail(name, f"a display name {problem}")
    return Command(name=name, text=rest)


def _one_user(name: str, rest: str) -> Command:
    [word] = _words(name, rest, 1, 1)
    return Command(name=name, user=_user(name, word))


def _kick(name: str, rest: str) -> Command:
    word, reason = _first_word(name, rest)
    return Command(name=name, user=_user(name, word), text=_reason(name, reason))


def _is_duration(word: str) -> bool:
    """Whether parse_duration takes the word whole (too long still counts: it is refused)."""
    try:
        parse_duration(word)
    except ValueError:
        return False
    except OverflowError:
        return True
    return True


def _ban(name: str, rest: str) -> Command:
    word, reason = _first_word(name, rest)
    user = _user(name, word)
    duration = None
    if reason:
        first, after = _first_word(name, reason)
        if _is_duration(first):
            duration, reason = _duration(name, first), after
    return Command(name=name, user=user, text=_reason(name, reason), duration=duration)


def _mute(name: str, rest: str) -> Command:
    words = _words(name, rest, 1, 2)
    duration = _duration(name, words[1]) if len(words) == 2 else None
    return Command(name=name, user=_user(name, words[0]), duration=duration)


def _msg(name: str, rest: str) -> Command:
    word, text = _first_word(name, rest)
    user = _user(name, word)
    if not text:
        raise _fail(name, "/msg needs the text to send")
    problem = body_problem(text)
    if problem:
        raise _fail(name, f"the text {problem}")
    return Command(name=name, user=user, text=text.rstrip())


def _delete(name: str, rest: str) -> Command:
    [word] = _words(name, rest, 1, 1)
    if not _EVENT_ID.fullmatch(word) or int(word) > MAX_ID:
        raise _fail(name, f"{word!r} is not an event id (a positive decimal 63-bit integer)")
    return Command(name=name, event_id=int(word))


def _subcommand(name: str, rest: str) -> Command:
    """NAME SUB ARGS: SUB's parser; an unknown SUB is answered with NAME's whole synopsis."""
    typed, remainder = _first_word(name, rest)
    sub = typed.lower()
    parse = _SUBPARSERS[name].get(sub)
    if parse is None:
        raise _fail(name, f"unknown subcommand {_shown(typed)} of /{name}")
    return parse(name, sub, remainder)


def _todo(name: str, rest: str) -> Command:
    """/todo alone lists the room's open tasks; anything more is a subcommand."""
    return _subcommand(name, rest) if rest else Command(name=name)


def _sub_no_arguments(name: str, sub: str, rest: str) -> Command:
    _words(f"{name} {sub}", rest, 0, 0)
    return Command(name=name, sub=sub)


def _number(form: str, word: str) -> int:
    if not _NUMBER.fullmatch(word) or int(word) > TASK_NUMBER_MAX:
        raise _fail(form, f"{word!r} is not a number N (a positive integer)")
    return int(word)


def _at_user(form: str, word: str) -> str:
    if not word.startswith("@"):
        raise _fail(form, f"{word!r}: write the user as @USER")
    return _user(form, word[1:])


def _sub_number(name: str, sub: str, rest: str) -> Command:
    form = f"{name} {sub}"
    [word] = _words(form, rest, 1, 1)
    return Command(name=name, sub=sub, number=_number(form, word))


def _title_at_user(name: str, sub: str, rest: str) -> Command:
    """/todo add and /retro action: a task's TITLE and an optional last word @USER."""
    form = f"{name} {sub}"
    text, user = rest, None
    match = _TEXT_AT_USER.fullmatch(rest)
    if match is not None:
        text, user = match[1], _user(form, match[2])
    problem = title_problem(text)
    if problem:
        raise _fail(form, f"the title {problem}")
    return Command(name=name, sub=sub, text=text.strip(), user=user)


def _todo_assign(name: str, sub: str, rest: str) -> Command:
    form = f"{name} {sub}"
    number, user = _words(form, rest, 2, 2)
    return Command(name=name, sub=sub, number=_number(form, number), user=_at_user(form, user))


def _poll(name: str, rest: str) -> Command:
    """/poll alone shows the newest poll; anything more is a subcommand."""
    return _subcommand(name, rest) if rest else Command(name=name)


def _poll_new(name: str, sub: str, rest: str) -> Command:
    form = f"{name} {sub}"
    multiple = False
    first, after = _first_word(form, rest)
    if first == "-m":
        multiple, rest = True, after
    question, *options = rest.split("|")
    try:
        new = parse_new_poll({"question": question, "options": options, "multiple": multiple})
    except ApiError as e:
        raise _fail(form, e.detail) from None
    return Command(
        name=name, sub=sub, text=new.question, options=new.options, multiple=new.multiple
    )


def _poll_vote(name: str, sub: str, rest: str) -> Command:
    form = f"{name} {sub}"
    words = _words(form, rest, 1, OPTIONS_MAX)
    if not all(_NUMBER.fullmatch(word) and int(word) <= OPTIONS_MAX for word in words):
        raise _fail(form, f"options are numbered 1-{OPTIONS_MAX}")
    choices = tuple(int(word) for word in words)
    if len(set(choices)) < len(choices):
        raise _fail(form, "name each option once")
    return Command(name=name, sub=sub, choices=choices)


def _search(name: str, rest: str) -> Command:
    """/search TEXT: TEXT as ``q`` of GET /api/search, whose rules answer it."""
    if not rest:
        raise _fail(name, "/search needs something to find")
    return Command(name=name, text=rest)


def _retro(name: str, rest: str) -> Command:
    """/retro alone shows the room's retro, its phase and counts."""
    return _subcommand(name, rest) if rest else Command(name=name)


def _retro_start(name: str, sub: str, rest: str) -> Command:
    form = f"{name} {sub}"
    if rest and len(rest) > RETRO_TITLE_MAX:
        raise _fail(form, f"the title must be 1-{RETRO_TITLE_MAX} characters")
    return Command(name=name, sub=sub, text=" ".join(rest.split()) or None)


def _retro_add(name: str, sub: str, rest: str) -> Command:
    form = f"{name} {sub}"
    column, text = _first_word(form, rest)
    try:
        entry = parse_entry_text({"text": text}, required=True)
    except ApiError as e:
        raise _fail(form, f"the text {e.validation_errors[0].message}") from None
    return Command(name=name, sub=sub, column=column, text=entry)


def _retro_happy(name: str, sub: str, rest: str) -> Command:
    form = f"{name} {sub}"
    [word] = _words(form, rest, 1, 1)
    if word not in [str(score) for score in range(SCORE_MIN, SCORE_MAX + 1)]:
        raise _fail(form, f"happiness is a score of {SCORE_MIN}-{SCORE_MAX}")
    return Command(name=name, sub=sub, number=int(word))


#: Each command with subcommands: SUB -> its parser, given NAME, SUB and the rest.
_SUBPARSERS: dict[str, dict[str, Callable[[str, str, str], Command]]] = {
    "todo": {
        "add": _title_at_user,
        "start": _sub_number,
        "done": _sub_number,
        "reopen": _sub_number,
        "assign": _todo_assign,
        "del": _sub_number,
        "mine": _sub_no_arguments,
    },
    "poll": {"new": _poll_new, "vote": _poll_vote, "close": _sub_no_arguments},
    "retro": {
        "start": _retro_start,
        "show": _sub_no_arguments,
        "add": _retro_add,
        "next": _sub_no_arguments,
        "back": _sub_no_arguments,
        "vote": _sub_number,
        "unvote": _sub_number,
        "happy": _retro_happy,
        "action": _title_at_user,
        "close": _sub_no_arguments,
    },
}


_PARSERS: dict[str, Callable[[str, str], Command]] = {
    "help": _no_arguments,
    "join": _join,
    "part": _part,
    "me": _me,
    "topic": _topic,
    "who": _no_arguments,
    "rooms": _no_arguments,
    "nick": _nick,
    "invite": _one_user,
    "kick": _kick,
    "ban": _ban,
    "unban": _one_user,
    "mute": _mute,
    "unmute": _one_user,
    "op": _one_user,
    "deop": _one_user,
    "delete": _delete,
    "todo": _todo,
    "poll": _poll,
    "msg": _msg,
    "query": _one_user,
    "ignore": _one_user,
    "unignore": _one_user,
    "search": _search,
    "retro": _retro,
}
