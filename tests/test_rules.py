"""The contract's input rules and value parsers."""

from __future__ import annotations

from datetime import timedelta

import pytest

from termrooms.domain.errors import ApiError
from termrooms.domain.rules import (
    check_fields,
    new_username_problem,
    parse_duration,
    password_problem,
    username_problem,
)


@pytest.mark.parametrize("name", ["ada", "a.b-c_d", "X" * 32, "123"])
def test_acceptable_usernames(name):
    assert username_problem(name) is None


@pytest.mark.parametrize(
    "name", ["ab", "x" * 33, "has space", "émile", "semi;colon", "", None, 42, "ada\n"]
)
def test_unacceptable_usernames(name):
    assert username_problem(name)


@pytest.mark.parametrize("name", ["deleted-1", "DELETED-383186", "Deleted-x"])
def test_names_of_deleted_accounts_are_not_for_new_ones(name):
    assert username_problem(name) is None and new_username_problem(name)
    assert new_username_problem("undeleted-1") is None and new_username_problem("ab")


@pytest.mark.parametrize(
    "password,ok",
    [("x" * 7, False), ("x" * 8, True), ("x" * 128, True), ("x" * 129, False), (None, False)],
)
def test_password_length_bounds(password, ok):
    assert (password_problem(password) is None) is ok


def test_check_fields_names_every_bad_field_in_one_422():
    with pytest.raises(ApiError) as caught:
        check_fields(username="must be nice", password=None, invite_code="is unknown")
    error = caught.value
    assert error.status == 422
    assert [e["field"] for e in error.body()["validation_errors"]] == ["username", "invite_code"]


def test_check_fields_passes_when_nothing_is_wrong():
    check_fields(username=None, password=None)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("30s", 30),
        ("10m", 600),
        ("2h", 7200),
        ("7d", 604800),
        ("2w", 1209600),
        ("1h30m", 5400),
        (" 10M ", 600),
    ],
)
def test_durations(text, expected):
    assert parse_duration(text) == timedelta(seconds=expected)


@pytest.mark.parametrize("text", ["", "10", "m10", "2x", "0m", "-5m", "1.5h", "10 m"])
def test_bad_durations_are_refused(text):
    with pytest.raises(ValueError):
        parse_duration(text)
