"""What ``termrooms backup`` and ``restore`` ask the server before pg_dump or pg_restore runs."""

from __future__ import annotations

from typing import Any

from termrooms.operations.pgtools import TargetDatabase
from termrooms.storage.audit import insert_audit_txn


async def server_major_txn(cursor: Any) -> int:
    """The server's major PostgreSQL version (15 for 15.14)."""
    await cursor.execute("SELECT current_setting('server_version_num')::int / 10000")
    return cursor.fetchone()[0]


async def target_database_txn(cursor: Any) -> TargetDatabase:
    """How full the database is, whether termrooms made it, and who else is connected."""
    await cursor.execute(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')"
        "   AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
        "   AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'"
    )
    (tables,) = cursor.fetchone()
    await cursor.execute("SELECT to_regclass('public.schema_migrations') IS NOT NULL")
    schema_version = None
    if cursor.fetchone()[0]:
        await cursor.execute("SELECT coalesce(max(version), 0) FROM schema_migrations")
        (schema_version,) = cursor.fetchone()
    await cursor.execute(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    (other_sessions,) = cursor.fetchone()
    await cursor.execute("SELECT current_database()")
    (name,) = cursor.fetchone()
    return TargetDatabase(tables, schema_version, other_sessions, name)


async def audit_backup_txn(cursor: Any, action: str, data: dict[str, Any]) -> bool:
    """The audit row of a backup or a restore (``backup.dump``, ``backup.restore``);
    False when the database has no audit log to hold it (it was never migrated)."""
    await cursor.execute("SELECT to_regclass('public.audit_log') IS NOT NULL")
    if not cursor.fetchone()[0]:
        return False
    await insert_audit_txn(cursor, action, data=data)
    return True
