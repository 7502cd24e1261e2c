"""
The embedded PostgreSQL a newcomer gets when no ``--database-url`` is configured: the
``pgserver`` package runs a real PostgreSQL 16 under ``<data-dir>/postgres`` on a unix
socket, and the daemon stops it when it stops.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import psycopg2
from psycopg2 import sql
from twisted.logger import Logger

_log = Logger()
EMBEDDED_DATABASE = "termrooms"


@attrs.define(eq=False)
class EmbeddedPostgres:
    """A pgserver instance under ``data_dir``. Its methods block: run them in a thread."""

    data_dir: Path
    _server: Any = attrs.field(default=None, init=False)

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "postgres"

    def start(self) -> str:
        """Start (or reuse) the server, create the termrooms database, return its URL."""
        import pgserver  # imported late: only an embedded set-up needs it

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._server = pgserver.get_server(self.pgdata.resolve(), cleanup_mode="stop")
        admin_url = self._server.get_uri()
        connection = psycopg2.connect(admin_url)
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (EMBEDDED_DATABASE,))
                if cursor.fetchone() is None:
                    cursor.execute(
                        sql.SQL("CREATE DATABASE {}").format(sql.Identifier(EMBEDDED_DATABASE))
                    )
        finally:
            connection.close()
        _log.info("embedded PostgreSQL running in {pgdata}", pgdata=str(self.pgdata))
        return self._server.get_uri(EMBEDDED_DATABASE)

    def stop(self) -> None:
        """Stop the server unless another process (``termrooms migrate``) still uses it."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None
