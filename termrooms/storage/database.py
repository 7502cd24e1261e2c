"""
PostgreSQL access: a pool of txpostgres connections that reconnect by themselves.

The pool never lets a caller hang on a database that is away: a call made while no
connection is alive fails at once with :class:`DatabaseUnavailable` (the HTTP layer
answers 503 with Retry-After), and a connection that dies is closed and reconnected in
the background with capped, jittered backoff.

Store modules run their work through :meth:`Database.run_interaction` with an
``async def _<verb>_txn(cursor, ...)`` function: one transaction per call.
"""

from __future__ import annotations

import random
import select
import time
from collections import deque
from typing import Any, Awaitable, Callable, Coroutine, Iterator, Sequence, TypeVar

import attrs
import psycopg2
from psycopg2.extensions import POLL_OK, POLL_READ, POLL_WRITE
from twisted.internet.defer import Deferred, ensureDeferred, succeed
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from txpostgres import txpostgres

from termrooms.domain.errors import DatabaseUnavailable
from termrooms.operations.deadline import with_deadline
from termrooms.operations.metrics import Histogram

_log = Logger()
T = TypeVar("T")

# Keepalives make libpq notice a silently vanished server within about 11 s.
_CONNECT_KWARGS: dict[str, Any] = {
    "application_name": "termrooms",
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
}
# SQLSTATEs of a server that cannot do the work now but will later: insufficient
# resources (disk full, out of memory, too many connections: class 53), shutting down or
# starting up (57P01-57P03), an I/O error (58030). Callers get DatabaseUnavailable (503,
# retry), not an internal error.
_UNAVAILABLE_SQLSTATES = ("53", "57P01", "57P02", "57P03", "58030")
REFUSAL_LOG_SECONDS = 10.0  # one warning per this long while the server refuses work
DRAIN_POLL_SECONDS = 0.01
_POLL_EVENTS = {POLL_READ: select.POLLIN, POLL_WRITE: select.POLLOUT}


class SessionRefused(Exception):
    """A connection's preparation found a reason that retrying will not cure."""


def backoff_delays(initial: float = 0.5, maximum: float = 5.0) -> Iterator[float]:
    """Reconnect delays: doubling from ``initial`` up to ``maximum``, each jittered ±20%."""
    delay = initial
    while True:
        yield delay * random.uniform(0.8, 1.2)
        delay = min(delay * 2, maximum)


def open_async_connection(dsn: str, timeout: float) -> Any:
    """
    Open a psycopg2 asynchronous connection, blocking (run it in a thread).

    libpq may close and reopen its socket while it connects (one address after
    another, or on failure); done on the reactor, the reactor would be left watching a
    descriptor that libpq already closed. Done here with select(), the reactor only
    ever sees the socket of a connection that is up.
    """
    connection = psycopg2.connect(dsn, async_=True, **_CONNECT_KWARGS)
    deadline = time.monotonic() + timeout
    try:
        while True:
            state = connection.poll()
            if state == POLL_OK:
                return connection
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DatabaseUnavailable(f"connecting to PostgreSQL took over {timeout:g} s")
            if state not in _POLL_EVENTS:
                raise psycopg2.OperationalError(f"unexpected poll state {state}")
            # poll(), not select(): with thousands of WebSockets open, the socket's
            # number is beyond what select() can watch.
            waiter = select.poll()
            waiter.register(connection.fileno(), _POLL_EVENTS[state])
            waiter.poll(remaining * 1000)
    except BaseException:
        connection.close()
        raise


class _Cursor(txpostgres.Cursor):
    def fileno(self) -> int:
        return self._connection.fileno()

    def execute(self, query: str, params: Any = None) -> Deferred:
        # txpostgres rolls a failed interaction back and logs a failed rollback as an
        # unhandled error. On a lost connection there is nothing to roll back (the server
        # ended the transaction with the session) and the pool reports the loss itself.
        if query == "rollback" and self._connection.lost:
            return succeed(None)
        return super().execute(query, params)


class DatabaseConnection(txpostgres.Connection):
    """
    A txpostgres connection that is opened in a thread (see open_async_connection),
    tells its pool when it is lost, and always names its socket to the reactor by the
    number it was registered under: once libpq marks the connection broken txpostgres
    says -1, and the epoll reactor cannot unregister a -1.
    """

    cursorFactory = _Cursor
    on_lost: Callable[["DatabaseConnection"], None] | None = None
    _fd: int = -1

    def open(self, dsn: str, timeout: float) -> Deferred:
        """Connect, in a thread; fires with this connection once it is up."""

        def adopt(raw: Any) -> "DatabaseConnection":
            self._connection = raw
            self._fd = raw.fileno()
            self.reactor.addReader(self)  # as txpostgres does: NOTIFY arrives any time
            return self

        pool = self.reactor.getThreadPool()
        return deferToThreadPool(
            self.reactor, pool, open_async_connection, dsn, timeout
        ).addCallback(adopt)

    def fileno(self) -> int:
        return self._fd

    def runAutocommit(
        self, interaction: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any
    ) -> Deferred:
        """``interaction`` on a cursor in autocommit mode (see Database.run_autocommit)."""
        return self._doit(_awaiting_interaction, self.cursor(), interaction, *args, **kwargs)

    @property
    def lost(self) -> bool:
        """The session is gone: closed by us, by the server, or by the network."""
        return self._connection is None or bool(self._connection.closed)

    def doRead(self) -> None:
        # An idle connection whose server went away raises out of doRead, which the
        # reactor would log as an unhandled error: report it as the loss it is.
        try:
            super().doRead()
        except psycopg2.Error:
            self.connectionLost(Failure())

    def connectionLost(self, reason: Failure) -> None:
        super().connectionLost(reason)
        if self.on_lost is not None:
            self.on_lost(self)

    def close(self) -> None:
        if self._connection is not None:
            super().close()
        self._fd = -1


@attrs.define(eq=False)
class Database:
    """A self-healing pool of ``size`` PostgreSQL connections."""

    reactor: Any
    dsn: str
    size: int = 10
    connect_timeout: float = 5.0
    acquire_timeout: float = 5.0
    _idle: deque[DatabaseConnection] = attrs.field(factory=deque, init=False)
    _alive: set[DatabaseConnection] = attrs.field(factory=set, init=False)
    _waiters: deque[Deferred] = attrs.field(factory=deque, init=False)
    _closed: bool = attrs.field(default=False, init=False)
    _connected_waiters: list[Deferred] = attrs.field(factory=list, init=False)
    _in_use: int = attrs.field(default=0, init=False)  # calls holding or awaiting a connection
    waits: int = attrs.field(default=0, init=False)  # calls that found every connection busy
    _refusal_logged_at: float = attrs.field(default=float("-inf"), init=False)
    query_seconds: Histogram = attrs.field(factory=Histogram, init=False)

    @property
    def connected(self) -> bool:
        """True while at least one connection is up."""
        return bool(self._alive)

    @property
    def size_up(self) -> int:
        return len(self._alive)

    @property
    def in_use(self) -> int:
        return len(self._alive) - len(self._idle)

    @property
    def waiting(self) -> int:
        return sum(1 for waiter in self._waiters if not waiter.called)

    def start(self) -> Deferred:
        """Open the pool; fires once the first connection is up (retrying until then)."""
        for _ in range(self.size):
            ensureDeferred(self._keep_connected())
        return self.when_connected()

    def when_connected(self) -> Deferred:
        """Fires once at least one connection is up."""
        if self._alive:
            return succeed(None)
        d: Deferred = Deferred()
        self._connected_waiters.append(d)
        return d

    async def _keep_connected(self) -> None:
        """Connect one slot, retrying with backoff until connected or closed."""
        connection = await connect_until_up(
            self.reactor, self.dsn, self.connect_timeout, lambda: self._closed
        )
        if connection is None:
            return
        connection.on_lost = self._connection_lost
        self._alive.add(connection)
        self._release(connection)
        waiters, self._connected_waiters = self._connected_waiters, []
        for waiter in waiters:
            waiter.callback(None)

    def _connection_lost(self, connection: DatabaseConnection) -> None:
        if connection not in self._alive:
            return
        self._alive.discard(connection)
        connection.on_lost = None
        _safe_close(connection)
        try:
            self._idle.remove(connection)
        except ValueError:
            pass  # it was checked out; _run sees the failure and does not put it back
        if not self._alive:
            _log.warn("lost every PostgreSQL connection; reconnecting")
        if not self._closed:
            ensureDeferred(self._keep_connected())

    def _acquire(self) -> Deferred:
        while self._idle:
            connection = self._idle.popleft()
            if connection in self._alive and not connection.closed:
                return succeed(connection)
        if not self._alive:
            raise DatabaseUnavailable("PostgreSQL is not reachable")
        waiter: Deferred = Deferred()
        self._waiters.append(waiter)
        self.waits += 1
        timer = self.reactor.callLater(self.acquire_timeout, self._give_up, waiter)
        return waiter.addBoth(_cancel_timer, timer)

    def _give_up(self, waiter: Deferred) -> None:
        """A caller waited acquire_timeout for a connection: 503 rather than wait on."""
        # Left in the queue for _release to skip: removing it would cost a scan of the
        # queue, for each of thousands of waiters timing out under overload.
        waiter.errback(DatabaseUnavailable("every database connection stayed busy"))

    def _release(self, connection: DatabaseConnection) -> None:
        if connection not in self._alive or connection.closed:
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.called:  # else it gave up waiting
                waiter.callback(connection)
                return
        self._idle.append(connection)

    async def _run(self, method: str, *args: Any, **kwargs: Any) -> Any:
        self._in_use += 1
        try:
            return await self._run_on_a_connection(method, *args, **kwargs)
        finally:
            self._in_use -= 1

    async def _run_on_a_connection(self, method: str, *args: Any, **kwargs: Any) -> Any:
        connection = await self._acquire()
        started = time.monotonic()
        try:
            return await getattr(connection, method)(*args, **kwargs)
        except (psycopg2.OperationalError, psycopg2.InterfaceError) as e:
            if connection.closed:
                self._connection_lost(connection)
                raise DatabaseUnavailable(f"PostgreSQL connection lost: {_one_line(e)}") from e
            if (getattr(e, "pgcode", None) or "").startswith(_UNAVAILABLE_SQLSTATES):
                self._log_refusal(e)
                raise DatabaseUnavailable(f"PostgreSQL refused: {_one_line(e)}") from e
            raise
        except txpostgres.RollbackFailed as e:
            self._connection_lost(connection)
            raise DatabaseUnavailable("PostgreSQL connection lost during rollback") from e
        finally:
            self.query_seconds.observe(time.monotonic() - started)
            self._release(connection)

    def _log_refusal(self, error: psycopg2.Error) -> None:
        """Tell the operator (disk full...), without a line for every refused call."""
        now = self.reactor.seconds()
        if now - self._refusal_logged_at >= REFUSAL_LOG_SECONDS:
            self._refusal_logged_at = now
            _log.warn(
                "PostgreSQL refuses work ({error}, SQLSTATE {code}); answering 503 unavailable",
                error=_one_line(error),
                code=error.pgcode,
            )

    def run_interaction(
        self,
        interaction: Callable[..., Coroutine[Any, Any, T]],
        *args: Any,
        **kwargs: Any,
    ) -> Deferred:
        """Run ``await interaction(cursor, *args, **kwargs)`` in one transaction."""
        return ensureDeferred(
            self._run("runInteraction", _awaiting_interaction, interaction, *args, **kwargs)
        )

    def run_autocommit(
        self,
        interaction: Callable[..., Coroutine[Any, Any, T]],
        *args: Any,
        **kwargs: Any,
    ) -> Deferred:
        """
        Run ``await interaction(cursor, *args, **kwargs)`` outside a transaction block:
        each statement is its own transaction. For reads (under READ COMMITTED each
        statement takes its own snapshot inside a transaction too) and for a write that
        is a single statement, a BEGIN and a COMMIT would add two round trips and nothing
        else.
        """
        return ensureDeferred(self._run("runAutocommit", interaction, *args, **kwargs))

    def run_query(self, sql: str, params: Sequence[Any] | None = None) -> Deferred:
        """Run one statement outside an explicit transaction; fires with all rows."""
        return ensureDeferred(self._run("runQuery", sql, params))

    def probe(self, timeout: float) -> Deferred:
        """``SELECT 1`` within ``timeout`` seconds: fires True, or False when unreachable."""
        if not self._alive:
            return succeed(False)
        d = with_deadline(
            self.run_query("SELECT 1"),
            timeout,
            self.reactor,
            lambda: DatabaseUnavailable("the health probe timed out"),
        )
        return d.addCallbacks(lambda _: True, lambda _: False)

    async def drain(self) -> None:
        """Fires once no call is running or waiting: closing then cuts no query short."""
        # Polled, not signalled: a finished call's caller often starts the next one
        # (the group-commit writer's next batch) in the same turn of the reactor.
        while self._in_use:
            await deferLater(self.reactor, DRAIN_POLL_SECONDS)

    def close(self) -> None:
        """Close every connection and stop reconnecting."""
        self._closed = True
        waiters, self._connected_waiters = self._connected_waiters, []
        for waiter in waiters:
            waiter.errback(DatabaseUnavailable("the database pool is closed"))
        waiting, self._waiters = self._waiters, deque()
        for waiter in waiting:
            if not waiter.called:
                waiter.errback(DatabaseUnavailable("the database pool is closed"))
        for connection in list(self._alive):
            connection.on_lost = None
            _safe_close(connection)
        self._alive.clear()
        self._idle.clear()


async def connect_until_up(
    reactor: Any,
    dsn: str,
    timeout: float,
    stopped: Callable[[], bool],
    prepare: Callable[[DatabaseConnection], Awaitable[Any]] | None = None,
) -> DatabaseConnection | None:
    """
    A connection (``prepare``d, e.g. with LISTEN), retrying with capped, jittered
    backoff for as long as it takes; None once ``stopped()`` says to give up.
    """
    for delay in backoff_delays():
        if stopped():
            return None
        connection = DatabaseConnection(reactor=reactor)
        try:
            await connection.open(dsn, timeout)
            if prepare is not None:
                await prepare(connection)
        except SessionRefused:
            _safe_close(connection)
            raise
        except Exception as e:
            _safe_close(connection)
            _log.warn(
                "PostgreSQL connection failed ({error}); retrying in {delay:.1f} s",
                error=_one_line(e),
                delay=delay,
            )
            await deferLater(reactor, delay)
            continue
        if stopped():
            _safe_close(connection)
            return None
        return connection
    return None  # backoff_delays never ends; this satisfies type checkers


async def connect_one(reactor: Any, dsn: str, timeout: float = 10.0) -> txpostgres.Connection:
    """A single connection for work that needs a session of its own (migrations)."""
    return await DatabaseConnection(reactor=reactor).open(dsn, timeout)


def run_in_transaction(
    connection: txpostgres.Connection,
    interaction: Callable[..., Coroutine[Any, Any, T]],
    *args: Any,
    **kwargs: Any,
) -> Deferred:
    """Like Database.run_interaction, on a connection of the caller's own."""
    return connection.runInteraction(_awaiting_interaction, interaction, *args, **kwargs)


def _awaiting_interaction(
    cursor: Any, interaction: Callable[..., Coroutine[Any, Any, T]], *args: Any, **kwargs: Any
) -> Deferred:
    # txpostgres waits on a returned Deferred, not on a coroutine.
    return ensureDeferred(interaction(cursor, *args, **kwargs))


def _cancel_timer(result: Any, timer: Any) -> Any:
    if timer.active():
        timer.cancel()
    return result


def _safe_close(connection: txpostgres.Connection) -> None:
    try:
        connection.close()
    except Exception:
        pass  # already broken; nothing more to release


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
