"""
Schema migrations: the delta files ``sql/NNNN_name.sql`` applied in order, each in one
transaction, recorded in ``schema_migrations``.

A session-level advisory lock serialises every migrating process, so two instances (or
two ``termrooms migrate`` runs) starting together apply each delta exactly once. A
database that is at a newer version than this code knows is refused rather than used.
"""

from __future__ import annotations

import re
from importlib.resources import files
from typing import Any, Iterable

import attrs
from twisted.logger import Logger

from termrooms.storage.database import run_in_transaction

_log = Logger()

# Any constant works as long as every termrooms process uses the same one ("termrooms").
MIGRATION_LOCK_KEY = 0x7465726D726F6F6D
_DELTA_NAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")

_CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(Exception):
    """The schema cannot be brought to the version this code needs."""


class SchemaTooNew(MigrationError):
    """The database was migrated by a newer termrooms; running older code could corrupt it."""


class MigrationsPending(MigrationError):
    """Deltas are pending and the operator asked the daemon not to apply them."""


@attrs.frozen
class Delta:
    """One schema delta file."""

    version: int
    name: str
    sql: str


@attrs.frozen
class MigrationResult:
    """What a migration run found and did."""

    applied: tuple[Delta, ...]
    version: int


def load_deltas() -> tuple[Delta, ...]:
    """The deltas shipped with this code, in version order; their numbering has no gaps."""
    directory = files("termrooms.storage") / "sql"
    deltas = []
    for entry in directory.iterdir():
        match = _DELTA_NAME.match(entry.name)
        if match:
            deltas.append(Delta(int(match["version"]), match["name"], entry.read_text("utf-8")))
        elif entry.name.endswith(".sql"):
            raise MigrationError(f"schema delta {entry.name!r} is not named NNNN_name.sql")
    return check_sequence(deltas)


def check_sequence(deltas: Iterable[Delta]) -> tuple[Delta, ...]:
    """Sort deltas and refuse duplicates or gaps, which would mean a botched merge."""
    ordered = tuple(sorted(deltas, key=lambda d: d.version))
    for expected, delta in enumerate(ordered, start=1):
        if delta.version != expected:
            raise MigrationError(
                f"schema deltas must be numbered 0001, 0002, ... without gaps; "
                f"expected {expected:04d}, found {delta.version:04d}_{delta.name}.sql"
            )
    return ordered


def pending_deltas(known: tuple[Delta, ...], applied_versions: Iterable[int]) -> tuple[Delta, ...]:
    """Deltas still to apply; raises SchemaTooNew when the database is ahead of the code."""
    applied = set(applied_versions)
    newest_known = known[-1].version if known else 0
    if applied and max(applied) > newest_known:
        raise SchemaTooNew(
            f"the database schema is at version {max(applied)}, newer than this "
            f"termrooms knows ({newest_known}); upgrade termrooms or restore a matching backup"
        )
    return tuple(d for d in known if d.version not in applied)


async def _record_delta_txn(cursor: Any, delta: Delta) -> None:
    await cursor.execute(delta.sql)
    await cursor.execute(
        "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
        (delta.version, delta.name),
    )


async def migrate(
    connection: Any, known: tuple[Delta, ...], *, apply: bool = True
) -> MigrationResult:
    """
    Bring the database on ``connection`` (a txpostgres Connection of its own, since the
    lock belongs to its session) up to date; with ``apply=False`` refuse instead.
    """
    await connection.runOperation("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
    try:
        await connection.runOperation(_CREATE_LEDGER)
        rows = await connection.runQuery("SELECT version FROM schema_migrations")
        todo = pending_deltas(known, (version for (version,) in rows))
        if todo and not apply:
            raise MigrationsPending(
                f"{len(todo)} schema migration(s) pending (next: "
                f"{todo[0].version:04d}_{todo[0].name}); run `termrooms migrate` "
                f"or start without --no-migrate"
            )
        for delta in todo:
            _log.info(
                "applying schema delta {version:04d}_{name}",
                version=delta.version,
                name=delta.name,
            )
            await run_in_transaction(connection, _record_delta_txn, delta)
    finally:
        # A dead session has released its lock already; unlocking it would only fail.
        if not connection.closed:
            await connection.runOperation("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
    return MigrationResult(applied=todo, version=known[-1].version if known else 0)
