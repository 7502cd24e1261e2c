"""
Group commit for messages: sends to one room that arrive while the room's previous
batch is being committed wait and go together in the next transaction. Under light
load every batch holds one message and nothing waits; under heavy load one commit (one
fsync) stores many, which is what lets a busy room go faster than its disk syncs.
Messages of one room are stored in arrival order either way, each batch by one statement
(one round trip, see post_messages_txn).
"""

from __future__ import annotations

import attrs
from psycopg2.errors import UniqueViolation
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.logger import Logger

from termrooms.database import Database
from termrooms.events import RoomEvent
from termrooms.store.rooms import Draft, post_messages_txn

_log = Logger()
MAX_BATCH = 200


@attrs.define(eq=False)
class RoomWriter:
    database: Database
    _waiting: dict[int, list[tuple[Draft, Deferred]]] = attrs.field(factory=dict, init=False)

    def post(self, room_id: int, draft: Draft) -> Deferred:
        """Fires with (event, is new) once the message (or its original) is committed."""
        done: Deferred = Deferred()
        queue = self._waiting.get(room_id)
        if queue is None:
            self._waiting[room_id] = [(draft, done)]
            ensureDeferred(self._write(room_id))
        else:
            queue.append((draft, done))
        return done

    async def _write(self, room_id: int) -> None:
        """Commit what waits for the room, a batch at a time, until nothing does."""
        while True:
            queue = self._waiting[room_id]
            batch, self._waiting[room_id] = queue[:MAX_BATCH], queue[MAX_BATCH:]
            await self._commit(room_id, batch)
            # Anything that arrived during the commit is already queued for the next one.
            if not self._waiting[room_id]:
                del self._waiting[room_id]
                return

    async def _commit(self, room_id: int, batch: list[tuple[Draft, Deferred]]) -> None:
        drafts = [draft for draft, _ in batch]
        try:
            results = await self._store(room_id, drafts)
        except Exception:
            if len(batch) == 1:
                batch[0][1].errback()
                return
            # One bad message must not fail the others: store them one by one.
            for single in batch:
                await self._commit(room_id, [single])
            return
        for (_, done), result in zip(batch, results, strict=True):
            done.callback(result)

    async def _store(self, room_id: int, drafts: list[Draft]) -> list[tuple[RoomEvent, bool]]:
        try:
            return await self.database.run_autocommit(post_messages_txn, room_id, drafts)
        except UniqueViolation:
            # A retry stored by another instance after this statement's snapshot: the
            # statement again, with a new snapshot, finds it and answers with the original.
            return await self.database.run_autocommit(post_messages_txn, room_id, drafts)
