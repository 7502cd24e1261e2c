"""Polls between the routes and storage: who sees, votes and closes, in the contract's
order of refusals (404, 403, 422, 409: a hidden poll is never confirmed); the coalesced
``poll_update`` frames; and the timer that closes polls at their ``closes_at``."""

from __future__ import annotations

from typing import Any, Callable, Mapping

import attrs
from twisted.application.service import Service
from twisted.internet.defer import Deferred, ensureDeferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from termrooms.domain.errors import ApiError
from termrooms.domain.polls import (
    POLL_UPDATE_EVERY_SECONDS,
    Poll,
    may_close_poll,
    parse_choices,
    parse_new_poll,
    poll_not_found,
    poll_update_frame,
)
from termrooms.domain.roles import Action, Actor
from termrooms.domain.snowflake import SnowflakeGenerator
from termrooms.domain.wire import encode_json
from termrooms.handlers.rooms import RoomHandler, RoomView, actor_of, refuse_unless_member
from termrooms.handlers.updates import Coalescer
from termrooms.storage.database import Database
from termrooms.storage.polls import (
    PollCheck,
    close_due_polls_txn,
    close_poll_txn,
    create_poll_txn,
    next_closing_txn,
    poll_txn,
    polls_page_txn,
    vote_txn,
)
from termrooms.storage.users import User

_log = Logger()

# The closing timer looks again at least this often: a poll created on another instance
# that stopped before closing it is closed by a survivor within this.
CLOSING_SWEEP_SECONDS = 30.0
CLOSING_BATCH = 100


@attrs.define(eq=False)
class PollHandler:
    """A room's polls; their events go out as the room's messages do."""

    database: Database
    rooms: RoomHandler
    snowflakes: SnowflakeGenerator
    clock: IReactorTime
    # Told when a poll (made on any instance) closes by itself: in that many seconds.
    closing_in: Callable[[float], None] = lambda seconds: None
    # poll_update frames, keyed by (room id, poll id).
    _updates: Coalescer[tuple[int, int]] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._updates = Coalescer(self.clock, POLL_UPDATE_EVERY_SECONDS, self._send_update)

    async def create(
        self, user: User, room: Any, body: Mapping[str, Any], request_id: str | None
    ) -> Poll:
        view = await self.rooms.member_view(room, user, Action.SEND)
        new = parse_new_poll(body)

        def check(actor: Actor) -> None:
            refuse_unless_member(actor, view.room.name)
            if actor.muted:
                raise ApiError("muted", f"You are muted in {view.room.name}.")

        poll, event = await self.database.run_interaction(
            create_poll_txn,
            self.snowflakes.next_id(),
            view.room.id,
            user.id,
            new,
            self.snowflakes.next_id(),
            request_id,
            check,
        )
        self.rooms.publish(event)
        return poll

    async def get(self, user: User, room: Any, poll_id: int) -> Poll:
        view = await self.rooms.view(room, user)
        return await self._read(view, poll_id, user)

    async def page(
        self, user: User, room: Any, *, open_only: bool, before_id: int | None, limit: int
    ) -> tuple[list[Poll], bool]:
        """The room's polls, newest first."""
        view = await self.rooms.view(room, user)
        return await self.database.run_autocommit(
            polls_page_txn,
            view.room.id,
            user.id,
            open_only=open_only,
            before_id=before_id,
            limit=limit,
        )

    async def newest(self, user: User, room: Any, *, open_only: bool) -> Poll | None:
        """The room's newest poll (open, if asked), for the commands that name none."""
        polls, _ = await self.page(user, room, open_only=open_only, before_id=None, limit=1)
        return polls[0] if polls else None

    async def vote(
        self,
        user: User,
        room: Any,
        poll_id: int,
        read_body: Callable[[], Mapping[str, Any]],
    ) -> Poll:
        """``read_body`` is called once the poll is known visible and the caller a member:
        a body's 400 or 422 never tells anyone that a hidden poll exists."""
        view = await self.rooms.view(room, user)
        await self._read(view, poll_id, user)
        refuse_unless_member(actor_of(view, user), view.room.name)
        body = read_body()
        voted = await self.database.run_interaction(
            vote_txn,
            view.room.id,
            poll_id,
            user.id,
            lambda poll: parse_choices(body, poll),
            lambda poll, actor: refuse_unless_member(actor, poll.room),
        )
        if voted is None:
            raise poll_not_found()
        self.changed(voted)
        return voted

    async def close(self, user: User, room: Any, poll_id: int, request_id: str | None) -> Poll:
        view = await self.rooms.view(room, user)
        poll = await self._read(view, poll_id, user)
        check = _refuse_close_unless(user)
        check(poll, actor_of(view, user))
        closed = await self.database.run_interaction(
            close_poll_txn,
            view.room.id,
            poll_id,
            user.id,
            self.snowflakes.next_id(),
            request_id,
            check,
        )
        if closed is None:
            raise poll_not_found()
        final, event = closed
        self.rooms.publish(event)
        # The caller's answer has their own choices; the event has no one's.
        return attrs.evolve(final, mine=poll.mine)

    async def close_due(self) -> tuple[int, float | None]:
        """Close the polls whose time has come; how many, and in how many seconds the
        next one is due (None: no open poll has a ``closes_at``)."""
        closed = await self.database.run_interaction(
            close_due_polls_txn, self.snowflakes.next_id, CLOSING_BATCH
        )
        for _, event in closed:
            self.rooms.publish(event)
        if len(closed) == CLOSING_BATCH:
            return len(closed), 0.0
        return len(closed), await self.database.run_autocommit(next_closing_txn)

    def changed(self, poll: Poll) -> None:
        """A vote changed the poll: its subscribers get a ``poll_update`` at once, or,
        when one went less than POLL_UPDATE_EVERY_SECONDS ago, one then with the results
        as they are by that time."""
        self._updates.changed((poll.room_id, poll.id))

    def stop(self) -> None:
        self._updates.stop()

    def _send_update(self, key: tuple[int, int]) -> None:
        room_id, poll_id = key

        async def send() -> None:
            current = await self.database.run_autocommit(poll_txn, room_id, poll_id, None)
            if current is not None:
                self.rooms.bus.publish(
                    current.room_id, None, encode_json(poll_update_frame(current))
                )

        d = ensureDeferred(send())
        d.addErrback(lambda f: _log.failure("poll_update for {poll} failed", f, poll=poll_id))

    async def _read(self, view: RoomView, poll_id: int, user: User) -> Poll:
        if not 0 < poll_id < 2**63:
            raise poll_not_found()
        poll = await self.database.run_autocommit(poll_txn, view.room.id, poll_id, user.id)
        if poll is None:
            raise poll_not_found()
        return poll


def _refuse_close_unless(user: User) -> PollCheck:
    """The rule for closing, run before and again in the transaction that closes."""

    def check(poll: Poll, actor: Actor) -> None:
        refuse_unless_member(actor, poll.room)
        if not may_close_poll(actor, is_creator=poll.user_id == user.id):
            raise ApiError("forbidden", "Only its creator and moderators close this poll.")

    return check


class PollClosingService(Service):
    """Closes polls at their ``closes_at``: wakes when the next one is due (as read from
    the database at start and after each pass, so a restart loses nothing, and as every
    instance hears when a poll is made), and at least every CLOSING_SWEEP_SECONDS."""

    def __init__(
        self, handler: Callable[[], PollHandler], clock: IReactorTime, ready: Deferred
    ) -> None:
        """``handler`` is called once ``ready`` (the database) has fired."""
        self._get_handler = handler
        self.clock = clock
        self.ready = ready
        self.handler: PollHandler | None = None
        self._call: IDelayedCall | None = None
        self._running: Deferred | None = None

    def startService(self) -> None:
        super().startService()

        def begin(result: Any) -> Any:
            if self.running:
                self.handler = self._get_handler()
                self.handler.closing_in = self.wake_within
                self.wake_within(0.0)
            return result

        self.ready.addCallback(begin)

    def wake_within(self, seconds: float) -> None:
        """Run no later than ``seconds`` from now."""
        if not self.running:
            return
        at = self.clock.seconds() + seconds
        if self._call is not None and self._call.active():
            if self._call.getTime() <= at:
                return
            self._call.cancel()
        self._call = self.clock.callLater(seconds, self._tick)

    def _tick(self) -> None:
        self._call = None
        if self._running is not None:  # the pass under way schedules the next
            return
        d = ensureDeferred(self._close_due())
        self._running = d

        def done(_: Any) -> None:
            self._running = None

        d.addErrback(lambda f: _log.failure("closing due polls failed", f))
        d.addBoth(done)

    async def _close_due(self) -> None:
        assert self.handler is not None  # set before the first wake
        next_in: float | None = CLOSING_SWEEP_SECONDS
        try:
            count, next_in = await self.handler.close_due()
            if count:
                _log.info("closed {count} poll(s) whose time had come", count=count)
        finally:
            delay = CLOSING_SWEEP_SECONDS if next_in is None else next_in
            self.wake_within(min(max(delay, 0.0), CLOSING_SWEEP_SECONDS))

    def stopService(self) -> Deferred:
        """Stops waking; fires once a pass under way has finished."""
        super().stopService()
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        return succeed(None) if self._running is None else self._running
