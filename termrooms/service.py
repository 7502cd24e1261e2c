"""
The start-up sequence, as a service: embedded PostgreSQL when no URL is configured, the
connection pool, then migrations. The listeners start beside it, so ``/health`` answers
503 while the database is still coming up instead of refusing connections.

Its stop is the drain (the listeners have stopped listening by then): WebSockets answer
what they have read and close with 1001, then the pool closes once no query is running,
all within ``--shutdown-timeout``.
"""

from __future__ import annotations

from typing import Any, Callable

import psycopg2
from twisted.application.service import Service
from twisted.internet.defer import Deferred, TimeoutError, ensureDeferred, succeed
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.logger import Logger

from termrooms.cluster.notifications import NodeIdTaken
from termrooms.domain.errors import DatabaseUnavailable
from termrooms.operations.embedded import EmbeddedPostgres
from termrooms.storage.database import backoff_delays, connect_one
from termrooms.storage.keys import KeyFileError
from termrooms.storage.migrations import MigrationError, load_deltas, migrate

_log = Logger()


class DatabaseStartupService(Service):
    """Gets the database ready; calls ``on_fatal(message)`` when it never can be."""

    def __init__(self, server: Any, on_fatal: Callable[[str], None]) -> None:
        self.server = server
        self.on_fatal = on_fatal
        self.embedded: EmbeddedPostgres | None = None
        self._starting: Deferred = succeed(None)
        self.ready: Deferred = Deferred()  # fires once the database is ready to serve
        self._drain_deadline = 0.0

    def startService(self) -> None:
        super().startService()
        config = self.server.config
        # The signing keys are read (or made) before anything is served, so a broken key
        # file stops the daemon at once.
        try:
            self.server.get_signing_keys().load()
        except (KeyFileError, OSError) as e:
            self.on_fatal(f"the signing key file cannot be used: {e}")
            return
        self.server.get_passwords().start()
        if config.no_rate_limits:
            _log.warn("rate limits are OFF (--no-rate-limits): for load tests only")
        redis = self.server.get_redis()
        if redis is not None:
            redis.start()
            self.server.get_gateway()  # builds the cluster bus and presence
            self.server.cluster_bus.start()
            self.server.shared_presence.start()
        self._starting = ensureDeferred(self._start())
        self._starting.addErrback(self._failed)

    async def _start(self) -> None:
        config = self.server.config
        if config.database_url is None:
            self.embedded = EmbeddedPostgres(config.data_dir)
            self.server.database_url = await deferToThread(self.embedded.start)
        database = self.server.get_database()
        await database.start()
        await self._migrate(self.server.session_database_url)
        if self.running:
            await self.server.get_listener().start()  # NodeIdTaken stops us here
            self.server.schema_ready = True
            _log.info("database ready; termrooms is serving")
            self.ready.callback(None)

    async def _migrate(self, url: str) -> None:
        deltas = load_deltas()
        for delay in backoff_delays():
            if not self.running:
                return
            try:
                connection = await connect_one(self.server.reactor, url)
            except (DatabaseUnavailable, psycopg2.OperationalError) as e:
                _log.warn("cannot migrate yet ({error}); retrying", error=str(e).strip())
                await deferLater(self.server.reactor, delay)
                continue
            try:
                result = await migrate(connection, deltas, apply=not self.server.config.no_migrate)
            except (psycopg2.OperationalError, psycopg2.InterfaceError) as e:
                if not connection.closed:
                    raise
                _log.warn(
                    "connection lost while migrating ({error}); retrying", error=str(e).strip()
                )
                await deferLater(self.server.reactor, delay)
                continue
            finally:
                if not connection.closed:
                    connection.close()
            _log.info(
                "schema at version {version} ({count} delta(s) applied now)",
                version=result.version,
                count=len(result.applied),
            )
            return

    async def _within_deadline(self, work: Deferred, what: str) -> None:
        """Wait for ``work`` until the drain's deadline; then give up on it, logged."""
        reactor = self.server.reactor
        remaining = max(0.0, self._drain_deadline - reactor.seconds())
        try:
            await work.addTimeout(remaining, reactor)
        except TimeoutError:
            _log.warn("{what} took longer than --shutdown-timeout; going on", what=what)

    def _failed(self, failure: Any) -> None:
        if not self.running:
            return
        if failure.check(MigrationError, NodeIdTaken):
            self.on_fatal(failure.getErrorMessage())
            return
        _log.failure("the database could not be prepared", failure)
        self.on_fatal(f"the database could not be prepared: {failure.getErrorMessage()}")

    def stopService(self) -> Deferred:
        super().stopService()
        return ensureDeferred(self._stop())

    async def _stop(self) -> None:
        reactor = self.server.reactor
        self._drain_deadline = (
            reactor.seconds() + self.server.config.shutdown_timeout.total_seconds()
        )
        if self.server.gateway is not None:
            _log.info("draining: closing WebSockets once their answers are written")
            await self._within_deadline(
                ensureDeferred(self.server.gateway.drain()), "closing the WebSockets"
            )
        if self.server.listener is not None:
            self.server.listener.stop()
        if self.server.poll_handler is not None:
            self.server.poll_handler.stop()
        if self.server.retro_handler is not None:
            self.server.retro_handler.stop()
        if self.server.shared_presence is not None:
            self.server.shared_presence.stop()
        if self.server.cluster_bus is not None:
            await self.server.cluster_bus.stop()
        if self.server.passwords is not None:
            self.server.passwords.stop()
        if self.server.database is not None:
            await self._within_deadline(
                ensureDeferred(self.server.database.drain()), "finishing database work"
            )
            self.server.database.close()
        redis = self.server.redis
        if redis is not None:
            await redis.stop()
        try:
            await self._starting
        except Exception:
            pass  # start-up errors were reported by _failed
        if self.embedded is not None:
            await deferToThread(self.embedded.stop)
