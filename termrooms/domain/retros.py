"""
Retrospectives, as the contract's Retrospectives section has them
(../shared/spec/protocol-v1.1.md): the phases and what each allows, what a request may
ask, and the board as one reader may see it. The secrecy lives here, in ``board_json``:
storage reads the board whole for one reader (never anyone else's votes or score), and
this decides what of it they are shown.

Decided where the contract is silent:

* The facilitator is a participant from the start; a title defaults to "Retro" and the
  day it started; column names are 1-40 characters, distinct ignoring case.
* Groups and actions are for participants (``POST .../join`` first), as the contract
  says; entries for any member, so that in an anonymous retro writing one leaves no
  trace in ``participants``.
* Entries are ordered by column, then as written; groups likewise, and in ``discuss``
  and ``closed`` by votes, most first, then as made. An emptied group disappears with
  any votes on it, which go back to their voters; an entry moved to another column
  leaves its group.
* A group's ``title`` may be empty: it is then called by its first entry's text (in
  ``top``, the summary and the clients).

Pure logic: no Twisted, no database.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

import attrs

from termrooms.domain.errors import ApiError
from termrooms.domain.roles import Action, Actor, may
from termrooms.domain.rules import (
    check_fields,
    field_error,
    one_line,
    single_line_problem,
    text_problem,
)
from termrooms.domain.tasks import Task, task_json
from termrooms.domain.wire import iso_time

PHASES = ("collect", "group", "vote", "discuss", "closed")
CLOSED = "closed"
OPEN_PHASES = frozenset(PHASES[:-1])
# Group totals, the discussion order and the happiness histogram show from here on.
RESULTS_PHASES = frozenset({"discuss", "closed"})
DEFAULT_COLUMNS = ("went well", "to improve", "ideas")
TITLE_MAX = 100
COLUMN_NAME_MAX = 40
COLUMNS_MIN = 1
COLUMNS_MAX = 6
VOTES_MIN = 1
VOTES_MAX = 20
VOTES_DEFAULT = 3
ENTRY_MAX = 500
GROUP_TITLE_MAX = 100
SCORE_MIN = 1
SCORE_MAX = 5
HISTOGRAM_MIN_ANSWERS = 3  # fewer, and a histogram would all but name whose score is whose
TOP_MAX = 3  # groups in retro_closed's ``top``
RETRO_PAGE_DEFAULT = 50
RETRO_PAGE_MAX = 200
# retro_update frames per retro, part and instance, however fast the changes come.
RETRO_UPDATE_EVERY_SECONDS = 0.25

# What a retro_update frame names as changed, and in which phases each may change.
CHANGES_IN: Mapping[str, frozenset[str]] = {
    "entries": frozenset({"collect"}),
    "groups": frozenset({"group"}),
    "votes": frozenset({"vote"}),
    "focus": frozenset({"discuss"}),
    "actions": OPEN_PHASES,
    "happiness": OPEN_PHASES,
    "participants": OPEN_PHASES,
}
PARTS = tuple(CHANGES_IN)


@attrs.frozen
class NewRetro:
    title: str | None  # None: the default, named by the day it started
    columns: tuple[str, ...]
    votes_per_participant: int
    anonymous: bool


@attrs.frozen
class RetroHead:
    """The retro row: what every rule needs, read (and locked) before a change."""

    id: int
    room_id: int
    room: str
    title: str
    phase: str
    facilitator_id: int
    facilitator: str
    columns: tuple[str, ...]
    votes_per_participant: int
    anonymous: bool
    focus_id: int | None
    created_at: datetime
    closed_at: datetime | None


@attrs.frozen
class Entry:
    id: int
    column: int  # index into the retro's columns
    text: str
    author_id: int
    author: str
    group_id: int | None


@attrs.frozen
class Group:
    id: int
    column: int
    title: str
    entry_ids: tuple[int, ...]
    votes: int  # the total; shown only from ``discuss`` on


@attrs.frozen
class Board:
    """Everything a reader's board is drawn from: all entries and groups, and of the
    votes and scores only totals and the reader's own."""

    head: RetroHead
    reader_id: int | None  # None: read for no one (the stored events)
    participants: tuple[str, ...]
    participant: bool  # the reader is one
    entries: tuple[Entry, ...]
    groups: tuple[Group, ...]
    my_votes: Mapping[int, int]
    answers: tuple[int, int, int, int, int]  # how many scored 1, ..., 5
    my_score: int | None
    actions: tuple[Task, ...] = ()
    carried_over: tuple[Task, ...] = ()

    @property
    def votes_left(self) -> int:
        return self.head.votes_per_participant - sum(self.my_votes.values())

    def ordered_groups(self) -> list[Group]:
        """In the order the board shows them (and ``/retro vote N`` counts them)."""
        if self.head.phase in RESULTS_PHASES:
            return sorted(self.groups, key=lambda g: (-g.votes, g.column, g.id))
        return sorted(self.groups, key=lambda g: (g.column, g.id))

    def group_name(self, group: Group) -> str:
        """Its title, or the text of its first entry."""
        if group.title:
            return group.title
        texts = {entry.id: entry.text for entry in self.entries}
        return texts.get(group.entry_ids[0], "") if group.entry_ids else ""


def board_json(board: Board) -> dict[str, Any]:
    """The board exactly as its reader may see it: no text of another's entry while
    collecting, no one's votes or score but the reader's, totals only once voting ended,
    a histogram only then and from HISTOGRAM_MIN_ANSWERS answers."""
    head = board.head
    reader = board.reader_id
    collecting = head.phase == "collect"
    results = head.phase in RESULTS_PHASES
    count = sum(board.answers)
    histogram = None
    if results and count >= HISTOGRAM_MIN_ANSWERS:
        histogram = {str(score): n for score, n in enumerate(board.answers, SCORE_MIN)}
    return {
        "id": str(head.id),
        "room": head.room,
        "title": head.title,
        "phase": head.phase,
        "facilitator": head.facilitator,
        "columns": list(head.columns),
        "votes_per_participant": head.votes_per_participant,
        "anonymous": head.anonymous,
        "participants": list(board.participants),
        "entries": [
            {
                "id": str(entry.id),
                "column": head.columns[entry.column],
                "text": None if collecting and entry.author_id != reader else entry.text,
                "mine": entry.author_id == reader,
                "author": None if head.anonymous else entry.author,
                "group": None if entry.group_id is None else str(entry.group_id),
            }
            for entry in board.entries
        ],
        "groups": [
            {
                "id": str(group.id),
                "column": head.columns[group.column],
                "title": group.title,
                "entries": [str(entry_id) for entry_id in group.entry_ids],
                "votes": group.votes if results else None,
            }
            for group in board.ordered_groups()
        ],
        "my_votes": {str(group_id): n for group_id, n in sorted(board.my_votes.items())},
        "votes_left": board.votes_left,
        "focus": None if head.focus_id is None else str(head.focus_id),
        "happiness": {"count": count, "histogram": histogram, "mine": board.my_score},
        "actions": [task_json(task) for task in board.actions],
        "carried_over": [task_json(task) for task in board.carried_over],
        "created_at": iso_time(head.created_at),
        "closed_at": None if head.closed_at is None else iso_time(head.closed_at),
    }


def votes_json(board: Board) -> dict[str, Any]:
    """What a vote answers: the caller's own votes and how many are left."""
    shown = board_json(board)
    return {"my_votes": shown["my_votes"], "votes_left": shown["votes_left"]}


def top_groups(board: Board) -> list[dict[str, Any]]:
    """retro_closed's ``top``: the most voted groups (with at least one vote), by name."""
    ranked = [group for group in board.ordered_groups() if group.votes > 0]
    return [{"title": board.group_name(group), "votes": group.votes} for group in ranked[:TOP_MAX]]


def update_frame(room: str, retro_id: int, part: str) -> dict[str, Any]:
    """Says only what changed: each client reads its own board again."""
    assert part in CHANGES_IN
    return {"type": "retro_update", "room": room, "retro": str(retro_id), "part": part}


def summary_markdown(board: Board) -> str:
    """The retro as Markdown to paste into a wiki, drawn from the reader's board (so it
    shows no more than that does): topics by votes with their entries, actions, the
    actions carried over, happiness."""
    shown = board_json(board)
    lines = [
        f"# {one_line(shown['title'])}",
        "",
        f"Retro in #{shown['room']}, started {shown['created_at'][:10]}, facilitated by"
        f" {shown['facilitator']}; phase: {shown['phase']}.",
        "",
        "Participants: " + (", ".join(shown["participants"]) or "none yet"),
    ]
    entries = {entry["id"]: entry for entry in shown["entries"]}

    def entry_line(entry: dict[str, Any]) -> str:
        author = "" if entry["author"] is None else f" ({entry['author']})"
        if entry["text"] is None:
            return f"- _hidden until collecting ends_{author}"
        return f"- {one_line(entry['text'])}{author}"

    if shown["groups"]:
        lines += ["", "## Topics" + (" by votes" if board.head.phase in RESULTS_PHASES else "")]
        for number, group in enumerate(shown["groups"], 1):
            members = [entries[entry_id] for entry_id in group["entries"]]
            shown_texts = [entry["text"] for entry in members if entry["text"] is not None]
            name = group["title"] or (shown_texts[0] if shown_texts else "(untitled)")
            votes = "" if group["votes"] is None else f", {_plural(group['votes'], 'vote')}"
            lines += ["", f"### {number}. {one_line(name)} ({one_line(group['column'])}{votes})"]
            lines += [entry_line(entry) for entry in members]
    loose = [entry for entry in shown["entries"] if entry["group"] is None]
    for column in shown["columns"]:
        in_column = [entry for entry in loose if entry["column"] == column]
        if in_column:
            lines += ["", f"## {one_line(column)}", *map(entry_line, in_column)]
    for heading, tasks in (("Actions", shown["actions"]), ("Carried over", shown["carried_over"])):
        if tasks:
            lines += ["", f"## {heading}"]
            lines += [_task_line(task) for task in tasks]
    happiness = shown["happiness"]
    lines += ["", "## Happiness", ""]
    if happiness["histogram"] is None:
        lines.append(
            f"{_plural(happiness['count'], 'answer')}; shown from the discussion on,"
            f" once {HISTOGRAM_MIN_ANSWERS} people have answered."
        )
    else:
        lines.append(f"{_plural(happiness['count'], 'answer')}:")
        lines.append("")
        lines += [f"- {score}/5: {n}" for score, n in happiness["histogram"].items()]
    return "\n".join(lines) + "\n"


def status_line(shown: Mapping[str, Any]) -> str:
    """``/retro``'s answer: the retro's phase and counts, from a board as board_json shows it."""
    counts = [
        _plural(len(shown["participants"]), "participant"),
        _plural(len(shown["entries"]), "entry", "entries"),
        _plural(len(shown["groups"]), "group"),
        _plural(len(shown["actions"]), "action"),
    ]
    line = (
        f"retro “{one_line(shown['title'])}” ({shown['phase']}, facilitated by"
        f" {shown['facilitator']}): {', '.join(counts)}"
    )
    if shown["phase"] == "vote":
        line += f"; your votes left: {shown['votes_left']}"
    return line


def board_lines(shown: Mapping[str, Any]) -> list[str]:
    """``/retro show``'s answer: the board as text, groups numbered as ``/retro vote N``
    counts them, ``>`` marking the one under discussion."""
    lines = [status_line(shown)]
    entries = {entry["id"]: entry for entry in shown["entries"]}

    def text_of(entry: Mapping[str, Any]) -> str:
        by = "" if entry["author"] is None else f" ({entry['author']})"
        mine = " (yours)" if entry["mine"] and entry["author"] is None else ""
        return ("(hidden until collecting ends)" if entry["text"] is None
                else one_line(entry["text"])) + by + mine  # fmt: skip

    for number, group in enumerate(shown["groups"], 1):
        members = [entries[entry_id] for entry_id in group["entries"]]
        facts = [one_line(group["column"])]
        if group["votes"] is not None:
            facts.append(_plural(group["votes"], "vote"))
        if shown["my_votes"].get(group["id"]):
            facts.append(f"yours: {shown['my_votes'][group['id']]}")
        mark = ">" if shown["focus"] == group["id"] else " "
        title = f"{one_line(group['title'])}: " if group["title"] else ""
        lines.append(f"{mark} {number}. {title}{text_of(members[0])} [{', '.join(facts)}]")
        lines += [f"     + {text_of(entry)}" for entry in members[1:]]
    for column in shown["columns"]:
        loose = [e for e in shown["entries"] if e["group"] is None and e["column"] == column]
        if loose:
            lines.append(f"  {one_line(column)}:")
            lines += [f"   - {text_of(entry)}" for entry in loose]
    for heading, tasks in (("actions", shown["actions"]), ("carried over", shown["carried_over"])):
        if tasks:
            shown_tasks = (_task_text(task) + (" (done)" if task["status"] == "completed" else "")
                           for task in tasks)  # fmt: skip
            lines.append(f"  {heading}: " + "; ".join(shown_tasks))
    happiness = shown["happiness"]
    if happiness["histogram"] is not None:
        bars = " ".join(f"{score}:{n}" for score, n in happiness["histogram"].items())
        lines.append(f"  happiness ({happiness['count']} answers): {bars}")
    elif happiness["count"]:
        lines.append(f"  happiness: {_plural(happiness['count'], 'answer')} so far")
    return lines


def _task_line(task: dict[str, Any]) -> str:
    """A Markdown task list item: ``- [ ] #3 title (@assignee)``."""
    return f"- [{'x' if task['status'] == 'completed' else ' '}] {_task_text(task)}"


def _task_text(task: dict[str, Any]) -> str:
    assignee = "" if task["assignee"] is None else f" (@{task['assignee']})"
    return f"#{task['number']} {one_line(task['title'])}{assignee}"


def _plural(n: int, noun: str, nouns: str | None = None) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {nouns or noun + 's'}"


# ------------------------------------------------------------------ rules


def may_start_retro(actor: Actor) -> bool:
    return may(actor, Action.START_RETROS)


def refuse_change(head: RetroHead, part: str) -> None:
    """409 ``retro_closed`` once closed, ``wrong_phase`` when the phase does not allow it."""
    if head.phase == CLOSED:
        raise retro_closed()
    if head.phase not in CHANGES_IN[part]:
        raise wrong_phase(f"That is not done in the {head.phase} phase.")


def refuse_move(head: RetroHead, phase: str) -> None:
    """One step forwards or back; nothing after ``closed``."""
    if head.phase == CLOSED:
        raise retro_closed()
    if abs(PHASES.index(phase) - PHASES.index(head.phase)) != 1:
        raise wrong_phase(f"From {head.phase} a retro moves one step: to {_steps(head.phase)}.")


def _steps(phase: str) -> str:
    at = PHASES.index(phase)
    return " or ".join(PHASES[i] for i in (at - 1, at + 1) if 0 <= i < len(PHASES))


def refuse_unless_facilitator(head: RetroHead, user_id: int) -> None:
    if head.facilitator_id != user_id:
        raise ApiError("forbidden", "Only the retro's facilitator does that.")


def refuse_unless_participant(participant: bool) -> None:
    if not participant:
        raise ApiError("forbidden", "Join the retro first.")


# ------------------------------------------------------------------ requests


def parse_new_retro(body: Mapping[str, Any]) -> NewRetro:
    """A POST body; one 422 naming every bad field."""
    title = body.get("title")
    columns = body.get("columns", list(DEFAULT_COLUMNS))
    votes = body.get("votes_per_participant", VOTES_DEFAULT)
    anonymous = body.get("anonymous", True)
    check_fields(
        title=None if title is None else _one_line_problem(title, 1, TITLE_MAX),
        columns=_columns_problem(columns),
        votes_per_participant=(
            None
            if type(votes) is int and VOTES_MIN <= votes <= VOTES_MAX
            else f"must be a whole number, {VOTES_MIN}-{VOTES_MAX}"
        ),
        anonymous=None if isinstance(anonymous, bool) else "must be true or false",
    )
    return NewRetro(
        title=title.strip() if isinstance(title, str) else None,
        columns=tuple(column.strip() for column in columns),
        votes_per_participant=votes,
        anonymous=anonymous,
    )


def _columns_problem(columns: object) -> str | None:
    if not isinstance(columns, list) or not COLUMNS_MIN <= len(columns) <= COLUMNS_MAX:
        return f"must be a list of {COLUMNS_MIN}-{COLUMNS_MAX} column names"
    for column in columns:
        problem = _one_line_problem(column, 1, COLUMN_NAME_MAX)
        if problem:
            return f"each {problem}"
    if len({column.strip().casefold() for column in columns}) < len(columns):
        return "must be distinct"
    return None


def _one_line_problem(value: object, shortest: int, longest: int) -> str | None:
    """A title or a column name: text as ``text_problem`` has it, on one line, since
    the board's text forms (``/retro show``, the summary) give each its line."""
    problem = text_problem(value, shortest, longest)
    if problem is None and isinstance(value, str):
        problem = single_line_problem(value.strip(), longest)
    return problem


def parse_phase(body: Mapping[str, Any]) -> str:
    phase = body.get("phase")
    if phase not in PHASES:
        raise field_error("phase", "must be one of " + ", ".join(PHASES))
    assert isinstance(phase, str)
    return phase


def column_index(columns: tuple[str, ...], value: object) -> int:
    """A column named as ``columns`` lists it (ignoring case), or a 422 on ``column``."""
    if isinstance(value, str):
        wanted = value.strip().casefold()
        for index, name in enumerate(columns):
            if name.casefold() == wanted:
                return index
    raise field_error("column", "must be one of " + ", ".join(f'"{c}"' for c in columns))


def parse_entry_text(body: Mapping[str, Any], *, required: bool) -> str | None:
    text = body.get("text")
    if text is None and not required:
        return None
    check_fields(text=text_problem(text, 1, ENTRY_MAX))
    assert isinstance(text, str)
    return text.strip()


def parse_group_title(body: Mapping[str, Any]) -> str:
    title = body.get("title")
    check_fields(title=_one_line_problem(title, 0, GROUP_TITLE_MAX))
    assert isinstance(title, str)
    return title.strip()


def parse_score(body: Mapping[str, Any]) -> int:
    score = body.get("score")
    if type(score) is not int or not SCORE_MIN <= score <= SCORE_MAX:
        raise field_error("score", f"must be a whole number, {SCORE_MIN}-{SCORE_MAX}")
    return score


def parse_id(body: Mapping[str, Any], field: str, *, nullable: bool = False) -> int | None:
    """An id in a body (a decimal string, as the contract writes ids; a number also
    does), or a 422 on ``field``; None only when ``nullable`` and it is null."""
    value = id_or_none(body, field)
    if value is None and not (nullable and body.get(field) is None):
        raise field_error(field, "must be an id")
    return value


def id_or_none(body: Mapping[str, Any], field: str) -> int | None:
    """The id in ``body[field]``, or None when there is none that could be one."""
    value = body.get(field)
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 20:
        value = int(value)
    if type(value) is not int or not 0 < value < 2**63:
        return None
    return value


# ------------------------------------------------------------------ errors


def retro_not_found() -> ApiError:
    """For a retro, entry or group the caller may not see, or of another retro or room:
    the same as for none at all."""
    return ApiError("not_found", "No such retro.")


def entry_not_found() -> ApiError:
    return ApiError("not_found", "No such entry in this retro.")


def group_not_found() -> ApiError:
    return ApiError("not_found", "No such group in this retro.")


def retro_open() -> ApiError:
    return ApiError("retro_open", "This room already has an open retro: close it first.")


def retro_closed() -> ApiError:
    return ApiError("retro_closed", "This retro is closed.")


def wrong_phase(detail: str) -> ApiError:
    return ApiError("wrong_phase", detail)


def no_votes_left() -> ApiError:
    return ApiError("no_votes_left", "You have spent all your votes: take one back first.")
