"""
Privilege escalation between a room's owner, moderators, members, a banned user, an
outsider and a server admin: every moderation action by every one of them on every
other (and on themselves), over HTTP and as a slash command, against the wired server.

The expected answers come from an oracle written from the contract's Roles section and
docs/protocol.md's "Permissions beyond the contract's wording", not from
termrooms/domain/roles.py, so the test checks the rule as documented and as wired.
"""

from __future__ import annotations

from typing import Any

import attrs
import psycopg2
import pytest_twisted
from test_moderation import api
from twisted.internet.threads import deferToThread

from support import config_for, login, record_outcome, start, websocket_handshake_status
from test_rooms import close, connect, make_room, user_session

ROOM = "arena"
# The cast of the room, and who plays each part in the matrix.
ROLES = {
    "olive": "owner",
    "mona": "moderator",
    "mike": "moderator",
    "mel": "member",
    "max": "member",
}
BANNED = "bart"
OUTSIDER = "otto"
ADMIN = "root"
ACTORS = {
    "owner": "olive",
    "moderator": "mona",
    "member": "mel",
    "banned": BANNED,
    "outsider": OUTSIDER,
    "admin": ADMIN,
}
TARGETS = ("olive", "mike", "max", ADMIN, OUTSIDER)  # and each actor on themselves
ACTIONS = ("kick", "ban", "unban", "mute", "unmute", "op", "deop")
RANK = {None: 0, "member": 1, "moderator": 2, "owner": 3}


@pytest_twisted.async_yield_fixture
async def running(fresh_migrated_database_url, tmp_path):
    server = await start(config_for(fresh_migrated_database_url, tmp_path, no_rate_limits=True))
    yield server
    await server.stop()


@attrs.define
class Standing:
    """The room as the oracle sees it: roles, bans and mutes by username."""

    roles: dict[str, str | None]
    banned: set[str]
    muted: set[str]


def expected(actor: str, action: str, target: str, room: Standing) -> tuple[int, str | None]:
    """The documented answer: (status, error_code or None)."""
    if actor in room.banned:
        return 403, "banned"  # a banned user may do nothing in the room, an admin neither
    role = "owner" if actor == ADMIN else room.roles.get(actor)  # an admin acts as owner
    if role is None:
        return 403, "forbidden"
    if role == "member" or (action in ("op", "deop") and role != "owner"):
        return 403, "forbidden"
    if target == actor:
        return 403, "forbidden"  # nobody acts on themselves
    target_role = room.roles.get(target)
    target_rank = RANK["owner"] if target == ADMIN else RANK[target_role]
    if actor != ADMIN and RANK[role] <= target_rank:
        return 403, "forbidden"  # a higher rank than the target's is needed
    if action == "kick" and target_role is None:
        return 404, "not_found"
    if action == "unban" and target not in room.banned:
        return 422, "validation_error"
    if action == "unmute" and target not in room.muted:
        return 422, "validation_error"
    if action == "op" and target_role != "member":
        return 422, "validation_error"
    if action == "deop" and target_role != "moderator":
        return 422, "validation_error"
    return 200, None


@attrs.define
class Room:
    """Puts the room back into its cast's state between attempts, straight in SQL."""

    database_url: str
    room_id: int
    ids: dict[str, int]
    _connection: Any = None

    def _cursor(self) -> Any:
        if self._connection is None:
            self._connection = psycopg2.connect(self.database_url)
            self._connection.autocommit = False
        return self._connection.cursor()

    def reset(self, precondition: str | None, target: str) -> Standing:
        """The cast's state, then the target banned (for unban) or muted (for unmute)."""
        room = Standing(dict(ROLES), {BANNED}, set())
        with self._cursor() as cursor:
            cursor.execute("DELETE FROM room_bans WHERE room_id = %s", (self.room_id,))
            cursor.execute("DELETE FROM room_mutes WHERE room_id = %s", (self.room_id,))
            for table in ("memberships", "room_invitations"):
                cursor.execute(
                    f"DELETE FROM {table} WHERE room_id = %s AND NOT user_id = ANY(%s)",
                    (self.room_id, [self.ids[name] for name in ROLES]),
                )
            for name, role in ROLES.items():
                cursor.execute(
                    "INSERT INTO memberships (room_id, user_id, role) VALUES (%s, %s, %s)"
                    " ON CONFLICT (room_id, user_id) DO UPDATE SET role = excluded.role",
                    (self.room_id, self.ids[name], role),
                )
            self._ban(cursor, BANNED)
            if precondition == "banned":
                self._ban(cursor, target)
                room.roles.pop(target, None)
                room.banned.add(target)
            elif precondition == "muted":
                cursor.execute(
                    "INSERT INTO room_mutes (room_id, user_id, muted_by) VALUES (%s, %s, %s)",
                    (self.room_id, self.ids[target], self.ids["olive"]),
                )
                room.muted.add(target)
        self._connection.commit()
        return room

    def seat(self, name: str) -> None:
        """Make ``name`` a plain member and lift their ban (to let them post)."""
        with self._cursor() as cursor:
            cursor.execute(
                "DELETE FROM room_bans WHERE room_id = %s AND user_id = %s",
                (self.room_id, self.ids[name]),
            )
            cursor.execute(
                "INSERT INTO memberships (room_id, user_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                (self.room_id, self.ids[name]),
            )
        self._connection.commit()

    def _ban(self, cursor: Any, name: str) -> None:
        """As a ban does: the membership ends."""
        cursor.execute(
            "DELETE FROM memberships WHERE room_id = %s AND user_id = %s",
            (self.room_id, self.ids[name]),
        )
        cursor.execute(
            "INSERT INTO room_bans (room_id, user_id, banned_by) VALUES (%s, %s, %s)"
            " ON CONFLICT DO NOTHING",
            (self.room_id, self.ids[name], self.ids["olive"]),
        )

    def fingerprint(self) -> tuple:
        with self._cursor() as cursor:
            cursor.execute(
                "SELECT (SELECT json_agg(json_build_array(user_id, role) ORDER BY user_id)"
                "          FROM memberships WHERE room_id = %(room)s),"
                "       (SELECT json_agg(user_id ORDER BY user_id) FROM room_bans"
                "         WHERE room_id = %(room)s),"
                "       (SELECT json_agg(user_id ORDER BY user_id) FROM room_mutes"
                "         WHERE room_id = %(room)s),"
                "       (SELECT json_agg(user_id ORDER BY user_id) FROM room_invitations"
                "         WHERE room_id = %(room)s),"
                "       (SELECT count(*) FROM room_events WHERE room_id = %(room)s),"
                "       (SELECT topic FROM rooms WHERE id = %(room)s),"
                "       (SELECT deleted_at FROM rooms WHERE id = %(room)s)",
                {"room": self.room_id},
            )
            found = cursor.fetchone()
        self._connection.commit()
        return found

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()


async def cast(running) -> tuple[dict[str, dict], Room]:
    """Everyone's session, and the room in its cast's state."""
    sessions = {ADMIN: await user_session(running, ADMIN, role="admin")}
    for name in (*ROLES, BANNED, OUTSIDER):
        sessions[name] = await user_session(running, name)
    room = await make_room(running, sessions["olive"], name=ROOM)
    ids = {name: int(session["user"]["id"]) for name, session in sessions.items()}
    return sessions, Room(running.server.config.database_url, int(room["id"]), ids)


async def command(socket: Any, line: str, ref: int, room: str = ROOM) -> dict:
    socket.send({"type": "command", "room": room, "line": line, "ref": ref})
    reply = await socket.next_frame()
    assert (reply["type"], reply["ref"]) == ("reply", ref), reply
    return reply


@pytest_twisted.ensureDeferred
async def test_every_moderation_action_by_every_role_on_every_target(running):
    sessions, room = await cast(running)
    sockets = {name: await connect(running, sessions[name]) for name in ACTORS.values()}
    tried = allowed = 0
    transports = ("http", "command")
    try:
        for part, actor in ACTORS.items():
            for action in ACTIONS:
                precondition = {"unban": "banned", "unmute": "muted"}.get(action)
                # Names match in any case: "/op MONA" is mona acting on herself.
                for target in (*TARGETS, actor, actor.upper()):
                    answers = {}
                    for transport in transports:
                        state = await deferToThread(room.reset, precondition, target.lower())
                        want = expected(actor, action, target.lower(), state)
                        before = await deferToThread(room.fingerprint)
                        if transport == "http":
                            status, body = await api(
                                running,
                                sessions[actor],
                                "POST",
                                f"/api/rooms/{ROOM}/moderation",
                                {"action": action, "username": target},
                            )
                            got = (status, None if status == 200 else body["error_code"])
                            cell = (part, actor, action, target, transport, body)
                            assert got == want, cell
                            if status == 200:
                                assert (body["user"], body["target"]) == (actor, target.lower())
                            answers[transport] = (
                                status == 200,
                                None if status == 200 else body["detail"],
                            )
                        else:
                            reply = await command(sockets[actor], f"/{action} {target}", tried)
                            answers[transport] = (
                                reply["ok"],
                                None if reply["ok"] else reply["text"],
                            )
                            assert reply["ok"] is (want[0] == 200), (part, action, target, reply)
                        after = await deferToThread(room.fingerprint)
                        if want[0] == 200:
                            assert after != before, (part, action, target, transport)
                            allowed += 1
                        else:
                            assert after == before, (part, action, target, transport, "changed")
                        tried += 1
                    # The command is the route: the same refusal, word for word.
                    assert answers["http"] == answers["command"], (part, action, target, answers)
    finally:
        await deferToThread(room.close)
        await close(*sockets.values())
    record_outcome(
        "attacks/test_privileges::test_every_moderation_action_by_every_role_on_every_target",
        what="kick, ban, unban, mute, unmute, op and deop by owner, moderator, member, "
        "banned user, outsider and server admin on owner, moderator, member, admin, "
        "outsider and themselves, by HTTP and by slash command",
        load=f"{tried} attempts from a fresh room state each",
        faults="every escalation the matrix holds: members moderating, moderators opping "
        "or acting on the owner, self-actions, banned users acting, outsiders acting",
        outcome=f"{tried} answers as the documented rules say ({allowed} allowed, "
        f"{tried - allowed} refused with nothing stored); HTTP and command agreed on each",
    )


# Who may not, and how they are refused; everyone else may.
TOPIC_OR_DELETE_OTHERS = {
    "banned": (403, "banned"),
    "outsider": (403, "forbidden"),
    "member": (403, "forbidden"),
}
INVITE_INTO_PRIVATE = {  # the private room does not exist for the banned and outsiders
    "banned": (404, "not_found"),
    "outsider": (404, "not_found"),
    "member": (403, "forbidden"),
}
DELETE_ROOM = {
    "banned": (403, "banned"),
    "outsider": (403, "forbidden"),
    "member": (403, "forbidden"),
    "moderator": (403, "forbidden"),
}


@pytest_twisted.ensureDeferred
async def test_topic_message_deletion_invitation_and_room_deletion_by_every_role(running):
    sessions, arena = await cast(running)
    # A private room with the same cast to invite into; bart banned from it too.
    den_room = await make_room(running, sessions["olive"], name="den", visibility="private")
    den = Room(arena.database_url, int(den_room["id"]), arena.ids)
    await deferToThread(den.reset, None, "olive")
    await user_session(running, "newbie")
    # bart's own message, from before his ban.
    await deferToThread(arena.seat, BANNED)
    status, barts = await api(
        running, sessions[BANNED], "POST", f"/api/rooms/{ROOM}/messages", {"body": "mine"}
    )
    assert status == 201
    sockets = {name: await connect(running, sessions[name]) for name in ACTORS.values()}
    tried = 0

    async def attempt(
        part: str,
        actor: str,
        room: Room,
        http: tuple[str, str, Any] | None,
        line: str | None,
        room_name: str,
        refusal: tuple[int, str] | None,
        allowed_status: int,
    ) -> tuple[Any, ...]:
        """One attempt over one transport from the cast's state; what it answered."""
        nonlocal tried
        await deferToThread(room.reset, None, actor)
        before = await deferToThread(room.fingerprint)
        if http is not None:
            method, path, body = http
            status, answer = await api(running, sessions[actor], method, path, body)
            code = answer["error_code"] if answer and status >= 400 else None
            want = (allowed_status, None) if refusal is None else refusal
            assert (status, code) == want, (part, actor, method, path, answer)
            shown = (refusal is None, answer["detail"] if code else None)
        else:
            reply = await command(sockets[actor], line, tried, room=room_name)
            assert reply["ok"] is (refusal is None), (part, actor, line, reply)
            shown = (reply["ok"], None if reply["ok"] else reply["text"])
        after = await deferToThread(room.fingerprint)
        assert (after == before) is (refusal is not None), (part, actor, http or line)
        tried += 1
        return shown

    async def message_by(author: str) -> str:
        await deferToThread(arena.reset, None, author)
        status, message = await api(
            running, sessions[author], "POST", f"/api/rooms/{ROOM}/messages", {"body": "x"}
        )
        assert status == 201, message
        return message["id"]

    try:
        for part, actor in ACTORS.items():
            refusal = TOPIC_OR_DELETE_OTHERS.get(part)
            topic = (f"/api/rooms/{ROOM}", {"topic": f"by {actor}"})
            shown = [
                await attempt(part, actor, arena, ("PATCH", *topic), None, ROOM, refusal, 200),
                await attempt(part, actor, arena, None, f"/topic by {actor}", ROOM, refusal, 200),
            ]
            for own in (False, True):
                if own and part in ("outsider", "admin"):
                    continue  # never a member here: no message of their own
                own_refusal = ((403, "banned") if part == "banned" else None) if own else refusal
                for transport in ("http", "command"):
                    if own and part == "banned":
                        message_id = barts["id"]
                    else:
                        message_id = await message_by(actor if own else "max")
                    path = f"/api/rooms/{ROOM}/messages/{message_id}"
                    shown.append(
                        await attempt(
                            part,
                            actor,
                            arena,
                            ("DELETE", path, None) if transport == "http" else None,
                            f"/delete {message_id}",
                            ROOM,
                            own_refusal,
                            204,
                        )
                    )
            refusal = INVITE_INTO_PRIVATE.get(part)
            for transport in ("http", "command"):
                http = ("POST", "/api/rooms/den/members", {"username": "newbie"})
                shown.append(
                    await attempt(
                        part,
                        actor,
                        den,
                        http if transport == "http" else None,
                        "/invite newbie",
                        "den",
                        refusal,
                        204,
                    )
                )
            # Each refusal reads the same over HTTP and as a command.
            for http_answer, command_answer in zip(shown[::2], shown[1::2], strict=True):
                assert http_answer == command_answer or http_answer[0], (part, shown)

        # Deleting the room: the owner's and an admin's alone.
        for part in ("banned", "outsider", "member", "moderator"):
            await attempt(
                part,
                ACTORS[part],
                arena,
                ("DELETE", f"/api/rooms/{ROOM}", None),
                None,
                ROOM,
                DELETE_ROOM[part],
                204,
            )
        status, _ = await api(running, sessions[ADMIN], "DELETE", "/api/rooms/den")
        assert status == 204
        status, _ = await api(running, sessions["olive"], "DELETE", f"/api/rooms/{ROOM}")
        assert status == 204
        for name in (ROOM, "den"):
            status, error = await api(running, sessions["olive"], "GET", f"/api/rooms/{name}")
            assert (status, error["error_code"]) == (404, "not_found")
        tried += 2
    finally:
        await deferToThread(arena.close)
        await deferToThread(den.close)
        await close(*sockets.values())
    record_outcome(
        "attacks/test_privileges::test_topic_message_deletion_invitation_and_room_deletion_by_every_role",
        what="topic, deleting others' and own messages, inviting into a private room and "
        "deleting the room, by owner, moderator, member, banned user, outsider and admin",
        load=f"{tried} attempts, HTTP and slash command",
        faults="members and outsiders moderating, banned users acting (own messages "
        "included), moderators deleting the room",
        outcome=f"{tried} answers as documented; refusals stored nothing and read the same "
        "over HTTP and as commands; only the owner and an admin deleted rooms",
    )


@pytest_twisted.ensureDeferred
async def test_moderators_reach_no_other_rooms_messages_and_no_events_but_messages(running):
    """Event ids are global: a moderator's room in the path must not carry their rights
    to another room's messages, nor to joins, topics or other non-message events."""
    sessions, arena = await cast(running)
    await deferToThread(arena.reset, None, "olive")
    await make_room(running, sessions[OUTSIDER], name="elsewhere")
    status, foreign = await api(
        running, sessions[OUTSIDER], "POST", "/api/rooms/elsewhere/messages", {"body": "mine"}
    )
    assert status == 201
    status, page = await api(running, sessions["olive"], "GET", f"/api/rooms/{ROOM}/messages")
    not_messages = [event["id"] for event in page["events"] if event["type"] != "message"]
    assert not_messages
    moderator = await connect(running, sessions["mona"])
    attempts = 0
    try:
        for event_id in (foreign["id"], *not_messages, "0", "9" * 19, "-1", "1e3"):
            before = await deferToThread(arena.fingerprint)
            path = f"/api/rooms/{ROOM}/messages/{event_id}"
            status, error = await api(running, sessions["mona"], "DELETE", path)
            assert (status, error["error_code"]) == (404, "not_found"), (event_id, error)
            reply = await command(moderator, f"/delete {event_id}", attempts)
            assert reply["ok"] is False, reply
            assert await deferToThread(arena.fingerprint) == before
            attempts += 2
        status, page = await api(
            running, sessions[OUTSIDER], "GET", "/api/rooms/elsewhere/messages"
        )
        assert [e["body"] for e in page["events"] if e["type"] == "message"] == ["mine"]
    finally:
        await deferToThread(arena.close)
        await close(moderator)
    record_outcome(
        "attacks/test_privileges::test_moderators_reach_no_other_rooms_messages_and_no_events_but_messages",
        what="a moderator deleting another room's message, and joins or topics, through "
        "their own room's path and /delete",
        load=f"{attempts} attempts",
        faults="foreign event ids, non-message event ids, 0, 19 nines, -1, 1e3",
        outcome="every one 404 not_found or a refused command; nothing stored or blanked",
    )


@pytest_twisted.ensureDeferred
async def test_an_admin_whose_role_is_revoked_keeps_no_admin_power_on_open_sockets(
    running, termrooms
):
    """`termrooms users make-admin NAME --revoke` while the admin has a socket open: the
    socket must not go on acting as a server admin (as owner of every room)."""
    sessions, arena = await cast(running)
    await deferToThread(arena.reset, None, "olive")
    await user_session(running, "second-admin", role="admin")  # the last admin stays
    await make_room(running, sessions["olive"], name="den", visibility="private")
    socket = await connect(running, sessions[ADMIN])
    before = await deferToThread(arena.fingerprint)
    result = await deferToThread(
        termrooms,
        ["users", "make-admin", ADMIN, "--revoke", "--database-url", arena.database_url],
    )
    assert result.returncode == 0, result.stderr
    # The revocation ends the sessions: the socket is closed before it can act again.
    assert await socket.close_code() == 4001
    status, error = await websocket_handshake_status(
        running.url, f"?token={sessions[ADMIN]['access_token']}"
    )
    assert (status, error["error_code"]) == (401, "token_invalid")
    status, error = await api(running, sessions[ADMIN], "GET", "/api/admin/audit")
    assert (status, error["error_code"]) == (401, "token_invalid")
    # Logged in again, an ordinary user: the private room does not exist for them.
    status, fresh = await login(running, ADMIN)
    assert status == 200 and fresh["user"]["role"] == "user"
    socket = await connect(running, fresh)
    socket.send({"type": "join", "room": "den", "ref": "join"})
    assert (await socket.next_frame())["error_code"] == "not_found"
    reply = await command(socket, "/kick max", 1)
    assert reply["ok"] is False
    assert await deferToThread(arena.fingerprint) == before
    await deferToThread(arena.close)
    await close(socket)
    record_outcome(
        "attacks/test_privileges::test_an_admin_whose_role_is_revoked_keeps_no_admin_power_on_open_sockets",
        what="a server admin's role revoked from the command line while their socket is open",
        load="1 socket, then a new login",
        faults="the old socket and token after the revocation; joining a private room "
        "and kicking as the demoted user",
        outcome="the socket closed 4001 at once, the old token refused at the handshake "
        "and over HTTP; logged in again the user was not_found in the private room and "
        "could not kick; the room unchanged",
    )


@pytest_twisted.ensureDeferred
async def test_extra_fields_in_bodies_grant_nothing(running):
    """Mass assignment: fields a route does not take must not change roles, owners,
    visibility or names, whoever sends them."""
    sessions, arena = await cast(running)
    await deferToThread(arena.reset, None, "olive")
    await make_room(running, sessions["olive"], name="den", visibility="private")
    before = await deferToThread(arena.fingerprint)
    grab = {
        "role": "owner",
        "visibility": "private",
        "owner": "mona",
        "created_by": arena.ids["mona"],
        "name": "renamed",
        "id": "1",
        "last_seq": 0,
        "server_admin": True,
    }
    status, room = await api(
        running, sessions["mona"], "PATCH", f"/api/rooms/{ROOM}", {"topic": "t", **grab}
    )
    assert status == 200 and (room["name"], room["visibility"], room["role"]) == (
        ROOM,
        "public",
        "moderator",
    )
    status, event = await api(
        running,
        sessions["olive"],
        "POST",
        f"/api/rooms/{ROOM}/moderation",
        {"action": "op", "username": "mel", **grab, "role": "owner", "new_role": "owner"},
    )
    assert status == 200 and event["role"] == "moderator"
    status, page = await api(
        running,
        sessions["mel"],
        "POST",
        f"/api/rooms/{ROOM}/messages",
        {"body": "hi", "user": "olive", "type": "topic_changed", "seq": 1, **grab},
    )
    assert status == 201 and (page["user"], page["type"]) == ("mel", "message")
    status, _ = await api(
        running, sessions["mel"], "POST", "/api/rooms/den/join", {"invited": True, **grab}
    )
    assert status == 404
    status, _ = await api(
        running,
        sessions["mel"],
        "POST",
        "/api/rooms",
        {"name": "mine", "visibility": "public", "owner": "olive", "role": "admin"},
    )
    assert status == 201
    status, members = await api(running, sessions["mel"], "GET", "/api/rooms/mine/members")
    assert [(m["username"], m["role"]) for m in members] == [("mel", "owner")]
    after = await deferToThread(arena.fingerprint)
    roles = {row[0]: row[1] for row in after[0]}
    assert roles[arena.ids["mona"]] == "moderator" and roles[arena.ids["mel"]] == "moderator"
    assert after[6] is None and before[6] is None  # not deleted
    # Signing up as an admin.
    status, invite = await api(running, sessions[ADMIN], "POST", "/api/invites", {"uses": 1})
    assert status == 201
    status, session, _ = await running.request(
        "POST",
        "/api/auth/register",
        json={
            "username": "upstart",
            "password": "correct horse battery",
            "invite_code": invite["code"],
            **grab,
            "role": "admin",
        },
    )
    assert status == 201 and session["user"]["role"] == "user"
    status, _ = await api(running, session, "GET", "/api/admin/audit")
    assert status == 403
    await deferToThread(arena.close)
    record_outcome(
        "attacks/test_privileges::test_extra_fields_in_bodies_grant_nothing",
        what="unexpected fields (role, owner, visibility, name, ids, seq, user) in PATCH, "
        "moderation, message, join, room creation and registration bodies",
        load="8 requests",
        faults="mass assignment",
        outcome="every extra field ignored: no role, owner, visibility, name, author or "
        "event type changed; op still made a moderator, not an owner; a sign-up asking "
        "for admin got an ordinary account",
    )


@pytest_twisted.ensureDeferred
async def test_who_reads_a_private_room(running):
    """Members read their private room and a server admin, acting as owner everywhere,
    reads it too, by every route; the banned and outsiders find nothing there."""
    sessions, arena = await cast(running)
    room = await make_room(running, sessions["olive"], name="den", visibility="private")
    den = Room(arena.database_url, int(room["id"]), arena.ids)
    await deferToThread(den.reset, None, "olive")
    status, message = await api(
        running, sessions["mel"], "POST", "/api/rooms/den/messages", {"body": "for us"}
    )
    assert status == 201
    readers = {"owner": 200, "moderator": 200, "member": 200, "admin": 200}
    routes = ("/api/rooms/den", "/api/rooms/den/members", "/api/rooms/den/messages")
    tried = 0
    for part, actor in ACTORS.items():
        for path in routes:
            status, body = await api(running, sessions[actor], "GET", path)
            want = readers.get(part, 404)
            assert status == want, (part, path, body)
            if want == 404:
                assert body["error_code"] == "not_found"
            tried += 1
        socket = await connect(running, sessions[actor])
        socket.send({"type": "join", "room": "den", "since": 0, "ref": "j"})
        first = await socket.next_frame()
        if part in readers:
            assert first["type"] == "joined", (part, first)
            replayed = []
            while not any(f.get("id") == message["id"] for f in replayed):
                replayed.append(await socket.next_frame())
        else:
            assert first["error_code"] == "not_found", (part, first)
        await close(socket)
        tried += 1
    await deferToThread(den.close)
    record_outcome(
        "attacks/test_privileges::test_who_reads_a_private_room",
        what="reading a private room (room, members, history, join with since 0) by "
        "owner, moderator, member, banned user, outsider and server admin",
        load=f"{tried} reads",
        faults="the banned and outsiders reading; an admin who is not a member",
        outcome="members and the admin read it by every route; the banned and outsiders "
        "got not_found everywhere",
    )
