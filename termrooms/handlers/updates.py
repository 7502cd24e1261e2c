"""Coalesced live updates: the frames that say "this changed, read it again" (a poll's
results, a retro's board) go out at most once per key and interval, however fast the
changes come, and the last change is always followed by one."""

from __future__ import annotations

from typing import Callable, Generic, Hashable, TypeVar

import attrs
from twisted.internet.interfaces import IDelayedCall, IReactorTime

K = TypeVar("K", bound=Hashable)


@attrs.define(eq=False)
class Coalescer(Generic[K]):
    """Calls ``send(key)`` after ``changed(key)``: at once, or, when it was called for
    that key less than ``every`` seconds ago, that long after the last call. ``send``
    reads what it sends when it runs, so a change made meanwhile is in it."""

    clock: IReactorTime
    every: float
    send: Callable[[K], None]
    # Per key: the call waiting to go, and when the last one went.
    _pending: dict[K, IDelayedCall] = attrs.field(factory=dict, init=False)
    _last_sent: dict[K, float] = attrs.field(factory=dict, init=False)

    def changed(self, key: K) -> None:
        if key in self._pending:
            return
        now = self.clock.seconds()
        wait = self._last_sent.get(key, float("-inf")) + self.every - now
        self._pending[key] = self.clock.callLater(max(wait, 0.0), self._fire, key)

    def stop(self) -> None:
        """Shutting down: the sockets are closed, so the updates owed go to no one."""
        for call in self._pending.values():
            call.cancel()
        self._pending.clear()

    def _fire(self, key: K) -> None:
        now = self.clock.seconds()
        self._last_sent = {k: at for k, at in self._last_sent.items() if now - at < self.every}
        self._last_sent[key] = now
        # A change from now on schedules the next call: this one may read before it.
        del self._pending[key]
        self.send(key)
