"""
systemd's notify protocol: ``Type=notify`` units learn that the daemon is ready, is
stopping, and is still alive (the watchdog) from datagrams sent to ``$NOTIFY_SOCKET``.
The protocol is a few ``KEY=value`` lines in one datagram, so no library is needed.
"""

from __future__ import annotations

import os
import socket
from typing import Any, Callable, Mapping

from twisted.application.service import Service
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

_log = Logger()


def notify_address(value: str | None) -> str | None:
    """Where to send: a path, or an abstract socket (``@name`` means a leading NUL)."""
    if not value:
        return None
    if value.startswith("@"):
        return "\0" + value[1:]
    return value


def watchdog_interval(environ: Mapping[str, str], pid: int) -> float | None:
    """
    Seconds between WATCHDOG=1 pings: half of ``$WATCHDOG_USEC``, as sd_watchdog_enabled
    advises; None when systemd expects none from this process.
    """
    usec = environ.get("WATCHDOG_USEC", "")
    watchdog_pid = environ.get("WATCHDOG_PID", "")
    if watchdog_pid and watchdog_pid != str(pid):
        return None  # meant for another process (the one that forked us)
    try:
        microseconds = int(usec)
    except ValueError:
        return None
    if microseconds <= 0:
        return None
    return microseconds / 2 / 1_000_000


class SystemdNotifier:
    """Sends notify lines; does nothing when not run by systemd (no NOTIFY_SOCKET)."""

    def __init__(self, address: str | None) -> None:
        self.address = address
        self._warned = False

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> "SystemdNotifier":
        return cls(notify_address(environ.get("NOTIFY_SOCKET")))

    def send(self, *lines: str) -> None:
        if self.address is None:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(self.address)
                sock.sendall("\n".join(lines).encode("utf-8"))
        except OSError as e:
            if not self._warned:  # once: a missing socket would otherwise log every ping
                self._warned = True
                _log.warn("cannot notify systemd: {error}", error=str(e))


class SystemdNotifyService(Service):
    """
    READY=1 once ``serving()`` fires (migrations done and every listener listening),
    WATCHDOG=1 from a reactor timer (so a stuck reactor misses its pings and systemd
    restarts the daemon), STOPPING=1 when the drain begins. It is added last to the
    service tree, so it is the first to hear of the stop.
    """

    def __init__(
        self,
        notifier: SystemdNotifier,
        serving: Callable[[], Any],
        clock: Any,
        watchdog_every: float | None,
    ) -> None:
        self.notifier = notifier
        self.serving = serving
        self.clock = clock
        self.watchdog_every = watchdog_every
        self._pinging: LoopingCall | None = None

    def startService(self) -> None:
        super().startService()
        self.notifier.send("STATUS=preparing the database")
        if self.watchdog_every is not None:
            self._pinging = LoopingCall(self.notifier.send, "WATCHDOG=1")
            self._pinging.clock = self.clock
            self._pinging.start(self.watchdog_every, now=True)
        ensureDeferred(self._announce_when_serving())

    async def _announce_when_serving(self) -> None:
        await self.serving()  # never fires when start-up fails: no READY then
        if self.running:
            self.notifier.send("READY=1", "STATUS=serving")

    def stopService(self) -> None:
        super().stopService()
        # The watchdog keeps pinging through the drain: the reactor is still healthy,
        # and the drain is bounded by --shutdown-timeout.
        self.notifier.send("STOPPING=1", "STATUS=draining connections")


def when_listening(listener: Any) -> Deferred:
    """
    Fires once a ``strports.service`` listens (never, when it failed to: the service
    logs that and leaves None), without taking the port out of the Deferred its
    stopService needs.
    """
    done: Deferred = Deferred()

    def passthrough(result: Any) -> Any:
        if result is not None:
            done.callback(None)
        return result

    # StreamServerEndpointService keeps the listen() Deferred only under this name.
    listener._waitingForPort.addBoth(passthrough)
    return done


def from_environ(serving: Callable[[], Any], clock: Any) -> SystemdNotifyService:
    """The notifier service for this process's environment."""
    return SystemdNotifyService(
        SystemdNotifier.from_environ(os.environ),
        serving,
        clock,
        watchdog_interval(os.environ, os.getpid()),
    )
