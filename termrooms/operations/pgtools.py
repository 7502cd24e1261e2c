"""
The rules of ``termrooms backup`` and ``termrooms restore``: which pg_dump or pg_restore
suits a server, how a URL's password leaves the child's command line, and whether a
restore may go ahead. Pure logic: no I/O.
"""

from __future__ import annotations

import re
from typing import Iterable
from urllib.parse import unquote, urlsplit, urlunsplit

import attrs

_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)")


class ToolMissing(Exception):
    """No PostgreSQL client tool on this machine can serve the server."""


class RestoreRefused(Exception):
    """The target database or the file is not one a restore may go ahead with."""


@attrs.frozen
class PgTool:
    """A PostgreSQL client program and its major version."""

    path: str
    major: int


def tool_major(version_output: str) -> int | None:
    """The major version in ``pg_dump --version``'s answer, e.g. 15 for ``... 15.14 (Debian)``."""
    match = _VERSION.search(version_output)
    return int(match.group(1)) if match else None


def pick_tool(name: str, found: Iterable[PgTool], server_major: int) -> PgTool:
    """
    The oldest tool at least as new as the server: pg_dump refuses a newer server, and
    the closest version writes the archive the most pg_restore versions can read.
    """
    found = sorted(found, key=lambda tool: tool.major)
    for tool in found:
        if tool.major >= server_major:
            return tool
    seen = ", ".join(f"{tool.path} ({tool.major})" for tool in found) or "none"
    raise ToolMissing(
        f"the database runs PostgreSQL {server_major} and needs {name} {server_major} or"
        f" newer; found: {seen}. Install postgresql-client-{server_major} or pass"
        " --pg-bin DIR"
    )


def split_password(url: str) -> tuple[str, str | None]:
    """
    The URL without its password, and the password: the child gets it in PGPASSWORD,
    never on its command line, where ``ps`` would show it to every user.
    """
    parts = urlsplit(url)
    password = None
    query = []  # kept as written, but for the password
    for field in parts.query.split("&") if parts.query else []:
        key, _, value = field.partition("=")
        if unquote(key) == "password":
            password = unquote(value)
        else:
            query.append(field)
    netloc = parts.netloc
    userinfo, at, hostport = netloc.rpartition("@")
    if at and ":" in userinfo:
        user, _, secret = userinfo.partition(":")
        password = unquote(secret) if password is None else password
        netloc = f"{user}@{hostport}"
    cleaned = urlunsplit(parts._replace(netloc=netloc, query="&".join(query)))
    return cleaned, password or None


def backup_schema_version(copy_output: str) -> int | None:
    """
    The schema version a backup holds, from its ``schema_migrations`` rows as
    ``pg_restore --data-only --table=schema_migrations -f -`` prints them; None when the
    archive has no such table (it is not a termrooms backup).
    """
    versions: list[int] = []
    inside = False
    for line in copy_output.splitlines():
        if line.startswith("COPY ") and "schema_migrations" in line:
            inside = True
        elif inside and line == "\\.":
            break
        elif inside and line.strip():
            versions.append(int(line.split("\t", 1)[0]))
    if not inside:
        return None
    return max(versions, default=0)


@attrs.frozen
class TargetDatabase:
    """What a restore needs to know about the database it would write into."""

    tables: int  # outside the system schemas
    schema_version: int | None  # None: no schema_migrations table
    other_sessions: int
    name: str = "termrooms"


# Databases every server has, for administration: an empty one is no place for termrooms.
MAINTENANCE_DATABASES = frozenset({"postgres", "template0", "template1"})


def check_restore(
    target: TargetDatabase, backup_version: int, known_version: int, clean: bool
) -> None:
    """Raise RestoreRefused unless restoring this backup into ``target`` is safe."""
    if target.name in MAINTENANCE_DATABASES:
        raise RestoreRefused(
            f"{target.name!r} is the server's maintenance database, not one for termrooms:"
            " create a database for it (createdb -O termrooms termrooms) and name that one"
        )
    if backup_version > known_version:
        raise RestoreRefused(
            f"the backup is at schema version {backup_version}, newer than this termrooms"
            f" knows ({known_version}): restore it with the termrooms that made it"
        )
    if target.tables == 0:
        return
    if not clean:
        raise RestoreRefused(
            f"the database is not empty ({target.tables} tables): restore into an empty"
            " database, or pass --clean to replace the contents of a termrooms database"
        )
    if target.schema_version is None:
        raise RestoreRefused(
            f"the database holds {target.tables} tables and is not a termrooms database:"
            " --clean only replaces a termrooms database; restore into an empty one"
        )
    if target.schema_version > backup_version:
        raise RestoreRefused(
            f"the database is at schema version {target.schema_version}, the backup at"
            f" {backup_version}: --clean would leave the newer tables behind; restore into"
            " an empty database"
        )
    if target.other_sessions:
        raise RestoreRefused(
            f"{target.other_sessions} other session(s) are connected to the database: stop"
            " every termrooms instance before restoring over it"
        )
