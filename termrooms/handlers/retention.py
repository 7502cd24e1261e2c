"""
Running retention: one pass deletes batch after batch under a session-level advisory lock,
so however many instances (and ``termrooms retention`` runs) try at once, one does the work.

The lock belongs to a connection opened for the pass on the session URL
(``--database-session-url``): a pool connection behind a transaction-mode PgBouncer is
not one session, and a lock taken there could be held by, or released for, someone else.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable

from twisted.application.internet import TimerService
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger

from termrooms.domain.retention import (
    PassReport,
    RetentionPolicy,
    cutoffs,
    expired_purge_due,
    zero_counts,
)
from termrooms.storage.database import connect_one, run_in_transaction
from termrooms.storage.retention import (
    count_due_txn,
    last_expired_purge_txn,
    record_pass_txn,
    remove_batch_txn,
    try_lock,
    unlock,
)

_log = Logger()
SCHEMA_WAIT_SECONDS = 0.5


async def dry_run(connection: Any, policy: RetentionPolicy, now: datetime) -> PassReport:
    """What a full pass (expired rows included) would remove now; removes nothing."""
    due = cutoffs(policy, now, purge_expired=True)
    counts = await run_in_transaction(connection, count_due_txn, due)
    return PassReport(counts, due, dry_run=True)


async def run_pass(
    connection: Any,
    policy: RetentionPolicy,
    now: datetime,
    *,
    purge_expired: bool | None = None,
    stopping: Callable[[], bool] = lambda: False,
) -> PassReport | None:
    """
    One pass on ``connection`` (a session of its own); None when another session holds
    the lock. ``purge_expired`` None: when the daily purge is due. ``stopping()`` true
    ends the pass between two batches.
    """
    if not await try_lock(connection):
        return None
    try:
        if purge_expired is None:
            last_purge = await run_in_transaction(connection, last_expired_purge_txn)
            purge_expired = expired_purge_due(last_purge, now)
        due = cutoffs(policy, now, purge_expired=purge_expired)
        counts = zero_counts()
        complete = True
        for kind, cutoff in due.items():
            if kind == "sessions":
                continue  # they go with their refresh tokens
            while True:
                if stopping():
                    complete = False
                    break
                removed, full = await run_in_transaction(
                    connection, remove_batch_txn, kind, cutoff, policy.batch_size
                )
                for removed_kind, count in removed.items():
                    counts[removed_kind] += count
                if not full:
                    break
        report = PassReport(counts, due, complete=complete)
        if report.worth_an_audit_row():
            await run_in_transaction(connection, record_pass_txn, report.audit_data())
        return report
    finally:
        if not connection.closed:
            await unlock(connection)


class RetentionService(TimerService):
    """A pass every ``interval`` seconds, once the schema is ready; stops between batches."""

    def __init__(self, server: Any, interval: float) -> None:
        super().__init__(interval, self._tick)
        self.server = server
        self.reactor: IReactorTime = server.reactor
        self.clock = self.reactor  # TimerService ticks its LoopingCall on it
        self._stopping = False

    def _tick(self) -> Deferred:
        d = ensureDeferred(self.run_once())
        d.addErrback(lambda f: _log.failure("retention pass failed", f))
        return d

    async def run_once(self) -> PassReport | None:
        """One scheduled pass; None when another instance ran it or the daemon stopped."""
        server = self.server
        while not server.schema_ready:
            if self._stopping:
                return None
            await deferLater(self.reactor, SCHEMA_WAIT_SECONDS)
        policy = RetentionPolicy.from_config(server.config)
        connection = await connect_one(self.reactor, server.session_database_url)
        try:
            now = datetime.fromtimestamp(self.reactor.seconds(), timezone.utc)
            report = await run_pass(connection, policy, now, stopping=lambda: self._stopping)
        finally:
            connection.close()
        if report is None:
            _log.info("retention: another instance is running a pass; skipped")
        else:
            _log.info(
                "retention removed {total} row(s): {counts}",
                total=report.total,
                counts=dict(report.counts),
            )
        return report

    def startService(self) -> None:
        self._stopping = False
        super().startService()

    def stopService(self) -> Deferred:
        self._stopping = True
        return super().stopService()
