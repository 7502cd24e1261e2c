"""Snowflake ids: 64-bit, roughly time-ordered, unique per node without coordination.

Layout, from high to low bits (bit 63 is always 0, so ids fit a signed BIGINT)::

    | 41 bits: ms since EPOCH_MS | 10 bits: node id | 12 bits: sequence |
    id = (ms_since_epoch << 22) | (node_id << 12) | sequence

Ids only ever go up, even when the wall clock does not:

* If the clock steps backwards (NTP correction, VM migration), the generator keeps
  issuing from the last millisecond it used: the logical clock is
  ``max(now, last_ms)``.
* If more than 4096 ids are requested within one millisecond, the generator borrows
  the next millisecond instead of sleeping, so ``next_id`` never blocks the reactor.
  The logical clock may run ahead of the wall clock for a while; it falls back in
  step once the wall clock catches up.

This module is pure: no Twisted, no database. The clock is injected so tests (and
anything replaying time) control it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

__all__ = [
    "EPOCH_MS",
    "MAX_ID",
    "MAX_NODE_ID",
    "MAX_SEQUENCE",
    "MAX_TIMESTAMP_MS",
    "NODE_ID_BITS",
    "SEQUENCE_BITS",
    "TIMESTAMP_BITS",
    "SnowflakeGenerator",
    "SnowflakeParts",
    "parse_snowflake",
    "snowflake_time",
]

#: 2024-01-01T00:00:00Z in milliseconds since the Unix epoch.
EPOCH_MS: int = 1_704_067_200_000
_EPOCH_DATETIME = datetime(2024, 1, 1, tzinfo=UTC)

TIMESTAMP_BITS: int = 41
NODE_ID_BITS: int = 10
SEQUENCE_BITS: int = 12

MAX_TIMESTAMP_MS: int = (1 << TIMESTAMP_BITS) - 1  # ms after EPOCH_MS; ~69.7 years
MAX_NODE_ID: int = (1 << NODE_ID_BITS) - 1  # 1023
MAX_SEQUENCE: int = (1 << SEQUENCE_BITS) - 1  # 4095
MAX_ID: int = (1 << (TIMESTAMP_BITS + NODE_ID_BITS + SEQUENCE_BITS)) - 1  # 2**63 - 1

_NODE_SHIFT = SEQUENCE_BITS  # 12
_TIMESTAMP_SHIFT = SEQUENCE_BITS + NODE_ID_BITS  # 22


def _check_node_id(_instance: Any, _attribute: Any, value: Any) -> None:
    """Reject node ids that would spill into the timestamp or sequence bits."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"node_id must be an int, not {type(value).__name__}")
    if not 0 <= value <= MAX_NODE_ID:
        raise ValueError(f"node_id must be in 0..{MAX_NODE_ID}, got {value}")


# on_setattr=NO_OP: attrs would otherwise install a Python-level __setattr__ (because
# node_id has a validator), which makes every state update in next_id ~10x slower.
# node_id and clock are exposed as read-only properties instead, so they cannot be
# changed (unvalidated) after construction.
@attrs.define(on_setattr=attrs.setters.NO_OP, repr=False)
class SnowflakeGenerator:
    """Issues strictly increasing, unique snowflake ids for one node.

    Not thread-safe: use one generator per thread, or guard ``next_id`` with a lock.
    (Under Twisted everything runs on the reactor thread, so no lock is needed.)

    Construct as ``SnowflakeGenerator(node_id=3)`` or
    ``SnowflakeGenerator(node_id=3, clock=fake_clock)``; ``clock`` returns seconds
    since the Unix epoch, like ``time.time``.
    """

    _node_id: int = attrs.field(validator=_check_node_id)
    _clock: Callable[[], float] = attrs.field(default=time.time)
    # The whole state is the last id issued: its timestamp bits are the logical
    # clock and its low bits the sequence. -1 means "nothing issued yet".
    _last_id: int = attrs.field(default=-1, init=False, repr=False)
    _node_bits: int = attrs.field(default=0, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        # Runs after the node_id validator, so the shift only sees a valid int.
        self._node_bits = self._node_id << _NODE_SHIFT

    def __repr__(self) -> str:
        """Show the constructor arguments, not the private state."""
        return f"SnowflakeGenerator(node_id={self._node_id!r}, clock={self._clock!r})"

    @property
    def node_id(self) -> int:
        """The node id baked into every id; fixed, so distinct nodes never clash."""
        return self._node_id

    @property
    def clock(self) -> Callable[[], float]:
        """The injected wall clock (seconds since the Unix epoch)."""
        return self._clock

    def next_id(self) -> int:
        """Return a new id, strictly greater than every id this generator issued.

        Never sleeps: a backwards clock reuses the last millisecond, and an exhausted
        sequence borrows the next millisecond.

        Raises ValueError if the clock reads earlier than EPOCH_MS, and
        OverflowError once the id would need more than 63 bits (~2093).
        """
        # round(), not int(): a clock meaning an exact ms (e.g. EPOCH_S + ms / 1000)
        # can come out a hair below it after * 1000, and truncating would then
        # stamp the previous ms. For a live clock this only shifts by < 0.5 ms.
        ms = round(self._clock() * 1000) - EPOCH_MS
        last = self._last_id
        if ms > last >> _TIMESTAMP_SHIFT:
            # Common case: the wall clock moved on to a fresh millisecond.
            # (ms >= 0 here, because last >> 22 is at least -1.)
            if ms > MAX_TIMESTAMP_MS:
                raise OverflowError("snowflake timestamp no longer fits in 41 bits")
            new = (ms << _TIMESTAMP_SHIFT) | self._node_bits
        elif ms < 0:
            raise ValueError(
                f"clock reads {-ms} ms before the snowflake epoch, 2024-01-01T00:00:00Z"
            )
        elif last & MAX_SEQUENCE != MAX_SEQUENCE:
            # Same (or an earlier) millisecond: keep the logical clock, bump sequence.
            new = last + 1
        else:
            # Sequence exhausted: borrow the next millisecond rather than block.
            borrowed = (last >> _TIMESTAMP_SHIFT) + 1
            if borrowed > MAX_TIMESTAMP_MS:
                raise OverflowError("snowflake timestamp no longer fits in 41 bits")
            new = (borrowed << _TIMESTAMP_SHIFT) | self._node_bits
        self._last_id = new
        return new


@attrs.frozen
class SnowflakeParts:
    """A decoded snowflake id, for logs, debugging and ops tooling."""

    #: Milliseconds since the *Unix* epoch (EPOCH_MS already added back).
    timestamp_ms: int
    node_id: int
    sequence: int


def _check_id(value: int) -> None:
    """Reject anything but a non-negative 63-bit int, rather than decode garbage."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"snowflake must be an int, not {type(value).__name__}")
    if not 0 <= value <= MAX_ID:
        raise ValueError(f"not a snowflake id (must be in 0..2**63-1): {value}")


def parse_snowflake(value: int) -> SnowflakeParts:
    """Split an id into timestamp, node and sequence, e.g. to see which node made it.

    Raises ValueError for negative ids or ids wider than 63 bits.
    """
    _check_id(value)
    return SnowflakeParts(
        timestamp_ms=(value >> _TIMESTAMP_SHIFT) + EPOCH_MS,
        node_id=(value >> _NODE_SHIFT) & MAX_NODE_ID,
        sequence=value & MAX_SEQUENCE,
    )


def snowflake_time(value: int) -> datetime:
    """Return when an id was issued, as a UTC-aware datetime (millisecond precision).

    Integer arithmetic via timedelta, so there is no float rounding.
    Raises ValueError for negative ids or ids wider than 63 bits.
    """
    _check_id(value)
    return _EPOCH_DATETIME + timedelta(milliseconds=value >> _TIMESTAMP_SHIFT)
