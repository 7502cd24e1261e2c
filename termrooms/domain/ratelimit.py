"""
Rate limits as token buckets: a burst of ``burst`` attempts, then one more every
``period`` seconds. This is the arithmetic; the limiters that keep the buckets, in memory or
in Redis, are in ``termrooms.cluster.limits``.
"""

from __future__ import annotations

import ipaddress
import math
import re

import attrs

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*$")
_UNIT = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}


@attrs.frozen
class RateLimit:
    """A burst of ``burst`` hits, then one every ``period`` seconds."""

    burst: int
    period: float

    @classmethod
    def parse(cls, text: str) -> "RateLimit":
        """``"5/20s"``: a burst of 5, then one per 20 seconds."""
        match = _RATE.match(text)
        if not match:
            raise ValueError(f"{text!r} is not a rate like 5/20s (burst / seconds per hit)")
        burst, period = int(match[1]), float(match[2]) * _UNIT[match[3]]
        if burst < 1 or period <= 0:
            raise ValueError(f"{text!r} needs a burst of at least 1 and a positive period")
        return cls(burst, period)

    def __str__(self) -> str:
        return f"{self.burst}/{self.period:g}s"


def client_key(address: str) -> str:
    """What a per-address limit counts by: an IPv6 client's /64, which one subscriber
    holds whole (2^64 addresses to rotate through), an IPv4 address as it is, written
    either way (``::ffff:192.0.2.1`` is ``192.0.2.1``)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address  # not an address (a unix socket peer, say): itself
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


@attrs.frozen
class Bucket:
    """What is left of a burst, as of ``updated`` (seconds)."""

    tokens: float
    updated: float


@attrs.frozen
class Decision:
    allowed: bool
    retry_after: int = 0  # whole seconds until the next hit would be allowed


def take(bucket: Bucket | None, limit: RateLimit, now: float) -> tuple[Bucket, Decision]:
    """Refill ``bucket`` up to ``now`` and take one token if there is one."""
    if bucket is None:
        tokens = float(limit.burst)
    else:
        elapsed = max(0.0, now - bucket.updated)
        tokens = min(float(limit.burst), bucket.tokens + elapsed / limit.period)
    if tokens >= 1.0:
        return Bucket(tokens - 1.0, now), Decision(True)
    wait = (1.0 - tokens) * limit.period
    return Bucket(tokens, now), Decision(False, max(1, math.ceil(wait)))


def full_again_at(bucket: Bucket, limit: RateLimit) -> float:
    """When the bucket has refilled completely, so forgetting it changes nothing."""
    return bucket.updated + (limit.burst - bucket.tokens) * limit.period
