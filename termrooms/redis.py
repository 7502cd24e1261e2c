"""
The Redis connection. For now it carries the health probe; the multi-instance work puts
fan-out, presence and shared limits on the same client.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

import attrs
import txredisapi
from twisted.internet.defer import Deferred, succeed

from termrooms.deadline import with_deadline


class RedisUnavailable(Exception):
    """Redis did not answer in time."""


@attrs.frozen
class RedisAddress:
    """Where Redis is, parsed from ``redis://[user:password@]host[:port][/db]``."""

    host: str = "127.0.0.1"
    port: int = 6379
    unix_path: str | None = None
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False

    @classmethod
    def from_url(cls, url: str) -> "RedisAddress":
        parts = urlsplit(url)
        password = unquote(parts.password) if parts.password else None
        username = unquote(parts.username) if parts.username else None
        if parts.scheme == "unix":
            db = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p).get("db", "0")
            return cls(unix_path=parts.path, db=int(db), username=username, password=password)
        path = parts.path.strip("/")
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 6379,
            db=int(path) if path else 0,
            username=username,
            password=password,
            tls=parts.scheme == "rediss",
        )


@attrs.define(eq=False)
class RedisClient:
    """A lazily connecting, self-reconnecting Redis command connection."""

    reactor: Any
    address: RedisAddress
    _connection: Any = attrs.field(default=None, init=False)

    def start(self) -> None:
        common = dict(
            dbid=self.address.db,
            reconnect=True,
            password=self.address.password,
            username=self.address.username,
            replyTimeout=5,
        )
        if self.address.unix_path:
            self._connection = txredisapi.lazyUnixConnection(self.address.unix_path, **common)
        else:
            self._connection = txredisapi.lazyConnection(
                self.address.host,
                self.address.port,
                connectTimeout=5,
                ssl_context_factory=self.address.tls,
                **common,
            )

    def probe(self, timeout: float) -> Deferred:
        """PING within ``timeout`` seconds: fires True, or False when Redis is away."""
        if self._connection is None:
            return succeed(False)
        d = with_deadline(
            self._connection.ping(),
            timeout,
            self.reactor,
            lambda: RedisUnavailable("Redis did not answer PING in time"),
        )
        return d.addCallbacks(lambda reply: reply == "PONG", lambda _: False)

    def stop(self) -> Deferred:
        if self._connection is None:
            return succeed(None)
        connection, self._connection = self._connection, None
        return connection.disconnect()
