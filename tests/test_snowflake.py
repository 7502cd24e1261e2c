"""Tests for termrooms.domain.snowflake: bit layout, monotonicity under a hostile clock."""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime, timedelta

import attrs
import pytest

from support import third_party_imports
from termrooms.domain import snowflake
from termrooms.domain.snowflake import (
    EPOCH_MS,
    MAX_ID,
    MAX_TIMESTAMP_MS,
    SnowflakeGenerator,
    SnowflakeParts,
    parse_snowflake,
    snowflake_time,
)

EPOCH_S = EPOCH_MS / 1000  # 1704067200.0, exactly representable


class FakeClock:
    """A settable clock that also counts reads, to prove next_id never spins."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.calls = 0

    def __call__(self) -> float:
        self.calls += 1
        return self.now


def _ms(value: int) -> int:
    """Timestamp field of an id: ms since the snowflake epoch."""
    return value >> 22


def _assert_strictly_increasing(ids: list[int]) -> None:
    assert len(set(ids)) == len(ids)
    assert all(a < b for a, b in itertools.pairwise(ids))


def test_epoch_is_2024_01_01_utc_in_unix_ms() -> None:
    assert EPOCH_MS == int(datetime(2024, 1, 1, tzinfo=UTC).timestamp()) * 1000


def test_200k_ids_from_one_generator_are_unique_and_strictly_increasing() -> None:
    gen = SnowflakeGenerator(node_id=7)  # real time.time clock
    ids = [gen.next_id() for _ in range(200_000)]
    _assert_strictly_increasing(ids)
    assert all(0 < i <= MAX_ID for i in ids)
    assert {parse_snowflake(i).node_id for i in ids[::997]} == {7}


@pytest.mark.parametrize("node_id", [0, 1, 2, 341, 512, 682, 1023])
def test_node_id_occupies_bits_12_to_21(node_id: int) -> None:
    clock = FakeClock(EPOCH_S + 12_345.678)
    value = SnowflakeGenerator(node_id=node_id, clock=clock).next_id()
    assert (value >> 12) & 0x3FF == node_id
    assert parse_snowflake(value).node_id == node_id
    # Same clock, node 0: the only difference is node_id << 12.
    reference = SnowflakeGenerator(node_id=0, clock=clock).next_id()
    assert value - reference == node_id << 12


def test_timestamp_bits_equal_ms_since_2024_for_a_fixed_clock() -> None:
    when = datetime(2025, 3, 14, 15, 9, 26, 535_000, tzinfo=UTC)
    expected_ms = (when - datetime(2024, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    gen = SnowflakeGenerator(node_id=5, clock=lambda: when.timestamp())
    value = gen.next_id()
    assert _ms(value) == expected_ms
    assert value == (expected_ms << 22) | (5 << 12) | 0
    parts = parse_snowflake(value)
    assert parts == SnowflakeParts(timestamp_ms=EPOCH_MS + expected_ms, node_id=5, sequence=0)
    assert snowflake_time(value) == when


@pytest.mark.parametrize(
    "ms", [1, 7, 999, 1_234_567, 100_000_000_107, 100_000_000_232, 100_000_000_982]
)
def test_ms_fraction_from_float_clock_is_not_truncated_down(ms: int) -> None:
    # For the larger values (~2027) EPOCH_S + ms / 1000, times 1000, lands just below
    # the integer in float arithmetic; plain truncation would stamp the previous ms.
    gen = SnowflakeGenerator(node_id=0, clock=lambda: EPOCH_S + ms / 1000)
    assert _ms(gen.next_id()) == ms


def test_clock_at_exact_epoch_issues_id_with_zero_timestamp() -> None:
    gen = SnowflakeGenerator(node_id=9, clock=lambda: EPOCH_S)
    assert gen.next_id() == 9 << 12


def test_clock_step_back_never_repeats_an_id() -> None:
    clock = FakeClock(EPOCH_S + 1000.0)
    gen = SnowflakeGenerator(node_id=1, clock=clock)
    ids = [gen.next_id() for _ in range(3)]
    clock.now = EPOCH_S + 999.0  # NTP yanks the clock back a whole second
    ids += [gen.next_id() for _ in range(5_000)]  # enough to also overflow a ms
    clock.now = EPOCH_S + 1000.5  # wall clock catches up and passes the old time
    ids += [gen.next_id() for _ in range(3)]

    _assert_strictly_increasing(ids)
    # While the clock was behind, ids kept the last logical millisecond (1_000_000)
    # and borrowed 1_000_001 when its sequence ran out; never the stepped-back 999_000.
    assert {_ms(i) for i in ids[:-3]} == {1_000_000, 1_000_001}
    assert min(_ms(i) for i in ids) == 1_000_000
    # Once the wall clock is ahead again, ids follow it.
    assert {_ms(i) for i in ids[-3:]} == {1_000_500}
    assert parse_snowflake(ids[-3]).sequence == 0


def test_sequence_overflow_borrows_next_ms_instead_of_repeating_or_sleeping() -> None:
    clock = FakeClock(EPOCH_S + 42.0)  # frozen millisecond 42_000
    gen = SnowflakeGenerator(node_id=3, clock=clock)
    ids = [gen.next_id() for _ in range(10_000)]

    _assert_strictly_increasing(ids)
    assert clock.calls == 10_000  # one read per id: no spin-wait on the clock
    # 4096 per millisecond, then the logical ms advances by one.
    assert [_ms(i) for i in ids] == [42_000] * 4096 + [42_001] * 4096 + [42_002] * 1808
    assert [parse_snowflake(i).sequence for i in ids] == (list(range(4096)) * 2 + list(range(1808)))
    assert {parse_snowflake(i).node_id for i in ids} == {3}


def test_wall_clock_behind_borrowed_ms_does_not_repeat_ids() -> None:
    clock = FakeClock(EPOCH_S + 42.0)
    gen = SnowflakeGenerator(node_id=3, clock=clock)
    ids = [gen.next_id() for _ in range(2 * 4096 + 1)]  # logical clock now at 42_002
    assert _ms(ids[-1]) == 42_002
    clock.now = EPOCH_S + 42.001  # real time is still behind the borrowed ms
    ids += [gen.next_id() for _ in range(10)]
    clock.now = EPOCH_S + 42.003  # and now ahead of it
    ids += [gen.next_id() for _ in range(10)]
    _assert_strictly_increasing(ids)
    assert [_ms(i) for i in ids[-20:]] == [42_002] * 10 + [42_003] * 10
    assert parse_snowflake(ids[-11]).sequence == 10
    assert parse_snowflake(ids[-10]).sequence == 0


@pytest.mark.parametrize("node_id", [-1, 1024, 4096, 10**6, -(10**6)])
def test_node_id_outside_0_to_1023_raises_value_error(node_id: int) -> None:
    with pytest.raises(ValueError, match="node_id"):
        SnowflakeGenerator(node_id=node_id)


@pytest.mark.parametrize("node_id", ["3", 3.0, True, None])
def test_node_id_that_is_not_an_int_raises_type_error(node_id: object) -> None:
    with pytest.raises(TypeError, match="node_id"):
        SnowflakeGenerator(node_id=node_id)  # type: ignore[arg-type]


@pytest.mark.parametrize("seconds", [0.0, 999.0, EPOCH_S - 1.0, EPOCH_S - 0.001])
def test_clock_before_epoch_raises_value_error(seconds: float) -> None:
    gen = SnowflakeGenerator(node_id=0, clock=lambda: seconds)
    with pytest.raises(ValueError, match="epoch"):
        gen.next_id()


def test_clock_falling_before_epoch_after_issuing_still_raises() -> None:
    clock = FakeClock(EPOCH_S + 5.0)
    gen = SnowflakeGenerator(node_id=0, clock=clock)
    first = gen.next_id()
    clock.now = EPOCH_S - 60.0
    with pytest.raises(ValueError, match="epoch"):
        gen.next_id()
    clock.now = EPOCH_S + 5.0
    assert gen.next_id() == first + 1  # the failed call consumed nothing


def test_last_millisecond_fits_63_bits_and_the_next_raises_overflow_error() -> None:
    last_ms_s = (EPOCH_MS + MAX_TIMESTAMP_MS) / 1000  # ~2093-09-06
    gen = SnowflakeGenerator(node_id=1023, clock=lambda: last_ms_s)
    ids = [gen.next_id() for _ in range(4096)]
    assert ids[-1] == MAX_ID == 2**63 - 1
    assert all(i.bit_length() <= 63 for i in ids)
    with pytest.raises(OverflowError):
        gen.next_id()  # would have to borrow ms 2**41
    with pytest.raises(OverflowError):
        gen.next_id()  # and keeps refusing rather than wrapping around

    past_end = SnowflakeGenerator(node_id=0, clock=lambda: last_ms_s + 0.001)
    with pytest.raises(OverflowError):
        past_end.next_id()


def test_two_generators_with_different_node_ids_never_collide_for_same_clock() -> None:
    clock = FakeClock(EPOCH_S + 7.0)
    a = SnowflakeGenerator(node_id=1, clock=clock)
    b = SnowflakeGenerator(node_id=2, clock=clock)
    ids_a: list[int] = []
    ids_b: list[int] = []
    # Frozen ms with sequence overflow, a step back, then normal progress.
    for now in (EPOCH_S + 7.0, EPOCH_S + 6.0, EPOCH_S + 7.25, EPOCH_S + 8.0):
        clock.now = now
        for _ in range(5_000):
            ids_a.append(a.next_id())
            ids_b.append(b.next_id())
    _assert_strictly_increasing(ids_a)
    _assert_strictly_increasing(ids_b)
    assert set(ids_a).isdisjoint(ids_b)
    # Same clock, same call pattern: identical except for the node bits.
    assert [i ^ (1 << 12) for i in ids_a] == [i ^ (2 << 12) for i in ids_b]


def test_parse_snowflake_round_trips_every_field() -> None:
    value = (123_456_789 << 22) | (1001 << 12) | 4000
    parts = parse_snowflake(value)
    assert parts.timestamp_ms == EPOCH_MS + 123_456_789
    assert parts.node_id == 1001
    assert parts.sequence == 4000
    assert parse_snowflake(0) == SnowflakeParts(timestamp_ms=EPOCH_MS, node_id=0, sequence=0)
    assert parse_snowflake(MAX_ID) == SnowflakeParts(
        timestamp_ms=EPOCH_MS + MAX_TIMESTAMP_MS, node_id=1023, sequence=4095
    )


@pytest.mark.parametrize("value", [-1, 2**63, 2**64])
def test_parse_and_time_reject_values_that_are_not_63_bit_ids(value: int) -> None:
    with pytest.raises(ValueError):
        parse_snowflake(value)
    with pytest.raises(ValueError):
        snowflake_time(value)


def test_parse_rejects_non_int_ids() -> None:
    with pytest.raises(TypeError):
        parse_snowflake("12345")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        snowflake_time(1.5)  # type: ignore[arg-type]


def test_snowflake_parts_are_immutable() -> None:
    parts = parse_snowflake(1 << 22)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        parts.node_id = 5  # type: ignore[misc]


def test_generator_node_id_and_clock_cannot_be_reassigned() -> None:
    gen = SnowflakeGenerator(node_id=4)
    assert gen.node_id == 4
    assert gen.clock is time.time
    with pytest.raises(AttributeError):
        gen.node_id = 5000  # type: ignore[misc]
    with pytest.raises(AttributeError):
        gen.clock = time.monotonic  # type: ignore[misc]


def test_snowflake_time_is_utc_aware_and_exact_to_the_ms() -> None:
    assert snowflake_time(0) == datetime(2024, 1, 1, tzinfo=UTC)
    value = (1_500 << 22) | (8 << 12) | 17
    result = snowflake_time(value)
    assert result.tzinfo is not None and result.utcoffset().total_seconds() == 0
    assert result == datetime(2024, 1, 1, 0, 0, 1, 500_000, tzinfo=UTC)


def test_default_clock_stamps_ids_with_the_current_time() -> None:
    before = datetime.now(UTC)
    value = SnowflakeGenerator(node_id=0).next_id()
    after = datetime.now(UTC)
    one_ms = timedelta(milliseconds=1)
    assert before - one_ms <= snowflake_time(value) <= after + one_ms


def test_module_is_pure_stdlib_plus_attrs() -> None:
    assert third_party_imports(snowflake) == {"attrs"}
