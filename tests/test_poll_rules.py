"""The pure rules of polls (termrooms.domain.polls) and the closing timer's scheduling,
on a fake clock. No network, no database."""

from __future__ import annotations

from datetime import datetime, timezone

import attrs
import pytest
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock

from support import third_party_imports
from termrooms.domain import polls
from termrooms.domain.errors import ApiError
from termrooms.domain.polls import (
    NewPoll,
    Poll,
    PollOption,
    may_close_poll,
    parse_choices,
    parse_new_poll,
    poll_json,
    poll_update_frame,
)
from termrooms.domain.roles import Actor
from termrooms.handlers.polls import CLOSING_SWEEP_SECONDS, PollClosingService

POLL = Poll(
    id=7,
    room_id=1,
    room="lobby",
    question="Lunch?",
    options=(PollOption("pizza", 2, ("ada", "bob")), PollOption("soup", 0, ())),
    multiple=False,
    anonymous=False,
    closed=False,
    closes_at=datetime(2026, 12, 4, 12, 0, tzinfo=timezone.utc),
    user_id=3,
    created_by="ada",
    voters=2,
    mine=(0,),
)


def refused(call) -> list[str]:
    with pytest.raises(ApiError) as caught:
        call()
    assert caught.value.error_code == "validation_error"
    return [e.field for e in caught.value.validation_errors]


def test_a_new_poll_is_stripped_and_takes_its_defaults():
    body = {"question": " Lunch? ", "options": [" pizza", "soup "]}
    assert parse_new_poll(body) == NewPoll("Lunch?", ("pizza", "soup"))
    full = {**body, "multiple": True, "anonymous": True, "closes_in_s": 60}
    assert parse_new_poll(full) == NewPoll("Lunch?", ("pizza", "soup"), True, True, 60)


def test_limits_are_inclusive():
    ten = [f"option {i}" for i in range(10)]
    assert len(parse_new_poll({"question": "q" * 300, "options": ten}).options) == 10
    assert parse_new_poll({"question": "q", "options": ["a", "b" * 100]}).options[1] == "b" * 100
    for seconds in (60, 2_592_000):
        assert parse_new_poll({"question": "q", "options": ["a", "b"], "closes_in_s": seconds})
    # Distinct ignoring case and blanks; Unicode case folds too (ß and SS are one).
    assert refused(lambda: parse_new_poll({"question": "q", "options": ["Straße", "STRASSE"]}))


def test_every_bad_field_is_named_at_once():
    body = {"question": 1, "options": None, "multiple": 0, "anonymous": "no", "closes_in_s": 1}
    assert refused(lambda: parse_new_poll(body)) == [
        "question",
        "options",
        "multiple",
        "anonymous",
        "closes_in_s",
    ]


@pytest.mark.parametrize(
    ("choices", "multiple", "expected"),
    [([], False, ()), ([1], False, (1,)), ([1, 0], True, (0, 1)), ([], True, ())],
)
def test_choices_are_sorted_option_indexes(choices, multiple, expected):
    poll = attrs.evolve(POLL, multiple=multiple)
    assert parse_choices({"choices": choices}, poll) == expected


@pytest.mark.parametrize(
    "choices", [[2], [-1], [0, 1], [0, 0], [True], [0.0], ["0"], None, 0, {"0": 1}]
)
def test_choices_that_do_not_fit_the_poll_are_refused(choices):
    assert refused(lambda: parse_choices({"choices": choices}, POLL)) == ["choices"]


def test_the_wire_shape_has_every_field_of_the_contract():
    assert poll_json(POLL) == {
        "id": "7",
        "room": "lobby",
        "question": "Lunch?",
        "options": [
            {"text": "pizza", "votes": 2, "voters": ["ada", "bob"]},
            {"text": "soup", "votes": 0, "voters": []},
        ],
        "multiple": False,
        "anonymous": False,
        "closed": False,
        "closes_at": "2026-12-04T12:00:00.000Z",
        "created_by": "ada",
        "voters": 2,
        "mine": [0],
    }
    frame = poll_update_frame(POLL)
    assert frame["type"] == "poll_update" and frame["room"] == "lobby"
    assert frame["poll"]["mine"] is None  # the same frame for every subscriber


@pytest.mark.parametrize(
    ("actor", "is_creator", "allowed"),
    [
        (Actor(room_role="member", server_admin=False), True, True),
        (Actor(room_role="member", server_admin=False), False, False),
        (Actor(room_role="moderator", server_admin=False), False, True),
        (Actor(room_role="owner", server_admin=False), False, True),
        (Actor(room_role=None, server_admin=True), False, True),
        (Actor(room_role="member", server_admin=False, banned=True), True, False),
        (Actor(room_role="member", server_admin=False, muted=True), True, True),
    ],
)
def test_who_closes_a_poll(actor, is_creator, allowed):
    assert may_close_poll(actor, is_creator=is_creator) is allowed


def test_module_is_pure():
    assert third_party_imports(polls) <= {
        "attrs",
        "termrooms.domain.errors",
        "termrooms.domain.roles",
        "termrooms.domain.rules",
        "termrooms.domain.wire",
    }


class FakePolls:
    """What the closing service needs of a PollHandler: close_due, and the hook."""

    def __init__(self, clock: Clock, next_in: float | None) -> None:
        self.clock = clock
        self.next_in = next_in
        self.passes: list[float] = []
        self.closing_in = None

    async def close_due(self):
        self.passes.append(self.clock.seconds())
        return 0, self.next_in


def closer_on(next_in: float | None) -> tuple[Clock, FakePolls, PollClosingService]:
    clock = Clock()
    handler = FakePolls(clock, next_in)
    service = PollClosingService(lambda: handler, clock, succeed(None))
    service.startService()
    return clock, handler, service


def test_the_timer_runs_at_start_then_when_the_next_poll_is_due():
    clock, handler, service = closer_on(next_in=5.0)
    clock.advance(0)
    assert handler.passes == [0.0]
    clock.advance(4.9)
    assert handler.passes == [0.0]
    clock.advance(0.1)
    assert handler.passes == [0.0, 5.0]
    service.stopService()
    clock.advance(CLOSING_SWEEP_SECONDS * 2)
    assert handler.passes == [0.0, 5.0]


def test_without_polls_due_it_sweeps_and_hearing_of_one_wakes_it_sooner():
    clock, handler, service = closer_on(next_in=None)
    clock.advance(0)
    clock.advance(CLOSING_SWEEP_SECONDS)
    assert handler.passes == [0.0, CLOSING_SWEEP_SECONDS]
    handler.closing_in(2.0)  # a poll made on some instance closes in 2 s
    handler.closing_in(20.0)  # a later one does not put the earlier wake off
    clock.advance(2.0)
    assert handler.passes[-1] == CLOSING_SWEEP_SECONDS + 2.0
    service.stopService()


def test_nothing_runs_before_the_database_is_ready():
    clock = Clock()
    handler = FakePolls(clock, None)
    ready: Deferred = Deferred()
    service = PollClosingService(lambda: handler, clock, ready)
    service.startService()
    clock.advance(CLOSING_SWEEP_SECONDS * 3)
    assert handler.passes == []
    ready.callback(None)
    clock.advance(0)
    assert handler.passes == [CLOSING_SWEEP_SECONDS * 3]
    service.stopService()
