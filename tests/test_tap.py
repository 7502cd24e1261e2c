"""
Tests for termrooms.tap: ``twistd termrooms`` option parsing, the service tree, and the
one-line refusal a wrong setting gives before anything listens (real twistd processes).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import IService, IServiceCollection
from twisted.internet.testing import MemoryReactor
from twisted.python import usage

from support import BIN, clean_environ, free_port, port_answers
from termrooms import __version__
from termrooms.config import SETTINGS, Config, ConfigError
from termrooms.service import DatabaseStartupService
from termrooms.tap import ConfigOptions, Options, configuration_error_line, makeService
from termrooms.web import TermroomsSite


@pytest.fixture(autouse=True)
def no_termrooms_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Options read os.environ: keep the developer's TERMROOMS_* settings out."""
    for name in list(os.environ):
        if name.startswith("TERMROOMS_"):
            monkeypatch.delenv(name)


def parsed(args: list[str]) -> Options:
    options = Options()
    options.parseOptions(args)
    return options


class NamedOptions(ConfigOptions):
    """A ConfigOptions taking one positional argument, as ``termrooms create-user`` does."""

    def parseArgs(self, name: str) -> None:
        self["name"] = name


# --------------------------------------------------------------------------- parsing


def test_no_options_gives_default_config() -> None:
    assert parsed([]).config == Config()


def test_repeated_listen_flag_gives_every_endpoint_in_order_as_tuple() -> None:
    options = parsed(["--listen", "tcp:8001", "--listen=tcp:8002:interface=127.0.0.1"])

    assert options.config.listen == ("tcp:8001", "tcp:8002:interface=127.0.0.1")


def test_every_flag_sets_its_setting(tmp_path) -> None:
    options = parsed(
        [
            "--listen",
            "tcp:8001",
            "--database-url",
            "postgresql://db/x",
            "--database-pool-size",
            "4",
            "--redis-url",
            "redis://r:6379/1",
            "--data-dir",
            str(tmp_path),
            "--public-url",
            "https://chat.example/",
            "--allowed-origins",
            "https://a.example,https://b.example",
            "--open-registration",
            "--node-id",
            "1023",
            "--no-migrate",
            "--log-level",
            "debug",
            "--log-format",
            "json",
        ]
    )

    assert options.config == Config(
        listen=("tcp:8001",),
        database_url="postgresql://db/x",
        database_pool_size=4,
        redis_url="redis://r:6379/1",
        data_dir=tmp_path,
        public_url="https://chat.example",
        allowed_origins=("https://a.example", "https://b.example"),
        open_registration=True,
        node_id=1023,
        no_migrate=True,
        log_level="debug",
        log_format="json",
    )


def test_flag_beats_environment_which_beats_config_file(tmp_path, monkeypatch) -> None:
    path = tmp_path / "termrooms.toml"
    path.write_text('node_id = 1\nlog_level = "debug"\nlog_format = "text"\n')
    monkeypatch.setenv("TERMROOMS_NODE_ID", "2")
    monkeypatch.setenv("TERMROOMS_LOG_LEVEL", "warn")

    options = parsed(["--config", str(path), "--node-id", "3"])

    assert options.config.node_id == 3
    assert options.config.log_level == "warn"
    assert options.config.log_format == "text"
    assert options.config.config_file == path


def test_short_c_names_the_config_file(tmp_path) -> None:
    path = tmp_path / "termrooms.toml"
    path.write_text("node_id = 9\n")

    assert parsed(["-c", str(path)]).config.node_id == 9


def test_termrooms_config_environment_names_the_config_file(tmp_path, monkeypatch) -> None:
    path = tmp_path / "termrooms.toml"
    path.write_text("database_pool_size = 2\n")
    monkeypatch.setenv("TERMROOMS_CONFIG", str(path))

    assert parsed([]).config.database_pool_size == 2


def test_switch_comes_from_environment_without_the_flag(monkeypatch) -> None:
    monkeypatch.setenv("TERMROOMS_OPEN_REGISTRATION", "yes")

    options = parsed([])

    assert options.config.open_registration is True
    assert options.config.no_migrate is False


def test_unique_prefix_of_a_long_flag_is_accepted() -> None:
    assert parsed(["--node", "12"]).config.node_id == 12


def test_flags_are_accepted_after_positional_arguments(tmp_path) -> None:
    path = tmp_path / "termrooms.toml"
    path.write_text('log_level = "error"\n')
    options = NamedOptions()

    options.parseOptions(["--node-id", "1", "alice", "--listen", "tcp:8001", "-c", str(path)])

    assert options["name"] == "alice"
    assert options.config.node_id == 1
    assert options.config.listen == ("tcp:8001",)
    assert options.config.log_level == "error"


def test_double_dash_ends_flags_so_a_positional_may_start_with_a_dash() -> None:
    options = NamedOptions()

    options.parseOptions(["--node-id", "1", "--", "--not-a-flag"])

    assert options["name"] == "--not-a-flag"
    assert options.config.node_id == 1


def test_unknown_flag_is_a_usage_error() -> None:
    with pytest.raises(usage.UsageError, match="--bogus"):
        Options().parseOptions(["--bogus"])


def test_flag_without_its_value_is_a_usage_error() -> None:
    with pytest.raises(usage.UsageError, match="node-id"):
        Options().parseOptions(["--node-id"])


def test_positional_argument_to_twistd_termrooms_is_a_usage_error() -> None:
    with pytest.raises(usage.UsageError):
        Options().parseOptions(["extra"])


def test_version_prints_termrooms_version_and_exits_0(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        Options().parseOptions(["--version"])

    assert info.value.code == 0
    assert capsys.readouterr().out == f"termrooms {__version__}\n"


@pytest.mark.parametrize(
    "args, line",
    [
        (
            ["--node-id", "5000"],
            "termrooms: configuration error: --node-id: "
            "must be an integer from 0 to 1023, got 5000",
        ),
        (
            ["--listen", "tcp:8001", "--log-format", "xml"],
            "termrooms: configuration error: --log-format: "
            "must be one of auto, text, json, got 'xml'",
        ),
    ],
)
def test_wrong_flag_value_exits_with_one_line_naming_option_and_reason(args, line) -> None:
    with pytest.raises(SystemExit) as info:
        Options().parseOptions(args)

    assert info.value.code == line


def test_wrong_environment_value_exit_line_names_the_variable(monkeypatch) -> None:
    monkeypatch.setenv("TERMROOMS_DATABASE_POOL_SIZE", "0")

    with pytest.raises(SystemExit) as info:
        Options().parseOptions([])

    assert info.value.code == (
        "termrooms: configuration error: --database-pool-size "
        "(from TERMROOMS_DATABASE_POOL_SIZE): must be an integer from 1 to 100, got 0"
    )


def test_configuration_error_line_is_one_prefixed_line() -> None:
    line = configuration_error_line(ConfigError("--node-id", "must be an integer"))

    assert line == "termrooms: configuration error: --node-id: must be an integer"


def test_help_lists_every_flag_and_its_environment_variable() -> None:
    text = str(Options())

    for setting in SETTINGS:
        assert setting.flag in text
        # getUsage wraps help text; the variable name itself is never split.
        assert setting.env in text
    assert "--config" in text
    assert "--version" in text


# --------------------------------------------------------------------------- services


def _listeners(top: IService) -> list[StreamServerEndpointService]:
    return [s for s in IServiceCollection(top) if isinstance(s, StreamServerEndpointService)]


def test_make_service_adds_one_listener_per_listen_flag_on_its_endpoint() -> None:
    reactor = MemoryReactor()
    options = parsed(
        [
            "--listen",
            "tcp:8001:interface=127.0.0.1",
            "--listen",
            "tcp:8002:interface=0.0.0.0",
            "--database-url",
            "postgresql://db/x",
        ]
    )

    top = makeService(options, reactor=reactor)

    listeners = _listeners(top)
    assert len(listeners) == 2
    assert not top.running and not any(s.running for s in IServiceCollection(top))
    # Each endpoint listens where its description says (the memory reactor records it).
    for listener in listeners:
        assert isinstance(listener.factory, TermroomsSite)
        listener.endpoint.listen(listener.factory)
    assert [(port, interface) for port, _, _, interface in reactor.tcpServers] == [
        (8001, "127.0.0.1"),
        (8002, "0.0.0.0"),
    ]


def test_make_service_listens_on_localhost_8080_by_default() -> None:
    reactor = MemoryReactor()

    top = makeService(parsed([]), reactor=reactor)

    (listener,) = _listeners(top)
    listener.endpoint.listen(listener.factory)
    assert [(port, interface) for port, _, _, interface in reactor.tcpServers] == [
        (8080, "127.0.0.1")
    ]


def test_make_service_starts_database_before_listeners_so_listeners_stop_first() -> None:
    top = makeService(parsed(["--listen", "tcp:8001", "--listen", "tcp:8002"]), MemoryReactor())

    # MultiService stops its children in reverse order: listeners close before the
    # database goes away.
    children = list(IServiceCollection(top))
    database = [i for i, c in enumerate(children) if isinstance(c, DatabaseStartupService)]
    listeners = [i for i, c in enumerate(children) if isinstance(c, StreamServerEndpointService)]

    assert len(database) == 1
    assert len(listeners) == 2
    assert database[0] < min(listeners)


def test_make_service_server_runs_with_the_parsed_config() -> None:
    options = parsed(["--node-id", "77", "--database-url", "postgresql://db/x"])

    top = makeService(options, MemoryReactor())

    assert top.server.config is options.config
    assert top.server.get_snowflakes().node_id == 77


def test_make_service_brings_its_own_log_observer_unless_twistd_was_given_a_logfile() -> None:
    own = makeService(parsed([]), MemoryReactor())
    with_logfile = parsed([])
    with_logfile.parent = {"logfile": "twistd.log", "logger": None}

    theirs = makeService(with_logfile, MemoryReactor())

    assert own.log_observer is not None
    assert theirs.log_observer is None


# --------------------------------------------------------------------------- real twistd


def run_twistd(args: list[str], cwd: Path, env: dict[str, str] | None = None):
    return subprocess.run(
        [str(BIN / "twistd"), "--nodaemon", "--pidfile=", "termrooms", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env=clean_environ() | (env or {}),
    )


@pytest.mark.parametrize(
    "args, env, config_text, line",
    [
        pytest.param(
            ["--node-id", "5000"],
            {},
            None,
            "termrooms: configuration error: --node-id: "
            "must be an integer from 0 to 1023, got 5000",
            id="node-id-flag",
        ),
        pytest.param(
            ["--listen", "nonsense"],
            {},
            None,
            "termrooms: configuration error: --listen: "
            "is not a valid endpoint description 'nonsense'",
            id="listen-flag",
        ),
        pytest.param(
            ["--database-url", "mysql://x"],
            {},
            None,
            "termrooms: configuration error: --database-url: must be a PostgreSQL URL "
            "starting with postgresql:// or postgres://, got 'mysql://x'",
            id="database-url-flag",
        ),
        pytest.param(
            [],
            {"TERMROOMS_LOG_LEVEL": "loud"},
            None,
            "termrooms: configuration error: --log-level (from TERMROOMS_LOG_LEVEL): "
            "must be one of debug, info, warn, error, critical, got 'loud'",
            id="log-level-env",
        ),
        pytest.param(
            [],
            {},
            'public_url = "ftp://x"\n',
            "termrooms: configuration error: --public-url (from public_url in "
            "{config}): must be a public http(s) URL starting with http:// or https://, "
            "got 'ftp://x'",
            id="public-url-file",
        ),
    ],
)
def test_wrong_value_stops_twistd_before_listening_with_one_stderr_line(
    tmp_path, args, env, config_text, line
) -> None:
    port = free_port()
    config_args: list[str] = []
    config_path = tmp_path / "termrooms.toml"
    if config_text is not None:
        config_path.write_text(config_text)
        config_args = ["--config", str(config_path)]

    result = run_twistd(
        ["--listen", f"tcp:{port}:interface=127.0.0.1", *config_args, *args], tmp_path, env
    )

    assert result.returncode != 0
    lines = [text for text in result.stderr.splitlines() if text.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(line.format(config=config_path)), lines[0]
    assert not port_answers("127.0.0.1", port)
    assert not (tmp_path / "var").exists(), "nothing may be started, not even the database"


def test_twistd_help_lists_the_termrooms_plugin(tmp_path) -> None:
    result = subprocess.run(
        [str(BIN / "twistd"), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=clean_environ(),
    )

    assert result.returncode == 0
    commands = [line.split()[0] for line in result.stdout.splitlines() if line.startswith("    ")]
    assert "termrooms" in commands
    assert "Self-hosted realtime chat rooms" in result.stdout
