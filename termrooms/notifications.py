"""
Ended sessions reach every instance through PostgreSQL: the transaction that revokes a
session NOTIFYs, and each instance LISTENs on a connection of its own and closes the
affected sockets. After a reconnection, when notifications may have been missed, every
open socket's session is checked again.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

import attrs
from twisted.internet.defer import ensureDeferred
from twisted.logger import Logger

from termrooms.database import DatabaseConnection, connect_until_up
from termrooms.store.sessions import SESSIONS_ENDED_CHANNEL, SessionsEnded

_log = Logger()


@attrs.define(eq=False)
class SessionEndListener:
    reactor: Any
    dsn: str
    on_ended: Callable[[SessionsEnded], Any]
    on_missed: Callable[[], Awaitable[Any]]
    connect_timeout: float = 5.0
    _connection: DatabaseConnection | None = attrs.field(default=None, init=False)
    _closed: bool = attrs.field(default=False, init=False)
    _listened_before: bool = attrs.field(default=False, init=False)

    def start(self) -> None:
        ensureDeferred(self._keep_listening())

    async def _keep_listening(self) -> None:
        connection = await connect_until_up(
            self.reactor, self.dsn, self.connect_timeout, lambda: self._closed, self._listen
        )
        if connection is None:
            return
        connection.on_lost = self._lost
        self._connection = connection
        if self._listened_before:
            await self.on_missed()
        self._listened_before = True

    async def _listen(self, connection: DatabaseConnection) -> None:
        connection.addNotifyObserver(self._notified)
        await connection.runOperation(f"LISTEN {SESSIONS_ENDED_CHANNEL}")

    def _notified(self, notify: Any) -> None:
        try:
            ended = SessionsEnded.from_payload(notify.payload)
        except (ValueError, KeyError, TypeError):
            _log.warn(
                "ignoring a malformed session notification {payload!r}", payload=notify.payload
            )
            return
        self.on_ended(ended)

    def _lost(self, connection: DatabaseConnection) -> None:
        connection.on_lost = None
        connection.close()
        self._connection = None
        if not self._closed:
            ensureDeferred(self._keep_listening())

    def stop(self) -> None:
        self._closed = True
        if self._connection is not None:
            self._connection.on_lost = None
            self._connection.close()
            self._connection = None
