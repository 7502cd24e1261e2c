"""
``twistd termrooms``: command-line options and the service tree.

Every option also comes from a ``TERMROOMS_*`` environment variable or the TOML file
named by ``--config``; precedence is flag > environment > file > default
(:mod:`termrooms.config`). A wrong value stops the process before it listens, with one
line naming the option and the reason.
"""

from __future__ import annotations

import getopt
import os
import signal
import sys
from functools import partial
from typing import IO, Any, cast

from twisted.application import strports
from twisted.application.internet import TimerService
from twisted.application.service import IService, MultiService, Service
from twisted.internet.defer import ensureDeferred
from twisted.logger import ILogObserver, Logger
from twisted.python import usage
from twisted.python.components import Componentized

from termrooms import __version__
from termrooms.config import (
    SETTINGS,
    SETTINGS_BY_NAME,
    Config,
    ConfigError,
    Setting,
    resolve_config,
    show_value,
)
from termrooms.handlers.polls import PollClosingService
from termrooms.handlers.retention import RetentionService
from termrooms.operations.logs import ReopenableLogFile, make_observer
from termrooms.operations.systemd import from_environ as systemd_notifier
from termrooms.operations.systemd import when_listening
from termrooms.server import TermroomsServer
from termrooms.service import DatabaseStartupService

_log = Logger()
EXIT_FATAL = 1


def _help(setting: Setting) -> str:
    """A setting's --help line: what it does, its default, its environment variable."""
    shown = (
        "" if setting.default in (None, (), False) else f" (default: {show_value(setting.default)})"
    )
    return f"{setting.help}{shown} [env {setting.env}]"


class ConfigOptions(usage.Options):
    """The settings shared by ``twistd termrooms`` and every ``termrooms`` subcommand."""

    # Defaults are None here so that resolve_config can tell "not given" from "given".
    optParameters = [
        [s.flag[2:], None, None, _help(s)] for s in SETTINGS if not (s.switch or s.repeatable)
    ] + [["config", "c", None, "TOML settings file. [env TERMROOMS_CONFIG]"]]
    optFlags = [[s.flag[2:], None, _help(s)] for s in SETTINGS if s.switch]

    def __init__(self) -> None:
        super().__init__()
        self.listen: list[str] = []
        self.config = Config()

    def parseOptions(self, options: list[str] | None = None) -> None:
        """Accept flags before and after positional arguments, as operators type them."""
        if options is None:
            options = sys.argv[1:]
        try:
            flags, positional = getopt.gnu_getopt(options, self.shortOpt, self.longOpt)
        except getopt.error as e:
            raise usage.UsageError(str(e)) from None
        ordered: list[str] = []
        for flag, value in flags:
            takes_value = flag[2:] + "=" in self.longOpt or flag[1:] + ":" in self.shortOpt
            if flag.startswith("--"):
                ordered.append(f"{flag}={value}" if takes_value else flag)
            else:
                ordered.extend([flag, value] if takes_value else [flag])
        super().parseOptions(ordered + ["--"] + positional if positional else ordered)

    def opt_listen(self, description: str) -> None:
        self.listen.append(description)

    opt_listen.__doc__ = _help(SETTINGS_BY_NAME["listen"])

    def given_flags(self) -> dict[str, Any]:
        """Only the flags that were on the command line, by setting name."""
        given: dict[str, Any] = {}
        for setting in SETTINGS:
            key = setting.flag[2:]
            if setting.repeatable:
                if self.listen:
                    given[setting.name] = list(self.listen)
            elif setting.switch:
                if self[key]:
                    given[setting.name] = True
            elif self[key] is not None:
                given[setting.name] = self[key]
        return given

    def postOptions(self) -> None:
        try:
            self.config = resolve_config(self.given_flags(), os.environ, self["config"])
        except ConfigError as e:
            raise SystemExit(configuration_error_line(e)) from None


def configuration_error_line(error: ConfigError) -> str:
    """The single line a wrong setting produces, printed to stderr."""
    return f"termrooms: configuration error: {error}"


class Options(ConfigOptions):
    """Options of ``twistd termrooms``."""

    synopsis = "[options]"
    longdesc = (
        "Run the termrooms chat daemon: HTTP API, WebSocket rooms and web client. "
        "With no --database-url, an embedded PostgreSQL runs under --data-dir."
    )

    def opt_version(self) -> None:
        """Print the termrooms version and exit."""
        print(f"termrooms {__version__}")
        raise SystemExit(0)

    def wants_own_log_observer(self) -> bool:
        """Unless the operator gave twistd --logfile or --logger, we choose the format."""
        parent = getattr(self, "parent", None)
        return parent is None or not (parent.get("logger") or parent.get("logfile"))


class TermroomsService(MultiService):
    """The root service; it hands twistd the log observer the settings ask for."""

    log_observer: ILogObserver | None = None

    def setServiceParent(self, parent: Any) -> None:
        super().setServiceParent(parent)
        # twistd's documented hook for an application's own observer: an ILogObserver
        # component on the application, consulted when logging begins.
        if self.log_observer is not None and isinstance(parent, Componentized):
            parent.setComponent(ILogObserver, self.log_observer)


class ExitZeroOnSigterm(Service):
    """
    SIGTERM is how systemd and scripts ask the daemon to stop: stop cleanly and exit 0.
    (twistd's own handler re-raises the signal after shutdown, so the process would
    report death by SIGTERM instead of success.)
    """

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor

    def startService(self) -> None:
        super().startService()
        # After startup, so this replaces the handler the reactor installs.
        self.reactor.callWhenRunning(signal.signal, signal.SIGTERM, self._on_sigterm)

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        _log.info("SIGTERM received: shutting down")
        self.reactor.callFromThread(self.reactor.stop)


class ReopenLogOnSighup(Service):
    """
    SIGHUP: append to a file of the log's name again, after logrotate moved it. Without
    --log-file it only says so: SIGHUP's default action would kill the daemon, and
    ``systemctl reload`` sends it.
    """

    def __init__(self, reactor: Any, log_file: ReopenableLogFile | None) -> None:
        self.reactor = reactor
        self.log_file = log_file

    def startService(self) -> None:
        super().startService()
        signal.signal(signal.SIGHUP, self._on_sighup)

    def _on_sighup(self, signum: int, frame: Any) -> None:
        self.reactor.callFromThread(self._reopen)

    def _reopen(self) -> None:
        if self.log_file is None:
            _log.info("SIGHUP: no --log-file to reopen; nothing to do")
            return
        try:
            self.log_file.reopen()
        except OSError as e:
            _log.error("SIGHUP: cannot reopen {path}: {error}", path=self.log_file.path, error=e)
            return
        _log.info("SIGHUP: reopened the log file {path}", path=self.log_file.path)


def exit_after_shutdown(reactor: Any, message: str, code: int = EXIT_FATAL) -> None:
    """
    Stop the daemon because it can never serve (a newer schema, a broken database):
    log why, let every service stop cleanly, then exit non-zero, which twistd itself
    has no way to do once its reactor runs.
    """
    _log.critical("termrooms cannot start: {reason}", reason=message)

    def exit_now() -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)

    reactor.addSystemEventTrigger("after", "shutdown", exit_now)
    if reactor.running:
        reactor.stop()
    else:
        reactor.callWhenRunning(reactor.stop)


LAST_SEEN_EVERY_SECONDS = 30.0


def _open_log_file(path: Any) -> ReopenableLogFile:
    try:
        return ReopenableLogFile(path)
    except OSError as e:
        error = ConfigError("--log-file", f"cannot open {str(path)!r}: {e.strerror}")
        raise SystemExit(configuration_error_line(error)) from None


def _logged(work: Any) -> Any:
    """A TimerService call that logs its failure instead of stopping the timer."""

    def run() -> Any:
        d = ensureDeferred(work())
        d.addErrback(lambda f: _log.failure("periodic {name} failed", f, name=work.__name__))
        return d

    return run


def makeService(options: Options, reactor: Any = None) -> IService:
    """The daemon's service tree; stop order is the reverse of the order added here."""
    if reactor is None:
        from twisted.internet import reactor as default_reactor

        reactor = default_reactor
    config = options.config
    server = TermroomsServer(config, reactor)
    top = TermroomsService()
    log_file = None
    if options.wants_own_log_observer():
        log_file = _open_log_file(config.log_file) if config.log_file is not None else None
        # Duck-typed: FileLogObserver only writes and flushes, wants_json asks isatty.
        stream = cast(IO[str], log_file)
        top.log_observer = make_observer(config.log_level, config.log_format, stream)
    ReopenLogOnSighup(reactor, log_file).setServiceParent(top)
    ExitZeroOnSigterm(reactor).setServiceParent(top)
    startup = DatabaseStartupService(server, partial(exit_after_shutdown, reactor))
    startup.setServiceParent(top)
    last_seen = TimerService(LAST_SEEN_EVERY_SECONDS, _logged(server.record_last_seen))
    last_seen.setServiceParent(top)
    RetentionService(server, config.retention_interval.total_seconds()).setServiceParent(top)
    PollClosingService(server.get_poll_handler, reactor, startup.ready).setServiceParent(top)
    site = server.get_site()
    listeners = [strports.service(d, site, reactor=reactor) for d in config.listen]
    for listener in listeners:
        listener.setServiceParent(top)

    async def serving() -> None:
        await startup.ready
        for listener in listeners:
            await when_listening(listener)

    # Last, so that it is the first service told to stop: STOPPING=1 as the drain begins.
    systemd_notifier(serving, reactor).setServiceParent(top)
    top.server = server  # type: ignore[attr-defined]  # reachable from tests and tools
    return top
