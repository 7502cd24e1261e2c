"""Token-bucket arithmetic and the in-process limiter."""

from __future__ import annotations

import pytest

from termrooms.cluster.limits import MemoryRateLimiter, NoRateLimiter
from termrooms.domain.ratelimit import Bucket, RateLimit, client_key, full_again_at, take

LOGIN = RateLimit(5, 20.0)


def test_parse_reads_burst_and_period_with_units():
    assert RateLimit.parse("5/20s") == RateLimit(5, 20.0)
    assert RateLimit.parse("3/2m") == RateLimit(3, 120.0)
    assert RateLimit.parse(" 10 / 1h ") == RateLimit(10, 3600.0)
    assert RateLimit.parse("7/30") == RateLimit(7, 30.0)
    assert str(RateLimit(5, 20.0)) == "5/20s"


@pytest.mark.parametrize("text", ["", "5", "five/20s", "5/20x", "0/10s", "5/0s", "-1/10s"])
def test_parse_refuses_anything_else(text):
    with pytest.raises(ValueError):
        RateLimit.parse(text)


def test_a_burst_is_allowed_then_the_next_hit_waits_one_period():
    bucket = None
    for _ in range(5):
        bucket, decision = take(bucket, LOGIN, now=100.0)
        assert decision.allowed
    bucket, decision = take(bucket, LOGIN, now=100.0)
    assert not decision.allowed
    assert decision.retry_after == 20


def test_tokens_come_back_one_per_period():
    bucket = Bucket(0.0, 100.0)
    bucket, decision = take(bucket, LOGIN, now=110.0)
    assert not decision.allowed and decision.retry_after == 10
    bucket, decision = take(bucket, LOGIN, now=120.0)
    assert decision.allowed
    _, decision = take(bucket, LOGIN, now=120.0)
    assert not decision.allowed


def test_refill_never_exceeds_the_burst():
    bucket, _ = take(Bucket(0.0, 0.0), LOGIN, now=1_000_000.0)
    assert bucket.tokens == LOGIN.burst - 1


def test_a_clock_that_steps_back_does_not_add_tokens():
    bucket, _ = take(Bucket(0.0, 100.0), LOGIN, now=50.0)
    assert bucket.tokens == 0.0


def test_full_again_at_is_when_forgetting_the_bucket_changes_nothing():
    assert full_again_at(Bucket(3.0, 100.0), LOGIN) == 140.0


def test_memory_limiter_keeps_keys_apart_and_forgets_full_buckets():
    now = [0.0]
    limiter = MemoryRateLimiter(clock=lambda: now[0], sweep_every=4)
    results = [limiter.hit("ip:1", RateLimit(1, 10.0)).result.allowed for _ in range(2)]
    assert results == [True, False]
    assert limiter.hit("ip:2", RateLimit(1, 10.0)).result.allowed
    now[0] = 100.0
    limiter.hit("ip:3", RateLimit(1, 10.0))  # the fourth hit sweeps
    assert len(limiter) == 1  # only ip:3, whose bucket is not full yet


def test_no_rate_limiter_allows_everything():
    limiter = NoRateLimiter()
    assert all(limiter.hit("k", RateLimit(1, 3600.0)).result.allowed for _ in range(100))


@pytest.mark.parametrize(
    "address, key",
    [
        ("198.51.100.7", "198.51.100.7"),
        ("2001:db8:aaaa:bbbb:1:2:3:4", "2001:db8:aaaa:bbbb::/64"),
        ("2001:DB8:AAAA:BBBB::9", "2001:db8:aaaa:bbbb::/64"),
        ("::ffff:192.0.2.9", "192.0.2.9"),
        ("::1", "::/64"),
        ("local", "local"),
    ],
)
def test_client_key_counts_an_ipv6_client_by_its_64(address, key):
    assert client_key(address) == key
