"""
Schema migrations: deltas applied in order, each in one transaction, recorded in
schema_migrations, serialised by an advisory lock, and a database newer than the code
refused.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import pytest_twisted
from twisted.internet import reactor

from support import BIN, clean_environ, run_termrooms
from termrooms.storage.database import connect_one
from termrooms.storage.migrations import (
    MIGRATION_LOCK_KEY,
    Delta,
    MigrationError,
    MigrationsPending,
    SchemaTooNew,
    check_sequence,
    load_deltas,
    migrate,
    pending_deltas,
)

REPO_SQL = Path(__file__).resolve().parents[1] / "sql"

DATA_MODEL_TABLES = {
    "users",
    "refresh_token_families",
    "refresh_tokens",
    "invites",
    "rooms",
    "memberships",
    "room_events",
    "room_bans",
    "room_mutes",
    "audit_log",
    "event_outbox",
}

LEDGER_DDL = """
CREATE TABLE schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


def query(url: str, statement: str, params: tuple = ()) -> list[tuple]:
    with closing(psycopg2.connect(url)) as connection:
        with connection.cursor() as cursor:
            cursor.execute(statement, params)
            return cursor.fetchall()


def execute(url: str, statement: str, params: tuple = ()) -> None:
    with closing(psycopg2.connect(url)) as connection:
        with connection, connection.cursor() as cursor:
            cursor.execute(statement, params)


def public_tables(url: str) -> set[str]:
    rows = query(
        url,
        "SELECT table_name FROM information_schema.tables"
        " WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
    )
    return {name for (name,) in rows}


def ledger(url: str) -> list[tuple]:
    return query(url, "SELECT version, name, applied_at FROM schema_migrations ORDER BY version")


def expected_ledger_entries() -> list[tuple[int, str]]:
    return [(d.version, d.name) for d in load_deltas()]


def delta_labels() -> list[str]:
    return [f"{d.version:04d}_{d.name}" for d in load_deltas()]


async def migrate_on_own_connection(url: str, deltas: tuple[Delta, ...], **kwargs: Any) -> Any:
    connection = await connect_one(reactor, url)
    try:
        return await migrate(connection, deltas, **kwargs)
    finally:
        connection.close()


# --------------------------------------------------------------------------- pure logic


def _deltas(*versions: int) -> list[Delta]:
    return [Delta(v, f"delta_{v}", f"SELECT {v}") for v in versions]


def test_check_sequence_returns_deltas_sorted_by_version():
    ordered = check_sequence(_deltas(3, 1, 2))
    assert [d.version for d in ordered] == [1, 2, 3]


def test_check_sequence_accepts_no_deltas():
    assert check_sequence([]) == ()


def test_check_sequence_refuses_a_gap_naming_the_missing_version():
    with pytest.raises(MigrationError, match="expected 0002, found 0003_delta_3"):
        check_sequence(_deltas(1, 3))


def test_check_sequence_refuses_a_duplicate_version():
    deltas = _deltas(1, 2) + [Delta(2, "other_second", "SELECT 2")]
    with pytest.raises(MigrationError, match="without gaps"):
        check_sequence(deltas)


def test_check_sequence_refuses_numbering_that_does_not_start_at_one():
    with pytest.raises(MigrationError, match="expected 0001, found 0002_delta_2"):
        check_sequence(_deltas(2, 3))


def test_pending_deltas_on_an_empty_database_is_every_delta():
    known = check_sequence(_deltas(1, 2, 3))
    assert pending_deltas(known, []) == known


def test_pending_deltas_are_those_not_yet_applied_in_order():
    known = check_sequence(_deltas(1, 2, 3))
    assert [d.version for d in pending_deltas(known, [1])] == [2, 3]


def test_pending_deltas_is_empty_when_everything_is_applied():
    known = check_sequence(_deltas(1, 2, 3))
    assert pending_deltas(known, [3, 1, 2]) == ()


def test_pending_deltas_refuses_a_database_newer_than_the_code():
    known = check_sequence(_deltas(1, 2))
    with pytest.raises(SchemaTooNew, match=r"version 3, newer than this termrooms knows \(2\)"):
        pending_deltas(known, [1, 2, 3])


def test_schema_too_new_and_migrations_pending_are_migration_errors():
    # The CLI and the daemon catch MigrationError to print one clear line.
    assert issubclass(SchemaTooNew, MigrationError)
    assert issubclass(MigrationsPending, MigrationError)


def test_shipped_deltas_are_the_sql_files_of_the_source_tree():
    shipped = {f"{d.version:04d}_{d.name}.sql": d.sql for d in load_deltas()}
    in_tree = {p.name: p.read_text("utf-8") for p in REPO_SQL.glob("*.sql")}
    assert shipped == in_tree
    assert [d.version for d in load_deltas()] == list(range(1, len(in_tree) + 1))


# --------------------------------------------------------------------------- `termrooms migrate`


def test_migrate_from_an_empty_database_creates_the_data_model_and_records_each_delta(
    database_url,
):
    result = run_termrooms(["migrate", "--database-url", database_url])

    assert result.returncode == 0, result.stderr
    newest = load_deltas()[-1].version
    assert f"schema at version {newest}; applied: {', '.join(delta_labels())}" in result.stdout
    assert DATA_MODEL_TABLES <= public_tables(database_url)
    assert [(v, n) for v, n, _ in ledger(database_url)] == expected_ledger_entries()


def test_second_migrate_changes_nothing(database_url):
    run_termrooms(["migrate", "--database-url", database_url], check=True)
    rows_before = ledger(database_url)
    tables_before = public_tables(database_url)

    result = run_termrooms(["migrate", "--database-url", database_url])

    assert result.returncode == 0, result.stderr
    assert "applied: nothing" in result.stdout
    assert ledger(database_url) == rows_before  # same rows, same applied_at
    assert public_tables(database_url) == tables_before


@pytest.mark.slow
def test_two_migrate_processes_started_together_apply_each_delta_exactly_once(database_url):
    processes = [
        subprocess.Popen(
            [str(BIN / "termrooms"), "migrate", "--database-url", database_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_environ(),
        )
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=60) for process in processes]

    for process, (_stdout, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr
    applied_by_each = [stdout.split("applied: ", 1)[1].strip().split(", ") for stdout, _ in outputs]
    applied = [label for labels in applied_by_each for label in labels if label != "nothing"]
    assert sorted(applied) == delta_labels()  # every delta once, by one process or the other
    assert [(v, n) for v, n, _ in ledger(database_url)] == expected_ledger_entries()


def test_migrate_refuses_a_database_newer_than_the_code(database_url):
    run_termrooms(["migrate", "--database-url", database_url], check=True)
    execute(database_url, "INSERT INTO schema_migrations (version, name) VALUES (9999, 'future')")
    rows_before = ledger(database_url)

    result = run_termrooms(["migrate", "--database-url", database_url])

    assert result.returncode == 1
    assert "newer" in result.stderr
    assert "9999" in result.stderr
    assert ledger(database_url) == rows_before


def test_migrate_without_database_url_uses_the_embedded_postgresql():
    # pgserver runs PostgreSQL as the unprivileged user "pgserver" when we are root: the
    # data directory's parents must be traversable by it.
    base = Path(tempfile.mkdtemp(prefix="termrooms-test-embedded-"))
    try:
        base.chmod(0o755)
        data_dir = base / "data"

        first = run_termrooms(["migrate", "--data-dir", str(data_dir)])
        second = run_termrooms(["migrate", "--data-dir", str(data_dir)])

        assert first.returncode == 0, first.stderr
        assert "schema at version" in first.stdout
        assert f"applied: {', '.join(delta_labels())}" in first.stdout
        assert (data_dir / "postgres" / "PG_VERSION").exists()
        # The schema persisted in the embedded server's data directory.
        assert second.returncode == 0, second.stderr
        assert "applied: nothing" in second.stdout
    finally:
        shutil.rmtree(base, ignore_errors=True)


# --------------------------------------------------------------------------- migrate() in-process


@pytest_twisted.ensureDeferred
async def test_migrate_in_process_applies_every_delta_and_releases_the_lock(database_url):
    result = await migrate_on_own_connection(database_url, load_deltas())

    assert result.applied == load_deltas()
    assert result.version == load_deltas()[-1].version
    assert [(v, n) for v, n, _ in ledger(database_url)] == expected_ledger_entries()
    # Another session can take the migration lock: the run let go of it.
    assert query(database_url, "SELECT pg_try_advisory_lock(%s)", (MIGRATION_LOCK_KEY,)) == [
        (True,)
    ]


@pytest_twisted.ensureDeferred
async def test_migrate_in_process_refuses_a_database_newer_than_the_code(database_url):
    execute(database_url, LEDGER_DDL)
    execute(database_url, "INSERT INTO schema_migrations (version, name) VALUES (9999, 'future')")

    with pytest.raises(SchemaTooNew, match="newer"):
        await migrate_on_own_connection(database_url, load_deltas())

    assert public_tables(database_url) == {"schema_migrations"}  # nothing was applied
    assert [(v, n) for v, n, _ in ledger(database_url)] == [(9999, "future")]


@pytest_twisted.ensureDeferred
async def test_migrate_without_apply_refuses_pending_deltas_and_creates_only_the_ledger(
    database_url,
):
    with pytest.raises(MigrationsPending, match="termrooms migrate"):
        await migrate_on_own_connection(database_url, load_deltas(), apply=False)

    assert public_tables(database_url) == {"schema_migrations"}
    assert ledger(database_url) == []


@pytest_twisted.ensureDeferred
async def test_migrate_without_apply_succeeds_on_an_up_to_date_database(database_url):
    await migrate_on_own_connection(database_url, load_deltas())

    result = await migrate_on_own_connection(database_url, load_deltas(), apply=False)

    assert result.applied == ()
    assert result.version == load_deltas()[-1].version


FIRST = Delta(1, "first", "CREATE TABLE first_table (id integer PRIMARY KEY)")
BROKEN_SECOND = Delta(
    2,
    "second",
    "CREATE TABLE second_table (id integer PRIMARY KEY);\n"
    "INSERT INTO second_table VALUES (1);\n"
    "SELECT * FROM no_such_table;",
)
FIXED_SECOND = Delta(2, "second", "CREATE TABLE second_table (id integer PRIMARY KEY);")


@pytest_twisted.ensureDeferred
async def test_a_failing_delta_rolls_back_entirely_and_earlier_deltas_stay_applied(
    database_url,
):
    with pytest.raises(psycopg2.errors.UndefinedTable):
        await migrate_on_own_connection(database_url, (FIRST, BROKEN_SECOND))

    tables = public_tables(database_url)
    assert "first_table" in tables
    assert "second_table" not in tables
    assert [(v, n) for v, n, _ in ledger(database_url)] == [(1, "first")]


@pytest_twisted.ensureDeferred
async def test_after_a_failed_delta_is_fixed_the_next_run_applies_only_that_delta(database_url):
    with pytest.raises(psycopg2.Error):
        await migrate_on_own_connection(database_url, (FIRST, BROKEN_SECOND))
    first_applied_at = ledger(database_url)[0][2]

    result = await migrate_on_own_connection(database_url, (FIRST, FIXED_SECOND))

    assert result.applied == (FIXED_SECOND,)
    assert "second_table" in public_tables(database_url)
    rows = ledger(database_url)
    assert [(v, n) for v, n, _ in rows] == [(1, "first"), (2, "second")]
    assert rows[0][2] == first_applied_at


@pytest_twisted.ensureDeferred
async def test_a_refused_migration_lets_go_of_the_lock_while_its_session_stays_open(database_url):
    execute(database_url, LEDGER_DDL)
    execute(database_url, "INSERT INTO schema_migrations (version, name) VALUES (9999, 'future')")
    connection = await connect_one(reactor, database_url)
    try:
        with pytest.raises(SchemaTooNew):
            await migrate(connection, load_deltas())
        # Still connected, yet another session can take the lock: it was released.
        assert query(database_url, "SELECT pg_try_advisory_lock(%s)", (MIGRATION_LOCK_KEY,)) == [
            (True,)
        ]
    finally:
        connection.close()
