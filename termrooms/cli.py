"""
``termrooms``: the operator's command. It reads the same settings as the daemon (flags,
``TERMROOMS_*`` environment, ``--config`` file) and, with no database URL, uses the same
embedded PostgreSQL under ``--data-dir``.

    termrooms migrate
    termrooms check-config
    termrooms create-user NAME [--admin] [--password-stdin]
    termrooms invite [--uses N] [--expires-in 7d] [--by ADMIN]
    termrooms disable-user NAME / enable-user NAME   (the same as users disable / enable)
    termrooms rotate-key
    termrooms retention [--dry-run]
    termrooms users list [--all] [--json]
    termrooms users disable NAME / enable NAME
    termrooms users set-password NAME [--password-stdin]
    termrooms users make-admin NAME [--revoke]
    termrooms rooms list [--all] [--json]
    termrooms rooms delete NAME
    termrooms backup FILE|- [--force] [--pg-bin DIR]     (-: to standard output)
    termrooms restore FILE|- [--clean] [--pg-bin DIR]    (-: from standard input)
"""

from __future__ import annotations

import getpass
import json
import sys
import tempfile
import time
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, Sequence

from twisted.internet.defer import ensureDeferred
from twisted.internet.task import react
from twisted.internet.threads import deferToThread
from twisted.logger import globalLogBeginner
from twisted.python import usage

from termrooms import __version__
from termrooms.config import SETTINGS, Config, redact_url, show_value, signing_key_path
from termrooms.domain.errors import ApiError
from termrooms.domain.invites import (
    DEFAULT_INVITE_EXPIRY,
    DEFAULT_INVITE_USES,
    new_invite_code,
    parse_invite_expiry,
)
from termrooms.domain.retention import PassReport, RetentionPolicy
from termrooms.domain.rules import (
    check_fields,
    new_username_problem,
    password_problem,
)
from termrooms.domain.snowflake import SnowflakeGenerator
from termrooms.handlers.passwords import PasswordPolicy, hash_password
from termrooms.handlers.retention import dry_run, run_pass
from termrooms.operations.admin import (
    ROOM_HEADERS,
    USER_HEADERS,
    format_table,
    room_json,
    room_table_row,
    user_json,
    user_table_row,
)
from termrooms.operations.backup import ToolFailed, dump, dump_to, find_tools, run_tool, spool
from termrooms.operations.embedded import EmbeddedPostgres
from termrooms.operations.logs import make_observer
from termrooms.operations.pgtools import (
    RestoreRefused,
    ToolMissing,
    backup_schema_version,
    check_restore,
    pick_tool,
)
from termrooms.storage.admin import (
    delete_room_by_name_txn,
    list_rooms_txn,
    list_users_txn,
    set_password_txn,
    set_role_txn,
)
from termrooms.storage.audit import insert_audit_txn
from termrooms.storage.backups import audit_backup_txn, server_major_txn, target_database_txn
from termrooms.storage.database import connect_one, run_in_transaction
from termrooms.storage.invites import create_invite_txn
from termrooms.storage.keys import KeyFileError, rotate_key
from termrooms.storage.migrations import MigrationError, load_deltas, migrate
from termrooms.storage.users import (
    admin_id_by_name_txn,
    create_user_txn,
    oldest_admin_id_txn,
    set_disabled_txn,
)
from termrooms.tap import ConfigOptions

EXIT_USAGE = 2


class CommandFailed(Exception):
    """An operator-facing failure: printed as one line, exit status 1."""


class MigrateOptions(ConfigOptions):
    synopsis = "[options]"
    description = "Apply pending schema migrations, then exit."


class CheckConfigOptions(ConfigOptions):
    synopsis = "[options]"
    description = "Check the settings and print the values in effect."


class CreateUserOptions(ConfigOptions):
    synopsis = "[options] NAME"
    description = "Create an account; the password is asked for, or read from stdin."
    optFlags = ConfigOptions.optFlags + [
        ["admin", None, "Make the account a server admin."],
        ["password-stdin", None, "Read the password from the first line of stdin."],
    ]

    def parseArgs(self, name: str) -> None:  # type: ignore[override]  # leftover argv, positionally
        self["name"] = name


class InviteOptions(ConfigOptions):
    synopsis = "[options]"
    description = "Create an invite code for registration."
    optParameters = ConfigOptions.optParameters + [
        ["uses", None, str(DEFAULT_INVITE_USES), "How many accounts the code can create."],
        ["expires-in", None, DEFAULT_INVITE_EXPIRY, "Lifetime, like 12h, 7d or 2w."],
        ["by", None, None, "Admin recorded as the inviter (default: the first admin)."],
    ]

    def postOptions(self) -> None:
        super().postOptions()
        try:
            self["uses"] = int(self["uses"])
            if not 1 <= self["uses"] <= 1_000_000:
                raise ValueError
        except ValueError:
            raise usage.UsageError("--uses must be a whole number from 1 to 1000000") from None
        try:
            self["expires-in"] = parse_invite_expiry(self["expires-in"])
        except ValueError as e:
            raise usage.UsageError(f"--expires-in: {e}") from None


class DisableUserOptions(ConfigOptions):
    synopsis = "[options] NAME"
    description = "Disable an account: its sessions end and its sockets close at once."

    def parseArgs(self, name: str) -> None:  # type: ignore[override]  # leftover argv, positionally
        self["name"] = name


class EnableUserOptions(DisableUserOptions):
    description = "Let a disabled account log in again."


class RotateKeyOptions(ConfigOptions):
    synopsis = "[options]"
    description = "Add a new access-token signing key; older keys verify until their tokens expire."


class RetentionOptions(ConfigOptions):
    synopsis = "[options]"
    description = "Remove old events and audit rows, idle rooms and expired rows now."
    optFlags = ConfigOptions.optFlags + [
        ["dry-run", None, "Print how many rows of each kind a pass would remove; remove none."],
    ]


class ListOptions(ConfigOptions):
    synopsis = "[options]"
    optFlags = ConfigOptions.optFlags + [
        ["all", None, "Include deleted ones."],
        ["json", None, "Print a JSON array instead of a table."],
    ]


class UsersListOptions(ListOptions):
    description = "List the accounts: role, state, when created, last login."


class SetPasswordOptions(DisableUserOptions):
    description = "Set an account's password (asked for, or read from stdin); its sessions end."
    optFlags = ConfigOptions.optFlags + [
        ["password-stdin", None, "Read the password from the first line of stdin."],
    ]


class MakeAdminOptions(DisableUserOptions):
    description = "Make an account a server admin (or, with --revoke, an ordinary user)."
    optFlags = ConfigOptions.optFlags + [["revoke", None, "Take the admin role away instead."]]


class RoomsListOptions(ListOptions):
    description = "List the rooms: visibility, members, events, creator, last activity."


class RoomDeleteOptions(ConfigOptions):
    synopsis = "[options] NAME"
    description = "Delete a room as its owner would: its sockets drop it, its history stays."

    def parseArgs(self, name: str) -> None:  # type: ignore[override]  # leftover argv, positionally
        self["name"] = name


_PG_BIN_HELP = (
    "Directory of the PostgreSQL client programs to use (default: the oldest on this"
    " machine at least as new as the server)."
)


# A backup's FILE that is the standard output (backup) or input (restore): pipes.
STREAM = "-"


class BackupOptions(ConfigOptions):
    synopsis = "[options] FILE|-"
    description = (
        "Write the whole database to FILE with pg_dump (custom format, mode 0600);"
        " - writes it to standard output (termrooms backup - | gzip | ssh ...)."
    )
    optFlags = ConfigOptions.optFlags + [["force", None, "Replace FILE if it exists."]]
    optParameters = ConfigOptions.optParameters + [["pg-bin", None, None, _PG_BIN_HELP]]

    def parseArgs(self, file: str) -> None:  # type: ignore[override]  # leftover argv, positionally
        self["file"] = Path(file)


class RestoreOptions(ConfigOptions):
    synopsis = "[options] FILE|-"
    description = (
        "Load a backup into an empty database (or, with --clean, over a termrooms one);"
        " - reads it from standard input."
    )
    optFlags = ConfigOptions.optFlags + [
        ["clean", None, "Replace the contents of a termrooms database (stop every instance)."],
    ]
    optParameters = ConfigOptions.optParameters + [["pg-bin", None, None, _PG_BIN_HELP]]

    def parseArgs(self, file: str) -> None:  # type: ignore[override]  # leftover argv, positionally
        self["file"] = Path(file)


class GroupOptions(usage.Options):
    """A command that only groups subcommands (``users``, ``rooms``)."""

    synopsis: str  # its subcommands, which the error below lists

    def postOptions(self) -> None:
        if self.subCommand is None:
            raise usage.UsageError(f"a subcommand is required, one of {self.synopsis}")


class UsersOptions(GroupOptions):
    synopsis = "list|disable|enable|set-password|make-admin"
    description = "Manage accounts."
    subCommands = [
        ["list", None, UsersListOptions, UsersListOptions.description],
        ["disable", None, DisableUserOptions, DisableUserOptions.description],
        ["enable", None, EnableUserOptions, EnableUserOptions.description],
        ["set-password", None, SetPasswordOptions, SetPasswordOptions.description],
        ["make-admin", None, MakeAdminOptions, MakeAdminOptions.description],
    ]


class RoomsOptions(GroupOptions):
    synopsis = "list|delete"
    description = "Manage rooms."
    subCommands = [
        ["list", None, RoomsListOptions, RoomsListOptions.description],
        ["delete", None, RoomDeleteOptions, RoomDeleteOptions.description],
    ]


class TermroomsCommand(usage.Options):
    synopsis = "termrooms COMMAND [options]"
    subCommands = [
        ["migrate", None, MigrateOptions, MigrateOptions.description],
        ["check-config", None, CheckConfigOptions, CheckConfigOptions.description],
        ["create-user", None, CreateUserOptions, CreateUserOptions.description],
        ["invite", None, InviteOptions, InviteOptions.description],
        ["disable-user", None, DisableUserOptions, DisableUserOptions.description],
        ["enable-user", None, EnableUserOptions, EnableUserOptions.description],
        ["rotate-key", None, RotateKeyOptions, RotateKeyOptions.description],
        ["retention", None, RetentionOptions, RetentionOptions.description],
        ["users", None, UsersOptions, UsersOptions.description],
        ["rooms", None, RoomsOptions, RoomsOptions.description],
        ["backup", None, BackupOptions, BackupOptions.description],
        ["restore", None, RestoreOptions, RestoreOptions.description],
    ]

    def opt_version(self) -> None:
        """Print the version and exit."""
        print(f"termrooms {__version__}")
        raise SystemExit(0)

    def postOptions(self) -> None:
        if self.subCommand is None:
            raise usage.UsageError("a command is required; see termrooms --help")


def describe_config(config: Config) -> str:
    """The settings in effect, one per line, secrets hidden."""
    lines = []
    for setting in SETTINGS:
        value = getattr(config, setting.name)
        if setting.name in ("database_url", "database_session_url", "redis_url") and value:
            value = redact_url(value)
        lines.append(f"{setting.name:<22} {show_value(value)}")
    lines.append(f"{'config_file':<22} {show_value(config.config_file)}")
    return "\n".join(lines)


@asynccontextmanager
async def database_url(config: Config) -> AsyncIterator[str]:
    """The URL of the configured database, or of the embedded one, running meanwhile."""
    embedded = None
    url = config.database_session_url or config.database_url
    if url is None:
        embedded = EmbeddedPostgres(config.data_dir)
        url = await deferToThread(embedded.start)
    try:
        yield url
    finally:
        if embedded is not None:
            await deferToThread(embedded.stop)


@asynccontextmanager
async def database_connection(reactor: Any, config: Config) -> AsyncIterator[Any]:
    """A session of its own on the configured database, or on the embedded one."""
    async with database_url(config) as url:
        connection = await connect_one(reactor, url)
        try:
            yield connection
        finally:
            connection.close()


async def _ask_server(reactor: Any, url: str, *interactions: Any) -> list[Any]:
    connection = await connect_one(reactor, url)
    try:
        return [await run_in_transaction(connection, txn) for txn in interactions]
    finally:
        connection.close()


async def _schema_current(connection: Any) -> None:
    await migrate(connection, load_deltas(), apply=False)


async def run_migrate(reactor: Any, options: MigrateOptions) -> None:
    async with database_connection(reactor, options.config) as connection:
        result = await migrate(connection, load_deltas())
    applied = ", ".join(f"{d.version:04d}_{d.name}" for d in result.applied) or "nothing"
    print(f"schema at version {result.version}; applied: {applied}")


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise CommandFailed("no terminal to ask for the password: use --password-stdin")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        raise CommandFailed("the passwords differ")
    return first


def _password_policy(config: Config) -> PasswordPolicy:
    """The daemon's argon2id parameters, so a hash made here needs no re-hash at login."""
    return PasswordPolicy(
        config.argon2_memory_kib, config.argon2_time_cost, config.argon2_parallelism
    )


async def run_create_user(reactor: Any, options: CreateUserOptions) -> None:
    name = options["name"]
    password = _read_password(bool(options["password-stdin"]))
    check_fields(username=new_username_problem(name), password=password_problem(password))
    password_hash = await deferToThread(hash_password, password, _password_policy(options.config))
    role = "admin" if options["admin"] else "user"
    user_id = SnowflakeGenerator(options.config.node_id).next_id()
    async with database_connection(reactor, options.config) as connection:
        await _schema_current(connection)
        user = await run_in_transaction(
            connection, create_user_txn, user_id, name, password_hash, role=role
        )
    print(f"created {user.role} {user.username} (id {user.id})")


async def run_invite(reactor: Any, options: InviteOptions) -> None:
    async with database_connection(reactor, options.config) as connection:
        await _schema_current(connection)
        if options["by"]:
            inviter = await run_in_transaction(connection, admin_id_by_name_txn, options["by"])
            if inviter is None:
                raise CommandFailed(f"no active admin named {options['by']!r}")
        else:
            inviter = await run_in_transaction(connection, oldest_admin_id_txn)
            if inviter is None:
                raise CommandFailed(
                    "no admin exists yet: create one with `termrooms create-user NAME --admin`"
                )
        invite = await run_in_transaction(
            connection,
            create_invite_txn,
            new_invite_code(),
            created_by=inviter,
            uses=options["uses"],
            expires_in=options["expires-in"],
        )
    expires = invite.expires_at.isoformat(timespec="seconds") if invite.expires_at else "never"
    print(f"{invite.code}\n(uses: {invite.uses}, expires: {expires})")


async def _set_disabled(reactor: Any, options: DisableUserOptions, disabled: bool) -> None:
    async with database_connection(reactor, options.config) as connection:
        await _schema_current(connection)
        user_id = await run_in_transaction(connection, set_disabled_txn, options["name"], disabled)
    if user_id is None:
        raise CommandFailed(f"no user named {options['name']!r}")
    print(f"{'disabled' if disabled else 'enabled'} {options['name']} (id {user_id})")


async def run_disable_user(reactor: Any, options: DisableUserOptions) -> None:
    await _set_disabled(reactor, options, True)


async def run_enable_user(reactor: Any, options: EnableUserOptions) -> None:
    await _set_disabled(reactor, options, False)


async def run_rotate_key(reactor: Any, options: RotateKeyOptions) -> None:
    config = options.config
    path = signing_key_path(config)
    ring = await deferToThread(
        rotate_key, path, time.time(), config.access_token_ttl.total_seconds() + 60
    )
    async with database_connection(reactor, config) as connection:
        await _schema_current(connection)
        await run_in_transaction(
            connection, insert_audit_txn, "auth.key_rotated", data={"kid": ring.active_kid}
        )
    print(f"new signing key {ring.active_kid} in {path}; {len(ring.keys)} key(s) kept")


async def run_retention(reactor: Any, options: RetentionOptions) -> None:
    policy = RetentionPolicy.from_config(options.config)
    now = datetime.now(timezone.utc)
    async with database_connection(reactor, options.config) as connection:
        await _schema_current(connection)
        report: PassReport | None
        if options["dry-run"]:
            report = await dry_run(connection, policy, now)
        else:
            report = await run_pass(connection, policy, now, purge_expired=True)
    if report is None:
        raise CommandFailed("another instance is running a retention pass; nothing removed")
    print("\n".join(report.lines()))


async def run_users_list(reactor: Any, options: UsersListOptions) -> None:
    async with database_connection(reactor, options.config) as connection:
        await _schema_current(connection)
        users = await run_in_transaction(connection, list_users_txn, bool(options["all"]))
    if options["json"]:
        print(json.dumps([user_json(user) for user in users], indent=2))
    else:
        print(format_table(USER_HEADERS, [user_table_row(user) for user in users]))


async def run_set_password(reactor: Any, options: SetPasswordOptions) -> None:
    password = _read_password(bool(options["password-stdin"]))
    check_fields(password=password_problem(password))
    password_hash = await deferToThread(hash_password, password, _password_policy(options.config))
    async with database_connection(reactor, options.config) as connection:
        await _schema_current(connection)
        user_id = await run_in_transaction(
            connection, set_password_txn, options["name"], password_hash
        )
    if user_id is None:
        raise CommandFailed(f"no user named {options['name']!r}")
    print(f"password set for {options['name']} (id {user_id}); their sessions ended")


async def run_make_admin(reactor: Any, options: MakeAdminOptions) -> None:
    role = "user" if options["revoke"] else "admin"
    async with database_connection(reactor, options.config) as connection:
        await _schema_current(connection)
        changed = await run_in_transaction(connection, set_role_txn, options["name"], role)
    if changed is None:
        raise CommandFailed(f"no user named {options['name']!r}")
    user_id, previous = changed
    ended = "; their sessions ended" if previous == "admin" and role != "admin" else ""
    print(f"{options['name']} (id {user_id}) is now {role} (was {previous}){ended}")


async def run_rooms_list(reactor: Any, options: RoomsListOptions) -> None:
    async with database_connection(reactor, options.config) as connection:
        await _schema_current(connection)
        rooms = await run_in_transaction(connection, list_rooms_txn, bool(options["all"]))
    if options["json"]:
        print(json.dumps([room_json(room) for room in rooms], indent=2))
    else:
        print(format_table(ROOM_HEADERS, [room_table_row(room) for room in rooms]))


async def run_rooms_delete(reactor: Any, options: RoomDeleteOptions) -> None:
    async with database_connection(reactor, options.config) as connection:
        await _schema_current(connection)
        room_id = await run_in_transaction(connection, delete_room_by_name_txn, options["name"])
    if room_id is None:
        raise CommandFailed(f"no room named {options['name']!r}")
    print(f"deleted room {options['name']} (id {room_id})")


async def run_backup(reactor: Any, options: BackupOptions) -> None:
    target = options["file"]
    streamed = str(target) == STREAM
    if streamed and sys.stdout.isatty():
        raise CommandFailed(
            "standard output is a terminal: pipe it (termrooms backup - | gzip > FILE)"
        )
    if not streamed and target.exists() and not options["force"]:
        raise CommandFailed(f"{target} exists: pass --force to replace it")
    if not streamed and not target.parent.is_dir():
        raise CommandFailed(f"no directory {target.parent} to write the backup in")
    async with database_url(options.config) as url:
        # No schema check: a backup is what an operator takes before migrating.
        [server_major] = await _ask_server(reactor, url, server_major_txn)
        found = await deferToThread(find_tools, "pg_dump", options["pg-bin"])
        tool = pick_tool("pg_dump", found, server_major)
        if streamed:
            size = await deferToThread(dump_to, tool, url, sys.stdout.buffer)
        else:
            await deferToThread(dump, tool, url, target)
            size = target.stat().st_size
        data = {"file": str(target), "bytes": size, "pg_dump": tool.major}
        await _ask_server(
            reactor, url, lambda cursor: audit_backup_txn(cursor, "backup.dump", data)
        )
    # With the backup on standard output, what the command says goes to standard error.
    said = f"wrote {'standard output' if streamed else target} ({size} bytes) with {tool.path}"
    print(f"{said} (PostgreSQL {tool.major})", file=sys.stderr if streamed else sys.stdout)


async def run_restore(reactor: Any, options: RestoreOptions) -> None:
    source = options["file"]
    if str(source) == STREAM:
        # Spooled first: pg_restore reads a backup twice, and a pipe once.
        spooled = await deferToThread(spool, sys.stdin.buffer, Path(tempfile.gettempdir()))
        try:
            await _restore(reactor, options, spooled, STREAM)
        finally:
            spooled.unlink(missing_ok=True)
        return
    if not source.is_file():
        raise CommandFailed(f"no such file: {source}")
    await _restore(reactor, options, source, str(source))


async def _restore(reactor: Any, options: RestoreOptions, source: Path, named: str) -> None:
    """Restore the backup in ``source``, called ``named`` in what the command says."""
    async with database_url(options.config) as url:
        server_major, target = await _ask_server(
            reactor, url, server_major_txn, target_database_txn
        )
        found = await deferToThread(find_tools, "pg_restore", options["pg-bin"])
        tool = pick_tool("pg_restore", found, server_major)
        try:
            listing = await deferToThread(
                run_tool,
                tool,
                ["--data-only", "--table=schema_migrations", "--file=-", str(source)],
            )
        except ToolFailed as e:
            raise ToolFailed(f"{named}: {e}") from None
        backup_version = backup_schema_version(listing)
        if backup_version is None:
            raise CommandFailed(f"{named} is not a termrooms backup (no schema_migrations)")
        known_version = max(delta.version for delta in load_deltas())
        check_restore(target, backup_version, known_version, bool(options["clean"]))
        clean = ["--clean", "--if-exists"] if options["clean"] else []
        # Objects belong to whoever restores (the daemon's user), not to the old owner.
        restore_args = ["--no-owner", "--no-acl", "--exit-on-error", "--single-transaction"]
        await deferToThread(run_tool, tool, [*restore_args, *clean, str(source)], url)
        data = {"file": named, "schema_version": backup_version}
        await _ask_server(
            reactor, url, lambda cursor: audit_backup_txn(cursor, "backup.restore", data)
        )
    print(f"restored {named} (schema version {backup_version}) with {tool.path}")


# `disable-user` and `users disable` (and the enable pair) are one command spelt two ways.
_COMMANDS: dict[str, Callable[[Any, Any], Awaitable[None]]] = {
    "migrate": run_migrate,
    "create-user": run_create_user,
    "invite": run_invite,
    "disable-user": run_disable_user,
    "enable-user": run_enable_user,
    "rotate-key": run_rotate_key,
    "retention": run_retention,
    "users list": run_users_list,
    "users disable": run_disable_user,
    "users enable": run_enable_user,
    "users set-password": run_set_password,
    "users make-admin": run_make_admin,
    "rooms list": run_rooms_list,
    "rooms delete": run_rooms_delete,
    "backup": run_backup,
    "restore": run_restore,
}


async def _run(reactor: Any, command: str, options: Any) -> None:
    try:
        await _COMMANDS[command](reactor, options)
    except (
        CommandFailed,
        MigrationError,
        KeyFileError,
        ToolMissing,
        ToolFailed,
        RestoreRefused,
    ) as e:
        raise SystemExit(f"termrooms {command}: {e}") from None
    except ApiError as e:
        raise SystemExit(f"termrooms {command}: {e.detail}") from None


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``termrooms`` console script."""
    command = TermroomsCommand()
    try:
        command.parseOptions(list(sys.argv[1:] if argv is None else argv))
    except usage.UsageError as e:
        print(f"termrooms: error: {e}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None
    name, options = command.subCommand, command.subOptions
    assert name is not None  # postOptions refused a command line without one
    while isinstance(options, GroupOptions):  # `users disable` -> the options of `disable`
        name, options = f"{name} {options.subCommand}", options.subOptions
    if name == "check-config":
        print(describe_config(options.config))
        return
    config = options.config
    # A person at a terminal reads this; JSON only when asked for explicitly.
    log_format = "text" if config.log_format == "auto" else config.log_format
    globalLogBeginner.beginLoggingTo(
        [make_observer(config.log_level, log_format, sys.stderr)],
        redirectStandardIO=False,
    )
    react(lambda reactor: ensureDeferred(_run(reactor, name, options)))


if __name__ == "__main__":
    main()
