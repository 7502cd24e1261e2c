"""The ``termrooms`` operator command: check-config, create-user and invite."""

from __future__ import annotations

import hashlib
import json
from contextlib import closing
from datetime import timedelta

import argon2
import psycopg2
import pytest
import pytest_twisted
import treq
from twisted.internet.threads import deferToThread

from support import run_termrooms, ws_connect

PASSWORD = "correct horse battery"
# Nothing listens here: commands that fail on their arguments must not get this far.
UNREACHABLE_DATABASE = "postgresql://nobody@127.0.0.1:1/nothing"


def query(url: str, statement: str, params: tuple = ()) -> list[tuple]:
    with closing(psycopg2.connect(url)) as connection:
        with connection.cursor() as cursor:
            cursor.execute(statement, params)
            return cursor.fetchall()


def table_exists(url: str, name: str) -> bool:
    return query(url, "SELECT to_regclass(%s) IS NOT NULL", (f"public.{name}",)) == [(True,)]


@pytest.fixture
def url(fresh_migrated_database_url: str) -> str:
    """A migrated database of this test's own (tests here count users and invites)."""
    return fresh_migrated_database_url


def create_user(url: str, name: str, password: str = PASSWORD, *, admin: bool = False):
    args = ["create-user", name, "--password-stdin", "--database-url", url]
    return run_termrooms(args + (["--admin"] if admin else []), input=password + "\n")


# --------------------------------------------------------------------------- check-config


def test_check_config_prints_the_settings_with_the_database_password_hidden():
    result = run_termrooms(["check-config", "--database-url", "postgresql://u:secret@h/db"])

    assert result.returncode == 0, result.stderr
    assert "postgresql://u:***@h/db" in result.stdout
    assert "secret" not in result.stdout + result.stderr
    names = {line.split()[0] for line in result.stdout.splitlines() if line.strip()}
    assert {"database_url", "redis_url", "data_dir", "node_id", "config_file"} <= names


def test_check_config_hides_the_redis_password_too():
    result = run_termrooms(
        [
            "check-config",
            "--database-url",
            "postgresql://u@h/db",
            "--redis-url",
            "redis://:hunter22@cache:6379/0",
        ]
    )

    assert result.returncode == 0, result.stderr
    assert "hunter22" not in result.stdout + result.stderr
    assert "redis://:***@cache:6379/0" in result.stdout


@pytest.mark.parametrize(
    ("database_url", "shown"),
    [
        ("postgresql://u@h/db?password=secret", "postgresql://u@h/db"),
        (
            "postgresql://u:secret@h/db?application_name=a@b",
            "postgresql://u:***@h/db?application_name=a@b",
        ),
    ],
    ids=["password-in-query", "at-sign-in-query"],
)
def test_check_config_hides_a_password_given_anywhere_in_the_url(database_url, shown):
    result = run_termrooms(["check-config", "--database-url", database_url])

    assert result.returncode == 0, result.stderr
    assert "secret" not in result.stdout + result.stderr
    assert shown in result.stdout


# --------------------------------------------------------------------------- create-user


def test_create_user_admin_stores_an_argon2id_hash_role_admin_and_an_audit_row(url):
    result = create_user(url, "alice", admin=True)

    assert result.returncode == 0, result.stderr
    assert "created admin alice" in result.stdout
    [(user_id, username, role, password_hash, row_text)] = query(
        url, "SELECT id, username, role, password_hash, row_to_json(u)::text FROM users u"
    )
    assert (username, role) == ("alice", "admin")
    assert password_hash.startswith("$argon2id$")
    assert argon2.PasswordHasher().verify(password_hash, PASSWORD)
    assert PASSWORD not in row_text
    [(action, target, audit_text)] = query(
        url, "SELECT action, target_user_id, row_to_json(a)::text FROM audit_log a"
    )
    assert (action, target) == ("user.create", user_id)
    assert PASSWORD not in audit_text


def test_create_user_without_admin_makes_an_ordinary_user(url):
    result = create_user(url, "bob")

    assert result.returncode == 0, result.stderr
    assert "created user bob" in result.stdout
    assert query(url, "SELECT username, role FROM users") == [("bob", "user")]


def test_create_user_refuses_a_name_taken_in_another_case(url):
    create_user(url, "alice", admin=True).check_returncode()

    result = create_user(url, "ALICE")

    assert result.returncode == 1
    assert "taken" in result.stderr
    assert query(url, "SELECT username FROM users") == [("alice",)]
    assert query(url, "SELECT count(*) FROM audit_log") == [(1,)]


@pytest.mark.parametrize(
    ("name", "password", "field"),
    [
        ("a!", PASSWORD, "username"),
        ("x" * 33, PASSWORD, "username"),
        ("carol", "short", "password"),
    ],
)
def test_create_user_refuses_an_invalid_field_naming_it(url, name, password, field):
    result = create_user(url, name, password)

    assert result.returncode == 1
    assert field in result.stderr
    assert query(url, "SELECT count(*) FROM users") == [(0,)]


# --------------------------------------------------------------------------- invite


def test_invite_prints_a_code_and_stores_only_its_sha256(url):
    create_user(url, "alice", admin=True).check_returncode()
    [(admin_id,)] = query(url, "SELECT id FROM users")

    result = run_termrooms(["invite", "--uses", "3", "--expires-in", "2d", "--database-url", url])

    assert result.returncode == 0, result.stderr
    code = result.stdout.splitlines()[0].strip()
    assert len(code) >= 16
    [(code_hash, created_by, max_uses, uses_left, expires_in, row_text)] = query(
        url,
        "SELECT code_hash, created_by, max_uses, uses_left, expires_at - now(),"
        " row_to_json(i)::text FROM invites i",
    )
    assert bytes(code_hash) == hashlib.sha256(code.encode()).digest()
    assert code not in row_text
    assert created_by == admin_id
    assert (max_uses, uses_left) == (3, 3)
    assert timedelta(days=2) - timedelta(minutes=5) < expires_in <= timedelta(days=2)
    assert query(url, "SELECT action, actor_id FROM audit_log WHERE action = 'invite.create'") == [
        ("invite.create", admin_id)
    ]


def test_invite_by_records_the_named_admin_as_the_inviter(url):
    create_user(url, "alice", admin=True).check_returncode()
    create_user(url, "dave", admin=True).check_returncode()
    [(dave_id,)] = query(url, "SELECT id FROM users WHERE username = 'dave'")

    result = run_termrooms(["invite", "--by", "DAVE", "--database-url", url])

    assert result.returncode == 0, result.stderr
    assert query(url, "SELECT created_by, max_uses, uses_left FROM invites") == [(dave_id, 1, 1)]


def test_invite_by_an_unknown_user_fails_and_stores_nothing(url):
    result = run_termrooms(["invite", "--by", "nobody", "--database-url", url])

    assert result.returncode == 1
    assert "no active admin named 'nobody'" in result.stderr
    assert query(url, "SELECT count(*) FROM invites") == [(0,)]


def test_invite_by_a_user_who_is_not_an_admin_is_refused(url):
    create_user(url, "carol").check_returncode()

    result = run_termrooms(["invite", "--by", "carol", "--database-url", url])

    assert result.returncode == 1
    assert "no active admin named 'carol'" in result.stderr
    assert query(url, "SELECT count(*) FROM invites") == [(0,)]


def test_invite_without_an_admin_says_to_create_one(url):
    create_user(url, "bob").check_returncode()  # an ordinary user is not enough

    result = run_termrooms(["invite", "--database-url", url])

    assert result.returncode == 1
    assert "create-user NAME --admin" in result.stderr
    assert query(url, "SELECT count(*) FROM invites") == [(0,)]


@pytest.mark.parametrize("expires_in", ["2x", "0d"])
def test_invite_with_a_bad_expiry_is_a_usage_error(expires_in):
    result = run_termrooms(
        ["invite", "--expires-in", expires_in, "--database-url", UNREACHABLE_DATABASE]
    )

    assert result.returncode == 2
    assert "--expires-in" in result.stderr


def test_invite_with_a_bad_use_count_is_a_usage_error():
    result = run_termrooms(["invite", "--uses", "0", "--database-url", UNREACHABLE_DATABASE])

    assert result.returncode == 2
    assert "--uses" in result.stderr


# --------------------------------------------------------------------------- unmigrated database


@pytest.mark.parametrize(
    ("args", "stdin"),
    [
        (["create-user", "alice", "--admin", "--password-stdin"], PASSWORD + "\n"),
        (["invite"], None),
    ],
    ids=["create-user", "invite"],
)
def test_commands_on_an_unmigrated_database_say_to_run_migrate(database_url, args, stdin):
    result = run_termrooms([*args, "--database-url", database_url], input=stdin)

    assert result.returncode == 1
    assert "run `termrooms migrate`" in result.stderr
    assert not table_exists(database_url, "users")
    assert not table_exists(database_url, "invites")


# --------------------------------------------------------------------------- users and rooms


def write(url: str, statement: str, params: tuple = ()) -> list[tuple]:
    """Run one statement and commit it; its rows."""
    with closing(psycopg2.connect(url)) as connection:
        with connection, connection.cursor() as cursor:
            cursor.execute(statement, params)
            return cursor.fetchall()


def admin_command(url: str, *args: str, stdin: str | None = None):
    return run_termrooms([*args, "--database-url", url], input=stdin)


def user_id_of(url: str, name: str) -> int:
    [(user_id,)] = query(url, "SELECT id FROM users WHERE username = %s", (name,))
    return user_id


def start_session(url: str, name: str) -> str:
    """A login session for ``name``, as the daemon's login stores one; its family id."""
    [(family_id,)] = write(
        url,
        "INSERT INTO refresh_token_families (user_id) VALUES (%s) RETURNING id::text",
        (user_id_of(url, name),),
    )
    return family_id


def revoked_reason(url: str, family_id: str) -> str | None:
    [(reason,)] = query(
        url, "SELECT revoked_reason FROM refresh_token_families WHERE id = %s", (family_id,)
    )
    return reason


def audit_actions(url: str) -> list[tuple]:
    return query(url, "SELECT action, target_user_id, room_id, data FROM audit_log ORDER BY id")


def add_room(url: str, name: str, creator: str, events: int = 0) -> int:
    """A public room with ``events`` messages by its creator, rows as the daemon writes them."""
    creator_id = user_id_of(url, creator)
    room_id = 10_000 + len(query(url, "SELECT id FROM rooms"))
    write(
        url,
        "INSERT INTO rooms (id, name, visibility, created_by, last_seq)"
        " VALUES (%s, %s, 'public', %s, %s) RETURNING id",
        (room_id, name, creator_id, events),
    )
    write(
        url,
        "INSERT INTO memberships (room_id, user_id, role) VALUES (%s, %s, 'owner')"
        " RETURNING room_id",
        (room_id, creator_id),
    )
    for seq in range(1, events + 1):
        write(
            url,
            "INSERT INTO room_events (id, room_id, seq, type, user_id, body)"
            " VALUES (%s, %s, %s, 'message', %s, %s) RETURNING id",
            (room_id * 1000 + seq, room_id, seq, creator_id, f"message {seq}"),
        )
    return room_id


def table_rows(stdout: str) -> dict[str, list[str]]:
    """A printed table, by the first column; cells are split on runs of two spaces."""
    lines = stdout.strip().splitlines()
    return {line.split()[0]: [c for c in line.split("  ") if c.strip()] for line in lines[1:]}


def test_users_list_shows_role_state_creation_and_last_login_with_an_audit_row(url):
    for name, admin in (("alice", True), ("bob", False), ("carol", False), ("dave", False)):
        create_user(url, name, admin=admin).check_returncode()
    admin_command(url, "users", "disable", "carol").check_returncode()
    start_session(url, "bob")
    write(url, "UPDATE users SET deleted_at = now() WHERE username = 'dave' RETURNING id")

    result = admin_command(url, "users", "list")

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].split() == [
        "NAME", "ROLE", "STATE", "CREATED", "(UTC)", "LAST", "LOGIN", "(UTC)"
    ]  # fmt: skip
    rows = table_rows(result.stdout)
    assert list(rows) == ["alice", "bob", "carol"]  # oldest first; deleted ones left out
    assert [cell.strip() for cell in rows["alice"][:3]] == ["alice", "admin", "active"]
    assert [cell.strip() for cell in rows["carol"][:3]] == ["carol", "user", "disabled"]
    assert rows["alice"][-1].strip() == "-"  # never logged in
    assert rows["bob"][-1].strip().startswith("20")  # a date: bob has a session
    assert audit_actions(url)[-1] == (
        "user.list", None, None, {"count": 3, "include_deleted": False}
    )  # fmt: skip


def test_users_list_all_as_json_includes_deleted_accounts(url):
    create_user(url, "alice", admin=True).check_returncode()
    create_user(url, "dave").check_returncode()
    write(url, "UPDATE users SET deleted_at = now() WHERE username = 'dave' RETURNING id")

    result = admin_command(url, "users", "list", "--all", "--json")

    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assert [(u["username"], u["role"], u["state"]) for u in listed] == [
        ("alice", "admin", "active"),
        ("dave", "user", "deleted"),
    ]
    assert listed[0]["id"] == str(user_id_of(url, "alice"))
    assert listed[1]["deleted_at"].endswith("Z") and listed[0]["last_login_at"] is None
    assert audit_actions(url)[-1][3] == {"count": 2, "include_deleted": True}


@pytest.mark.parametrize(
    ("disable", "enable"),
    [(["users", "disable"], ["users", "enable"]), (["disable-user"], ["enable-user"])],
    ids=["users-disable", "disable-user"],
)
def test_both_spellings_of_disable_end_the_sessions_and_enable_undoes_it(url, disable, enable):
    create_user(url, "bob").check_returncode()
    bob = user_id_of(url, "bob")
    session = start_session(url, "bob")

    disabled = admin_command(url, *disable, "BOB")

    assert disabled.returncode == 0, disabled.stderr
    assert disabled.stdout.strip() == f"disabled BOB (id {bob})"
    assert query(url, "SELECT disabled_at IS NOT NULL FROM users") == [(True,)]
    assert revoked_reason(url, session) == "disabled"
    enabled = admin_command(url, *enable, "bob")
    assert enabled.returncode == 0, enabled.stderr
    assert query(url, "SELECT disabled_at FROM users") == [(None,)]
    assert [a[:2] for a in audit_actions(url)] == [
        ("user.create", bob),
        ("user.disable", bob),
        ("user.enable", bob),
    ]


def test_set_password_hashes_stdin_with_the_configured_argon2_parameters_and_ends_sessions(url):
    create_user(url, "bob").check_returncode()
    session = start_session(url, "bob")
    new_password = "a brand new passphrase"

    result = run_termrooms(
        ["users", "set-password", "bob", "--password-stdin", "--database-url", url],
        input=new_password + "\n",
        env={"TERMROOMS_ARGON2_MEMORY_KIB": "8192", "TERMROOMS_ARGON2_TIME_COST": "1"},
    )

    assert result.returncode == 0, result.stderr
    [(password_hash,)] = query(url, "SELECT password_hash FROM users")
    assert password_hash.startswith("$argon2id$v=19$m=8192,t=1,p=1$")
    assert argon2.PasswordHasher().verify(password_hash, new_password)
    assert revoked_reason(url, session) == "password_changed"
    action, target, _, data = audit_actions(url)[-1]
    assert (action, target, data) == ("user.password_set", user_id_of(url, "bob"), {})
    assert new_password not in str(audit_actions(url))


def test_set_password_refuses_a_short_password_and_changes_nothing(url):
    create_user(url, "bob").check_returncode()
    session = start_session(url, "bob")

    result = admin_command(url, "users", "set-password", "bob", "--password-stdin", stdin="short\n")

    assert result.returncode == 1
    assert "password must be" in result.stderr
    assert argon2.PasswordHasher().verify(
        query(url, "SELECT password_hash FROM users")[0][0], PASSWORD
    )
    assert revoked_reason(url, session) is None


def test_set_password_takes_no_password_on_the_command_line(url):
    create_user(url, "bob").check_returncode()

    result = admin_command(url, "users", "set-password", "bob", "hunter2hunter2")

    assert result.returncode == 2
    assert query(url, "SELECT count(*) FROM audit_log") == [(1,)]


def test_set_password_without_a_terminal_or_stdin_flag_says_how(url):
    create_user(url, "bob").check_returncode()

    result = admin_command(url, "users", "set-password", "bob", stdin="")

    assert result.returncode == 1
    assert "--password-stdin" in result.stderr


def test_make_admin_grants_and_revoke_takes_back_the_admin_role(url):
    create_user(url, "root", admin=True).check_returncode()
    create_user(url, "bob").check_returncode()
    bob = user_id_of(url, "bob")

    granted = admin_command(url, "users", "make-admin", "bob")
    assert granted.returncode == 0, granted.stderr
    assert query(url, "SELECT role FROM users WHERE username = 'bob'") == [("admin",)]
    revoked = admin_command(url, "users", "make-admin", "bob", "--revoke")
    assert revoked.returncode == 0, revoked.stderr
    assert query(url, "SELECT role FROM users WHERE username = 'bob'") == [("user",)]
    assert [a for a in audit_actions(url) if a[0] == "user.role"] == [
        ("user.role", bob, None, {"role": "admin", "previous": "user"}),
        ("user.role", bob, None, {"role": "user", "previous": "admin"}),
    ]


def test_the_last_active_admin_keeps_the_role(url):
    create_user(url, "root", admin=True).check_returncode()
    create_user(url, "spare", admin=True).check_returncode()
    assert admin_command(url, "users", "disable", "spare").returncode == 0  # not active
    audit_before = audit_actions(url)

    refused = admin_command(url, "users", "make-admin", "root", "--revoke")

    assert refused.returncode == 1
    assert "last active admin" in refused.stderr
    assert query(url, "SELECT role FROM users WHERE username = 'root'") == [("admin",)]
    assert audit_actions(url) == audit_before


@pytest.mark.parametrize(
    ("args", "stdin"),
    [
        (["users", "disable", "nobody"], None),
        (["users", "enable", "nobody"], None),
        (["users", "set-password", "nobody", "--password-stdin"], PASSWORD + "\n"),
        (["users", "make-admin", "nobody"], None),
        (["rooms", "delete", "nowhere"], None),
    ],
    ids=["disable", "enable", "set-password", "make-admin", "rooms-delete"],
)
def test_commands_on_an_unknown_name_fail_and_write_nothing(url, args, stdin):
    result = admin_command(url, *args, stdin=stdin)

    assert result.returncode == 1
    assert "no user named 'nobody'" in result.stderr or "no room named 'nowhere'" in result.stderr
    assert query(url, "SELECT count(*) FROM audit_log") == [(0,)]


@pytest.mark.parametrize("group", ["users", "rooms"])
def test_a_command_group_without_its_subcommand_is_a_usage_error(group):
    result = run_termrooms([group])

    assert result.returncode == 2
    assert "a subcommand is required" in result.stderr


def test_rooms_list_shows_members_events_and_creator_and_writes_an_audit_row(url):
    create_user(url, "alice", admin=True).check_returncode()
    add_room(url, "lobby", "alice", events=3)
    add_room(url, "attic", "alice")

    result = admin_command(url, "rooms", "list")

    assert result.returncode == 0, result.stderr
    rows = table_rows(result.stdout)
    assert list(rows) == ["attic", "lobby"]
    assert [c.strip() for c in rows["lobby"][:6]] == ["lobby", "public", "live", "1", "3", "alice"]
    assert rows["attic"][-1].strip() == "-"  # no event yet
    assert audit_actions(url)[-1] == (
        "room.list", None, None, {"count": 2, "include_deleted": False}
    )  # fmt: skip


def test_rooms_delete_soft_deletes_like_the_api_and_lists_it_only_with_all(url):
    create_user(url, "alice", admin=True).check_returncode()
    room_id = add_room(url, "lobby", "alice", events=2)

    result = admin_command(url, "rooms", "delete", "LOBBY")

    assert result.returncode == 0, result.stderr
    assert query(url, "SELECT deleted_at IS NOT NULL, last_seq FROM rooms") == [(True, 2)]
    assert query(url, "SELECT count(*) FROM room_events") == [(2,)]  # the history stays
    assert audit_actions(url)[-1] == ("room.delete", None, room_id, {})
    listed = admin_command(url, "rooms", "list", "--json")
    assert json.loads(listed.stdout) == []
    everything = json.loads(admin_command(url, "rooms", "list", "--all", "--json").stdout)
    assert [(r["name"], r["state"], r["last_seq"]) for r in everything] == [("lobby", "deleted", 2)]


# --------------------------------------------------------------------------- with a daemon


async def in_thread(*args: str, stdin: str | None = None):
    """A termrooms command, run off the reactor so the test's sockets keep being served."""
    result = await deferToThread(run_termrooms, list(args), input=stdin)
    assert result.returncode == 0, f"termrooms {args}: {result.stderr}"
    return result


async def api(daemon, method: str, path: str, token: str | None = None, body=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await treq.request(method, daemon.base_url + path, json=body, headers=headers)
    content = await response.content()
    return response.code, json.loads(content) if content else None


@pytest.mark.slow
@pytest_twisted.ensureDeferred
async def test_admin_commands_against_two_running_daemons_close_sockets_on_both_and_are_audited(
    daemons, fresh_migrated_database_url
):
    url = fresh_migrated_database_url
    daemon = daemons(["--database-url", url, "--argon2-memory-kib", "8192"])
    # A second instance of the deployment: same database, same key file (the data
    # directory both start in), another node id.
    other = daemons(["--database-url", url, "--node-id", "1"])
    for name in ("alice", "bob"):
        await in_thread("create-user", name, "--password-stdin", "--database-url", url,
                        stdin=PASSWORD + "\n")  # fmt: skip
    await in_thread("users", "make-admin", "alice", "--database-url", url)
    sessions = {}
    for name in ("alice", "bob"):
        status, sessions[name] = await api(
            daemon, "POST", "/api/auth/login", body={"username": name, "password": PASSWORD}
        )
        assert status == 200, sessions[name]
    alice, bob = sessions["alice"]["access_token"], sessions["bob"]["access_token"]
    assert (
        await api(daemon, "POST", "/api/rooms", alice, {"name": "lobby", "visibility": "public"})
    )[0] == 201
    ws_url = daemon.base_url.replace("http://", "ws://") + "/ws?token="
    bob_socket = await ws_connect(ws_url + bob)
    assert (await bob_socket.next_frame())["type"] == "welcome"
    other_url = other.base_url.replace("http://", "ws://") + "/ws?token="
    bob_elsewhere = await ws_connect(other_url + bob)
    assert (await bob_elsewhere.next_frame())["server_id"] == "1"
    alice_socket = await ws_connect(ws_url + alice)
    await alice_socket.next_frame()

    await in_thread("users", "disable", "bob", "--database-url", url)

    assert await bob_socket.close_code() == 4001
    assert await bob_elsewhere.close_code() == 4001
    assert (await api(daemon, "GET", "/api/auth/me", bob))[0] == 401
    await in_thread("users", "enable", "bob", "--database-url", url)
    await in_thread("users", "set-password", "bob", "--password-stdin", "--database-url", url,
                    stdin="a brand new passphrase\n")  # fmt: skip
    for password, status in ((PASSWORD, 401), ("a brand new passphrase", 200)):
        login = {"username": "bob", "password": password}
        assert (await api(daemon, "POST", "/api/auth/login", body=login))[0] == status
    await in_thread("users", "list", "--database-url", url)
    await in_thread("rooms", "list", "--database-url", url)
    await in_thread("rooms", "delete", "lobby", "--database-url", url)
    assert (await api(daemon, "GET", "/api/rooms/lobby", alice))[0] == 404
    alice_socket.send({"type": "ping"})  # alice, an admin untouched by all this, stays on
    assert await alice_socket.next_frame() == {"type": "pong"}

    status, audit = await api(daemon, "GET", "/api/admin/audit?limit=100", alice)
    assert status == 200
    actions = [entry["action"] for entry in reversed(audit["entries"])]
    # (The daemons' own retention passes write retention.run rows as they start.)
    commands = [a for a in actions if not a.startswith(("auth.", "retention."))]
    assert commands == [
        "user.create",
        "user.create",
        "user.role",
        "room.create",
        "user.disable",
        "user.enable",
        "user.password_set",
        "user.list",
        "room.list",
        "room.delete",
    ]
