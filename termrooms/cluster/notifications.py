"""
What instances tell each other through PostgreSQL, on one session of each instance's
own (``--database-session-url``):

- ended sessions: the transaction that revokes a session NOTIFYs, and every instance
  closes the affected sockets;
- removals from rooms (kick, ban, leave, a deleted room) and, while Redis is away,
  hints that a room has new events;
- the node id: the session holds an advisory lock on it, so a second live instance with
  the same ``--node-id`` (which would mint colliding snowflake ids) refuses to start.
  The lock goes with the session, so a crashed instance's id is free again at once.

After a reconnection, when notifications may have been missed, ``on_missed`` runs.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Mapping

import attrs
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import deferLater
from twisted.logger import Logger

from termrooms.storage.database import DatabaseConnection, SessionRefused, connect_until_up

_log = Logger()

NODE_LOCK_CLASS = 0x7E4E  # the advisory-lock namespace of node ids ("termrooms node")
NODE_RETRY_SECONDS = 5.0


class NodeIdTaken(SessionRefused):
    """Another live instance holds this node id."""


@attrs.define(eq=False)
class Listener:
    reactor: Any
    dsn: str
    node_id: int
    handlers: Mapping[str, Callable[[str], Any]]  # channel -> called with each payload
    on_missed: Callable[[], Awaitable[Any]]
    connect_timeout: float = 5.0
    _connection: DatabaseConnection | None = attrs.field(default=None, init=False)
    _closed: bool = attrs.field(default=False, init=False)
    _listened_before: bool = attrs.field(default=False, init=False)

    def start(self) -> Deferred:
        """Fires once listening with the node id held; fails with NodeIdTaken."""
        return ensureDeferred(self._keep_listening())

    async def _keep_listening(self) -> None:
        while True:
            try:
                connection = await connect_until_up(
                    self.reactor, self.dsn, self.connect_timeout, lambda: self._closed, self._listen
                )
            except NodeIdTaken as e:
                if not self._listened_before:
                    raise
                # Our session died and another instance took the id meanwhile: two
                # instances now share it. Keep trying; the operator must stop one.
                _log.critical("{error}; will retry", error=str(e))
                await deferLater(self.reactor, NODE_RETRY_SECONDS)
                continue
            break
        if connection is None:
            return
        connection.on_lost = self._lost
        self._connection = connection
        if self._listened_before:
            await self.on_missed()
        self._listened_before = True

    async def _listen(self, connection: DatabaseConnection) -> None:
        rows = await connection.runQuery(
            "SELECT pg_try_advisory_lock(%s, %s)", (NODE_LOCK_CLASS, self.node_id)
        )
        if not rows[0][0]:
            raise NodeIdTaken(
                f"node id {self.node_id} is held by another live instance on this database;"
                " give each instance its own --node-id"
            )
        connection.addNotifyObserver(self._notified)
        for channel in self.handlers:
            await connection.runOperation(f"LISTEN {channel}")

    def _notified(self, notify: Any) -> None:
        handler = self.handlers.get(notify.channel)
        if handler is None:
            return
        try:
            handler(notify.payload)
        except (ValueError, KeyError, TypeError):
            _log.warn(
                "ignoring a malformed notification on {channel}: {payload!r}",
                channel=notify.channel,
                payload=notify.payload,
            )

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
