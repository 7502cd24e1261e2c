"""The pure rules of tasks (termrooms.domain.tasks): what a body may set, and who may
change a room task. No network, no database."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from termrooms.domain.errors import ApiError
from termrooms.domain.roles import Actor
from termrooms.domain.tasks import (
    Task,
    TaskChanges,
    may_delete_task,
    may_update_task,
    parse_task_changes,
    task_json,
)


def fields_refused(body, creating=True) -> list[str]:
    with pytest.raises(ApiError) as caught:
        parse_task_changes(body, creating=creating)
    assert caught.value.error_code == "validation_error"
    return [e.field for e in caught.value.validation_errors]


def test_a_create_needs_a_title_and_takes_the_rest_as_given():
    assert parse_task_changes({"title": " a "}, creating=True) == TaskChanges(title="a")
    full = {"title": "t", "description": "", "status": "in_progress", "assignee": "bob"}
    assert parse_task_changes(full, creating=True) == TaskChanges("t", "", "in_progress", "bob")
    assert fields_refused({}) == ["title"]
    assert fields_refused({"title": None}) == ["title"]


@pytest.mark.parametrize(
    "body, fields",
    [
        ({"title": ""}, ["title"]),
        ({"title": " \t "}, ["title"]),
        ({"title": "x" * 201}, ["title"]),
        ({"title": ["x"]}, ["title"]),
        ({"title": "\ud800"}, ["title"]),
        ({"title": "a\x00b"}, ["title"]),
        ({"title": "t", "description": "d" * 2001}, ["description"]),
        ({"title": "t", "description": 3}, ["description"]),
        ({"title": "t", "status": "Pending"}, ["status"]),
        ({"title": "t", "assignee": ""}, ["assignee"]),
        ({"title": "", "status": "x", "assignee": 1}, ["title", "status", "assignee"]),
    ],
)
def test_bad_fields_are_named_together(body, fields):
    assert fields_refused(body) == fields


def test_limits_are_inclusive():
    body = {"title": "x" * 200, "description": "d" * 2000}
    assert parse_task_changes(body, creating=True).title == "x" * 200


def test_an_update_sets_what_it_names_and_null_unassigns():
    assert parse_task_changes({"status": "completed"}, creating=False).status == "completed"
    cleared = parse_task_changes({"assignee": None}, creating=False)
    assert cleared.assignee == ""
    assert fields_refused({}, creating=False) == ["title"]
    assert fields_refused({"colour": "red"}, creating=False) == ["title"]


def test_an_update_changes_only_the_values_that_differ():
    moment = datetime(2024, 5, 1, tzinfo=timezone.utc)
    task = Task(7, 3, "crew", 2, "t", "d", "pending", 11, "ada", 12, "bob", None, moment, moment)

    def changed(body: dict, assignee_id: int | None = 12) -> tuple[str, ...]:
        return parse_task_changes(body, creating=False).changed_fields(task, assignee_id)

    assert changed({"title": "t", "description": "d", "status": "pending"}) == ()
    assert changed({"assignee": "bob"}) == ()  # already bob's: not a new assignment
    assert changed({"assignee": "bob", "status": "completed"}) == ("status",)
    assert changed({"assignee": None}, assignee_id=None) == ("assignee",)
    assert changed({"assignee": "carl"}, assignee_id=13) == ("assignee",)
    assert changed({"status": "completed", "title": "u", "description": ""}) == (
        "title",
        "description",
        "status",
    )


MEMBER = Actor(room_role="member", server_admin=False)
MODERATOR = Actor(room_role="moderator", server_admin=False)
OWNER = Actor(room_role="owner", server_admin=False)
ADMIN = Actor(room_role=None, server_admin=True)
OUTSIDER = Actor(room_role=None, server_admin=False)
BANNED_MODERATOR = Actor(room_role=None, server_admin=False, banned=True)
MUTED = Actor(room_role="member", server_admin=False, muted=True)


@pytest.mark.parametrize(
    "actor, creator, assignee, update, delete",
    [
        (MEMBER, False, False, False, False),
        (MEMBER, True, False, True, True),
        (MEMBER, False, True, True, False),
        (MUTED, True, False, True, True),  # a mute stops messages, not task lists
        (MODERATOR, False, False, True, True),
        (OWNER, False, False, True, True),
        (ADMIN, False, False, True, True),
        (OUTSIDER, True, True, False, False),  # left the room: no longer theirs to change
        (BANNED_MODERATOR, True, False, False, False),
    ],
)
def test_who_changes_a_room_task(actor, creator, assignee, update, delete):
    assert may_update_task(actor, is_creator=creator, is_assignee=assignee) is update
    assert may_delete_task(actor, is_creator=creator) is delete


def test_the_wire_shape_has_every_field_of_the_contract():
    moment = datetime(2026, 12, 3, 12, 0, 0, 123456, tzinfo=timezone.utc)
    task = Task(7, 3, "crew", 2, "t", "", "pending", 11, "ada", 12, "bob", None, moment, moment)
    shown = task_json(task)
    assert list(shown) == [
        "id",
        "title",
        "description",
        "status",
        "user_id",
        "created_at",
        "updated_at",
        "room",
        "number",
        "assignee",
        "created_by",
        "source",
    ]
    assert shown["id"] == "7" and shown["user_id"] == "11"
    assert shown["created_at"] == "2026-12-03T12:00:00.123Z"
    assert not task.personal
