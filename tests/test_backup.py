"""
``termrooms backup`` and ``termrooms restore`` on real databases, with the machine's
pg_dump and pg_restore: what comes back is row for row what was saved.
"""

from __future__ import annotations

import json
import os
import pty
import shutil
import stat
import subprocess
import tempfile
from contextlib import closing
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest
from psycopg2 import sql

from support import BIN, clean_environ, run_termrooms
from termrooms.storage.migrations import load_deltas

PASSWORD = "correct horse battery"


def execute(url: str, statement: str, params: tuple = ()) -> list[tuple]:
    """One statement, committed; its rows (none for a statement that returns none)."""
    with closing(psycopg2.connect(url)) as connection:
        with connection, connection.cursor() as cursor:
            cursor.execute(statement, params)
            return cursor.fetchall() if cursor.description else []


def populate(url: str, data_dir: Path | None = None) -> None:
    """Users by the real command, then rooms and events as the daemon stores them."""
    where = ["--database-url", url] if data_dir is None else ["--data-dir", str(data_dir)]
    for name in ("alice", "bob"):
        run_termrooms(
            ["create-user", name, "--password-stdin", *where], input=PASSWORD + "\n", check=True
        )
    [(alice,)] = execute(url, "SELECT id FROM users WHERE username = 'alice'")
    for room_id, name, events in ((1, "lobby", 5), (2, "attic", 2)):
        execute(
            url,
            "INSERT INTO rooms (id, name, visibility, created_by, last_seq)"
            " VALUES (%s, %s, 'public', %s, %s)",
            (room_id, name, alice, events),
        )
        for seq in range(1, events + 1):
            execute(
                url,
                "INSERT INTO room_events (id, room_id, seq, type, user_id, body, data)"
                " VALUES (%s, %s, %s, 'message', %s, %s, '{\"k\": 1}')",
                (room_id * 100 + seq, room_id, seq, alice, f"message {seq} in {name}"),
            )
    execute(url, "INSERT INTO audit_log (action) VALUES ('test.marker')")


def snapshot(url: str) -> dict[str, list[str]]:
    """Every row of every table, and every sequence's position, as comparable text."""
    tables = [
        name
        for (name,) in execute(
            url,
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1",
        )
    ]
    rows = {
        table: [
            text
            for (text,) in execute(
                url,
                sql.SQL("SELECT row_to_json(t)::text FROM {} t ORDER BY 1").format(
                    sql.Identifier(table)
                ),
            )
        ]
        for table in tables
    }
    rows["sequences"] = [
        f"{name} {value}"
        for name, value in execute(
            url, "SELECT sequencename, last_value FROM pg_sequences ORDER BY 1"
        )
    ]
    return rows


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


def with_password(url: str, password: str | None) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    secret = "" if password is None else f":{password}"
    return urlunsplit(parts._replace(netloc=f"{parts.username}{secret}@{host}"))


def drop(admin_url: str, url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    with closing(psycopg2.connect(admin_url)) as connection:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def without_the_restore_row(shot: dict[str, list[str]]) -> dict[str, list[str]]:
    """A restored database's snapshot less the audit row its restore wrote (and the id
    that row took): what the backup held."""
    rows = shot["audit_log"]
    kept = [row for row in rows if json.loads(row)["action"] != "backup.restore"]
    assert len(kept) == len(rows) - 1, rows
    sequences = [
        f"audit_log_id_seq {int(line.split()[1]) - 1}" if line.startswith("audit_log_id_seq ")
        else line
        for line in shot["sequences"]
    ]  # fmt: skip
    return {**shot, "audit_log": kept, "sequences": sequences}


def backup(url: str, path: Path, *extra: str):
    return run_termrooms(["backup", str(path), "--database-url", url, *extra])


def restore(url: str, path: Path, *extra: str):
    return run_termrooms(["restore", str(path), "--database-url", url, *extra])


def test_backup_drop_restore_gives_back_every_row_seq_and_sequence(
    databases, fresh_migrated_database_url, tmp_path
):
    source = fresh_migrated_database_url
    populate(source)
    before = snapshot(source)
    path = tmp_path / "termrooms.dump"

    saved = backup(source, path)
    assert saved.returncode == 0, saved.stderr
    drop(databases.admin_url, source)
    target = databases.create()
    restored = restore(target, path)

    assert restored.returncode == 0, restored.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # it holds password hashes
    assert without_the_restore_row(snapshot(target)) == before
    assert len(before["room_events"]) == 7 and len(before["users"]) == 2
    assert execute(target, "SELECT name, last_seq FROM rooms ORDER BY name") == [
        ("attic", 2),
        ("lobby", 5),
    ]
    # The restored database is current and in use: commands work, ids go on from before.
    listed = run_termrooms(["users", "list", "--database-url", target])
    assert listed.returncode == 0, listed.stderr
    # Ids go on from before: the restore's own audit row, then the listing's.
    rows = execute(target, "SELECT id, action FROM audit_log ORDER BY id DESC LIMIT 2")
    done = len(before["audit_log"])
    assert [(i, action) for i, action in rows][1] == (done + 1, "backup.restore")
    assert rows[0][0] == done + 2


def test_restore_refuses_a_database_that_is_not_empty_and_leaves_it_alone(
    fresh_migrated_database_url, migrated_database_url, tmp_path
):
    populate(fresh_migrated_database_url)
    path = tmp_path / "termrooms.dump"
    backup(fresh_migrated_database_url, path).check_returncode()
    before = snapshot(migrated_database_url)

    result = restore(migrated_database_url, path)

    assert result.returncode == 1
    assert "not empty" in result.stderr and "--clean" in result.stderr
    assert snapshot(migrated_database_url) == before


def test_restore_clean_puts_a_termrooms_database_back_as_it_was_backed_up(
    fresh_migrated_database_url, tmp_path
):
    url = fresh_migrated_database_url
    populate(url)
    before = snapshot(url)
    path = tmp_path / "termrooms.dump"
    backup(url, path).check_returncode()
    execute(url, "UPDATE rooms SET last_seq = 99, topic = 'later' WHERE name = 'lobby'")
    execute(url, "DELETE FROM room_events WHERE room_id = 2")
    execute(url, "INSERT INTO audit_log (action) VALUES ('after.backup')")

    result = restore(url, path, "--clean")

    assert result.returncode == 0, result.stderr
    assert without_the_restore_row(snapshot(url)) == before


def test_restore_clean_refuses_while_another_session_uses_the_database(
    fresh_migrated_database_url, tmp_path
):
    url = fresh_migrated_database_url
    populate(url)
    path = tmp_path / "termrooms.dump"
    backup(url, path).check_returncode()
    execute(url, "INSERT INTO audit_log (action) VALUES ('after.backup')")

    with closing(psycopg2.connect(url)):  # as a running instance would be
        result = restore(url, path, "--clean")

    assert result.returncode == 1
    assert "1 other session(s)" in result.stderr and "stop every" in result.stderr
    assert execute(url, "SELECT count(*) FROM audit_log WHERE action = 'after.backup'") == [(1,)]


def test_restore_clean_refuses_a_database_termrooms_did_not_make(
    databases, fresh_migrated_database_url, tmp_path
):
    path = tmp_path / "termrooms.dump"
    backup(fresh_migrated_database_url, path).check_returncode()
    other = databases.create()
    execute(other, "CREATE TABLE invoices (id int PRIMARY KEY)")

    result = restore(other, path, "--clean")

    assert result.returncode == 1
    assert "not a termrooms database" in result.stderr
    assert execute(other, "SELECT to_regclass('public.users') IS NULL") == [(True,)]


def test_restore_refuses_a_file_that_is_no_termrooms_backup(databases, tmp_path):
    target = databases.create()
    junk = tmp_path / "junk.dump"
    junk.write_bytes(b"not an archive at all\n" * 10)
    other = databases.create()
    execute(other, "CREATE TABLE invoices (id int PRIMARY KEY)")
    foreign = tmp_path / "foreign.dump"
    backup(other, foreign).check_returncode()

    for path, says in ((junk, "pg_restore"), (foreign, "not a termrooms backup")):
        result = restore(target, path)
        assert result.returncode == 1
        assert says in result.stderr
    assert execute(target, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(0,)]


def test_restore_refuses_the_servers_maintenance_database(
    databases, fresh_migrated_database_url, tmp_path
):
    path = tmp_path / "termrooms.dump"
    backup(fresh_migrated_database_url, path).check_returncode()
    maintenance = with_database(databases.admin_url, "postgres")
    before = execute(maintenance, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")

    result = restore(maintenance, path)

    assert result.returncode == 1
    assert "maintenance database" in result.stderr
    assert execute(maintenance, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == (
        before
    )


def test_backup_keeps_an_existing_file_unless_forced(fresh_migrated_database_url, tmp_path):
    path = tmp_path / "termrooms.dump"
    path.write_text("yesterday's backup")

    refused = backup(fresh_migrated_database_url, path)

    assert refused.returncode == 1
    assert "--force" in refused.stderr
    assert path.read_text() == "yesterday's backup"
    forced = backup(fresh_migrated_database_url, path, "--force")
    assert forced.returncode == 0, forced.stderr
    assert path.read_bytes().startswith(b"PGDMP")


def test_backup_into_a_missing_directory_says_so(fresh_migrated_database_url, tmp_path):
    result = backup(fresh_migrated_database_url, tmp_path / "nowhere" / "termrooms.dump")

    assert result.returncode == 1
    assert f"no directory {tmp_path / 'nowhere'}" in result.stderr
    assert "Traceback" not in result.stderr


def server_major(url: str) -> int:
    [(major,)] = execute(url, "SELECT current_setting('server_version_num')::int / 10000")
    return major


def fake_pg_dump(directory: Path, version: str) -> Path:
    """A pg_dump that reports ``version`` and records its arguments and PGPASSWORD."""
    directory.mkdir()
    script = directory / "pg_dump"
    script.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = --version ]; then echo "pg_dump (PostgreSQL) {version}"; exit 0; fi\n'
        f'printf "%s\\n" "$@" > {directory}/argv\n'
        f'printf "%s" "$PGPASSWORD" > {directory}/password\n'
        'for arg in "$@"; do case "$arg" in --file=*) echo PGDMP > "${arg#--file=}";; esac; done\n'
    )
    script.chmod(0o755)
    return directory


def test_backup_hands_the_password_over_in_the_environment_not_the_command_line(
    fresh_migrated_database_url, tmp_path
):
    secret = "sekrit-pw-42"
    tools = fake_pg_dump(tmp_path / "bin", f"{server_major(fresh_migrated_database_url)}.3")
    url = with_password(fresh_migrated_database_url, secret)

    result = backup(url, tmp_path / "out.dump", "--pg-bin", str(tools))

    assert result.returncode == 0, result.stderr
    argv = (tools / "argv").read_text()
    assert secret not in argv
    assert f"--dbname={with_password(url, None)}" in argv.splitlines()
    assert (tools / "password").read_text() == secret
    assert secret not in result.stdout + result.stderr


def test_backup_with_only_an_older_pg_dump_says_which_version_it_needs(
    fresh_migrated_database_url, tmp_path
):
    tools = fake_pg_dump(tmp_path / "bin", "9.6.24")
    major = server_major(fresh_migrated_database_url)

    result = backup(fresh_migrated_database_url, tmp_path / "out.dump", "--pg-bin", str(tools))

    assert result.returncode == 1
    assert f"needs pg_dump {major} or newer" in result.stderr
    assert f"postgresql-client-{major}" in result.stderr
    assert not (tools / "argv").exists()
    assert not (tmp_path / "out.dump").exists()


@pytest.mark.slow
def test_embedded_database_backup_and_restore_into_a_new_one(tmp_path):
    import pgserver

    # pgserver runs PostgreSQL as an unprivileged user when we are root: give it a
    # directory it can reach, which pytest's private tmp_path is not.
    base = Path(tempfile.mkdtemp(prefix="termrooms-backup-"))
    base.chmod(0o755)
    try:
        first, second = base / "first", base / "second"
        run_termrooms(["migrate", "--data-dir", str(first)], check=True)
        server = pgserver.get_server(first / "postgres", cleanup_mode="stop")
        url = server.get_uri("termrooms")
        try:
            populate(url, data_dir=first)
            before = snapshot(url)
        finally:
            server.cleanup()
        path = tmp_path / "embedded.dump"

        saved = run_termrooms(["backup", str(path), "--data-dir", str(first)])
        assert saved.returncode == 0, saved.stderr
        assert "pginstall" in saved.stdout  # pgserver's own pg_dump, matching its server
        restored = run_termrooms(["restore", str(path), "--data-dir", str(second)])
        assert restored.returncode == 0, restored.stderr

        server = pgserver.get_server(second / "postgres", cleanup_mode="stop")
        try:
            assert without_the_restore_row(snapshot(server.get_uri("termrooms"))) == before
        finally:
            server.cleanup()
        assert not (second / "postgres" / "postmaster.pid").exists()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_backup_piped_through_gzip_restores_from_standard_input_with_audit_rows(
    databases, fresh_migrated_database_url, tmp_path
):
    source = fresh_migrated_database_url
    populate(source)
    before = snapshot(source)
    target = databases.create()
    spool = tmp_path / "spool"
    spool.mkdir()
    command = BIN / "termrooms"
    piped = subprocess.run(
        ["bash", "-o", "pipefail", "-c",
         f'"{command}" backup - --database-url "$SOURCE" | gzip | gunzip'
         f' | "{command}" restore - --database-url "$TARGET"'],
        capture_output=True, text=True, timeout=120,
        env={**clean_environ(), "SOURCE": source, "TARGET": target, "TMPDIR": str(spool)},
    )  # fmt: skip
    assert piped.returncode == 0, piped.stderr
    # The dump went down the pipe; what backup says went to standard error.
    assert "wrote standard output (" in piped.stderr
    assert piped.stdout.startswith("restored - (schema version ")
    assert without_the_restore_row(snapshot(target)) == before
    assert list(spool.iterdir()) == []  # the spooled copy is gone
    [(dumped,)] = execute(source, "SELECT data FROM audit_log WHERE action = 'backup.dump'")
    assert dumped["file"] == "-" and dumped["bytes"] > 1000
    [(restored,)] = execute(target, "SELECT data FROM audit_log WHERE action = 'backup.restore'")
    assert restored == {"file": "-", "schema_version": max(d.version for d in load_deltas())}


def test_a_piped_restore_of_something_else_fails_with_a_reason_and_leaves_nothing(
    databases, tmp_path
):
    target = databases.create()
    result = subprocess.run(
        [str(BIN / "termrooms"), "restore", "-", "--database-url", target],
        input=b"not a backup at all", capture_output=True, timeout=60,
        env={**clean_environ(), "TMPDIR": str(tmp_path)},
    )  # fmt: skip
    assert result.returncode == 1
    assert b"-: pg_restore" in result.stderr, result.stderr
    assert list(tmp_path.iterdir()) == []
    assert execute(target, "SELECT to_regclass('public.users') IS NULL") == [(True,)]


def test_a_backup_to_a_terminal_is_refused(fresh_migrated_database_url):
    leader, follower = pty.openpty()
    try:
        result = subprocess.run(
            [str(BIN / "termrooms"), "backup", "-", "--database-url", fresh_migrated_database_url],
            stdout=follower, stderr=subprocess.PIPE, timeout=60, env=clean_environ(),
        )  # fmt: skip
    finally:
        os.close(follower)
        os.close(leader)
    assert result.returncode == 1
    assert b"standard output is a terminal" in result.stderr
