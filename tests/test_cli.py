"""The ``termrooms`` operator command: check-config, create-user and invite."""

from __future__ import annotations

import hashlib
from contextlib import closing
from datetime import timedelta

import argon2
import psycopg2
import pytest

from support import run_termrooms

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
