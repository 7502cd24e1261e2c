"""The coalescer of live "read it again" frames (termrooms.handlers.updates), on a fake
clock: at most one send per key and interval, and the last change always followed by one."""

from __future__ import annotations

from itertools import pairwise

from twisted.internet.task import Clock

from termrooms.handlers.updates import Coalescer

EVERY = 0.25


class Sends:
    """What went out, when, and what ``send`` read when it ran."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.log: list[tuple[float, str]] = []
        self.state: dict[str, int] = {}
        self.read: list[tuple[str, int]] = []

    def __call__(self, key: str) -> None:
        self.log.append((self.clock.seconds(), key))
        self.read.append((key, self.state.get(key, 0)))


def coalescer() -> tuple[Clock, Sends, Coalescer[str]]:
    clock = Clock()
    sends = Sends(clock)
    return clock, sends, Coalescer(clock, EVERY, sends)


def test_the_first_change_is_sent_at_once_but_not_from_inside_changed():
    clock, sends, updates = coalescer()
    updates.changed("retro 5")
    assert sends.log == []  # callLater(0): never from inside the caller's transaction
    clock.advance(0)
    assert sends.log == [(0.0, "retro 5")]
    assert clock.getDelayedCalls() == []


def test_changes_within_the_interval_go_out_as_one_send_at_its_end():
    clock, sends, updates = coalescer()
    updates.changed("k")
    clock.advance(0)
    for _ in range(5):
        clock.advance(0.04)
        updates.changed("k")
    assert sends.log == [(0.0, "k")]
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(EVERY - 0.2 - 1e-9)
    assert sends.log == [(0.0, "k")]
    clock.advance(1e-9)
    assert sends.log == [(0.0, "k"), (EVERY, "k")]
    clock.advance(10 * EVERY)
    assert len(sends.log) == 2


def test_a_steady_stream_of_changes_is_sent_once_per_interval():
    clock, sends, updates = coalescer()
    for _ in range(100):  # a change every 10 ms for a second
        updates.changed("k")
        clock.advance(0)
        clock.advance(0.01)
    clock.advance(EVERY)
    times = [at for at, _ in sends.log]
    assert times[0] == 0.0
    assert all(later - earlier >= EVERY - 1e-9 for earlier, later in pairwise(times))
    assert len(times) == 5  # 0, 0.25, 0.5, 0.75 and the one after the last change at 0.99
    assert times[-1] >= 0.99


def test_the_last_change_is_always_followed_by_a_send_that_reads_it():
    clock, sends, updates = coalescer()
    for value in range(1, 8):
        clock.advance(0.03)
        sends.state["k"] = value
        last_change = clock.seconds()
        updates.changed("k")
    clock.advance(EVERY)
    assert sends.read[-1] == ("k", 7)
    assert sends.log[-1][0] >= last_change


def test_a_change_made_while_sending_is_followed_by_another_send():
    clock = Clock()
    log: list[float] = []

    def send(key: str) -> None:
        log.append(clock.seconds())
        if len(log) == 1:
            updates.changed(key)  # a change landing after send read its state

    updates: Coalescer[str] = Coalescer(clock, EVERY, send)
    updates.changed("k")
    clock.advance(0)
    assert log == [0.0]
    clock.advance(EVERY)
    assert log == [0.0, EVERY]
    clock.advance(10 * EVERY)
    assert log == [0.0, EVERY]


def test_after_a_quiet_interval_a_change_is_sent_at_once_again():
    clock, sends, updates = coalescer()
    updates.changed("k")
    clock.advance(0)
    clock.advance(EVERY)
    updates.changed("k")
    clock.advance(0)
    assert sends.log == [(0.0, "k"), (EVERY, "k")]
    clock.advance(3 * EVERY)
    updates.changed("k")
    clock.advance(0)
    assert sends.log[-1] == (4 * EVERY, "k")


def test_keys_are_coalesced_independently():
    clock, sends, updates = coalescer()
    updates.changed("a")
    clock.advance(0)
    clock.advance(0.1)
    updates.changed("b")  # a was just sent; b never was
    updates.changed("a")
    clock.advance(0)
    assert sends.log == [(0.0, "a"), (0.1, "b")]
    clock.advance(EVERY - 0.1)
    assert sends.log == [(0.0, "a"), (0.1, "b"), (EVERY, "a")]
    clock.advance(EVERY)
    assert len(sends.log) == 3


def test_stop_cancels_what_is_pending_and_sends_nothing_more():
    clock, sends, updates = coalescer()
    updates.changed("a")
    clock.advance(0)
    clock.advance(0.1)
    updates.changed("a")
    updates.changed("b")
    updates.stop()
    assert clock.getDelayedCalls() == []
    clock.advance(10 * EVERY)
    assert sends.log == [(0.0, "a")]


def test_stop_with_nothing_pending_is_harmless():
    clock, sends, updates = coalescer()
    updates.stop()
    updates.stop()
    assert clock.getDelayedCalls() == [] and sends.log == []
