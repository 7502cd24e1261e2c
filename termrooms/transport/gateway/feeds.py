"""A room's stored events to one connection: exactly once, in seq order, across a
replay from PostgreSQL and the live events that overtake it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import deferLater

from termrooms.domain.events import event_json, history_truncated_frame

if TYPE_CHECKING:
    from termrooms.transport.gateway.protocol import GatewayProtocol

REPLAY_PAGE = 200  # events read from PostgreSQL at a time when catching a client up
# How long a seq gap may wait for the bus before this socket reads it from PostgreSQL;
# longer than the cluster bus's own grace, so one read per instance fills a gap, not one
# per socket.
REFILL_DELAY_SECONDS = 0.25


@attrs.define(eq=False)
class RoomFeed:
    """
    One connection's view of one room: stored events go out exactly once and in seq
    order. Live events that arrive early (during a replay, or ahead of a missing seq) wait
    in ``pending``; a gap that the bus does not fill soon is read from PostgreSQL.
    """

    connection: GatewayProtocol
    room_id: int
    room_name: str
    next_seq: int = 1
    catching_up: bool = True
    pending: dict[int, Any] = attrs.field(factory=dict)
    refilling: bool = False
    announced: bool = False  # counted in the room's presence
    leave_after: int | None = None  # unsubscribe once this seq has gone out
    left: bool = False  # it has: nothing more goes out

    def _sent_upto(self) -> None:
        if self.leave_after is not None and self.next_seq > self.leave_after and not self.left:
            self.left = True
            self.pending.clear()
            # Not from inside the publish that delivered the removing event: the others
            # must get that event before the offline presence frame this leave sends.
            self.connection.factory.clock.callLater(
                0, self.connection.leave_room, self.room_id, self.leave_after
            )

    def offer(self, seq: int, prepared: Any) -> None:
        if seq < self.next_seq or self.left:
            return  # seen already, or no longer ours
        if self.catching_up or seq > self.next_seq:
            self.pending[seq] = prepared
            if not self.catching_up:
                self._schedule_refill()
            return
        self.connection.sendPreparedMessage(prepared)
        self.next_seq += 1
        if self.pending or self.leave_after is not None:
            self._drain()

    def _drain(self) -> None:
        while self.next_seq in self.pending:
            self.connection.sendPreparedMessage(self.pending.pop(self.next_seq))
            self.next_seq += 1
        for stale in [s for s in self.pending if s < self.next_seq]:
            del self.pending[stale]
        self._sent_upto()

    async def replay_from(self, since: int, last_seq: int) -> None:
        """Every event after ``since`` up to ``last_seq``, a page at a time."""
        rooms = self.connection.factory.rooms()
        self.next_seq = since + 1
        while self.next_seq <= last_seq:
            page = await rooms.events_after(self.room_id, self.next_seq - 1, REPLAY_PAGE)
            if not page:
                # Retention removed every event up to last_seq: say so, and go on from
                # the next one (left at a removed seq, the feed would wait for it forever).
                self.connection.send_frame(history_truncated_frame(self.room_name, last_seq + 1))
                self.next_seq = last_seq + 1
                break
            if page[0].seq > self.next_seq:
                self.connection.send_frame(history_truncated_frame(self.room_name, page[0].seq))
            for event in page:
                self.connection.send_frame(event_json(event))
                self.next_seq = event.seq + 1
            await self._until_sent()

    async def _until_sent(self) -> None:
        """Let a long replay go out page by page instead of piling up in memory."""
        connection = self.connection
        limit = connection.factory.slow_consumer_bytes // 2
        while connection._unsent_bytes() > limit and connection.state == connection.STATE_OPEN:
            await deferLater(connection.factory.clock, 0.01)

    def go_live(self) -> None:
        self.catching_up = False
        self._drain()
        if self.pending:
            self._schedule_refill()

    def _schedule_refill(self) -> None:
        if not self.refilling:
            self.refilling = True
            clock = self.connection.factory.clock
            clock.callLater(REFILL_DELAY_SECONDS, lambda: ensureDeferred(self._refill()))

    async def _refill(self) -> None:
        """Read the events the bus skipped, then deliver what waited behind them."""
        try:
            while self.pending and not self.catching_up:
                upto = min(self.pending)
                if upto <= self.next_seq:
                    self._drain()
                    continue
                rooms = self.connection.factory.rooms()
                page = await rooms.events_after(
                    self.room_id, self.next_seq - 1, min(REPLAY_PAGE, upto - self.next_seq)
                )
                if not page:
                    break
                for event in page:
                    if event.seq == self.next_seq:
                        self.connection.send_frame(event_json(event))
                        self.next_seq += 1
                self._drain()
        finally:
            self.refilling = False
