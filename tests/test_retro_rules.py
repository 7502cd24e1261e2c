"""The pure rules of retrospectives (termrooms.domain.retros): what each reader's board
shows in each phase, the order of its groups, which changes and moves each phase allows,
what a request may ask, and the summary and the /retro answers drawn from a board. No
network, no database."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone

import attrs
import pytest

from support import third_party_imports
from termrooms.domain import retros
from termrooms.domain.errors import ApiError
from termrooms.domain.retros import (
    DEFAULT_COLUMNS,
    PARTS,
    PHASES,
    Board,
    Entry,
    Group,
    NewRetro,
    RetroHead,
    board_json,
    board_lines,
    column_index,
    parse_entry_text,
    parse_group_title,
    parse_id,
    parse_new_retro,
    parse_phase,
    parse_score,
    refuse_change,
    refuse_move,
    status_line,
    summary_markdown,
    top_groups,
    votes_json,
)
from termrooms.domain.tasks import Task

STARTED = datetime(2026, 12, 4, 9, 30, tzinfo=timezone.utc)
ADA, BOB, CY = 11, 12, 13  # ada facilitates; each wrote entries
READERS = pytest.mark.parametrize("reader", [ADA, BOB, None], ids=["author", "other", "nobody"])

HEAD = RetroHead(
    id=5,
    room_id=1,
    room="crew",
    title="Sprint 9",
    phase="collect",
    facilitator_id=ADA,
    facilitator="ada",
    columns=DEFAULT_COLUMNS,
    votes_per_participant=3,
    anonymous=True,
    focus_id=None,
    created_at=STARTED,
    closed_at=None,
)
# ada wrote 21 and 24, bob 22 and 23; 21 and 22 are one group.
ENTRIES = (
    Entry(21, 0, "pairing helped", ADA, "ada", 31),
    Entry(22, 0, "demo landed", BOB, "bob", 31),
    Entry(23, 1, "flaky CI", BOB, "bob", 32),
    Entry(24, 2, "try mob review", ADA, "ada", 33),
)
TEXTS = [entry.text for entry in ENTRIES]
# The board keeps them in every phase, collect too: moving back keeps groups and votes.
GROUPS = (
    Group(31, 0, "", (21, 22), 1),
    Group(32, 1, "CI", (23,), 4),
    Group(33, 2, "", (24,), 0),
)
# Storage reads only the reader's own votes and score; these are everyone's.
VOTES = {ADA: {32: 2, 31: 1}, BOB: {32: 2}}
SCORES = {ADA: 4, BOB: 2, CY: 5}
THREE_ANSWERS = (0, 1, 0, 1, 1)  # scores 2, 4 and 5
TWO_ANSWERS = (0, 1, 0, 1, 0)


def task(number: int, title: str, status: str = "pending", assignee: str | None = None) -> Task:
    return Task(
        id=100 + number,
        room_id=1,
        room="crew",
        number=number,
        title=title,
        description="",
        status=status,
        user_id=ADA,
        created_by="ada",
        assignee_id=None if assignee is None else BOB,
        assignee=assignee,
        source={"retro": "5"},
        created_at=STARTED,
        updated_at=STARTED,
    )


def board(
    phase: str = "collect",
    reader: int | None = ADA,
    *,
    answers: tuple[int, int, int, int, int] = THREE_ANSWERS,
    **head_changes: object,
) -> Board:
    """The board as storage reads it for ``reader``: all entries and groups, and of the
    votes and scores only the reader's own."""
    return Board(
        head=attrs.evolve(HEAD, phase=phase, **head_changes),
        reader_id=reader,
        participants=("ada", "bob", "cy"),
        participant=reader is not None,
        entries=ENTRIES,
        groups=GROUPS,
        my_votes=VOTES.get(reader, {}) if reader is not None else {},
        answers=answers,
        my_score=None if reader is None else SCORES.get(reader),
    )


def refused(call) -> list[str]:
    with pytest.raises(ApiError) as caught:
        call()
    assert caught.value.error_code == "validation_error"
    assert caught.value.status == 422
    return [e.field for e in caught.value.validation_errors]


# ------------------------------------------------------------------ board_json secrecy

# Entry texts a reader sees while collecting: their own only.
COLLECTING_TEXTS = {
    ADA: ["pairing helped", None, None, "try mob review"],
    BOB: [None, "demo landed", "flaky CI", None],
    None: [None, None, None, None],
}
MINE = {
    ADA: [True, False, False, True],
    BOB: [False, True, True, False],
    None: [False, False, False, False],
}


@pytest.mark.parametrize("phase", PHASES)
@READERS
def test_another_entrys_text_is_hidden_while_collecting_and_shown_from_group_on(phase, reader):
    shown = board_json(board(phase, reader))
    texts = [entry["text"] for entry in shown["entries"]]
    assert texts == (COLLECTING_TEXTS[reader] if phase == "collect" else TEXTS)
    assert [entry["mine"] for entry in shown["entries"]] == MINE[reader]
    assert [entry["author"] for entry in shown["entries"]] == [None] * 4  # anonymous
    if phase == "collect":
        hidden = set(TEXTS) - set(COLLECTING_TEXTS[reader])
        assert not any(text in json.dumps(shown) for text in hidden)


@pytest.mark.parametrize("phase", PHASES)
@READERS
def test_a_named_retro_shows_every_author_even_beside_a_hidden_text(phase, reader):
    shown = board_json(board(phase, reader, anonymous=False))
    assert [entry["author"] for entry in shown["entries"]] == ["ada", "bob", "bob", "ada"]
    texts = [entry["text"] for entry in shown["entries"]]
    assert texts == (COLLECTING_TEXTS[reader] if phase == "collect" else TEXTS)
    assert shown["anonymous"] is False


@pytest.mark.parametrize("phase", PHASES)
@READERS
def test_group_totals_show_only_once_voting_ended(phase, reader):
    shown = board_json(board(phase, reader))
    totals = {group["id"]: group["votes"] for group in shown["groups"]}
    if phase in ("discuss", "closed"):
        assert totals == {"31": 1, "32": 4, "33": 0}
    else:
        assert totals == {"31": None, "32": None, "33": None}


@pytest.mark.parametrize("phase", PHASES)
@READERS
def test_my_votes_and_votes_left_are_only_the_readers(phase, reader):
    shown = board_json(board(phase, reader))
    expected = {
        ADA: ({"31": 1, "32": 2}, 0),
        BOB: ({"32": 2}, 1),
        None: ({}, 3),
    }[reader]
    assert (shown["my_votes"], shown["votes_left"]) == expected
    assert votes_json(board(phase, reader)) == {
        "my_votes": expected[0],
        "votes_left": expected[1],
    }


@pytest.mark.parametrize("phase", PHASES)
@READERS
def test_the_histogram_shows_from_discuss_on_and_from_three_answers(phase, reader):
    results = phase in ("discuss", "closed")
    three = board_json(board(phase, reader, answers=THREE_ANSWERS))["happiness"]
    assert three == {
        "count": 3,
        "histogram": {"1": 0, "2": 1, "3": 0, "4": 1, "5": 1} if results else None,
        "mine": SCORES.get(reader) if reader is not None else None,
    }
    two = board_json(board(phase, reader, answers=TWO_ANSWERS))["happiness"]
    assert two["count"] == 2 and two["histogram"] is None


def test_no_answers_yet_is_a_count_of_nought_and_no_score():
    shown = board_json(attrs.evolve(board("discuss", CY), my_score=None, answers=(0,) * 5))
    assert shown["happiness"] == {"count": 0, "histogram": None, "mine": None}


@pytest.mark.parametrize("phase", PHASES)
def test_every_id_is_a_decimal_string(phase):
    shown = board_json(board(phase, ADA, focus_id=32))
    assert shown["id"] == "5" and shown["focus"] == "32"
    for entry in shown["entries"]:
        assert isinstance(entry["id"], str) and isinstance(entry["group"], str)
    for group in shown["groups"]:
        assert isinstance(group["id"], str)
        assert all(isinstance(entry_id, str) for entry_id in group["entries"])
    assert all(isinstance(group_id, str) for group_id in shown["my_votes"])


def test_the_wire_shape_has_every_field_of_the_contract():
    head_changes = {"focus_id": 32, "closed_at": datetime(2026, 12, 4, 10, tzinfo=timezone.utc)}
    shown = board_json(
        attrs.evolve(
            board("closed", BOB, **head_changes),
            actions=(task(3, "fix CI", assignee="bob"),),
            carried_over=(task(1, "write docs"),),
        )
    )
    assert shown == {
        "id": "5",
        "room": "crew",
        "title": "Sprint 9",
        "phase": "closed",
        "facilitator": "ada",
        "columns": ["went well", "to improve", "ideas"],
        "votes_per_participant": 3,
        "anonymous": True,
        "participants": ["ada", "bob", "cy"],
        "entries": [
            {
                "id": "21",
                "column": "went well",
                "text": "pairing helped",
                "mine": False,
                "author": None,
                "group": "31",
            },
            {
                "id": "22",
                "column": "went well",
                "text": "demo landed",
                "mine": True,
                "author": None,
                "group": "31",
            },
            {
                "id": "23",
                "column": "to improve",
                "text": "flaky CI",
                "mine": True,
                "author": None,
                "group": "32",
            },
            {
                "id": "24",
                "column": "ideas",
                "text": "try mob review",
                "mine": False,
                "author": None,
                "group": "33",
            },
        ],
        "groups": [
            {"id": "32", "column": "to improve", "title": "CI", "entries": ["23"], "votes": 4},
            {"id": "31", "column": "went well", "title": "", "entries": ["21", "22"], "votes": 1},
            {"id": "33", "column": "ideas", "title": "", "entries": ["24"], "votes": 0},
        ],
        "my_votes": {"32": 2},
        "votes_left": 1,
        "focus": "32",
        "happiness": {
            "count": 3,
            "histogram": {"1": 0, "2": 1, "3": 0, "4": 1, "5": 1},
            "mine": 2,
        },
        "actions": [
            {
                "id": "103",
                "title": "fix CI",
                "description": "",
                "status": "pending",
                "user_id": str(ADA),
                "created_at": "2026-12-04T09:30:00.000Z",
                "updated_at": "2026-12-04T09:30:00.000Z",
                "room": "crew",
                "number": 3,
                "assignee": "bob",
                "created_by": "ada",
                "source": {"retro": "5"},
            }
        ],
        "carried_over": [shown["carried_over"][0]],
        "created_at": "2026-12-04T09:30:00.000Z",
        "closed_at": "2026-12-04T10:00:00.000Z",
    }
    assert shown["carried_over"][0]["title"] == "write docs"


def test_an_entry_not_yet_grouped_has_a_null_group():
    loose = attrs.evolve(board("collect", ADA), entries=(attrs.evolve(ENTRIES[0], group_id=None),))
    assert board_json(loose)["entries"][0]["group"] is None


# ------------------------------------------------------------------ ordering

# Ids, columns and votes chosen so that each tie-break decides somewhere.
ORDERING_GROUPS = (
    Group(40, 1, "b", (), 5),
    Group(41, 0, "c", (), 1),
    Group(44, 0, "d", (), 5),
    Group(42, 0, "e", (), 5),
    Group(43, 2, "f", (), 0),
    Group(39, 2, "g", (), 5),
)
BY_COLUMN_THEN_ID = [41, 42, 44, 40, 39, 43]
BY_VOTES_THEN_COLUMN_THEN_ID = [42, 44, 40, 39, 41, 43]


@pytest.mark.parametrize("phase", PHASES)
def test_groups_go_by_column_before_discuss_and_by_votes_from_then_on(phase):
    ordered = attrs.evolve(board(phase), groups=ORDERING_GROUPS)
    expected = BY_VOTES_THEN_COLUMN_THEN_ID if phase in ("discuss", "closed") else BY_COLUMN_THEN_ID
    assert [group.id for group in ordered.ordered_groups()] == expected
    assert [int(group["id"]) for group in board_json(ordered)["groups"]] == expected


def test_entries_keep_the_order_storage_gives_them():
    reversed_entries = attrs.evolve(board("vote"), entries=ENTRIES[::-1])
    assert [e["id"] for e in board_json(reversed_entries)["entries"]] == ["24", "23", "22", "21"]


def test_a_groups_entries_keep_their_order():
    shown = board_json(attrs.evolve(board("group"), groups=(Group(31, 0, "", (22, 21), 0),)))
    assert shown["groups"][0]["entries"] == ["22", "21"]


# ------------------------------------------------------------------ changes and moves

# What the contract lets each phase change (Retrospectives); closed changes nothing.
BEFORE_CLOSED = {"collect", "group", "vote", "discuss"}
ALLOWED_IN = {
    "entries": {"collect"},
    "groups": {"group"},
    "votes": {"vote"},
    "focus": {"discuss"},
    "actions": BEFORE_CLOSED,
    "happiness": BEFORE_CLOSED,
    "participants": BEFORE_CLOSED,
}


def refusal(call) -> str | None:
    try:
        call()
    except ApiError as error:
        assert error.status == 409
        return error.error_code
    return None


def test_every_part_a_retro_update_names_has_its_phases():
    assert set(PARTS) == set(ALLOWED_IN)


@pytest.mark.parametrize("part", sorted(ALLOWED_IN))
@pytest.mark.parametrize("phase", PHASES)
def test_each_phase_allows_only_its_changes_and_closed_none(phase, part):
    if phase == "closed":
        expected = "retro_closed"
    elif phase in ALLOWED_IN[part]:
        expected = None
    else:
        expected = "wrong_phase"
    assert refusal(lambda: refuse_change(attrs.evolve(HEAD, phase=phase), part)) == expected


# One step forwards or back; closing is the step after discuss, and final.
STEPS = {
    ("collect", "group"),
    ("group", "collect"),
    ("group", "vote"),
    ("vote", "group"),
    ("vote", "discuss"),
    ("discuss", "vote"),
    ("discuss", "closed"),
}


@pytest.mark.parametrize("to", PHASES)
@pytest.mark.parametrize("at", PHASES)
def test_a_retro_moves_one_step_either_way_and_never_out_of_closed(at, to):
    if at == "closed":
        expected = "retro_closed"
    elif (at, to) in STEPS:
        expected = None
    else:
        expected = "wrong_phase"
    assert refusal(lambda: refuse_move(attrs.evolve(HEAD, phase=at), to)) == expected


def test_a_wrong_move_says_where_it_could_go():
    with pytest.raises(ApiError) as caught:
        refuse_move(attrs.evolve(HEAD, phase="group"), "discuss")
    assert "collect or vote" in caught.value.detail
    with pytest.raises(ApiError) as caught:
        refuse_move(HEAD, "collect")
    assert caught.value.detail.endswith("to group.")


# ------------------------------------------------------------------ requests


def test_a_new_retro_takes_the_contracts_defaults():
    assert parse_new_retro({}) == NewRetro(
        title=None,
        columns=("went well", "to improve", "ideas"),
        votes_per_participant=3,
        anonymous=True,
    )
    assert parse_new_retro({"title": None}).title is None


def test_a_new_retro_is_stripped_and_takes_what_it_is_given():
    body = {
        "title": " Sprint 9 ",
        "columns": [" keep ", "drop"],
        "votes_per_participant": 5,
        "anonymous": False,
    }
    assert parse_new_retro(body) == NewRetro("Sprint 9", ("keep", "drop"), 5, False)


def test_the_new_retro_limits_are_inclusive():
    assert parse_new_retro({"title": "t" * 100}).title == "t" * 100
    assert parse_new_retro({"columns": ["c"]}).columns == ("c",)
    six = [f"column {i}" for i in range(6)]
    assert len(parse_new_retro({"columns": six}).columns) == 6
    assert parse_new_retro({"columns": ["c" * 40]}).columns == ("c" * 40,)
    for votes in (1, 20):
        assert parse_new_retro({"votes_per_participant": votes}).votes_per_participant == votes


@pytest.mark.parametrize(
    "body, fields",
    [
        ({"title": ""}, ["title"]),
        ({"title": "   "}, ["title"]),
        ({"title": "t" * 101}, ["title"]),
        ({"title": 9}, ["title"]),
        ({"title": "a\x00b"}, ["title"]),
        ({"columns": []}, ["columns"]),
        ({"columns": [f"c{i}" for i in range(7)]}, ["columns"]),
        ({"columns": "went well"}, ["columns"]),
        ({"columns": None}, ["columns"]),
        ({"columns": ["ok", ""]}, ["columns"]),
        ({"columns": ["ok", " "]}, ["columns"]),
        ({"columns": ["c" * 41]}, ["columns"]),
        ({"columns": ["ok", 2]}, ["columns"]),
        ({"columns": ["Ideas", " ideas "]}, ["columns"]),
        ({"columns": ["Straße", "STRASSE"]}, ["columns"]),
        ({"votes_per_participant": 0}, ["votes_per_participant"]),
        ({"votes_per_participant": 21}, ["votes_per_participant"]),
        ({"votes_per_participant": True}, ["votes_per_participant"]),
        ({"votes_per_participant": 3.0}, ["votes_per_participant"]),
        ({"votes_per_participant": "3"}, ["votes_per_participant"]),
        ({"anonymous": "yes"}, ["anonymous"]),
        ({"anonymous": 1}, ["anonymous"]),
        ({"anonymous": None}, ["anonymous"]),
    ],
)
def test_each_bad_field_of_a_new_retro_is_named(body, fields):
    assert refused(lambda: parse_new_retro(body)) == fields


def test_every_bad_field_of_a_new_retro_is_named_in_one_422():
    body = {"title": "", "columns": [], "votes_per_participant": 0, "anonymous": "no"}
    assert refused(lambda: parse_new_retro(body)) == [
        "title",
        "columns",
        "votes_per_participant",
        "anonymous",
    ]


@pytest.mark.parametrize(
    "value, index",
    [("went well", 0), ("TO IMPROVE", 1), (" Ideas ", 2), ("iDeAs", 2)],
)
def test_a_column_is_named_by_its_name_ignoring_case(value, index):
    assert column_index(DEFAULT_COLUMNS, value) == index


def test_a_column_name_folds_unicode_case():
    assert column_index(("Straße", "other"), "STRASSE") == 0


@pytest.mark.parametrize("value", ["went", "well", "", None, 0, 1, ["ideas"], "ideas!"])
def test_anything_but_a_columns_name_is_a_422_on_column(value):
    assert refused(lambda: column_index(DEFAULT_COLUMNS, value)) == ["column"]


@pytest.mark.parametrize("score", [1, 2, 3, 4, 5])
def test_a_score_is_1_to_5(score):
    assert parse_score({"score": score}) == score


@pytest.mark.parametrize("score", [0, 6, -1, True, 3.0, "3", None, [3]])
def test_any_other_score_is_a_422_on_score(score):
    assert refused(lambda: parse_score({"score": score})) == ["score"]
    assert refused(lambda: parse_score({})) == ["score"]


@pytest.mark.parametrize(
    "value, expected",
    [
        ("42", 42),
        (42, 42),
        ("1", 1),
        ("007", 7),
        (str(2**63 - 1), 2**63 - 1),
        (2**63 - 1, 2**63 - 1),
    ],
)
def test_an_id_is_a_decimal_string_or_a_whole_number(value, expected):
    assert parse_id({"group": value}, "group") == expected


@pytest.mark.parametrize(
    "value",
    [
        "0",
        0,
        -1,
        "-1",
        "+1",
        " 1",
        "1.5",
        1.0,
        "",
        "x",
        True,
        False,
        2**63,
        str(2**63),
        "9" * 20,
        10**30,
        "١٢",  # Arabic-Indic digits: isdigit, but not an id
        None,
        [1],
        {"id": 1},
    ],
)
def test_anything_else_is_a_422_naming_the_field(value):
    assert refused(lambda: parse_id({"entry": value}, "entry")) == ["entry"]


def test_a_nullable_id_may_be_null_or_missing_but_not_wrong():
    assert parse_id({"group": None}, "group", nullable=True) is None
    assert parse_id({}, "group", nullable=True) is None
    assert parse_id({"group": "7"}, "group", nullable=True) == 7
    assert refused(lambda: parse_id({"group": "x"}, "group", nullable=True)) == ["group"]
    assert refused(lambda: parse_id({"group": 0}, "group", nullable=True)) == ["group"]
    assert refused(lambda: parse_id({}, "group")) == ["group"]


@pytest.mark.parametrize(
    "body, field",
    [({"title": "Sprint\n12"}, "title"), ({"columns": ["good", "to\nimprove"]}, "columns")],
)
def test_a_retros_title_and_column_names_are_one_line(body, field):
    assert refused(lambda: parse_new_retro(body)) == [field]


@pytest.mark.parametrize(
    "title, expected", [("", ""), ("   ", ""), (" CI ", "CI"), ("t" * 100, "t" * 100)]
)
def test_a_group_title_is_0_to_100_characters_stripped(title, expected):
    assert parse_group_title({"title": title}) == expected


@pytest.mark.parametrize(
    "title", ["t" * 101, None, 3, ["CI"], "a\x00b", "\ud800", "CI\n> 9. fake", "tab\there"]
)
def test_any_other_group_title_is_a_422_on_title(title):
    assert refused(lambda: parse_group_title({"title": title})) == ["title"]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("a", "a"),
        ("  flaky CI \n", "flaky CI"),
        ("x" * 500, "x" * 500),
        (" " + "x" * 500, "x" * 500),
    ],
)
def test_an_entry_text_is_1_to_500_characters_stripped(text, expected):
    assert parse_entry_text({"text": text}, required=True) == expected
    assert parse_entry_text({"text": text}, required=False) == expected


@pytest.mark.parametrize("text", ["", "  \n", "x" * 501, 5, ["x"], "a\x00b", "\ud800"])
def test_any_other_entry_text_is_a_422_on_text(text):
    assert refused(lambda: parse_entry_text({"text": text}, required=True)) == ["text"]
    assert refused(lambda: parse_entry_text({"text": text}, required=False)) == ["text"]


def test_an_entry_text_is_needed_only_when_required():
    assert parse_entry_text({}, required=False) is None
    assert parse_entry_text({"text": None}, required=False) is None
    assert refused(lambda: parse_entry_text({}, required=True)) == ["text"]
    assert refused(lambda: parse_entry_text({"text": None}, required=True)) == ["text"]


@pytest.mark.parametrize("phase", PHASES)
def test_a_phase_is_one_of_the_five(phase):
    assert parse_phase({"phase": phase}) == phase


@pytest.mark.parametrize("phase", ["Closed", " vote", "done", "", None, 2, ["vote"]])
def test_any_other_phase_is_a_422_on_phase(phase):
    assert refused(lambda: parse_phase({"phase": phase})) == ["phase"]
    assert refused(lambda: parse_phase({})) == ["phase"]


# ------------------------------------------------------------------ top, summary, /retro


def closed_with(*groups: Group) -> Board:
    return attrs.evolve(board("closed", None), groups=groups)


def test_top_is_the_three_most_voted_groups_by_title_or_first_entry():
    top = top_groups(
        closed_with(
            Group(31, 0, "", (22, 21), 4),
            Group(32, 1, "CI", (23,), 6),
            Group(33, 2, "", (24,), 1),
            Group(34, 2, "fourth", (), 1),
        )
    )
    assert top == [
        {"title": "CI", "votes": 6},
        {"title": "demo landed", "votes": 4},  # its first entry, not its first by id
        {"title": "try mob review", "votes": 1},
    ]


def test_top_leaves_out_groups_without_votes():
    assert top_groups(closed_with(Group(31, 0, "", (21,), 0), Group(32, 1, "CI", (23,), 2))) == [
        {"title": "CI", "votes": 2}
    ]
    assert top_groups(closed_with(*GROUPS[:1], attrs.evolve(GROUPS[1], votes=0))) == [
        {"title": "pairing helped", "votes": 1}
    ]
    assert top_groups(closed_with(attrs.evolve(GROUPS[0], votes=0))) == []
    assert top_groups(closed_with()) == []


def test_top_names_no_reader_and_needs_none():
    # retro_closed is stored for everyone: read for no one, it still names the topics.
    assert top_groups(board("closed", None)) == [
        {"title": "CI", "votes": 4},
        {"title": "pairing helped", "votes": 1},
    ]


def test_the_summary_while_collecting_hides_what_the_board_hides():
    summary = summary_markdown(board("collect", BOB))
    assert summary.startswith("# Sprint 9\n\nRetro in #crew, started 2026-12-04, facilitated by")
    assert "phase: collect." in summary
    assert "Participants: ada, bob, cy" in summary
    assert "flaky CI" in summary and "demo landed" in summary  # bob's own
    assert "pairing helped" not in summary and "try mob review" not in summary
    assert summary.count("_hidden until collecting ends_") == 2
    assert "## Topics\n" in summary and "by votes" not in summary
    assert not re.search(r"\d+ votes?\b", summary)


def test_a_summary_read_for_no_one_while_collecting_shows_no_text():
    summary = summary_markdown(board("collect", None))
    assert not any(text in summary for text in TEXTS)
    assert summary.count("_hidden until collecting ends_") == 4


@pytest.mark.parametrize("phase", ["group", "vote"])
def test_the_summary_shows_every_text_but_no_totals_before_discuss(phase):
    summary = summary_markdown(board(phase, BOB))
    assert all(text in summary for text in TEXTS)
    assert "_hidden" not in summary
    assert "## Topics\n" in summary and "by votes" not in summary
    assert not re.search(r"\d+ votes?\b", summary)
    # Numbered as the board shows groups: by column.
    assert "### 1. pairing helped (went well)" in summary
    assert "### 2. CI (to improve)" in summary
    assert "### 3. try mob review (ideas)" in summary


@pytest.mark.parametrize("phase", ["discuss", "closed"])
def test_the_summary_from_discuss_on_ranks_topics_by_votes(phase):
    summary = summary_markdown(board(phase, BOB))
    assert "## Topics by votes" in summary
    topics = re.findall(r"^### (.*)$", summary, re.MULTILINE)
    assert topics == [
        "1. CI (to improve, 4 votes)",
        "2. pairing helped (went well, 1 vote)",
        "3. try mob review (ideas, 0 votes)",
    ]
    assert "### 2. pairing helped (went well, 1 vote)\n- pairing helped\n- demo landed\n" in summary


def test_a_named_retros_summary_names_the_authors():
    summary = summary_markdown(board("group", BOB, anonymous=False))
    assert "- flaky CI (bob)" in summary and "- pairing helped (ada)" in summary
    hidden = summary_markdown(board("collect", BOB, anonymous=False))
    assert "- _hidden until collecting ends_ (ada)" in hidden


def test_the_summary_lists_entries_not_in_a_group_under_their_column():
    loose = attrs.evolve(
        board("collect", ADA),
        entries=tuple(attrs.evolve(entry, group_id=None) for entry in ENTRIES),
        groups=(),
    )
    summary = summary_markdown(loose)
    assert "## Topics" not in summary
    assert "## went well\n- pairing helped\n- _hidden until collecting ends_\n" in summary
    assert "## to improve\n- _hidden until collecting ends_\n" in summary
    assert "## ideas\n- try mob review\n" in summary


@pytest.mark.parametrize("phase", PHASES)
def test_the_summary_shows_the_histogram_only_when_the_board_does(phase):
    summary = summary_markdown(board(phase, ADA))
    histogram = ["- 1/5: 0", "- 2/5: 1", "- 3/5: 0", "- 4/5: 1", "- 5/5: 1"]
    if phase in ("discuss", "closed"):
        assert "## Happiness\n\n3 answers:\n\n" + "\n".join(histogram) + "\n" in summary
    else:
        assert "3 answers; shown from the discussion on, once 3 people have answered." in summary
        assert not any(line in summary for line in histogram)
    few = summary_markdown(board(phase, ADA, answers=TWO_ANSWERS))
    assert "2 answers; shown from the discussion on" in few and "/5:" not in few


def test_the_summary_lists_actions_and_carried_over_as_checkboxes():
    summary = summary_markdown(
        attrs.evolve(
            board("discuss", ADA),
            actions=(task(3, "fix CI", assignee="bob"), task(4, "pair more", "completed")),
            carried_over=(task(1, "write\ndocs", "in_progress"),),
        )
    )
    assert "## Actions\n- [ ] #3 fix CI (@bob)\n- [x] #4 pair more\n" in summary
    assert "## Carried over\n- [ ] #1 write docs\n" in summary
    assert "## Actions" not in summary_markdown(board("discuss", ADA))
    assert "## Carried over" not in summary_markdown(board("discuss", ADA))


def test_the_summary_of_a_retro_nobody_joined():
    empty = attrs.evolve(board("collect", ADA), participants=(), entries=(), groups=())
    summary = summary_markdown(attrs.evolve(empty, answers=(0,) * 5))
    assert "Participants: none yet" in summary
    assert "0 answers; shown from the discussion on" in summary
    assert summary.endswith("\n") and not summary.endswith("\n\n")


def test_the_status_line_has_the_phase_and_counts():
    shown = board_json(attrs.evolve(board("vote", BOB), actions=(task(3, "fix CI"),)))
    assert status_line(shown) == (
        "retro “Sprint 9” (vote, facilitated by ada):"
        " 3 participants, 4 entries, 3 groups, 1 action; your votes left: 1"
    )
    one = attrs.evolve(board("collect", ADA), participants=("ada",), entries=ENTRIES[:1])
    assert status_line(board_json(attrs.evolve(one, groups=GROUPS[:1]))) == (
        "retro “Sprint 9” (collect, facilitated by ada): 1 participant, 1 entry, 1 group, 0 actions"
    )


def group_lines(lines: list[str]) -> list[str]:
    """board_lines' numbered group lines, in order."""
    return [line for line in lines if re.match(r"^[> ] \d+\. ", line)]


@pytest.mark.parametrize("phase", PHASES)
def test_board_lines_number_groups_as_board_json_orders_them(phase):
    ordered = attrs.evolve(
        board(phase, BOB),
        entries=tuple(
            Entry(50 + g.id, g.column, f"about {g.title}", BOB, "bob", g.id)
            for g in ORDERING_GROUPS
        ),
        groups=tuple(attrs.evolve(g, entry_ids=(50 + g.id,)) for g in ORDERING_GROUPS),
    )
    shown = board_json(ordered)
    numbered = group_lines(board_lines(shown))
    for number, (line, group) in enumerate(zip(numbered, shown["groups"], strict=True), 1):
        assert line[2:].startswith(f"{number}. {group['title']}: about {group['title']}")


def test_board_lines_in_discuss_mark_the_focus_and_show_totals_and_my_votes():
    shown = board_json(board("discuss", ADA, focus_id=31))
    lines = board_lines(shown)
    assert lines[0] == status_line(shown)
    assert lines[1:5] == [
        "  1. CI: flaky CI [to improve, 4 votes, yours: 2]",
        "> 2. pairing helped (yours) [went well, 1 vote, yours: 1]",
        "     + demo landed",
        "  3. try mob review (yours) [ideas, 0 votes]",
    ]
    assert lines[5:] == ["  happiness (3 answers): 1:0 2:1 3:0 4:1 5:1"]


def test_board_lines_before_discuss_show_no_totals_and_no_histogram():
    lines = board_lines(board_json(board("vote", BOB, answers=TWO_ANSWERS)))
    assert group_lines(lines) == [
        "  1. pairing helped [went well]",
        "  2. CI: flaky CI (yours) [to improve, yours: 2]",
        "  3. try mob review [ideas]",
    ]
    assert lines[-1] == "  happiness: 2 answers so far"
    assert not any(">" in line[:1] for line in lines)


def test_board_lines_while_collecting_hide_others_texts_and_name_authors_when_named():
    lines = board_lines(board_json(board("collect", BOB, anonymous=False)))
    assert group_lines(lines)[0] == "  1. (hidden until collecting ends) (ada) [went well]"
    assert "     + demo landed (bob)" in lines
    assert not any(text in "\n".join(lines) for text in ("pairing helped", "try mob review"))


def test_board_lines_list_loose_entries_actions_and_carried_over():
    loose = attrs.evolve(
        board("collect", ADA, answers=(0,) * 5),
        entries=tuple(attrs.evolve(entry, group_id=None) for entry in ENTRIES),
        groups=(),
        actions=(task(3, "fix CI", assignee="bob"), task(4, "pair more", "completed")),
        carried_over=(task(1, "write docs"),),
    )
    assert board_lines(board_json(loose))[1:] == [
        "  went well:",
        "   - pairing helped (yours)",
        "   - (hidden until collecting ends)",
        "  to improve:",
        "   - (hidden until collecting ends)",
        "  ideas:",
        "   - try mob review (yours)",
        "  actions: #3 fix CI (@bob); #4 pair more (done)",
        "  carried over: #1 write docs",
    ]


LINE_BREAKING = dict(columns=("went well", "to\nimprove", "ideas"))
SPOOFING_TITLE = "CI\n> 9. fake"  # refused by the parsers; a board drawn anyway stays safe


def test_board_lines_keep_each_group_on_one_line_whatever_its_title_and_column():
    spoofed = attrs.evolve(
        board("vote", BOB, **LINE_BREAKING),
        groups=(attrs.evolve(GROUPS[0], title=SPOOFING_TITLE), *GROUPS[1:]),
    )
    lines = board_lines(board_json(spoofed))
    assert group_lines(lines) == [
        "  1. CI > 9. fake: pairing helped [went well]",
        "  2. CI: flaky CI (yours) [to improve, yours: 2]",
        "  3. try mob review [ideas]",
    ]
    assert not any(line.startswith(">") for line in lines)


def test_the_summary_keeps_each_topic_heading_on_one_line():
    summary = summary_markdown(board("vote", BOB, **LINE_BREAKING))
    assert "### 2. CI (to improve)\n- flaky CI\n" in summary


def test_module_is_pure():
    assert third_party_imports(retros) == {
        "attrs",
        "termrooms.domain.errors",
        "termrooms.domain.roles",
        "termrooms.domain.rules",
        "termrooms.domain.tasks",
        "termrooms.domain.wire",
    }
