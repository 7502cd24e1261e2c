"""A deadline for a Deferred that must not be cancelled."""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure


def with_deadline(
    d: Deferred, seconds: float, clock: IReactorTime, error: Callable[[], Exception]
) -> Deferred:
    """
    A Deferred that fires with ``d``'s result, or fails with ``error()`` after
    ``seconds``. ``d`` itself is left to finish: cancelling a txpostgres query sends a
    blocking cancel request, and a Redis reply must still be read off the connection,
    so a late result is dropped instead.
    """
    out: Deferred = Deferred()
    timer = clock.callLater(seconds, lambda: out.errback(error()))

    def finish(result: Any) -> None:
        if timer.active():
            timer.cancel()
            out.callback(result)
        elif isinstance(result, Failure):
            result.trap(Exception)  # consumed: nobody waits for it any more

    d.addBoth(finish)
    return out
