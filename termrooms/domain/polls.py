"""
Polls, as the contract's Polls section has them (../shared/spec/protocol-v1.1.md): what
a request may ask, what a poll looks like on the wire, and who may close one.

Decided where the contract is silent:

* Options are distinct ignoring case and the blanks around them ("Yes" and "yes " are
  one option), and are stored stripped, as task titles are.
* A vote names each option once: ``[1, 1]`` is a 422, not one vote.
* An option's ``voters`` are in the order they voted; its ``votes`` is their number.

Pure logic: no Twisted, no database.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

import attrs

from termrooms.domain.errors import ApiError
from termrooms.domain.roles import Action, Actor, may
from termrooms.domain.rules import check_fields, field_error, text_problem
from termrooms.domain.wire import iso_time

QUESTION_MAX = 300
OPTION_MAX = 100
OPTIONS_MIN = 2
OPTIONS_MAX = 10
CLOSES_IN_MIN = 60
CLOSES_IN_MAX = 2_592_000  # 30 days
POLL_PAGE_DEFAULT = 50
POLL_PAGE_MAX = 200
# poll_update frames per poll and instance, however fast the votes come.
POLL_UPDATE_EVERY_SECONDS = 0.25


@attrs.frozen
class PollOption:
    text: str
    votes: int
    voters: tuple[str, ...] | None  # None: the poll is anonymous


@attrs.frozen
class Poll:
    """A poll with its results as read in one statement, for one reader."""

    id: int
    room_id: int
    room: str
    question: str
    options: tuple[PollOption, ...]
    multiple: bool
    anonymous: bool
    closed: bool  # closed by hand, or its closes_at has passed
    closes_at: datetime | None
    user_id: int  # the creator
    created_by: str
    voters: int  # how many people voted
    mine: tuple[int, ...] | None  # the reader's choices; None when read for no one


@attrs.frozen
class NewPoll:
    question: str
    options: tuple[str, ...]
    multiple: bool = False
    anonymous: bool = False
    closes_in_s: int | None = None


def poll_json(poll: Poll) -> dict[str, Any]:
    """The poll as the contract shows it; ``mine`` is null unless read for someone."""
    return {
        "id": str(poll.id),
        "room": poll.room,
        "question": poll.question,
        "options": [
            {
                "text": option.text,
                "votes": option.votes,
                "voters": None if option.voters is None else list(option.voters),
            }
            for option in poll.options
        ],
        "multiple": poll.multiple,
        "anonymous": poll.anonymous,
        "closed": poll.closed,
        "closes_at": None if poll.closes_at is None else iso_time(poll.closes_at),
        "created_by": poll.created_by,
        "voters": poll.voters,
        "mine": None if poll.mine is None else list(poll.mine),
    }


def poll_update_frame(poll: Poll) -> dict[str, Any]:
    """The live results for a room's subscribers: the same for everyone, so no ``mine``."""
    shown = poll_json(attrs.evolve(poll, mine=None))
    return {"type": "poll_update", "room": poll.room, "poll": shown}


def parse_new_poll(body: Mapping[str, Any]) -> NewPoll:
    """A POST body; one 422 naming every bad field."""
    question = body.get("question")
    options = body.get("options")
    multiple = body.get("multiple", False)
    anonymous = body.get("anonymous", False)
    closes_in_s = body.get("closes_in_s")
    check_fields(
        question=text_problem(question, 1, QUESTION_MAX),
        options=_options_problem(options),
        multiple=None if isinstance(multiple, bool) else "must be true or false",
        anonymous=None if isinstance(anonymous, bool) else "must be true or false",
        closes_in_s=_closes_in_problem(closes_in_s),
    )
    assert isinstance(question, str) and isinstance(options, list)  # checked above
    return NewPoll(
        question=question.strip(),
        options=tuple(option.strip() for option in options),
        multiple=multiple,
        anonymous=anonymous,
        closes_in_s=closes_in_s,
    )


def _options_problem(options: object) -> str | None:
    if not isinstance(options, list) or not OPTIONS_MIN <= len(options) <= OPTIONS_MAX:
        return f"must be a list of {OPTIONS_MIN}-{OPTIONS_MAX} options"
    for option in options:
        problem = text_problem(option, 1, OPTION_MAX)
        if problem:
            return f"each {problem}"
    if len({option.strip().casefold() for option in options}) < len(options):
        return "must be distinct"
    return None


def _closes_in_problem(value: object) -> str | None:
    if value is None:
        return None
    if type(value) is not int or not CLOSES_IN_MIN <= value <= CLOSES_IN_MAX:
        return f"must be a whole number of seconds, {CLOSES_IN_MIN}-{CLOSES_IN_MAX}"
    return None


def parse_choices(body: Mapping[str, Any], poll: Poll) -> tuple[int, ...]:
    """A vote's option indexes (from 0), each once; ``()`` withdraws the vote."""
    choices = body.get("choices")
    count = len(poll.options)
    if not isinstance(choices, list) or not all(
        type(choice) is int and 0 <= choice < count for choice in choices
    ):
        raise field_error("choices", f"must be a list of option indexes, 0-{count - 1}")
    if len(set(choices)) < len(choices):
        raise field_error("choices", "must name each option once")
    if len(choices) > 1 and not poll.multiple:
        raise field_error("choices", "must be one option: this poll takes a single choice")
    return tuple(sorted(choices))


def may_close_poll(actor: Actor, *, is_creator: bool) -> bool:
    """Its creator closes a poll while a member, and moderators and above close any."""
    return may(actor, Action.READ) and (is_creator or may(actor, Action.CLOSE_POLLS))


def poll_not_found() -> ApiError:
    """What anyone gets for a poll they may not see: the same as for no poll at all."""
    return ApiError("not_found", "No such poll.")


def poll_closed() -> ApiError:
    return ApiError("poll_closed", "This poll is closed.")
