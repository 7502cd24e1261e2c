"""
Tests for termrooms.config: defaults, flag > env > file > default precedence, the
TERMROOMS_* and TOML spellings of every setting, and the one-line error a wrong value
gives (naming the option, where the value came from, and why).

Pure logic: no reactor, no sockets, no subprocess. The environment is always passed in
explicitly, never read from os.environ.
"""

from __future__ import annotations

import ipaddress
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from termrooms.config import (
    SETTINGS,
    Config,
    ConfigError,
    resolve_config,
)
from termrooms.domain.ratelimit import RateLimit

DEFAULTS = Config()


def write_toml(tmp_path: Path, text: str, name: str = "termrooms.toml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def toml_literal(value: Any) -> str:
    """A TOML literal for a str, int, bool or list of str (JSON strings are TOML strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_literal(v) for v in value) + "]"
    if isinstance(value, int):
        return str(value)
    return json.dumps(value)


def config_error(*args: Any) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        resolve_config(*args)
    return info.value


# --------------------------------------------------------------------------- defaults


def test_no_flags_env_or_file_gives_the_documented_defaults() -> None:
    config = resolve_config({}, {})

    assert config == Config()
    assert config.listen == ("tcp:8080:interface=127.0.0.1",)
    assert config.database_url is None
    assert config.database_pool_size == 10
    assert config.redis_url is None
    assert config.data_dir == Path("var")
    assert config.public_url is None
    assert config.allowed_origins == ()
    assert config.open_registration is False
    assert config.node_id == 0
    assert config.no_migrate is False
    assert config.log_level == "info"
    assert config.log_format == "auto"
    assert config.config_file is None


def test_unrelated_environment_variables_are_ignored() -> None:
    environ = {"HOME": "/root", "TERMROOMS": "x", "TERMROOMS_TEST_DATABASE_URL": "mysql://x"}

    assert resolve_config({}, environ) == Config()


# --------------------------------------------------------------------------- precedence

# name, value in the TOML file, value in the environment, value of the flag,
# and what each resolves to. Every "resolves to" differs from the default and from the
# other two, so each layer is seen to win.
PRECEDENCE = [
    ("node_id", 1, "2", "3", 1, 2, 3),
    ("database_pool_size", 5, "6", "7", 5, 6, 7),
    ("log_level", "debug", "warn", "error", "debug", "warn", "error"),
    ("log_format", "json", "text", "auto", "json", "text", "auto"),
    (
        "database_url",
        "postgresql://file.example/db",
        "postgresql://env.example/db",
        "postgres://flag.example/db",
        "postgresql://file.example/db",
        "postgresql://env.example/db",
        "postgres://flag.example/db",
    ),
    (
        "redis_url",
        "redis://file.example:6379/0",
        "rediss://env.example",
        "unix:///run/redis.sock",
        "redis://file.example:6379/0",
        "rediss://env.example",
        "unix:///run/redis.sock",
    ),
    (
        "public_url",
        "https://file.example",
        "https://env.example/chat",
        "http://flag.example:8000",
        "https://file.example",
        "https://env.example/chat",
        "http://flag.example:8000",
    ),
    (
        "data_dir",
        "/srv/file",
        "/srv/env",
        "/srv/flag",
        Path("/srv/file"),
        Path("/srv/env"),
        Path("/srv/flag"),
    ),
    (
        "listen",
        ["tcp:8001"],
        "tcp:8002",
        ["tcp:8003"],
        ("tcp:8001",),
        ("tcp:8002",),
        ("tcp:8003",),
    ),
    (
        "allowed_origins",
        ["https://file.example"],
        "https://env.example",
        "https://flag.example",
        ("https://file.example",),
        ("https://env.example",),
        ("https://flag.example",),
    ),
    ("open_registration", True, "no", True, True, False, True),
    ("no_migrate", True, "off", True, True, False, True),
    ("no_rate_limits", True, "0", True, True, False, True),
    (
        "access_token_ttl",
        "5m",
        "1h",
        "90s",
        timedelta(minutes=5),
        timedelta(hours=1),
        timedelta(seconds=90),
    ),
    (
        "refresh_token_ttl",
        "7d",
        "2w",
        "12h",
        timedelta(days=7),
        timedelta(weeks=2),
        timedelta(hours=12),
    ),
    (
        "signing_key_file",
        "/etc/t/file.json",
        "/etc/t/env.json",
        "/etc/t/flag.json",
        Path("/etc/t/file.json"),
        Path("/etc/t/env.json"),
        Path("/etc/t/flag.json"),
    ),
    ("argon2_memory_kib", 65536, "32768", "16384", 65536, 32768, 16384),
    ("argon2_time_cost", 3, "4", "5", 3, 4, 5),
    ("argon2_parallelism", 2, "3", "4", 2, 3, 4),
    ("password_threads", 3, "4", "5", 3, 4, 5),
    ("password_queue", 10, "20", "30", 10, 20, 30),
    (
        "login_rate_limit",
        "3/10s",
        "4/1m",
        "6/30",
        RateLimit(3, 10),
        RateLimit(4, 60),
        RateLimit(6, 30),
    ),
    (
        "register_rate_limit",
        "1/1h",
        "2/5m",
        "9/9s",
        RateLimit(1, 3600),
        RateLimit(2, 300),
        RateLimit(9, 9),
    ),
]
PRECEDENCE_IDS = [case[0] for case in PRECEDENCE]


def _env_name(name: str) -> str:
    return "TERMROOMS_" + name.upper()


@pytest.mark.parametrize(
    "name, in_file, in_env, in_flag, from_file, from_env, from_flag",
    PRECEDENCE,
    ids=PRECEDENCE_IDS,
)
def test_file_value_beats_default(
    tmp_path, name, in_file, in_env, in_flag, from_file, from_env, from_flag
) -> None:
    path = write_toml(tmp_path, f"{name} = {toml_literal(in_file)}\n")

    config = resolve_config({}, {}, path)

    assert getattr(config, name) == from_file
    assert from_file != getattr(DEFAULTS, name)


@pytest.mark.parametrize(
    "name, in_file, in_env, in_flag, from_file, from_env, from_flag",
    PRECEDENCE,
    ids=PRECEDENCE_IDS,
)
def test_environment_beats_file(
    tmp_path, name, in_file, in_env, in_flag, from_file, from_env, from_flag
) -> None:
    path = write_toml(tmp_path, f"{name} = {toml_literal(in_file)}\n")

    config = resolve_config({}, {_env_name(name): in_env}, path)

    assert getattr(config, name) == from_env
    assert from_env != from_file


@pytest.mark.parametrize(
    "name, in_file, in_env, in_flag, from_file, from_env, from_flag",
    PRECEDENCE,
    ids=PRECEDENCE_IDS,
)
def test_flag_beats_environment_and_file(
    tmp_path, name, in_file, in_env, in_flag, from_file, from_env, from_flag
) -> None:
    path = write_toml(tmp_path, f"{name} = {toml_literal(in_file)}\n")

    config = resolve_config({name: in_flag}, {_env_name(name): in_env}, path)

    assert getattr(config, name) == from_flag
    assert from_flag != from_env


def test_each_setting_is_resolved_from_its_own_layer_independently(tmp_path) -> None:
    path = write_toml(tmp_path, 'log_level = "debug"\nnode_id = 4\nlog_format = "json"\n')

    config = resolve_config(
        {"node_id": "9"}, {"TERMROOMS_LOG_LEVEL": "error", "TERMROOMS_NODE_ID": "8"}, path
    )

    assert config.node_id == 9  # flag
    assert config.log_level == "error"  # env over file
    assert config.log_format == "json"  # file
    assert config.database_pool_size == 10  # default


def test_listen_flag_replaces_environment_endpoints_rather_than_adding_to_them() -> None:
    config = resolve_config({"listen": ["tcp:9000"]}, {"TERMROOMS_LISTEN": "tcp:9001"})

    assert config.listen == ("tcp:9000",)


# --------------------------------------------------------------------------- env names

# The names the issue documents, spelled out rather than derived, so a rename shows.
ENVIRONMENT = [
    ("TERMROOMS_LISTEN", "tcp:8081", "listen", ("tcp:8081",)),
    ("TERMROOMS_DATABASE_URL", "postgresql://db/x", "database_url", "postgresql://db/x"),
    ("TERMROOMS_DATABASE_POOL_SIZE", "20", "database_pool_size", 20),
    (
        "TERMROOMS_DATABASE_SESSION_URL",
        "postgresql://db:5432/termrooms",
        "database_session_url",
        "postgresql://db:5432/termrooms",
    ),
    ("TERMROOMS_REDIS_URL", "redis://r:6379", "redis_url", "redis://r:6379"),
    ("TERMROOMS_DATA_DIR", "/var/lib/termrooms", "data_dir", Path("/var/lib/termrooms")),
    ("TERMROOMS_PUBLIC_URL", "https://chat.example", "public_url", "https://chat.example"),
    ("TERMROOMS_ALLOWED_ORIGINS", "https://a.example", "allowed_origins", ("https://a.example",)),
    ("TERMROOMS_OPEN_REGISTRATION", "true", "open_registration", True),
    ("TERMROOMS_NODE_ID", "1023", "node_id", 1023),
    ("TERMROOMS_PRESENCE_TTL", "1m", "presence_ttl", timedelta(minutes=1)),
    ("TERMROOMS_NO_MIGRATE", "yes", "no_migrate", True),
    ("TERMROOMS_LOG_LEVEL", "debug", "log_level", "debug"),
    ("TERMROOMS_LOG_FORMAT", "json", "log_format", "json"),
    ("TERMROOMS_ACCESS_TOKEN_TTL", "30m", "access_token_ttl", timedelta(minutes=30)),
    ("TERMROOMS_REFRESH_TOKEN_TTL", "60d", "refresh_token_ttl", timedelta(days=60)),
    ("TERMROOMS_SIGNING_KEY_FILE", "/k.json", "signing_key_file", Path("/k.json")),
    ("TERMROOMS_ARGON2_MEMORY_KIB", "65536", "argon2_memory_kib", 65536),
    ("TERMROOMS_ARGON2_TIME_COST", "3", "argon2_time_cost", 3),
    ("TERMROOMS_ARGON2_PARALLELISM", "2", "argon2_parallelism", 2),
    ("TERMROOMS_PASSWORD_THREADS", "4", "password_threads", 4),
    ("TERMROOMS_PASSWORD_QUEUE", "8", "password_queue", 8),
    ("TERMROOMS_LOGIN_RATE_LIMIT", "10/1m", "login_rate_limit", RateLimit(10, 60)),
    ("TERMROOMS_REGISTER_RATE_LIMIT", "2/1h", "register_rate_limit", RateLimit(2, 3600)),
    ("TERMROOMS_SEND_RATE_LIMIT", "10/1s", "send_rate_limit", RateLimit(10, 1.0)),
    ("TERMROOMS_NO_RATE_LIMITS", "1", "no_rate_limits", True),
    ("TERMROOMS_MAX_CONNECTIONS", "500", "max_connections", 500),
    ("TERMROOMS_WS_MAX_MESSAGE_BYTES", "131072", "ws_max_message_bytes", 131072),
    ("TERMROOMS_WS_RATE_LIMIT", "5/1s", "ws_rate_limit", RateLimit(5, 1)),
    ("TERMROOMS_SLOW_CONSUMER_BYTES", "2097152", "slow_consumer_bytes", 2097152),
    ("TERMROOMS_HTTP_REQUEST_TIMEOUT", "30s", "http_request_timeout", timedelta(seconds=30)),
    ("TERMROOMS_MESSAGE_RETENTION", "0", "message_retention", timedelta(0)),
    ("TERMROOMS_AUDIT_RETENTION", "180d", "audit_retention", timedelta(days=180)),
    ("TERMROOMS_IDLE_ROOM_RETENTION", "2w", "idle_room_retention", timedelta(weeks=2)),
    ("TERMROOMS_DELETED_ROOM_RETENTION", "90d", "deleted_room_retention", timedelta(days=90)),
    ("TERMROOMS_RETENTION_INTERVAL", "10m", "retention_interval", timedelta(minutes=10)),
    ("TERMROOMS_SHUTDOWN_TIMEOUT", "30s", "shutdown_timeout", timedelta(seconds=30)),
    ("TERMROOMS_LOG_FILE", "/var/log/t.log", "log_file", Path("/var/log/t.log")),
    (
        "TERMROOMS_METRICS_ALLOW",
        "10.0.0.0/8,::1",
        "metrics_allow",
        (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1")),
    ),
    ("TERMROOMS_HTTP_RATE_LIMIT", "100/1s", "http_rate_limit", RateLimit(100, 1.0)),
    ("TERMROOMS_USER_RATE_LIMIT", "50/1s", "user_rate_limit", RateLimit(50, 1.0)),
    ("TERMROOMS_RATE_LIMIT_EXEMPT", "Bot1, bot2", "rate_limit_exempt", ("bot1", "bot2")),
    (
        "TERMROOMS_TRUSTED_PROXIES",
        "10.1.2.3",
        "trusted_proxies",
        (ipaddress.ip_network("10.1.2.3/32"),),
    ),
]


@pytest.mark.parametrize("variable, value, name, expected", ENVIRONMENT, ids=lambda v: str(v))
def test_setting_is_read_from_its_termrooms_environment_variable(
    variable, value, name, expected
) -> None:
    assert getattr(resolve_config({}, {variable: value}), name) == expected


def test_every_setting_has_an_environment_variable_termrooms_plus_upper_name() -> None:
    assert {s.env for s in SETTINGS} == {variable for variable, *_ in ENVIRONMENT}
    for setting in SETTINGS:
        assert setting.env == "TERMROOMS_" + setting.name.upper()
        assert setting.flag == "--" + setting.name.replace("_", "-")


def test_environment_variable_names_are_case_sensitive() -> None:
    assert resolve_config({}, {"termrooms_node_id": "5"}).node_id == 0


def test_environment_values_are_stripped_of_surrounding_space() -> None:
    config = resolve_config(
        {},
        {
            "TERMROOMS_NODE_ID": " 12 ",
            "TERMROOMS_LOG_LEVEL": " WARN ",
            "TERMROOMS_DATABASE_URL": " postgresql://db/x ",
        },
    )

    assert config.node_id == 12
    assert config.log_level == "warn"
    assert config.database_url == "postgresql://db/x"


# --------------------------------------------------------------------------- TOML file


def test_toml_keys_may_use_underscores(tmp_path) -> None:
    path = write_toml(
        tmp_path,
        'node_id = 7\ndatabase_pool_size = 3\nallowed_origins = ["https://a.example"]\n'
        "open_registration = true\n",
    )

    config = resolve_config({}, {}, path)

    assert config.node_id == 7
    assert config.database_pool_size == 3
    assert config.allowed_origins == ("https://a.example",)
    assert config.open_registration is True


def test_toml_keys_may_use_hyphens_like_the_flags(tmp_path) -> None:
    path = write_toml(
        tmp_path,
        'node-id = 7\ndatabase-pool-size = 3\nallowed-origins = ["https://a.example"]\n'
        'open-registration = true\nlog-level = "debug"\ndata-dir = "/srv/t"\n',
    )

    config = resolve_config({}, {}, path)

    assert config.node_id == 7
    assert config.database_pool_size == 3
    assert config.allowed_origins == ("https://a.example",)
    assert config.open_registration is True
    assert config.log_level == "debug"
    assert config.data_dir == Path("/srv/t")


def test_toml_file_may_give_every_setting(tmp_path) -> None:
    path = write_toml(
        tmp_path,
        """
        listen = ["tcp:8001:interface=127.0.0.1", "unix:/run/termrooms.sock"]
        database_url = "postgresql://u@db:5432/termrooms"
        database_pool_size = 25
        redis_url = "redis://cache:6379/2"
        data_dir = "/var/lib/termrooms"
        public_url = "https://chat.example.com/"
        allowed_origins = ["https://app.example.com", "http://localhost:3000"]
        open_registration = true
        node_id = 512
        no_migrate = true
        log_level = "warn"
        log_format = "text"
        """,
    )

    config = resolve_config({}, {}, path)

    assert config == Config(
        listen=("tcp:8001:interface=127.0.0.1", "unix:/run/termrooms.sock"),
        database_url="postgresql://u@db:5432/termrooms",
        database_pool_size=25,
        redis_url="redis://cache:6379/2",
        data_dir=Path("/var/lib/termrooms"),
        public_url="https://chat.example.com",  # trailing slash dropped
        allowed_origins=("https://app.example.com", "http://localhost:3000"),
        open_registration=True,
        node_id=512,
        no_migrate=True,
        log_level="warn",
        log_format="text",
        config_file=Path(path),
    )


def test_empty_toml_file_gives_defaults_and_records_the_file(tmp_path) -> None:
    path = write_toml(tmp_path, "# nothing set\n")

    config = resolve_config({}, {}, path)

    assert config == Config(config_file=Path(path))


def test_termrooms_config_environment_variable_names_the_file(tmp_path) -> None:
    path = write_toml(tmp_path, "node_id = 42\n")

    config = resolve_config({}, {"TERMROOMS_CONFIG": path})

    assert config.node_id == 42
    assert config.config_file == Path(path)


def test_config_argument_beats_termrooms_config_environment_variable(tmp_path) -> None:
    from_flag = write_toml(tmp_path, "node_id = 1\n", "flag.toml")
    from_env = write_toml(tmp_path, "node_id = 2\n", "env.toml")

    config = resolve_config({}, {"TERMROOMS_CONFIG": from_env}, from_flag)

    assert config.node_id == 1
    assert config.config_file == Path(from_flag)


def test_empty_termrooms_config_means_no_file() -> None:
    assert resolve_config({}, {"TERMROOMS_CONFIG": ""}) == Config()


# --------------------------------------------------------------------------- lists


def test_listen_from_comma_separated_environment_gives_each_endpoint() -> None:
    config = resolve_config(
        {}, {"TERMROOMS_LISTEN": "tcp:8001:interface=127.0.0.1, unix:/run/t.sock,"}
    )

    assert config.listen == ("tcp:8001:interface=127.0.0.1", "unix:/run/t.sock")


def test_listen_from_repeated_flag_keeps_order() -> None:
    config = resolve_config({"listen": ["tcp:8002", "tcp:8001"]}, {})

    assert config.listen == ("tcp:8002", "tcp:8001")


def test_listen_from_toml_array(tmp_path) -> None:
    path = write_toml(tmp_path, 'listen = ["tcp:8001", "tcp:8002:interface=0.0.0.0"]\n')

    assert resolve_config({}, {}, path).listen == ("tcp:8001", "tcp:8002:interface=0.0.0.0")


def test_allowed_origins_from_comma_separated_environment_are_normalised() -> None:
    config = resolve_config(
        {}, {"TERMROOMS_ALLOWED_ORIGINS": "https://A.Example.com/, http://localhost:3000"}
    )

    assert config.allowed_origins == ("https://a.example.com", "http://localhost:3000")


def test_allowed_origins_from_comma_separated_flag() -> None:
    config = resolve_config({"allowed_origins": "https://a.example,https://b.example"}, {})

    assert config.allowed_origins == ("https://a.example", "https://b.example")


def test_allowed_origins_from_toml_array(tmp_path) -> None:
    path = write_toml(
        tmp_path, 'allowed_origins = ["https://a.example:8443", "http://b.example"]\n'
    )

    config = resolve_config({}, {}, path)

    assert config.allowed_origins == ("https://a.example:8443", "http://b.example")


def test_empty_allowed_origins_in_environment_overrides_file_with_none(tmp_path) -> None:
    path = write_toml(tmp_path, 'allowed_origins = ["https://a.example"]\n')

    config = resolve_config({}, {"TERMROOMS_ALLOWED_ORIGINS": ""}, path)

    assert config.allowed_origins == ()


# --------------------------------------------------------------------------- booleans


@pytest.mark.parametrize("text", ["1", "true", "yes", "on", "TRUE", " Yes ", "On"])
@pytest.mark.parametrize("name", ["open_registration", "no_migrate"])
def test_boolean_environment_values_meaning_true(name, text) -> None:
    assert getattr(resolve_config({}, {_env_name(name): text}), name) is True


@pytest.mark.parametrize("text", ["0", "false", "no", "off", "", "FALSE", " Off "])
@pytest.mark.parametrize("name", ["open_registration", "no_migrate"])
def test_boolean_environment_values_meaning_false(tmp_path, name, text) -> None:
    # The file says true, so a false from the environment is seen to override it.
    path = write_toml(tmp_path, f"{name} = true\n")

    assert getattr(resolve_config({}, {_env_name(name): text}, path), name) is False


@pytest.mark.parametrize("value", [True, False])
def test_boolean_from_toml_boolean(tmp_path, value) -> None:
    path = write_toml(tmp_path, f"open_registration = {toml_literal(value)}\n")

    assert resolve_config({}, {}, path).open_registration is value


def test_switch_flag_sets_boolean_true_over_false_environment() -> None:
    config = resolve_config(
        {"open_registration": True, "no_migrate": True},
        {"TERMROOMS_OPEN_REGISTRATION": "0", "TERMROOMS_NO_MIGRATE": "false"},
    )

    assert config.open_registration is True
    assert config.no_migrate is True


# --------------------------------------------------------------------------- errors

FLAG = {
    "listen": "--listen",
    "database_url": "--database-url",
    "database_pool_size": "--database-pool-size",
    "redis_url": "--redis-url",
    "data_dir": "--data-dir",
    "public_url": "--public-url",
    "allowed_origins": "--allowed-origins",
    "open_registration": "--open-registration",
    "node_id": "--node-id",
    "no_migrate": "--no-migrate",
    "log_level": "--log-level",
    "log_format": "--log-format",
    "access_token_ttl": "--access-token-ttl",
    "refresh_token_ttl": "--refresh-token-ttl",
    "argon2_memory_kib": "--argon2-memory-kib",
    "password_threads": "--password-threads",
    "login_rate_limit": "--login-rate-limit",
    "register_rate_limit": "--register-rate-limit",
    "metrics_allow": "--metrics-allow",
    "trusted_proxies": "--trusted-proxies",
    "http_rate_limit": "--http-rate-limit",
    "user_rate_limit": "--user-rate-limit",
}

# name, a wrong value (as text), and what the reason must say.
INVALID = [
    ("node_id", "1024", "must be an integer from 0 to 1023, got 1024"),
    ("node_id", "-1", "must be an integer from 0 to 1023, got -1"),
    ("node_id", "abc", "must be an integer from 0 to 1023, got 'abc'"),
    ("node_id", "", "must be an integer from 0 to 1023, got ''"),
    ("database_pool_size", "0", "must be an integer from 1 to 100, got 0"),
    ("database_pool_size", "101", "must be an integer from 1 to 100, got 101"),
    (
        "database_url",
        "mysql://x",
        "must be a PostgreSQL URL starting with postgresql:// or postgres://, got 'mysql://x'",
    ),
    (
        "database_url",
        "not a url",
        "must be a PostgreSQL URL starting with postgresql:// or postgres://, got 'not a url'",
    ),
    ("database_url", "postgresql://", "is not a valid PostgreSQL URL"),
    ("database_url", "postgresql://db:port/x", "is not a valid PostgreSQL URL"),
    ("redis_url", "http://x", "must be a Redis URL starting with redis:// or rediss://"),
    ("redis_url", "redis://r:99999", "is not a valid Redis URL"),
    ("public_url", "ftp://x", "must be a public http(s) URL starting with http:// or https://"),
    ("public_url", "https://host/?q=1", "must be http(s)://host[:port][/path]"),
    ("public_url", "https://host/#top", "must be http(s)://host[:port][/path]"),
    ("public_url", "https://:8080/", "must be http(s)://host[:port][/path]"),
    ("allowed_origins", "example.com", "each origin must look like https://host[:port]"),
    ("allowed_origins", "https://x/path", "each origin must look like https://host[:port]"),
    (
        "allowed_origins",
        "https://ok.example,ftp://x",
        "each origin must look like https://host[:port], got 'ftp://x'",
    ),
    (
        "log_level",
        "loud",
        "must be one of debug, info, warn, error, critical, got 'loud'",
    ),
    ("log_format", "xml", "must be one of auto, text, json, got 'xml'"),
    ("listen", "nonsense:1", "is not a valid endpoint description 'nonsense:1'"),
    ("listen", "tcp:notaport", "is not a valid endpoint description 'tcp:notaport'"),
    ("open_registration", "maybe", "must be true or false, got 'maybe'"),
    ("no_migrate", "2", "must be true or false, got '2'"),
    ("data_dir", "", "must not be empty"),
    ("access_token_ttl", "10s", "must be between 1m and 1d"),
    ("access_token_ttl", "soon", "is not a duration"),
    ("refresh_token_ttl", "400d", "must be between 1h and 365d"),
    ("argon2_memory_kib", "1024", "must be an integer from 8192 to 1048576"),
    ("password_threads", "0", "must be an integer from 1 to 64"),
    ("login_rate_limit", "fast", "is not a rate like 5/20s"),
    ("register_rate_limit", "0/10s", "needs a burst of at least 1"),
    ("data_dir", "   ", "must not be empty"),
    ("metrics_allow", "localhost", "each network must look like 10.0.0.0/8 or ::1"),
    ("trusted_proxies", "10.0.0.0/33", "each network must look like 10.0.0.0/8 or ::1"),
    ("http_rate_limit", "lots", "is not a rate like 5/20s"),
    ("user_rate_limit", "0/1s", "needs a burst of at least 1"),
]
INVALID_IDS = [f"{name}={value!r}" for name, value, _ in INVALID]


def _as_flag(name: str, value: str) -> Any:
    # twistd passes a repeatable flag as the list of its values.
    return [value] if name == "listen" else value


@pytest.mark.parametrize("name, value, why", INVALID, ids=INVALID_IDS)
def test_invalid_flag_value_is_an_error_naming_the_flag_and_why(name, value, why) -> None:
    error = config_error({name: _as_flag(name, value)}, {})

    assert error.option == FLAG[name]
    assert why in error.reason
    assert str(error) == f"{FLAG[name]}: {error.reason}"
    assert "\n" not in str(error)


@pytest.mark.parametrize("name, value, why", INVALID, ids=INVALID_IDS)
def test_invalid_environment_value_is_an_error_naming_the_variable(name, value, why) -> None:
    variable = "TERMROOMS_" + name.upper()

    error = config_error({}, {variable: value})

    assert error.option == f"{FLAG[name]} (from {variable})"
    assert why in error.reason
    assert "\n" not in str(error)


@pytest.mark.parametrize("name, value, why", INVALID, ids=INVALID_IDS)
def test_invalid_file_value_is_an_error_naming_the_key_and_file(tmp_path, name, value, why) -> None:
    path = write_toml(tmp_path, f"{name} = {toml_literal(value)}\n")

    error = config_error({}, {}, path)

    assert error.option == f"{FLAG[name]} (from {name} in {path})"
    assert why in error.reason
    assert "\n" not in str(error)


# Values only a TOML file can give: the wrong type.
INVALID_TOML_TYPES = [
    ("node_id", "true", "must be an integer from 0 to 1023, got True"),
    ("node_id", "1.5", "must be an integer from 0 to 1023, got 1.5"),
    ("node_id", '"1024"', "must be an integer from 0 to 1023, got 1024"),
    ("database_pool_size", "false", "must be an integer from 1 to 100, got False"),
    ("log_level", "3", "must be a string, got 3"),
    ("database_url", '["postgresql://db/x"]', "must be a string"),
    ("data_dir", "7", "must be a string, got 7"),
    ("listen", "8080", "must be a list, got 8080"),
    ("listen", "[8080]", "must be a string, got 8080"),
    ("allowed_origins", "{ a = 1 }", "must be a list"),
    ("open_registration", '"maybe"', "must be true or false, got 'maybe'"),
]


@pytest.mark.parametrize(
    "name, literal, why",
    INVALID_TOML_TYPES,
    ids=[f"{name}={literal}" for name, literal, _ in INVALID_TOML_TYPES],
)
def test_wrong_type_in_toml_is_an_error_naming_the_key(tmp_path, name, literal, why) -> None:
    path = write_toml(tmp_path, f"{name} = {literal}\n")

    error = config_error({}, {}, path)

    assert error.option == f"{FLAG[name]} (from {name} in {path})"
    assert why in error.reason


def test_hyphenated_toml_key_with_wrong_value_is_an_error_naming_the_option(tmp_path) -> None:
    path = write_toml(tmp_path, "node-id = 5000\n")

    error = config_error({}, {}, path)

    assert error.option.startswith("--node-id (from ")
    assert str(path) in error.option
    assert "must be an integer from 0 to 1023, got 5000" in error.reason


def test_valid_flag_does_not_hide_a_later_invalid_setting() -> None:
    error = config_error({"node_id": "3"}, {"TERMROOMS_LOG_FORMAT": "xml"})

    assert error.option == "--log-format (from TERMROOMS_LOG_FORMAT)"


@pytest.mark.parametrize("key", ["nodeid", "database", "config", "listen_on"])
def test_unknown_toml_key_is_an_error_naming_the_key_and_file(tmp_path, key) -> None:
    path = write_toml(tmp_path, f"node_id = 1\n{key} = 1\n")

    error = config_error({}, {}, path)

    assert error.option == f"{key} (in {path})"
    assert error.reason == "unknown setting"


def test_toml_table_is_an_unknown_setting(tmp_path) -> None:
    path = write_toml(tmp_path, '[database]\nurl = "postgresql://db/x"\n')

    error = config_error({}, {}, path)

    assert error.option == f"database (in {path})"
    assert error.reason == "unknown setting"


def test_unknown_toml_key_is_an_error_even_when_flags_give_everything(tmp_path) -> None:
    path = write_toml(tmp_path, "node_idd = 3\n")

    error = config_error({"node_id": "3"}, {}, path)

    assert error.reason == "unknown setting"


@pytest.mark.parametrize("text", ["node_id = \n", "node_id = 1\nnode_id = 2\n", "listen = [\n"])
def test_invalid_toml_is_an_error_naming_the_file(tmp_path, text) -> None:
    path = write_toml(tmp_path, text)

    error = config_error({}, {}, path)

    assert error.option == "--config"
    assert f"{path!r} is not valid TOML" in error.reason
    assert "\n" not in str(error)


def test_missing_config_file_is_an_error_naming_the_file(tmp_path) -> None:
    path = str(tmp_path / "absent.toml")

    error = config_error({}, {}, path)

    assert error.option == "--config"
    assert error.reason == f"cannot read {path!r}: No such file or directory"


def test_missing_config_file_named_by_environment_is_an_error(tmp_path) -> None:
    path = str(tmp_path / "absent.toml")

    error = config_error({}, {"TERMROOMS_CONFIG": path})

    assert error.option.startswith("--config")
    assert f"cannot read {path!r}" in error.reason


def test_directory_as_config_file_is_an_error(tmp_path) -> None:
    error = config_error({}, {}, str(tmp_path))

    assert error.option == "--config"
    assert f"cannot read {str(tmp_path)!r}" in error.reason


def test_config_error_is_a_value_error_with_option_and_reason() -> None:
    error = ConfigError("--node-id", "must be an integer from 0 to 1023, got 5000")

    assert isinstance(error, ValueError)
    assert error.option == "--node-id"
    assert error.reason == "must be an integer from 0 to 1023, got 5000"
    assert str(error) == "--node-id: must be an integer from 0 to 1023, got 5000"


# --------------------------------------------------------------------------- edge cases


def test_config_file_that_is_not_utf8_is_an_error_naming_the_file(tmp_path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'data_dir = "/srv/caf\xe9"\n')

    error = config_error({}, {}, str(path))

    assert error.option == "--config"
    assert str(path) in error.reason


@pytest.mark.parametrize("description", ["tcp:99999", "tcp:-1"])
def test_listen_port_out_of_range_is_an_error(description) -> None:
    error = config_error({"listen": [description]}, {})

    assert error.option == "--listen"


def test_empty_listen_from_environment_is_an_error() -> None:
    error = config_error({}, {"TERMROOMS_LISTEN": ""})

    assert error.option == "--listen (from TERMROOMS_LISTEN)"


def test_commas_in_a_listen_flag_name_several_endpoints() -> None:
    config = resolve_config({"listen": ["tcp:8001,tcp:8002"]}, {})
    assert config.listen == ("tcp:8001", "tcp:8002")


def test_missing_file_named_by_environment_says_where_the_name_came_from(tmp_path) -> None:
    error = config_error({}, {"TERMROOMS_CONFIG": str(tmp_path / "absent.toml")})
    assert error.option == "--config (from TERMROOMS_CONFIG)"


@pytest.mark.parametrize("value", ["1_0", "\u0661"])
def test_node_id_takes_plain_ascii_digits_only(value) -> None:
    error = config_error({"node_id": value.encode().decode("unicode_escape")}, {})
    assert error.option == "--node-id"


def test_boolean_in_toml_of_the_wrong_type_says_true_or_false(tmp_path) -> None:
    path = tmp_path / "t.toml"
    path.write_text("open_registration = 1\n")
    error = config_error({}, {}, str(path))
    assert "must be true or false" in error.reason


def test_allowed_origin_with_non_numeric_port_is_an_error() -> None:
    for origin in ("https://x:abc", "https://x:99999", "https://user:pw@x"):
        error = config_error({"allowed_origins": origin}, {})
        assert error.option == "--allowed-origins"


@pytest.mark.parametrize(
    "url",
    [
        "host=h user=u password=secret dbname=db",
        "mysql://u:secret@h/db",
        "pg://h/db?password=secret",
    ],
)
def test_a_rejected_database_url_is_never_echoed_with_its_password(url) -> None:
    error = config_error({"database_url": url}, {})
    assert error.option == "--database-url"
    assert "secret" not in str(error)
