"""
Group commit for messages, across rooms: every room belongs to one of LANES lanes, and
the messages that arrive while a lane's previous batch is being committed wait and go
together, whatever their rooms, in the lane's next statement (one round trip and one
commit, see post_messages_txn). Under light load every batch holds one message and
nothing waits; under heavy load one commit (one fsync) stores many, which is what lets
the daemon go faster than its disk syncs: one commit per message held PostgreSQL here
to about 900 messages/s, for termrooms and for the Node.js peers alike. A room is only
ever in one batch at a time, so its messages are stored in arrival order.
"""

from __future__ import annotations

import attrs
from psycopg2.errors import DeadlockDetected, UniqueViolation
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.logger import Logger

from termrooms.domain.events import RoomEvent
from termrooms.storage.database import Database
from termrooms.storage.rooms import Draft, post_messages_txn

_log = Logger()
MAX_BATCH = 500
# Statements in flight at once: enough to keep a few of the pool's connections busy,
# while each batch still gathers what arrived during the last one.
LANES = 4

Waiting = tuple[int, Draft, Deferred]


@attrs.define(eq=False)
class RoomWriter:
    database: Database
    _waiting: dict[int, list[Waiting]] = attrs.field(factory=dict, init=False)

    def post(self, room_id: int, draft: Draft) -> Deferred:
        """Fires with (event, is new) once the message (or its original) is committed."""
        done: Deferred = Deferred()
        lane = room_id % LANES
        queue = self._waiting.get(lane)
        if queue is None:
            self._waiting[lane] = [(room_id, draft, done)]
            ensureDeferred(self._write(lane))
        else:
            queue.append((room_id, draft, done))
        return done

    async def _write(self, lane: int) -> None:
        """Commit what waits in the lane, a batch at a time, until nothing does."""
        while True:
            queue = self._waiting[lane]
            batch, self._waiting[lane] = queue[:MAX_BATCH], queue[MAX_BATCH:]
            await self._commit(batch)
            # Anything that arrived during the commit is already queued for the next one.
            if not self._waiting[lane]:
                del self._waiting[lane]
                return

    async def _commit(self, batch: list[Waiting]) -> None:
        messages = [(room_id, draft) for room_id, draft, _ in batch]
        try:
            results = await self._store(messages)
        except Exception:
            if len(batch) == 1:
                batch[0][2].errback()
                return
            # One bad message must not fail the others: store them one by one.
            for single in batch:
                await self._commit([single])
            return
        for (_, _, done), result in zip(batch, results, strict=True):
            done.callback(result)

    async def _store(self, messages: list[tuple[int, Draft]]) -> list[tuple[RoomEvent, bool]]:
        try:
            return await self.database.run_autocommit(post_messages_txn, messages)
        except (UniqueViolation, DeadlockDetected):
            # A retry stored by another instance after this statement's snapshot: the
            # statement again, with a new snapshot, finds it and answers with the
            # original. Or another instance's batch locked two of these rooms in the
            # other order, and PostgreSQL chose this statement to give way.
            return await self.database.run_autocommit(post_messages_txn, messages)
