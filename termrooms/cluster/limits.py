"""
Where the token buckets of ``termrooms.domain.ratelimit`` are kept: in this process
(``MemoryRateLimiter``), or in Redis for every instance (``RedisRateLimiter``), so a client
spreading its attempts over several instances still gets one budget.

Each hit is one Lua script, atomic on the Redis side, timed by Redis's own ``TIME`` so
instances whose clocks disagree still agree on the buckets. Redis only guards load here,
it holds no truth: while it is away (or slow) each instance limits on its own, in memory,
rather than fail a request.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Protocol

import attrs
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from termrooms.cluster.redis import RedisClient, RedisUnavailable
from termrooms.domain.ratelimit import Bucket, Decision, RateLimit, full_again_at, take
from termrooms.operations.deadline import with_deadline

_log = Logger()

KEY_PREFIX = "ratelimit:"
DECISION_TIMEOUT_SECONDS = 1.0  # a limiter slower than this would slow every login and send


class RateLimiter(Protocol):
    """Counts hits per key; fires with a Decision."""

    def hit(self, key: str, limit: RateLimit) -> Deferred: ...


@attrs.define
class MemoryRateLimiter:
    """Buckets in this process. Forgets full buckets, so memory follows recent clients."""

    clock: Callable[[], float]
    sweep_every: int = 1024
    _buckets: dict[str, tuple[Bucket, RateLimit]] = attrs.field(factory=dict, init=False)
    _hits_since_sweep: int = attrs.field(default=0, init=False)

    def hit(self, key: str, limit: RateLimit) -> Deferred:
        now = self.clock()
        previous = self._buckets.get(key)
        bucket, decision = take(previous[0] if previous else None, limit, now)
        self._buckets[key] = (bucket, limit)
        self._hits_since_sweep += 1
        if self._hits_since_sweep >= self.sweep_every:
            self._sweep(now)
        return succeed(decision)

    def _sweep(self, now: float) -> None:
        self._hits_since_sweep = 0
        self._buckets = {
            key: entry for key, entry in self._buckets.items() if full_again_at(*entry) > now
        }

    def __len__(self) -> int:
        return len(self._buckets)


@attrs.define
class NoRateLimiter:
    """Every hit allowed: --no-rate-limits, for load tests and benchmarks."""

    def hit(self, key: str, limit: RateLimit) -> Deferred:
        return succeed(Decision(True))


# take() in Lua. Numbers are stored with %.17g so they read back as the same doubles; the
# key expires when the bucket would be full again, since forgetting it then changes nothing.
TAKE_SCRIPT = """
local burst = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local stored = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local tokens = burst
if stored[1] and stored[2] then
  local elapsed = math.max(0, now - tonumber(stored[2]))
  tokens = math.min(burst, tonumber(stored[1]) + elapsed / period)
end
local allowed, retry_after = 0, 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  retry_after = math.max(1, math.ceil((1 - tokens) * period))
end
redis.call('HSET', KEYS[1],
  'tokens', string.format('%.17g', tokens), 'updated', string.format('%.17g', now))
redis.call('PEXPIRE', KEYS[1], math.max(1, math.ceil((burst - tokens) * period * 1000)))
return {allowed, retry_after}
"""


@attrs.define(eq=False)
class RedisRateLimiter:
    """A RateLimiter whose buckets live in Redis; per-instance memory while Redis is away."""

    redis: RedisClient
    clock: IReactorTime
    timeout: float = DECISION_TIMEOUT_SECONDS
    fallback: MemoryRateLimiter = attrs.field(factory=lambda: MemoryRateLimiter(time.monotonic))
    _in_outage: bool = attrs.field(default=False, init=False)

    def hit(self, key: str, limit: RateLimit) -> Deferred:
        if not self.redis.connected:
            return self._fall_back(key, limit, "not connected")
        d = with_deadline(
            maybeDeferred(
                self.redis.eval, TAKE_SCRIPT, [KEY_PREFIX + key], [limit.burst, repr(limit.period)]
            ),
            self.timeout,
            self.clock,
            lambda: RedisUnavailable("Redis did not decide a rate limit in time"),
        )
        return d.addCallbacks(self._decided, self._failed, errbackArgs=(key, limit))

    def _decided(self, reply: Any) -> Decision:
        allowed, retry_after = reply
        if self._in_outage:
            self._in_outage = False
            _log.info("Redis decides rate limits again; they hold across instances")
        return Decision(bool(allowed), int(retry_after))

    def _failed(self, failure: Failure, key: str, limit: RateLimit) -> Deferred:
        return self._fall_back(key, limit, failure.getErrorMessage())

    def _fall_back(self, key: str, limit: RateLimit, reason: str) -> Deferred:
        if not self._in_outage:
            self._in_outage = True
            _log.warn(
                "rate limits hold per instance until Redis answers again: {reason}",
                reason=reason,
            )
        return self.fallback.hit(key, limit)
