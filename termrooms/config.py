"""
The daemon's settings: one table that every entry point (``twistd termrooms``, the
``termrooms`` command, the README) reads, so a setting is defined in one place.

Each setting comes from, in order of precedence: a command-line flag, a ``TERMROOMS_*``
environment variable, the TOML file named by ``--config``, then its default. A wrong
value raises :class:`ConfigError` naming the option, where it came from, and why.

Pure logic: no reactor, no sockets, no database.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence
from urllib.parse import urlsplit

import attrs

from termrooms.domain.ratelimit import RateLimit
from termrooms.domain.rules import parse_duration

ENV_PREFIX = "TERMROOMS_"
DEFAULT_LISTEN = "tcp:8080:interface=127.0.0.1"
LOG_LEVELS = ("debug", "info", "warn", "error", "critical")
LOG_FORMATS = ("auto", "text", "json")
_DECIMAL = re.compile(r"^[+-]?[0-9]+$")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


class ConfigError(ValueError):
    """A setting has a value the daemon cannot run with."""

    def __init__(self, option: str, reason: str) -> None:
        super().__init__(f"{option}: {reason}")
        self.option = option
        self.reason = reason


class _Invalid(ValueError):
    """Raised by a value parser; turned into a ConfigError that names the source."""


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"must be a string, got {value!r}")
    return value


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if not isinstance(value, str):
        raise _Invalid(f"must be true or false, got {value!r}")
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise _Invalid(f"must be true or false, got {value!r}")


def _integer_between(low: int, high: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, str) and _DECIMAL.match(value.strip()):
            number = int(value)
        elif isinstance(value, int) and not isinstance(value, bool):
            number = value
        else:
            raise _Invalid(f"must be an integer from {low} to {high}, got {value!r}")
        if not low <= number <= high:
            raise _Invalid(f"must be an integer from {low} to {high}, got {number}")
        return number

    return parse


def _one_of(choices: Sequence[str]) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = _text(value).strip().lower()
        if text not in choices:
            raise _Invalid(f"must be one of {', '.join(choices)}, got {value!r}")
        return text

    return parse


_PASSWORD_PARAMETER = re.compile(r"(?i)(\bpassword=)[^&\s]*")
_PASSWORD_KEYWORD = re.compile(r"(?i)(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)")


def redact_url(url: str) -> str:
    """``url`` with any password in it (user info or query) shown as ***, for output."""
    parts = urlsplit(url)
    if parts.password is not None:
        user_info, _, host = parts.netloc.rpartition("@")
        user = user_info.split(":", 1)[0]
        parts = parts._replace(netloc=f"{user}:***@{host}")
    redacted = parts.geturl() if parts.scheme else url
    # A query's password=..., or a libpq keyword string's password = '...'.
    return _PASSWORD_PARAMETER.sub(r"\1***", _PASSWORD_KEYWORD.sub(r"\1***", redacted))


def _url(schemes: Sequence[str], what: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = _text(value).strip()
        shown = redact_url(text)  # errors are printed and logged: never echo a password
        try:
            parts = urlsplit(text)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError as e:
            raise _Invalid(f"is not a valid {what} URL ({e})") from None
        if parts.scheme not in schemes:
            raise _Invalid(
                f"must be a {what} URL starting with "
                f"{' or '.join(s + '://' for s in schemes)}, got {shown!r}"
            )
        if not (parts.netloc or parts.path or parts.query):
            raise _Invalid(f"is not a valid {what} URL, got {shown!r}")
        return text

    return parse


_postgres_url = _url(("postgresql", "postgres"), "PostgreSQL")
_redis_url = _url(("redis", "rediss", "unix"), "Redis")


def _http_url(value: Any) -> str:
    text = _url(("http", "https"), "public http(s)")(value)
    parts = urlsplit(text)
    if not parts.hostname or parts.query or parts.fragment:
        raise _Invalid(f"must be http(s)://host[:port][/path], got {text!r}")
    return text.rstrip("/")


def _origin(value: Any) -> str:
    text = _text(value).strip()
    problem = _Invalid(f"each origin must look like https://host[:port], got {text!r}")
    parts = urlsplit(text)
    try:
        parts.port  # noqa: B018 - raises ValueError on a port that is not 0-65535
    except ValueError:
        raise problem from None
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.username is not None
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
    ):
        raise problem
    return f"{parts.scheme}://{parts.netloc.lower()}"


def _endpoint(value: Any) -> str:
    """Check a strports server description by parsing it, without listening."""
    # Imported here: only the parser is used, and it needs no running reactor.
    from twisted.internet.endpoints import serverFromString

    text = _text(value).strip()
    try:
        endpoint = serverFromString(_NO_REACTOR, text)
    except Exception as e:  # the parser raises ValueError, KeyError, OSError...
        raise _Invalid(f"is not a valid endpoint description {text!r} ({e})") from None
    port = getattr(endpoint, "_port", None)  # TCP and TLS endpoints; the parser skips the range
    if isinstance(port, int) and not 0 <= port <= 65535:
        raise _Invalid(f"port {port} in {text!r} is not between 0 and 65535")
    return text


_NO_REACTOR = object()


def _list_of(
    item: Callable[[Any], Any], *, at_least_one: bool = False
) -> Callable[[Any], tuple[Any, ...]]:
    """Lists come as TOML arrays, repeated flags, or comma-separated text."""

    def parse(value: Any) -> tuple[Any, ...]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise _Invalid(f"must be a list, got {value!r}")
        elements: list[Any] = []
        for element in value:
            if isinstance(element, str):
                elements.extend(part for part in element.split(",") if part.strip())
            else:
                elements.append(element)
        if at_least_one and not elements:
            raise _Invalid("must name at least one value")
        return tuple(item(element) for element in elements)

    return parse


def _duration_between(low: timedelta, high: timedelta) -> Callable[[Any], timedelta]:
    def parse(value: Any) -> timedelta:
        try:
            duration = parse_duration(_text(value))
        except ValueError as e:
            raise _Invalid(str(e)) from None
        except OverflowError:  # beyond what timedelta holds: too long, like any over high
            duration = None
        if duration is None or not low <= duration <= high:
            raise _Invalid(f"must be between {_span(low)} and {_span(high)}, got {value!r}")
        return duration

    return parse


def _span(duration: timedelta) -> str:
    seconds = int(duration.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


_ZERO_DURATION = re.compile(r"^0+[smhdw]?$")


def _retention(low: timedelta, high: timedelta) -> Callable[[Any], timedelta]:
    """A duration to keep something for, or 0 to keep it forever."""
    bounded = _duration_between(low, high)

    def parse(value: Any) -> timedelta:
        if value == 0 or (isinstance(value, str) and _ZERO_DURATION.match(value.strip().lower())):
            return timedelta(0)
        return bounded(value)

    return parse


def _rate(value: Any) -> RateLimit:
    try:
        return RateLimit.parse(_text(value))
    except ValueError as e:
        raise _Invalid(str(e)) from None


def _network(value: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    text = _text(value).strip()
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise _Invalid(f"each network must look like 10.0.0.0/8 or ::1, got {text!r}") from None


def _username(value: Any) -> str:
    text = _text(value).strip().lower()
    if not text:
        raise _Invalid("a username must not be empty")
    return text


DEFAULT_METRICS_ALLOW = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


def _path(value: Any) -> Path:
    text = _text(value).strip()
    if not text:
        raise _Invalid("must not be empty")
    return Path(text)


@attrs.frozen
class Setting:
    """One option: its flag, environment variable and TOML key all derive from name."""

    name: str
    parse: Callable[[Any], Any]
    default: Any
    help: str
    metavar: str = ""
    switch: bool = False
    repeatable: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "listen",
        _list_of(_endpoint, at_least_one=True),
        (DEFAULT_LISTEN,),
        "Endpoint to serve HTTP and WebSocket on, a strports description; "
        "repeat the flag (or separate with commas) for several.",
        metavar="ENDPOINT",
        repeatable=True,
    ),
    Setting(
        "database_url",
        _postgres_url,
        None,
        "PostgreSQL URL. Unset: an embedded PostgreSQL runs under --data-dir.",
        metavar="URL",
    ),
    Setting(
        "database_session_url",
        _postgres_url,
        None,
        "PostgreSQL URL for what needs a session of its own (LISTEN, advisory locks, "
        "migrations) when --database-url goes through a transaction-mode pooler such as "
        "PgBouncer. Unset: --database-url.",
        metavar="URL",
    ),
    Setting(
        "database_pool_size",
        _integer_between(1, 100),
        10,
        "Connections in the PostgreSQL pool.",
        metavar="N",
    ),
    Setting(
        "redis_url",
        _redis_url,
        None,
        "Redis URL for fan-out across instances. Unset: this instance runs alone.",
        metavar="URL",
    ),
    Setting(
        "data_dir",
        _path,
        Path("var"),
        "Directory for the daemon's state (the embedded database lives here).",
        metavar="DIR",
    ),
    Setting(
        "public_url",
        _http_url,
        None,
        "URL clients use to reach this server; its origin is always allowed.",
        metavar="URL",
    ),
    Setting(
        "allowed_origins",
        _list_of(_origin),
        (),
        "Browser origins allowed besides the server's own, comma-separated.",
        metavar="ORIGINS",
    ),
    Setting(
        "open_registration",
        _boolean,
        False,
        "Let anyone register without an invite code.",
        switch=True,
    ),
    Setting(
        "node_id",
        _integer_between(0, 1023),
        0,
        "This instance's id (0-1023) in snowflake ids; unique per instance.",
        metavar="N",
    ),
    Setting(
        "presence_ttl",
        _duration_between(timedelta(seconds=3), timedelta(minutes=10)),
        timedelta(seconds=30),
        "With Redis: how long the users of an instance that died stay online for the "
        "others; each instance refreshes its own every third of it.",
        metavar="DURATION",
    ),
    Setting(
        "no_migrate",
        _boolean,
        False,
        "Refuse to start when the database needs migrations, instead of applying them.",
        switch=True,
    ),
    Setting(
        "access_token_ttl",
        _duration_between(timedelta(minutes=1), timedelta(hours=24)),
        timedelta(minutes=15),
        "Lifetime of an access token, like 15m.",
        metavar="DURATION",
    ),
    Setting(
        "refresh_token_ttl",
        _duration_between(timedelta(hours=1), timedelta(days=365)),
        timedelta(days=30),
        "Lifetime of a refresh token, like 30d; each use rotates it.",
        metavar="DURATION",
    ),
    Setting(
        "signing_key_file",
        _path,
        None,
        "JSON file of the access-token signing keys (created 0600 when missing). "
        "Unset: signing-keys.json in --data-dir.",
        metavar="FILE",
    ),
    Setting(
        "argon2_memory_kib",
        _integer_between(8 * 1024, 1024 * 1024),
        19 * 1024,
        "argon2id memory cost in KiB for password hashes.",
        metavar="KIB",
    ),
    Setting(
        "argon2_time_cost",
        _integer_between(1, 20),
        2,
        "argon2id passes for password hashes.",
        metavar="N",
    ),
    Setting(
        "argon2_parallelism",
        _integer_between(1, 16),
        1,
        "argon2id lanes for password hashes.",
        metavar="N",
    ),
    Setting(
        "password_threads",
        _integer_between(1, 64),
        2,
        "Threads that hash and verify passwords, off the event loop.",
        metavar="N",
    ),
    Setting(
        "password_queue",
        _integer_between(0, 100_000),
        64,
        "Password checks allowed to wait for a thread; beyond that: 503.",
        metavar="N",
    ),
    Setting(
        "login_rate_limit",
        _rate,
        RateLimit(5, 20.0),
        "Login attempts per client address and per username: burst/seconds.",
        metavar="RATE",
    ),
    Setting(
        "register_rate_limit",
        _rate,
        RateLimit(5, 60.0),
        "Registrations per client address: burst/seconds.",
        metavar="RATE",
    ),
    Setting(
        "send_rate_limit",
        _rate,
        RateLimit(30, 0.2),
        "Messages per user over all their connections and HTTP: burst/seconds per message.",
        metavar="RATE",
    ),
    Setting(
        "no_rate_limits",
        _boolean,
        False,
        "Switch every rate limit off (load tests and benchmarks only).",
        switch=True,
    ),
    Setting(
        "max_connections",
        _integer_between(1, 1_000_000),
        10_000,
        "WebSocket connections this instance holds; beyond it the handshake answers 503.",
        metavar="N",
    ),
    Setting(
        "ws_max_message_bytes",
        _integer_between(1024, 16 * 1024 * 1024),
        64 * 1024,
        "Largest WebSocket message or frame a client may send; bigger closes with 1009.",
        metavar="BYTES",
    ),
    Setting(
        "ws_rate_limit",
        _rate,
        RateLimit(20, 0.1),
        "Frames per WebSocket connection: burst/seconds per frame (default 10/s, burst 20).",
        metavar="RATE",
    ),
    Setting(
        "slow_consumer_bytes",
        _integer_between(64 * 1024, 1024 * 1024 * 1024),
        1024 * 1024,
        "Unsent data a WebSocket may pile up before it is closed with 4009.",
        metavar="BYTES",
    ),
    Setting(
        "http_request_timeout",
        _duration_between(timedelta(seconds=1), timedelta(minutes=10)),
        timedelta(seconds=10),
        "A request's line, headers and body must all arrive within this long of the "
        "connection opening (or of the previous answer on a kept-alive connection); "
        "slower or idle clients are disconnected.",
        metavar="DURATION",
    ),
    Setting(
        "log_level",
        _one_of(LOG_LEVELS),
        "info",
        "Least severe log level written: " + ", ".join(LOG_LEVELS) + ".",
        metavar="LEVEL",
    ),
    Setting(
        "log_format",
        _one_of(LOG_FORMATS),
        "auto",
        "Log format: text, json (one object a line), or auto (json unless stdout is a terminal).",
        metavar="FORMAT",
    ),
    Setting(
        "message_retention",
        _retention(timedelta(hours=1), timedelta(days=36500)),
        timedelta(days=30),
        "Delete room events (messages and the rest) older than this; 0 keeps them forever.",
        metavar="DURATION",
    ),
    Setting(
        "audit_retention",
        _retention(timedelta(days=1), timedelta(days=36500)),
        timedelta(days=90),
        "Delete audit rows older than this; 0 keeps them forever.",
        metavar="DURATION",
    ),
    Setting(
        "idle_room_retention",
        _retention(timedelta(hours=1), timedelta(days=36500)),
        timedelta(days=7),
        "Soft-delete rooms without a new event for this long; 0 keeps them.",
        metavar="DURATION",
    ),
    Setting(
        "deleted_room_retention",
        _retention(timedelta(hours=1), timedelta(days=36500)),
        timedelta(days=30),
        "Remove deleted rooms for good (their events, members, tasks, polls and retros) "
        "this long after their deletion; 0 keeps them.",
        metavar="DURATION",
    ),
    Setting(
        "retention_interval",
        _duration_between(timedelta(minutes=1), timedelta(days=1)),
        timedelta(hours=1),
        "How often each instance tries a retention pass (one instance at a time runs it).",
        metavar="DURATION",
    ),
    Setting(
        "shutdown_timeout",
        _duration_between(timedelta(seconds=1), timedelta(minutes=10)),
        timedelta(seconds=10),
        "On SIGTERM: how long in-flight writes and WebSocket closes may take before the "
        "daemon exits anyway.",
        metavar="DURATION",
    ),
    Setting(
        "log_file",
        _path,
        None,
        "File to append the log to; SIGHUP reopens it (for logrotate). Unset: stdout.",
        metavar="FILE",
    ),
    Setting(
        "metrics_allow",
        _list_of(_network),
        DEFAULT_METRICS_ALLOW,
        "Networks (CIDR, comma-separated) whose clients may read /metrics; others get 403.",
        metavar="NETWORKS",
    ),
    Setting(
        "http_rate_limit",
        _rate,
        RateLimit(600, 0.05),
        "HTTP requests per client address: burst/seconds per request (default a burst of "
        "600, then 20 a second).",
        metavar="RATE",
    ),
    Setting(
        "user_rate_limit",
        _rate,
        RateLimit(300, 0.05),
        "Authenticated HTTP requests per user: burst/seconds per request (default a burst "
        "of 300, then 20 a second); admins are exempt.",
        metavar="RATE",
    ),
    Setting(
        "rate_limit_exempt",
        _list_of(_username),
        (),
        "Usernames (bots) exempt from the HTTP rate limits, comma-separated.",
        metavar="USERS",
    ),
    Setting(
        "trusted_proxies",
        _list_of(_network),
        (),
        "Networks (CIDR, comma-separated) of reverse proxies whose X-Forwarded-For "
        "names the client.",
        metavar="NETWORKS",
    ),
)

SETTINGS_BY_NAME: Mapping[str, Setting] = {s.name: s for s in SETTINGS}
CONFIG_FILE_ENV = ENV_PREFIX + "CONFIG"


@attrs.frozen
class Config:
    """The resolved settings the daemon runs with."""

    listen: tuple[str, ...] = (DEFAULT_LISTEN,)
    database_url: str | None = None
    database_session_url: str | None = None
    database_pool_size: int = 10
    redis_url: str | None = None
    data_dir: Path = Path("var")
    public_url: str | None = None
    allowed_origins: tuple[str, ...] = ()
    open_registration: bool = False
    node_id: int = 0
    presence_ttl: timedelta = timedelta(seconds=30)
    no_migrate: bool = False
    access_token_ttl: timedelta = timedelta(minutes=15)
    refresh_token_ttl: timedelta = timedelta(days=30)
    signing_key_file: Path | None = None
    argon2_memory_kib: int = 19 * 1024
    argon2_time_cost: int = 2
    argon2_parallelism: int = 1
    password_threads: int = 2
    password_queue: int = 64
    login_rate_limit: RateLimit = RateLimit(5, 20.0)
    register_rate_limit: RateLimit = RateLimit(5, 60.0)
    send_rate_limit: RateLimit = RateLimit(30, 0.2)
    no_rate_limits: bool = False
    max_connections: int = 10_000
    ws_max_message_bytes: int = 64 * 1024
    ws_rate_limit: RateLimit = RateLimit(20, 0.1)
    slow_consumer_bytes: int = 1024 * 1024
    http_request_timeout: timedelta = timedelta(seconds=10)
    log_level: str = "info"
    log_format: str = "auto"
    message_retention: timedelta = timedelta(days=30)
    audit_retention: timedelta = timedelta(days=90)
    idle_room_retention: timedelta = timedelta(days=7)
    deleted_room_retention: timedelta = timedelta(days=30)
    retention_interval: timedelta = timedelta(hours=1)
    shutdown_timeout: timedelta = timedelta(seconds=10)
    log_file: Path | None = None
    metrics_allow: tuple[Any, ...] = DEFAULT_METRICS_ALLOW
    http_rate_limit: RateLimit = RateLimit(600, 0.05)
    user_rate_limit: RateLimit = RateLimit(300, 0.05)
    rate_limit_exempt: tuple[str, ...] = ()
    trusted_proxies: tuple[Any, ...] = ()
    config_file: Path | None = None


def signing_key_path(config: Config) -> Path:
    """Where the access-token signing keys are: the setting, else in the data directory."""
    return config.signing_key_file or config.data_dir / "signing-keys.json"


def show_value(value: Any) -> str:
    """A setting's value as an operator would write it (15m, not 0:15:00)."""
    if isinstance(value, timedelta):
        return _span(value)
    if isinstance(value, tuple):
        return ", ".join(str(v) for v in value) or "(none)"
    if value is None:
        return "(unset)"
    return str(value)


def load_config_file(path: Path, option: str = "--config") -> dict[str, Any]:
    """Read a TOML settings file; unknown keys are errors, so typos do not pass silently."""
    try:
        with open(path, "rb") as f:
            table = tomllib.load(f)
    except OSError as e:
        raise ConfigError(option, f"cannot read {str(path)!r}: {e.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(option, f"{str(path)!r} is not valid TOML: {e}") from None
    for key in table:
        if key.replace("-", "_") not in SETTINGS_BY_NAME:
            raise ConfigError(f"{key} (in {path})", "unknown setting")
    return {key.replace("-", "_"): value for key, value in table.items()}


def resolve_config(
    flags: Mapping[str, Any],
    environ: Mapping[str, str],
    config_file: str | None = None,
) -> Config:
    """
    Merge flags (already split: name -> raw value, only those given), the environment
    and the TOML file into a Config, flag > env > file > default.
    """
    if config_file:
        file_path, file_option = Path(config_file), "--config"
    elif environ.get(CONFIG_FILE_ENV):
        file_path = Path(environ[CONFIG_FILE_ENV])
        file_option = f"--config (from {CONFIG_FILE_ENV})"
    else:
        file_path = None
    file_values = load_config_file(file_path, file_option) if file_path else {}

    values: dict[str, Any] = {}
    for setting in SETTINGS:
        if setting.name in flags:
            raw, source = flags[setting.name], setting.flag
        elif setting.env in environ:
            raw, source = environ[setting.env], f"{setting.flag} (from {setting.env})"
        elif setting.name in file_values:
            raw = file_values[setting.name]
            source = f"{setting.flag} (from {setting.name} in {file_path})"
        else:
            continue
        try:
            values[setting.name] = setting.parse(raw)
        except _Invalid as e:
            raise ConfigError(source, str(e)) from None
    return Config(config_file=file_path, **values)
