"""
Tasks over real HTTP against a real daemon and PostgreSQL (protocol v1.1, Tasks): the
routes, the numbers, the filters and pages, the stored room events and audit rows, and
the privacy matrix: every route by the owner, a member, an outsider, a banned member,
an admin and an anonymous caller, with what is hidden answering exactly as what is absent.
"""

from __future__ import annotations

import pytest
import pytest_twisted
from test_auth import query
from test_moderation import api, audit, drained, history, lobby_with, moderate
from test_retention_database import ADA, add_room, sql
from twisted.internet import defer, reactor

from support import PASSWORD, bearer, config_for, start
from termrooms.config import Config
from termrooms.domain.errors import ApiError
from termrooms.domain.notices import UserNotice
from termrooms.domain.tasks import TaskChanges
from termrooms.server import TermroomsServer
from termrooms.storage.database import connect_one, run_in_transaction
from termrooms.storage.tasks import create_task_txn
from test_rooms import close, connect, frames_until, user_session

ABSENT = "/api/tasks/999999999999"


@pytest_twisted.async_yield_fixture
async def running(fresh_migrated_database_url, tmp_path):
    server = await start(config_for(fresh_migrated_database_url, tmp_path, no_rate_limits=True))
    yield server
    await server.stop()


async def create(running, session, **body):
    return await api(running, session, "POST", "/api/tasks", body)


async def task_of(running, session, **body) -> dict:
    status, task = await create(running, session, **body)
    assert status == 201, task
    return task


def field_of(answer) -> tuple[int, str, list[str]]:
    status, body = answer
    return status, body["error_code"], [e["field"] for e in body.get("validation_errors", [])]


async def absent_answer(running, session, method="GET", body=None):
    return await api(running, session, method, ABSENT, body)


@pytest_twisted.ensureDeferred
async def test_a_personal_task_is_its_owners_alone(running):
    ada = await user_session(running, "ada")
    bob = await user_session(running, "bob")
    root = await user_session(running, "root", role="admin")

    task = await task_of(running, ada, title="  water the plants  ", description="the ficus")
    assert task["title"] == "water the plants"
    assert task["description"] == "the ficus"
    assert task["status"] == "pending"
    assert task["room"] is None and task["assignee"] is None and task["source"] is None
    assert task["number"] == 1 and task["created_by"] == "ada"
    assert task["user_id"] == ada["user"]["id"]
    assert (await task_of(running, ada, title="second"))["number"] == 2
    assert (await task_of(running, bob, title="bob's own"))["number"] == 1  # per user

    path = f"/api/tasks/{task['id']}"
    assert await api(running, ada, "GET", path) == (200, task)
    # Anyone else, a server admin included, meets exactly what a missing task answers.
    for other in (bob, root):
        for method, body in (("GET", None), ("PATCH", {"title": "x"}), ("DELETE", None)):
            assert await api(running, other, method, path, body) == await absent_answer(
                running, other, method, body
            )
            assert (await api(running, other, method, path, body))[0] == 404
    # Even a body that would be refused does not tell them the task exists.
    assert await api(running, bob, "PATCH", path, {"status": "bogus"}) == await absent_answer(
        running, bob, "PATCH", {"status": "bogus"}
    )
    assert (await api(running, None, "GET", path))[0] == 401

    # Assigned to nobody or to its owner only.
    assert field_of(await create(running, ada, title="t", assignee="bob")) == (
        422,
        "validation_error",
        ["assignee"],
    )
    mine = await task_of(running, ada, title="mine", assignee="ADA")
    assert mine["assignee"] == "ada"

    status, done = await api(running, ada, "PATCH", path, {"status": "completed"})
    assert status == 200 and done["status"] == "completed" and done["title"] == task["title"]
    assert done["updated_at"] >= task["updated_at"]
    status, put = await api(running, ada, "PUT", path, {"title": "re-titled", "assignee": None})
    assert status == 200 and put["title"] == "re-titled" and put["status"] == "completed"

    assert await api(running, ada, "DELETE", path) == (204, None)
    assert await api(running, ada, "GET", path) == await absent_answer(running, ada)

    # The audit rows carry who and which task, never a personal task's text.
    rows = [r for r in await audit(running, root) if r["action"].startswith("task.")]
    personal = [r for r in rows if r["data"]["task"] == task["id"]]
    assert [r["action"] for r in personal] == [
        "task.delete",
        "task.update",
        "task.update",
        "task.create",
    ]
    assert all(r["actor_id"] == ada["user"]["id"] for r in personal)
    assert all("title" not in r["data"] for r in personal)


@pytest_twisted.ensureDeferred
async def test_bad_input_names_its_field_and_stores_nothing(running):
    ada = await user_session(running, "ada")
    cases = [
        ({}, ["title"]),
        ({"title": ""}, ["title"]),
        ({"title": "   "}, ["title"]),
        ({"title": "x" * 201}, ["title"]),
        ({"title": 5}, ["title"]),
        ({"title": "ok", "description": "d" * 2001}, ["description"]),
        ({"title": "ok", "status": "done"}, ["status"]),
        ({"title": "ok", "assignee": 7}, ["assignee"]),
    ]
    for body, fields in cases:
        assert field_of(await create(running, ada, **body)) == (422, "validation_error", fields)
    assert (await task_of(running, ada, title="x" * 200, description="d" * 2000))["number"] == 1
    status, page = await api(running, ada, "GET", "/api/tasks")
    assert status == 200 and len(page["tasks"]) == 1
    task = page["tasks"][0]
    path = f"/api/tasks/{task['id']}"
    assert field_of(await api(running, ada, "PATCH", path, {})) == (
        422,
        "validation_error",
        ["title"],
    )
    assert field_of(await api(running, ada, "PATCH", path, {"status": "nope"}))[2] == ["status"]
    assert field_of(await api(running, ada, "GET", "/api/tasks?limit=201"))[2] == ["limit"]
    assert field_of(await api(running, ada, "GET", "/api/tasks?status=later"))[2] == ["status"]
    assert (await api(running, ada, "GET", "/api/tasks/abc"))[0] == 404
    assert await api(running, ada, "GET", path) == (200, task)  # unchanged by the refusals


@pytest_twisted.ensureDeferred
async def test_room_tasks_follow_the_rooms_privacy_and_the_permission_table(running):
    admin, (ada, bob, carl) = await lobby_with(
        running, "ada", "bob", "carl", room="crew", visibility="private"
    )
    dave = await user_session(running, "dave")  # outsider
    task = await task_of(running, bob, title="fix the build", room="crew", assignee="carl")
    assert task["room"] == "crew" and task["assignee"] == "carl" and task["number"] == 1
    path = f"/api/tasks/{task['id']}"

    # Reading: members and the admin; an outsider meets what a missing task answers.
    for reader in (ada, bob, carl, admin):
        assert await api(running, reader, "GET", path) == (200, task)
    for method, body in (("GET", None), ("PATCH", {"title": "x"}), ("DELETE", None)):
        assert await api(running, dave, method, path, body) == await absent_answer(
            running, dave, method, body
        )
    assert (await api(running, None, "GET", path))[0] == 401
    # An outsider cannot put a task into the room, nor learn that it exists.
    assert await create(running, dave, title="sneak", room="crew") == await api(
        running, dave, "GET", "/api/rooms/crew"
    )

    # Assignee must be a member: 422 naming it.
    assert field_of(await create(running, bob, title="t", room="crew", assignee="dave")) == (
        422,
        "validation_error",
        ["assignee"],
    )

    # Updating: creator, assignee, moderator+; another member is refused.
    status, started = await api(running, carl, "PATCH", path, {"status": "in_progress"})
    assert status == 200 and started["status"] == "in_progress"
    assert (await api(running, bob, "PATCH", path, {"description": "logs in CI"}))[0] == 200
    third = await user_session(running, "erin")
    await api(running, ada, "POST", "/api/rooms/crew/members", {"username": "erin"})
    assert (await api(running, third, "POST", "/api/rooms/crew/join"))[0] == 200
    assert field_of(await api(running, third, "PATCH", path, {"title": "mine now"}))[:2] == (
        403,
        "forbidden",
    )
    # Deleting: creator and moderator+, not the assignee.
    assert field_of(await api(running, carl, "DELETE", path))[:2] == (403, "forbidden")

    # A banned member sees it no more (a private room hides itself from them).
    status, _ = await moderate(running, ada, "ban", "carl", room="crew")
    assert status == 200
    assert await api(running, carl, "GET", path) == await absent_answer(running, carl)

    assert await api(running, ada, "DELETE", path) == (204, None)  # the owner
    assert await api(running, bob, "GET", path) == await absent_answer(running, bob)

    # Every change is a stored room event, in order, with what changed.
    events = [e for e in await history(running, ada, room="crew") if e["type"].startswith("task")]
    assert [e["type"] for e in events] == [
        "task_created",
        "task_updated",
        "task_updated",
        "task_deleted",
    ]
    assert events[0]["task"] == task and events[0]["user"] == "bob"
    assert events[1]["changes"] == ["status"] and events[1]["user"] == "carl"
    assert events[1]["task"]["status"] == "in_progress"
    assert events[2]["changes"] == ["description"]
    assert events[3]["target"] == task["id"] and events[3]["user"] == "ada"
    # The room's audit rows name the task, with its title.
    rows = [r for r in await audit(running, admin) if r["data"].get("task") == task["id"]]
    assert [r["action"] for r in rows] == [
        "task.delete",
        "task.update",
        "task.update",
        "task.create",
    ]
    assert rows[-1]["data"]["title"] == "fix the build"


@pytest_twisted.ensureDeferred
async def test_a_public_rooms_tasks_are_read_by_anyone_signed_in_and_changed_by_members(
    running,
):
    admin, (ada, bob) = await lobby_with(running, "ada", "bob")
    dave = await user_session(running, "dave")
    task = await task_of(running, ada, title="welcome pack", room="lobby")
    path = f"/api/tasks/{task['id']}"
    assert await api(running, dave, "GET", path) == (200, task)
    status, page = await api(running, dave, "GET", "/api/tasks?room=lobby")
    assert status == 200 and page["tasks"] == [task]
    assert field_of(await api(running, dave, "PATCH", path, {"title": "x"}))[:2] == (
        403,
        "forbidden",
    )
    assert field_of(await create(running, dave, title="x", room="lobby"))[:2] == (403, "forbidden")
    assert (await api(running, None, "GET", "/api/tasks?room=lobby"))[0] == 401


@pytest_twisted.ensureDeferred
async def test_my_tasks_filters_and_pages(running):
    admin, (ada, bob) = await lobby_with(running, "ada", "bob", room="crew")
    personal = [await task_of(running, bob, title=f"p{i}") for i in range(3)]
    assigned = await task_of(running, ada, title="review", room="crew", assignee="bob")
    await task_of(running, ada, title="not bob's", room="crew")
    await task_of(running, ada, title="ada's own")

    status, page = await api(running, bob, "GET", "/api/tasks")
    assert status == 200 and page["has_more"] is False
    assert [t["id"] for t in page["tasks"]] == [t["id"] for t in personal] + [assigned["id"]]

    # Newest `limit`, oldest first; before= pages back.
    status, newest = await api(running, bob, "GET", "/api/tasks?limit=2")
    assert [t["title"] for t in newest["tasks"]] == ["p2", "review"] and newest["has_more"]
    oldest_id = newest["tasks"][0]["id"]
    status, older = await api(running, bob, "GET", f"/api/tasks?limit=2&before={oldest_id}")
    assert [t["title"] for t in older["tasks"]] == ["p0", "p1"] and not older["has_more"]

    # Room lists, by status and by assignee.
    await api(running, bob, "PATCH", f"/api/tasks/{assigned['id']}", {"status": "completed"})
    status, room_page = await api(running, ada, "GET", "/api/tasks?room=crew&status=completed")
    assert [t["title"] for t in room_page["tasks"]] == ["review"]
    status, by_bob = await api(running, ada, "GET", "/api/tasks?room=crew&assignee=bob")
    assert [t["title"] for t in by_bob["tasks"]] == ["review"]
    status, by_me = await api(running, bob, "GET", "/api/tasks?room=crew&assignee=me")
    assert [t["title"] for t in by_me["tasks"]] == ["review"]
    status, nobody = await api(running, ada, "GET", "/api/tasks?room=crew&assignee=nobody")
    assert status == 200 and nobody["tasks"] == []

    # Leaving the room takes its tasks out of "mine".
    assert (await api(running, bob, "POST", "/api/rooms/crew/leave"))[0] in (200, 204)
    status, page = await api(running, bob, "GET", "/api/tasks")
    assert [t["title"] for t in page["tasks"]] == ["p0", "p1", "p2"]


@pytest_twisted.ensureDeferred
async def test_tasks_created_at_once_get_distinct_numbers(running):
    admin, (ada, bob) = await lobby_with(running, "ada", "bob", room="crew")
    answers = await defer.gatherResults(
        [
            defer.ensureDeferred(create(running, who, title=f"t{i}", room="crew"))
            for i, who in enumerate([ada, bob] * 6)
        ]
    )
    assert all(status == 201 for status, _ in answers)
    assert sorted(task["number"] for _, task in answers) == list(range(1, 13))


@pytest_twisted.ensureDeferred
async def test_the_openapi_document_lists_the_task_routes(running):
    status, document, _ = await running.request("GET", "/api/openapi.json")
    assert status == 200
    paths = document["paths"]
    assert set(paths["/api/tasks"]) >= {"get", "post"}
    assert set(paths["/api/tasks/{task_id}"]) >= {"get", "put", "patch", "delete"}
    assert (
        "required"
        in paths["/api/tasks"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    )


@pytest_twisted.ensureDeferred
async def test_export_holds_my_tasks_and_deleting_me_deletes_my_personal_ones(running):
    admin, (ada, olga) = await lobby_with(running, "ada", "olga", room="crew")
    personal = await task_of(running, olga, title="call the dentist")
    room_task = await task_of(running, olga, title="book the venue", room="crew")
    given = await task_of(running, ada, title="send invites", room="crew", assignee="olga")
    await task_of(running, ada, title="ada's own")

    status, export, _ = await running.request(
        "GET", "/api/auth/me/export", headers=bearer(olga["access_token"])
    )
    assert status == 200
    assert [t["id"] for t in export["tasks"]] == [personal["id"], room_task["id"], given["id"]]

    status, _, _ = await running.request(
        "DELETE", "/api/auth/me", json={"password": PASSWORD}, headers=bearer(olga["access_token"])
    )
    assert status == 204
    olga_id = int(olga["user"]["id"])
    assert query(
        running, "SELECT count(*) FROM tasks WHERE user_id = %s AND room_id IS NULL", (olga_id,)
    ) == [(0,)]
    # The room keeps its task, its creator shown as the deleted user.
    status, kept = await api(running, ada, "GET", f"/api/tasks/{room_task['id']}")
    assert status == 200 and kept["created_by"] == f"deleted-{olga_id}"
    assert kept["title"] == "book the venue"
    # So do the room's stored task events: no copy of her name is left in them.
    events = [e for e in await history(running, ada, room="crew") if "task" in e]
    assert events and all("olga" not in str(e["task"]) for e in events), events
    created = [e for e in events if e["task"]["id"] == room_task["id"]]
    assert created[0]["task"]["created_by"] == f"deleted-{olga_id}"
    given_events = [e for e in events if e["task"]["id"] == given["id"]]
    assert given_events[0]["task"]["assignee"] == f"deleted-{olga_id}"
    assert given_events[0]["task"]["title"] == "send invites"  # nothing else changed


@pytest_twisted.ensureDeferred
async def test_task_changes_reach_the_users_own_sockets(running):
    admin, (ada, bob) = await lobby_with(running, "ada", "bob", room="crew")
    ada_socket = await connect(running, ada)  # subscribed to no room
    bob_socket = await connect(running, bob)
    try:
        # A personal task's every change reaches its owner's sockets, and no one else's.
        task = await task_of(running, ada, title="renew passport")
        frame = await next_of(ada_socket, "task")
        assert frame == {"type": "task", "task": task}
        status, done = await api(
            running, ada, "PATCH", f"/api/tasks/{task['id']}", {"status": "completed"}
        )
        assert (await next_of(ada_socket, "task"))["task"] == done
        await api(running, ada, "DELETE", f"/api/tasks/{task['id']}")
        assert await next_of(ada_socket, "task") == {"type": "task", "deleted": task["id"]}

        # An assignment tells the assignee, on a socket not subscribed to the room.
        given = await task_of(running, ada, title="send invites", room="crew", assignee="bob")
        notify = await next_of(bob_socket, "notify")
        assert notify["reason"] == "task_assigned" and notify["room"] == "crew"
        assert notify["event"]["type"] == "task_created"
        assert notify["event"]["task"] == given
        # Reassigned to someone else and back: an update that assigns tells them too.
        await api(running, ada, "PATCH", f"/api/tasks/{given['id']}", {"assignee": "ada"})
        await api(running, ada, "PATCH", f"/api/tasks/{given['id']}", {"assignee": "bob"})
        notify = await next_of(bob_socket, "notify")
        assert notify["event"]["type"] == "task_updated"
        assert notify["event"]["changes"] == ["assignee"]
        # Naming the assignee already there assigns no one: the event lists only what
        # changed, bob is not told again (the notify below is the next he gets), and a
        # PATCH that changes nothing stores nothing.
        path = f"/api/tasks/{given['id']}"
        stored = await history(running, ada, room="crew")
        status, renamed = await api(running, ada, "PATCH", path, {"assignee": "bob", "title": "x"})
        assert status == 200 and renamed["assignee"] == "bob" and renamed["title"] == "x"
        assert await api(running, ada, "PATCH", path, {"assignee": "bob", "title": "x"}) == (
            200,
            renamed,
        )
        [updated] = (await history(running, ada, room="crew"))[len(stored) :]
        assert updated["changes"] == ["title"] and updated["task"] == renamed
        # Nobody is told of their own assignment: the next notice bob gets is the one
        # after it (notices come in commit order), and ada heard of no room task.
        await task_of(running, bob, title="mine", room="crew", assignee="bob")
        await task_of(running, ada, title="last", room="crew", assignee="bob")
        [notify] = await frames_until(bob_socket, lambda f: f.get("type") == "notify")
        assert notify["event"]["task"]["title"] == "last"
        await task_of(running, ada, title="marker")
        [frame] = await frames_until(ada_socket, lambda f: f.get("type") == "task")
        assert frame["task"]["title"] == "marker"
        assert [f["type"] for f in await drained(bob_socket)] == []
    finally:
        await close(ada_socket)
        await close(bob_socket)


def test_one_users_notices_go_out_in_commit_order():
    """An update's notice reads the task again, its delete's needs no read: when that
    read is slow the delete's frame still goes second (else the owner's client shows the
    deleted task as present). Another user's notices do not wait; a failed read drops
    only its own frame; nothing is kept once a user's notices are out."""
    reads: list[tuple[UserNotice, defer.Deferred]] = []
    sent: list[tuple[int, dict]] = []

    class Gateway:
        def has_user(self, user_id: int) -> bool:
            return True

        def send_to_user(self, user_id: int, frame: dict) -> None:
            sent.append((user_id, frame))

    class Handler:
        def frame_for(self, notice: UserNotice) -> defer.Deferred:
            reads.append((notice, defer.Deferred()))
            return reads[-1][1]

    def answer(kind: str, user_id: int = 1, fail: bool = False) -> None:
        """The pending read of that notice, if it has begun, answers."""
        for notice, d in reads:
            if notice.kind == kind and notice.user_id == user_id and not d.called:
                if fail:
                    d.errback(RuntimeError("the database went away"))
                else:
                    d.callback({"kind": kind})

    server = TermroomsServer(Config(), reactor, gateway=Gateway(), task_handler=Handler())
    server.deliver_notice(UserNotice(1, "task", 10))
    server.deliver_notice(UserNotice(1, "task_deleted", 10))
    server.deliver_notice(UserNotice(2, "task", 20))
    answer("task", user_id=2)
    answer("task_deleted")  # quick, when it may begin before the update's read is done
    answer("task")
    answer("task_deleted")
    assert sent == [(2, {"kind": "task"}), (1, {"kind": "task"}), (1, {"kind": "task_deleted"})]

    server.deliver_notice(UserNotice(1, "task", 11))
    server.deliver_notice(UserNotice(1, "task_deleted", 11))
    answer("task", fail=True)
    answer("task_deleted")
    assert sent[3:] == [(1, {"kind": "task_deleted"})]
    assert server._user_notices == {}


async def next_of(client, frame_type: str) -> dict:
    return (await frames_until(client, lambda f: f.get("type") == frame_type))[-1]


@pytest_twisted.ensureDeferred
async def test_a_room_deleted_under_a_create_is_a_404_and_stores_nothing(
    fresh_migrated_database_url,
):
    url = fresh_migrated_database_url
    add_room(url, 7, "gone")
    sql(url, "INSERT INTO memberships (room_id, user_id, role) VALUES (7, %s, 'owner')", (ADA,))
    sql(url, "UPDATE rooms SET deleted_at = now() WHERE id = 7")
    connection = await connect_one(reactor, url)
    try:
        with pytest.raises(ApiError) as refused:
            await run_in_transaction(
                connection,
                create_task_txn,
                1,
                7,
                ADA,
                TaskChanges(title="t"),
                2,
                None,
                lambda actor: None,
            )
    finally:
        connection.close()
    assert refused.value.error_code == "not_found"
    assert sql(url, "SELECT count(*) FROM tasks") == [(0,)]
