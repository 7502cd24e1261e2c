"""The slash-command parser: every command of the contract, and every way to get one wrong."""

from __future__ import annotations

import re
from datetime import timedelta
from functools import partial
from pathlib import Path

import pytest

from support import third_party_imports
from termrooms.domain import commands
from termrooms.domain.commands import (
    COMMAND_ACTION,
    FORMS,
    USAGE,
    Command,
    CommandError,
    help_lines,
    may_use,
    needs_no_room,
    parse_command,
)
from termrooms.domain.errors import ApiError
from termrooms.domain.roles import Action, Actor
from termrooms.domain.tasks import parse_task_changes

# The contract's list, in its order.
CONTRACT_COMMANDS = [
    "help",
    "join",
    "part",
    "me",
    "topic",
    "who",
    "rooms",
    "nick",
    "invite",
    "kick",
    "ban",
    "unban",
    "mute",
    "unmute",
    "op",
    "deop",
    "delete",
    "todo",
    "poll",
    "msg",  # v1.1 Direct messages, in its order
    "query",
    "ignore",
    "unignore",
    "search",
    "retro",  # v1.1 Retrospectives
]
MAX_ID = 2**63 - 1
TASK_NUMBER_MAX = 2**31 - 1


def test_every_contract_command_has_a_usage_line_and_a_permission() -> None:
    assert list(USAGE) == CONTRACT_COMMANDS
    assert set(COMMAND_ACTION) == set(USAGE)
    for name, synopsis in USAGE.items():
        assert synopsis.startswith(f"/{name}")


def test_every_form_of_a_subcommand_is_in_its_commands_synopsis() -> None:
    assert set(FORMS) == {
        "todo add", "todo start", "todo done", "todo reopen", "todo assign", "todo del",
        "todo mine", "poll new", "poll vote", "poll close", "retro start", "retro show",
        "retro add", "retro next", "retro back", "retro vote", "retro unvote", "retro happy",
        "retro action", "retro close",
    }  # fmt: skip
    for form, synopsis in FORMS.items():
        name, sub = form.split()
        assert synopsis.startswith(f"/{name} {sub}")
        assert synopsis.removeprefix(f"/{name} ") in USAGE[name]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("/help", Command(name="help")),
        ("/join general", Command(name="join", room="general")),
        ("/part", Command(name="part")),
        ("/part Dev-Talk_2", Command(name="part", room="Dev-Talk_2")),
        ("/me waves", Command(name="me", text="waves")),
        ("/topic release on Friday", Command(name="topic", text="release on Friday")),
        ("/topic", Command(name="topic", text="")),
        ("/who", Command(name="who")),
        ("/rooms", Command(name="rooms")),
        ("/nick Ada Lovelace", Command(name="nick", text="Ada Lovelace")),
        ("/invite grace.h", Command(name="invite", user="grace.h")),
        ("/kick bob", Command(name="kick", user="bob")),
        ("/kick bob stop shouting", Command(name="kick", user="bob", text="stop shouting")),
        ("/ban bob", Command(name="ban", user="bob")),
        ("/ban bob spamming links", Command(name="ban", user="bob", text="spamming links")),
        (
            "/ban bob 1h spamming",
            Command(name="ban", user="bob", text="spamming", duration=timedelta(hours=1)),
        ),
        ("/ban bob 7d", Command(name="ban", user="bob", duration=timedelta(days=7))),
        ("/unban bob", Command(name="unban", user="bob")),
        ("/mute bob", Command(name="mute", user="bob")),
        ("/mute bob 10m", Command(name="mute", user="bob", duration=timedelta(minutes=10))),
        ("/mute bob 1h30m", Command(name="mute", user="bob", duration=timedelta(minutes=90))),
        ("/unmute bob", Command(name="unmute", user="bob")),
        ("/op bob", Command(name="op", user="bob")),
        ("/deop bob", Command(name="deop", user="bob")),
        ("/delete 123456789012345678", Command(name="delete", event_id=123456789012345678)),
        (f"/delete {MAX_ID}", Command(name="delete", event_id=MAX_ID)),
        ("/delete 1", Command(name="delete", event_id=1)),
        ("/todo", Command(name="todo")),
        ("/todo add buy milk", Command(name="todo", sub="add", text="buy milk")),
        (
            "/todo add buy  oat milk @grace.h",
            Command(name="todo", sub="add", text="buy  oat milk", user="grace.h"),
        ),
        (
            "/todo add mail ada@example.org",
            Command(name="todo", sub="add", text="mail ada@example.org"),
        ),
        ("/todo add " + "t" * 200, Command(name="todo", sub="add", text="t" * 200)),
        ("/todo start 3", Command(name="todo", sub="start", number=3)),
        ("/todo done 12", Command(name="todo", sub="done", number=12)),
        ("/todo reopen 1", Command(name="todo", sub="reopen", number=1)),
        ("/todo assign 3 @bob", Command(name="todo", sub="assign", number=3, user="bob")),
        ("/todo del 4", Command(name="todo", sub="del", number=4)),
        (f"/todo del {TASK_NUMBER_MAX}", Command(name="todo", sub="del", number=TASK_NUMBER_MAX)),
        ("/todo mine", Command(name="todo", sub="mine")),
        ("/poll", Command(name="poll")),
        (
            "/poll new Lunch at 12? | pizza |  salad bar ",
            Command(name="poll", sub="new", text="Lunch at 12?", options=("pizza", "salad bar")),
        ),
        (
            "/POLL NEW -m Which days?|Mon|Tue|Wed",
            Command(
                name="poll",
                sub="new",
                text="Which days?",
                options=("Mon", "Tue", "Wed"),
                multiple=True,
            ),
        ),  # fmt: skip
        ("/poll new -mx | a | b", Command(name="poll", sub="new", text="-mx", options=("a", "b"))),
        ("/poll vote 2", Command(name="poll", sub="vote", choices=(2,))),
        ("/poll vote 1 3 10", Command(name="poll", sub="vote", choices=(1, 3, 10))),
        ("/poll close", Command(name="poll", sub="close")),
        ("/msg Bob.K  hi  there \n", Command(name="msg", user="Bob.K", text="hi  there")),
        ("/msg bob line one\nline two", Command(name="msg", user="bob", text="line one\nline two")),
        ("/query bob", Command(name="query", user="bob")),
        ("/ignore bob", Command(name="ignore", user="bob")),
        ("/UNIGNORE Bob", Command(name="unignore", user="Bob")),
        ("/search lunch -pizza", Command(name="search", text="lunch -pizza")),
        ('/SEARCH  "salad bar" OR soup ', Command(name="search", text='"salad bar" OR soup')),
        ("/retro", Command(name="retro")),
        ("/retro start", Command(name="retro", sub="start")),
        ("/retro START  Sprint   12 ", Command(name="retro", sub="start", text="Sprint 12")),
        ("/retro show", Command(name="retro", sub="show")),
        (
            "/retro add 2  Flaky  tests\n",
            Command(name="retro", sub="add", column="2", text="Flaky  tests"),
        ),
        (
            "/retro add went CI is green",
            Command(name="retro", sub="add", column="went", text="CI is green"),
        ),
        ("/retro next", Command(name="retro", sub="next")),
        ("/retro back", Command(name="retro", sub="back")),
        ("/retro vote 3", Command(name="retro", sub="vote", number=3)),
        ("/retro unvote 1", Command(name="retro", sub="unvote", number=1)),
        ("/retro happy 5", Command(name="retro", sub="happy", number=5)),
        (
            "/retro action fix CI @ada",
            Command(name="retro", sub="action", text="fix CI", user="ada"),
        ),
        ("/retro action fix CI", Command(name="retro", sub="action", text="fix CI")),
        ("/retro close", Command(name="retro", sub="close")),
    ],
)
def test_typical_lines(line, expected) -> None:
    assert parse_command(line) == expected


def test_every_command_has_a_typical_line_tested() -> None:
    tested = {
        "help", "join", "part", "me", "topic", "who", "rooms", "nick", "invite", "kick",
        "ban", "unban", "mute", "unmute", "op", "deop", "delete", "todo", "poll", "msg",
        "query", "ignore", "unignore", "search", "retro",
    }  # fmt: skip
    assert tested == set(USAGE)
    forms = {"todo add", "todo start", "todo done", "todo reopen", "todo assign", "todo del",
             "todo mine", "poll new", "poll vote", "poll close", "retro start", "retro show",
             "retro add", "retro next", "retro back", "retro vote", "retro unvote",
             "retro happy", "retro action", "retro close"}  # fmt: skip
    assert forms == set(FORMS)


# ------------------------------------------------------------------ usage errors


@pytest.mark.parametrize(
    ("line", "command", "message"),
    [
        # wrong number of arguments
        ("/help me", "help", "takes no arguments"),
        ("/who all", "who", "takes no arguments"),
        ("/rooms public", "rooms", "takes no arguments"),
        ("/join", "join", "needs more arguments"),
        ("/join a b", "join", "too many arguments"),
        ("/part a b", "part", "too many arguments"),
        ("/me", "me", "needs an action"),
        ("/me    ", "me", "needs an action"),
        ("/nick", "nick", "must be 1-64 characters"),
        ("/invite", "invite", "needs more arguments"),
        ("/invite bob carol", "invite", "too many arguments"),
        ("/kick", "kick", "needs more arguments"),
        ("/ban", "ban", "needs more arguments"),
        ("/unban", "unban", "needs more arguments"),
        ("/unban bob now", "unban", "too many arguments"),
        ("/mute", "mute", "needs more arguments"),
        ("/mute bob 10m shouting", "mute", "too many arguments"),
        ("/unmute", "unmute", "needs more arguments"),
        ("/op", "op", "needs more arguments"),
        ("/op bob carol", "op", "too many arguments"),
        ("/deop", "deop", "needs more arguments"),
        ("/delete", "delete", "needs more arguments"),
        ("/delete 1 2", "delete", "too many arguments"),
        # room names (1-32 of A-Z a-z 0-9 - _)
        ("/join #general", "join", "is not a room name"),
        ("/join " + "x" * 33, "join", "is not a room name"),
        ("/join café", "join", "is not a room name"),
        ("/part dev.talk", "part", "is not a room name"),
        # usernames (3-32 of A-Z a-z 0-9 . - _)
        ("/invite ab", "invite", "is not a username"),
        ("/kick @bob", "kick", "is not a username"),
        ("/ban " + "b" * 33, "ban", "is not a username"),
        ("/unban bob!", "unban", "is not a username"),
        ("/mute émile", "mute", "is not a username"),
        ("/unmute b", "unmute", "is not a username"),
        ("/op b;ob", "op", "is not a username"),
        ("/deop <bob>", "deop", "is not a username"),
        # durations
        ("/mute bob soon", "mute", "is not a duration"),
        ("/mute bob 0m", "mute", "is not a duration"),
        ("/mute bob 10", "mute", "is not a duration"),
        ("/mute bob -5m", "mute", "is not a duration"),
        ("/mute bob 10y", "mute", "is not a duration"),
        ("/mute bob 99999999999w", "mute", "at most 3650d"),
        ("/mute bob 3651d", "mute", "at most 3650d"),
        ("/ban bob 3651d spam", "ban", "at most 3650d"),
        ("/ban bob 99999999999w", "ban", "at most 3650d"),
        # event ids: positive decimal 63-bit integers
        ("/delete 0", "delete", "is not an event id"),
        ("/delete -1", "delete", "is not an event id"),
        ("/delete 007", "delete", "is not an event id"),
        ("/delete 1.5", "delete", "is not an event id"),
        ("/delete 0x10", "delete", "is not an event id"),
        ("/delete abc", "delete", "is not an event id"),
        ("/delete ١٢٣", "delete", "is not an event id"),  # Arabic-Indic digits
        (f"/delete {MAX_ID + 1}", "delete", "is not an event id"),
        ("/delete " + "9" * 5000, "delete", "is not an event id"),
        # text arguments
        ("/me \x00", "me", "control characters"),
        ("/me a\x1bb", "me", "control characters"),
        ("/me " + "x" * 4001, "me", "1-4000 characters"),
        ("/me \ud800", "me", "valid Unicode"),
        ("/topic a\x07b", "topic", "control characters"),
        ("/topic line one\nline two", "topic", "one line"),
        ("/topic a\u2028b", "topic", "one line"),
        ("/topic " + "t" * 513, "topic", "at most 512 characters"),
        ("/nick " + "n" * 65, "nick", "must be at most 64 characters"),
        ("/nick Ada\x00", "nick", "control characters"),
        ("/nick Ada\tLovelace", "nick", "control characters"),
        ("/nick A\x85da", "nick", "control characters"),  # C1 NEL
        ("/kick bob " + "r" * 513, "kick", "the reason must be at most 512"),
        ("/ban bob 1h bad\nreason", "ban", "the reason must be one line"),
        ("/kick bob a\x7fb", "kick", "control characters"),
        ("/msg", "msg", "needs more arguments"),
        ("/msg bob", "msg", "needs the text to send"),
        ("/msg bob   ", "msg", "needs the text to send"),
        ("/msg b hi", "msg", "is not a username"),
        ("/msg bob a\x1bb", "msg", "control characters"),
        ("/msg bob " + "x" * 4001, "msg", "1-4000 characters"),
        ("/query", "query", "needs more arguments"),
        ("/query bob carl", "query", "too many arguments"),
        ("/ignore @bob", "ignore", "is not a username"),
        ("/unignore", "unignore", "needs more arguments"),
        # /todo: an unknown subcommand gets the whole synopsis, a wrong form its own
        ("/todo list", "todo", "unknown subcommand list of /todo"),
        ("/todo 3", "todo", "unknown subcommand 3 of /todo"),
        ("/todo add", "todo add", "the title must be 1-200 characters"),
        ("/todo add   ", "todo add", "the title must be 1-200 characters"),
        ("/todo add @bob", "todo add", "the title must be 1-200 characters"),
        ("/todo add " + "t" * 201, "todo add", "the title must be 1-200 characters"),
        ("/todo add a\x00b", "todo add", "the title must not contain NUL"),
        ("/todo add \ud800", "todo add", "the title must be valid Unicode"),
        ("/todo add fix it @bo", "todo add", "is not a username"),
        ("/todo add fix it @", "todo add", "is not a username"),
        ("/todo add fix it @bob!", "todo add", "is not a username"),
        ("/todo start", "todo start", "needs more arguments"),
        ("/todo start 1 2", "todo start", "too many arguments"),
        ("/todo start first", "todo start", "is not a number N"),
        ("/todo done", "todo done", "needs more arguments"),
        ("/todo done 0", "todo done", "is not a number N"),
        ("/todo done -1", "todo done", "is not a number N"),
        ("/todo done #3", "todo done", "is not a number N"),
        ("/todo done 03", "todo done", "is not a number N"),
        ("/todo done ٣", "todo done", "is not a number N"),  # an Arabic-Indic digit
        (f"/todo done {TASK_NUMBER_MAX + 1}", "todo done", "is not a number N"),
        ("/todo done " + "9" * 5000, "todo done", "is not a number N"),
        ("/todo reopen", "todo reopen", "needs more arguments"),
        ("/todo reopen 1.5", "todo reopen", "is not a number N"),
        ("/todo assign", "todo assign", "needs more arguments"),
        ("/todo assign 3", "todo assign", "needs more arguments"),
        ("/todo assign 3 @bob @carl", "todo assign", "too many arguments"),
        ("/todo assign 3 bob", "todo assign", "write the user as @USER"),
        ("/todo assign @bob 3", "todo assign", "is not a number N"),
        ("/todo assign 3 @b", "todo assign", "is not a username"),
        ("/todo assign 0 @bob", "todo assign", "is not a number N"),
        ("/todo del", "todo del", "needs more arguments"),
        ("/todo del x", "todo del", "is not a number N"),
        ("/todo mine all", "todo mine", "takes no arguments"),
        # /poll
        ("/poll results", "poll", "unknown subcommand results of /poll"),
        ("/poll new", "poll new", "needs more arguments"),
        ("/poll new -m", "poll new", "question must be 1-300 characters"),
        ("/poll new Lunch?", "poll new", "options must be a list of 2-10 options"),
        ("/poll new Lunch? | pizza", "poll new", "options must be a list of 2-10 options"),
        ("/poll new | a | b", "poll new", "question must be 1-300 characters"),
        ("/poll new " + "q" * 301 + " | a | b", "poll new", "question must be 1-300"),
        ("/poll new Q | a | A ", "poll new", "options must be distinct"),
        ("/poll new Q | a | ", "poll new", "options each must be 1-100 characters"),
        ("/poll new Q | a | " + "b" * 101, "poll new", "options each must be 1-100"),
        ("/poll new Q |" + "|".join("abcdefghijk"), "poll new", "2-10 options"),
        ("/poll vote", "poll vote", "needs more arguments"),
        ("/poll vote 0", "poll vote", "options are numbered 1-10"),
        ("/poll vote 11", "poll vote", "options are numbered 1-10"),
        ("/poll vote one", "poll vote", "options are numbered 1-10"),
        ("/poll vote 2 2", "poll vote", "name each option once"),
        ("/poll vote " + " ".join("1234567891"), "poll vote", "name each option once"),
        ("/poll vote " + " ".join(["1"] * 11), "poll vote", "too many arguments"),
        ("/poll close now", "poll close", "takes no arguments"),
        # /search
        ("/search", "search", "needs something to find"),
        ("/search  \t ", "search", "needs something to find"),
        # /retro
        ("/retro begin", "retro", "unknown subcommand begin of /retro"),
        ("/retro start " + "t" * 101, "retro start", "title must be 1-100 characters"),
        ("/retro show all", "retro show", "takes no arguments"),
        ("/retro add", "retro add", "needs more arguments"),
        ("/retro add 1", "retro add", "text must be 1-500 characters"),
        ("/retro add 1 " + "x" * 501, "retro add", "text must be 1-500 characters"),
        ("/retro next now", "retro next", "takes no arguments"),
        ("/retro back 2", "retro back", "takes no arguments"),
        ("/retro vote", "retro vote", "needs more arguments"),
        ("/retro vote 0", "retro vote", "is not a number N"),
        ("/retro vote 1 2", "retro vote", "too many arguments"),
        ("/retro unvote x", "retro unvote", "is not a number N"),
        ("/retro happy", "retro happy", "needs more arguments"),
        ("/retro happy 6", "retro happy", "a score of 1-5"),
        ("/retro happy 0", "retro happy", "a score of 1-5"),
        ("/retro action", "retro action", "title must be 1-200 characters"),
        ("/retro action fix @b", "retro action", "is not a username"),
        ("/retro close now", "retro close", "takes no arguments"),
    ],
)
def test_usage_errors(line, command, message) -> None:
    with pytest.raises(CommandError) as caught:
        parse_command(line)
    synopsis = FORMS.get(command) or USAGE[command]
    assert caught.value.usage == f"usage: {synopsis}"
    assert message in caught.value.message


@pytest.mark.parametrize(
    "title", ["x", "  padded  ", "t" * 200, "t" * 201, " " * 3, "a\x00b", "\udfff", "two\nlines"]
)
def test_todo_add_takes_the_titles_the_route_takes(title) -> None:
    try:
        parse_task_changes({"title": title}, creating=True)
    except ApiError:
        with pytest.raises(CommandError):
            parse_command(f"/todo add {title}")
    else:
        assert parse_command(f"/todo add {title}").text == title.strip()


def test_a_wrong_todo_form_is_answered_with_that_forms_synopsis() -> None:
    with pytest.raises(CommandError) as caught:
        parse_command("/todo done three")
    assert caught.value.usage == "usage: /todo done N"
    with pytest.raises(CommandError) as caught:
        parse_command("/todo finish 3")
    assert caught.value.usage == f"usage: {USAGE['todo']}"
    assert caught.value.usage.startswith("usage: /todo [add TEXT [@user] | start N")


def test_usage_line_is_written_as_the_contract_writes_it() -> None:
    with pytest.raises(CommandError) as caught:
        parse_command("/mute bob forever")
    assert caught.value.usage == "usage: /mute USER [DURATION like 10m]"
    assert str(caught.value) == f"{caught.value.message}\nusage: /mute USER [DURATION like 10m]"


@pytest.mark.parametrize("line", ["/frobnicate", "/x now", "/JOINS general", "/", "//join a"])
def test_unknown_command_points_at_help(line) -> None:
    with pytest.raises(CommandError) as caught:
        parse_command(line)
    typed = line.split()[0]
    assert caught.value.message == f"unknown command {typed}; try /help"
    assert caught.value.usage == "usage: /help"


def test_unknown_command_name_is_shortened_in_the_answer() -> None:
    with pytest.raises(CommandError) as caught:
        parse_command("/" + "z" * 5000)
    assert caught.value.message == "unknown command /" + "z" * 32 + "…; try /help"


@pytest.mark.parametrize("line", ["hello", "", "   ", "join general", "\\join general"])
def test_a_line_without_a_slash_is_not_a_command(line) -> None:
    with pytest.raises(CommandError) as caught:
        parse_command(line)
    assert caught.value.message == "commands start with /; try /help"
    assert caught.value.usage == "usage: /help"


# ------------------------------------------------------------------ case and whitespace


@pytest.mark.parametrize("line", ["/JOIN General", "/Join General", "/jOiN General"])
def test_command_names_are_case_insensitive_and_arguments_keep_their_case(line) -> None:
    assert parse_command(line) == Command(name="join", room="General")


def test_usernames_keep_their_case() -> None:
    assert parse_command("/KICK Bob Too LOUD") == Command(name="kick", user="Bob", text="Too LOUD")


def test_subcommands_are_case_insensitive_and_titles_keep_their_case() -> None:
    assert parse_command("/TODO Add Call ADA @Ada") == Command(
        name="todo", sub="add", text="Call ADA", user="Ada"
    )
    assert parse_command("/Todo DONE 7") == Command(name="todo", sub="done", number=7)


def test_duration_units_are_case_insensitive() -> None:
    assert parse_command("/ban bob 2H").duration == timedelta(hours=2)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("   /join   general   ", Command(name="join", room="general")),
        ("/join\tgeneral\n", Command(name="join", room="general")),
        ("/part   ", Command(name="part")),
        ("/who \t ", Command(name="who")),
        ("/mute   bob    10m  ", Command(name="mute", user="bob", duration=timedelta(minutes=10))),
        ("/delete  42 ", Command(name="delete", event_id=42)),
        ("/me   waves    at   everyone  ", Command(name="me", text="waves    at   everyone")),
        ("/topic   a  b   c  ", Command(name="topic", text="a  b   c")),
        ("/topic    ", Command(name="topic", text="")),
        ("/nick   Ada   L.  ", Command(name="nick", text="Ada   L.")),
        (
            "/kick   bob    please   stop ",
            Command(name="kick", user="bob", text="please   stop"),
        ),
        (
            "/ban  bob   1h   far   too  much ",
            Command(name="ban", user="bob", text="far   too  much", duration=timedelta(hours=1)),
        ),
        ("/kick bob   ", Command(name="kick", user="bob")),
        ("/join\u00a0general", Command(name="join", room="general")),  # no-break space
        ("/todo   ", Command(name="todo")),
        ("/todo   done    5  ", Command(name="todo", sub="done", number=5)),
        ("/todo  add   a   b  @bob  ", Command(name="todo", sub="add", text="a   b", user="bob")),
        ("/todo assign\t5\t@bob", Command(name="todo", sub="assign", number=5, user="bob")),
    ],
)
def test_extra_whitespace_is_tolerated_and_inner_whitespace_kept(line, expected) -> None:
    assert parse_command(line) == expected


def test_me_keeps_inner_newlines_and_tabs_as_a_message_body_may() -> None:
    assert parse_command("/me waves\n\tand bows").text == "waves\n\tand bows"


# ------------------------------------------------------------------ unicode text


@pytest.mark.parametrize(
    "text", ["tanzt 💃 auf dem Tisch", "поёт песню", "走开了", "waves 👋🏽", "ﷺ مرحبا"]
)
def test_unicode_actions_and_topics(text) -> None:
    assert parse_command(f"/me {text}") == Command(name="me", text=text)
    assert parse_command(f"/topic {text}") == Command(name="topic", text=text)
    assert parse_command(f"/nick {text}") == Command(name="nick", text=text)
    assert parse_command(f"/todo add {text}") == Command(name="todo", sub="add", text=text)


def test_length_limits_count_characters_not_bytes() -> None:
    assert parse_command("/me " + "é" * 4000).text == "é" * 4000
    assert parse_command("/topic " + "日" * 512).text == "日" * 512
    assert parse_command("/nick " + "🙂" * 64).text == "🙂" * 64
    assert parse_command("/todo add " + "日" * 200).text == "日" * 200


# ------------------------------------------------------------------ /ban's optional duration


@pytest.mark.parametrize(
    ("line", "duration", "reason"),
    [
        ("/ban bob 1h30m spam", timedelta(minutes=90), "spam"),
        ("/ban bob 1hour spam", None, "1hour spam"),  # not a whole duration: reason text
        ("/ban bob 0m spam", None, "0m spam"),  # parse_duration refuses zero
        ("/ban bob spam 1h", None, "spam 1h"),  # only the first reason word counts
        ("/ban bob 10", None, "10"),
        ("/ban bob 3650d", timedelta(days=3650), None),
    ],
)
def test_ban_takes_a_duration_only_when_the_first_word_is_one(line, duration, reason) -> None:
    command = parse_command(line)
    assert (command.duration, command.text) == (duration, reason)


def test_commands_are_frozen() -> None:
    import attrs

    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        parse_command("/join a").room = "b"  # type: ignore[misc]


# ------------------------------------------------------------------ /help


def synopses(lines: list[str]) -> list[str]:
    """The synopsis part of each help line, before the two-space gap."""
    return [re.split(r" {2}", line)[0] for line in lines]


def test_help_lists_every_command_when_everything_is_allowed() -> None:
    lines = help_lines(lambda name: True)
    assert synopses(lines) == list(USAGE.values())
    assert all(len(line) > len(USAGE[name]) + 2 for line, name in zip(lines, USAGE, strict=True))


def test_help_lists_only_what_the_predicate_allows_in_order() -> None:
    allowed = {"rooms", "help", "kick"}
    assert synopses(help_lines(allowed.__contains__)) == ["/help", "/rooms", "/kick USER [REASON]"]
    assert help_lines(lambda name: False) == []


EVERYONE = ["help", "join", "part", "rooms", "nick", "msg", "query", "ignore", "unignore", "search"]
MEMBER = [*EVERYONE, "me", "who", "delete", "todo", "poll", "retro"]
MODERATOR = [*MEMBER, "topic", "invite", "kick", "ban", "unban", "mute", "unmute"]


def test_help_outside_any_room_lists_what_everyone_may_use() -> None:
    assert synopses(help_lines(needs_no_room)) == [USAGE[name] for name in EVERYONE]


@pytest.mark.parametrize(
    ("who", "usable"),
    [
        (Actor(room_role=None, server_admin=False), EVERYONE),
        (Actor(room_role="member", server_admin=False), MEMBER),
        (Actor(room_role="member", server_admin=False, muted=True), set(MEMBER) - {"me"}),
        (Actor(room_role="moderator", server_admin=False), MODERATOR),
        (Actor(room_role="owner", server_admin=False), USAGE),
        (Actor(room_role=None, server_admin=True), USAGE),
        (Actor(room_role="owner", server_admin=True, banned=True), EVERYONE),
    ],
)
def test_help_filtered_by_room_role(who, usable) -> None:
    shown = synopses(help_lines(partial(may_use, who)))
    assert shown == [USAGE[name] for name in USAGE if name in set(usable)]


def test_command_actions_name_roles_actions() -> None:
    assert COMMAND_ACTION["me"] is Action.SEND
    assert COMMAND_ACTION["topic"] is Action.SET_TOPIC
    assert all(a is None or isinstance(a, Action) for a in COMMAND_ACTION.values())


def test_module_is_pure() -> None:
    assert third_party_imports(commands) == {
        "attrs",
        "termrooms.domain.errors",
        "termrooms.domain.events",
        "termrooms.domain.polls",
        "termrooms.domain.retros",
        "termrooms.domain.roles",
        "termrooms.domain.rules",
        "termrooms.domain.snowflake",
        "termrooms.domain.tasks",
    }


def test_the_web_clients_completion_knows_every_command() -> None:
    source = (Path(commands.__file__).parents[1] / "client/js/completion.js").read_text()
    listed = re.search(r"export const COMMANDS = \[(.*?)\];", source, re.DOTALL)
    assert listed is not None
    assert re.findall(r'"([a-z]+)"', listed[1]) == list(USAGE)
