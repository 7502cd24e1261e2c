"""
The two Redis connections of an instance (STYLE §4): one for commands and PUBLISH, one
that only subscribes. Each reconnects by itself with backoff; the rest of the daemon
asks ``connected`` and goes to PostgreSQL instead while it is False.

Pub/sub channels are not scoped by Redis's db number, so every channel name carries the
db number (``termrooms:{db}:``): two deployments, or a test, on one Redis with different
db numbers do not hear each other.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable
from urllib.parse import unquote, urlsplit

import attrs
import txredisapi
from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import HostnameEndpoint, UNIXClientEndpoint, wrapClientTLS
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.ssl import optionsForClientTLS
from twisted.logger import Logger

from termrooms.operations.deadline import with_deadline

_log = Logger()

CONNECT_TIMEOUT_SECONDS = 5
REPLY_TIMEOUT_SECONDS = 5
RECONNECT_MAX_DELAY_SECONDS = 2.0  # txredisapi's default of 10 s would stretch an outage


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

    @property
    def namespace(self) -> str:
        """The prefix of this deployment's channel names (see the module docstring)."""
        return f"termrooms:{self.db}:"

    def endpoint(self, reactor: Any) -> IStreamClientEndpoint:
        if self.unix_path:
            return UNIXClientEndpoint(reactor, self.unix_path, timeout=CONNECT_TIMEOUT_SECONDS)
        tcp = HostnameEndpoint(reactor, self.host, self.port, CONNECT_TIMEOUT_SECONDS)
        if self.tls:
            return wrapClientTLS(optionsForClientTLS(self.host), tcp)
        return tcp


def _connected(factory: Any) -> bool:
    return factory is not None and factory.size > 0


@attrs.define(eq=False)
class RedisClient:
    """The command connection: lazily connecting, reconnecting by itself."""

    reactor: Any
    address: RedisAddress
    _connection: Any = attrs.field(default=None, init=False)

    def start(self) -> None:
        common = dict(
            dbid=self.address.db,
            reconnect=True,
            password=self.address.password,
            username=self.address.username,
            replyTimeout=REPLY_TIMEOUT_SECONDS,
        )
        if self.address.unix_path:
            self._connection = txredisapi.lazyUnixConnection(self.address.unix_path, **common)
        else:
            self._connection = txredisapi.lazyConnection(
                self.address.host,
                self.address.port,
                connectTimeout=CONNECT_TIMEOUT_SECONDS,
                ssl_context_factory=self.address.tls,
                **common,
            )
        self._connection._factory.maxDelay = RECONNECT_MAX_DELAY_SECONDS

    @property
    def connected(self) -> bool:
        """True while the connection is up; commands sent otherwise would only queue."""
        return self._connection is not None and _connected(self._connection._factory)

    def publish(self, channel: bytes, message: bytes) -> Deferred:
        return self._connection.publish(channel, message)

    def eval(self, script: str, keys: Iterable[Any], args: Iterable[Any]) -> Deferred:
        """Run a Lua script (by its hash once Redis knows it)."""
        return self._connection.eval(script, list(keys), list(args))

    def probe(self, timeout: float) -> Deferred:
        """PING within ``timeout`` seconds: fires True, or False when Redis is away."""
        if not self.connected:
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


class _ChannelProtocol(txredisapi.SubscriberProtocol):
    factory: "_ChannelFactory"

    def messageReceived(self, pattern: Any, channel: bytes, message: bytes) -> None:
        self.factory.owner.on_message(channel, message)


class _ChannelFactory(txredisapi.SubscriberFactory):
    protocol = _ChannelProtocol

    def __init__(self, owner: "Subscription", address: RedisAddress) -> None:
        super().__init__()
        self.owner = owner
        self.charset = None  # payloads stay bytes, exactly as published
        self.password = address.password
        self.username = address.username
        self.maxDelay = RECONNECT_MAX_DELAY_SECONDS

    def addConnection(self, connection: Any) -> None:
        super().addConnection(connection)
        if connection.connected:
            self.owner.ready(connection)

    def delConnection(self, connection: Any) -> None:
        super().delConnection(connection)
        self.owner.lost()


@attrs.define(eq=False)
class Subscription:
    """
    The subscribing connection: holds the set of channels wanted, subscribes them all
    again after each reconnection, then calls ``on_ready`` so its owner can catch up on
    what was published while it was away.
    """

    reactor: Any
    address: RedisAddress
    on_message: Callable[[bytes, bytes], None]
    on_ready: Callable[[], None]
    channels: set[bytes] = attrs.field(factory=set, init=False)
    _factory: Any = attrs.field(default=None, init=False)
    _protocol: Any = attrs.field(default=None, init=False)

    def start(self) -> None:
        self._factory = _ChannelFactory(self, self.address)
        self._factory.startConnecting(self.address.endpoint(self.reactor))

    @property
    def connected(self) -> bool:
        return self._protocol is not None

    def ready(self, protocol: Any) -> None:
        self._protocol = protocol
        _log.info("subscribed to Redis ({count} channel(s))", count=len(self.channels))
        if self.channels:
            self._command(protocol.subscribe, list(self.channels))
        self.on_ready()

    def lost(self) -> None:
        if self._protocol is not None:
            _log.warn("lost the Redis subscription; PostgreSQL carries events meanwhile")
        self._protocol = None

    def add(self, channel: bytes) -> None:
        self.channels.add(channel)
        if self._protocol is not None:
            self._command(self._protocol.subscribe, [channel])

    def remove(self, channel: bytes) -> None:
        self.channels.discard(channel)
        if self._protocol is not None:
            self._command(self._protocol.unsubscribe, [channel])

    @staticmethod
    def _command(method: Callable[[list[bytes]], Deferred], channels: list[bytes]) -> None:
        # A failure means the connection went away; ready() subscribes everything again.
        method(channels).addErrback(lambda failure: None)

    def stop(self) -> Deferred:
        if self._factory is None:
            return succeed(None)
        factory, self._factory = self._factory, None
        self._protocol = None
        return factory.disconnect()
