"""termrooms.operations.pgtools: choosing pg_dump/pg_restore, hiding the password, when a restore may run."""

from __future__ import annotations

import pytest

from support import third_party_imports
from termrooms.operations import pgtools
from termrooms.operations.pgtools import (
    PgTool,
    RestoreRefused,
    TargetDatabase,
    ToolMissing,
    backup_schema_version,
    check_restore,
    pick_tool,
    split_password,
    tool_major,
)


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ("pg_dump (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)\n", 15),
        ("pg_restore (PostgreSQL) 16.2\n", 16),
        ("pg_dump (PostgreSQL) 9.6.24\n", 9),
        ("something else\n", None),
    ],
)
def test_tool_major_reads_the_major_version(output, major):
    assert tool_major(output) == major


def test_pick_tool_takes_the_oldest_tool_at_least_as_new_as_the_server():
    found = [PgTool("/a/pg_dump", 17), PgTool("/b/pg_dump", 15), PgTool("/c/pg_dump", 16)]

    assert pick_tool("pg_dump", found, 15) == PgTool("/b/pg_dump", 15)
    assert pick_tool("pg_dump", found, 16) == PgTool("/c/pg_dump", 16)
    assert pick_tool("pg_dump", found, 12) == PgTool("/b/pg_dump", 15)


def test_pick_tool_without_a_new_enough_one_says_what_it_found_and_what_to_install():
    with pytest.raises(ToolMissing) as raised:
        pick_tool("pg_dump", [PgTool("/usr/bin/pg_dump", 15)], 16)

    message = str(raised.value)
    assert "PostgreSQL 16" in message and "pg_dump 16 or newer" in message
    assert "/usr/bin/pg_dump (15)" in message
    assert "postgresql-client-16" in message and "--pg-bin" in message


@pytest.mark.parametrize(
    ("url", "cleaned", "password"),
    [
        ("postgresql://u:s%40cret@db:5433/tr", "postgresql://u@db:5433/tr", "s@cret"),
        (
            "postgresql://u@db/tr?sslmode=require&password=hush",
            "postgresql://u@db/tr?sslmode=require",
            "hush",
        ),
        ("postgresql://u@db/tr", "postgresql://u@db/tr", None),
        (
            "postgresql://postgres:@/termrooms?host=/var/lib/x",
            "postgresql://postgres@/termrooms?host=/var/lib/x",
            None,
        ),
    ],
    ids=["userinfo", "query", "none", "empty-embedded"],
)
def test_split_password_takes_the_password_out_of_the_url(url, cleaned, password):
    assert split_password(url) == (cleaned, password)


def test_backup_schema_version_reads_the_newest_migration_of_the_archive():
    listing = (
        "SET statement_timeout = 0;\n"
        "COPY public.schema_migrations (version, name, applied_at) FROM stdin;\n"
        "1\tinitial_schema\t2026-01-01 00:00:00+00\n"
        "3\tretention\t2026-02-01 00:00:00+00\n"
        "2\tmore\t2026-01-15 00:00:00+00\n"
        "\\.\n"
    )

    assert backup_schema_version(listing) == 3


def test_backup_schema_version_is_none_for_an_archive_without_the_table():
    assert backup_schema_version("SET statement_timeout = 0;\n") is None


EMPTY = TargetDatabase(tables=0, schema_version=None, other_sessions=0)
TERMROOMS = TargetDatabase(tables=13, schema_version=1, other_sessions=0)


def test_check_restore_lets_an_empty_database_be_restored_into_with_or_without_clean():
    check_restore(EMPTY, backup_version=1, known_version=1, clean=False)
    check_restore(EMPTY, backup_version=1, known_version=1, clean=True)
    check_restore(TargetDatabase(0, None, 3), backup_version=1, known_version=1, clean=False)


def test_check_restore_lets_clean_replace_an_idle_termrooms_database():
    check_restore(TERMROOMS, backup_version=1, known_version=2, clean=True)


@pytest.mark.parametrize(
    ("target", "backup_version", "clean", "says"),
    [
        (TERMROOMS, 1, False, "pass --clean"),
        (TargetDatabase(2, None, 0), 1, True, "not a termrooms database"),
        (TargetDatabase(13, 2, 0), 1, True, "schema version 2, the backup at 1"),
        (TargetDatabase(13, 1, 2), 1, True, "2 other session(s)"),
        (EMPTY, 3, False, "newer than this termrooms knows (2)"),
        (TargetDatabase(0, None, 0, "postgres"), 1, False, "maintenance database"),
    ],
    ids=["not-empty", "foreign", "newer-schema", "in-use", "backup-too-new", "maintenance"],
)
def test_check_restore_refuses_saying_why(target, backup_version, clean, says):
    with pytest.raises(RestoreRefused) as raised:
        check_restore(target, backup_version, known_version=2, clean=clean)

    assert says in str(raised.value)


def test_pgtools_is_pure():
    assert third_party_imports(pgtools) == {"attrs"}
