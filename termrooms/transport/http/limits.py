"""
HTTP rate limits: every request counts against its client address, and an
authenticated one against its user instead, through the server's RateLimiter (in Redis
when there is one, so the budgets hold across instances). Over a budget: 429
``rate_limited`` with ``Retry-After``.

A route that needs a token (declared with ``auth=True``) and is sent one is limited per
user only; a token that fails costs the address, so guessing tokens is limited too.
Admins and the usernames of ``--rate-limit-exempt`` (bots) are not limited per user, so
on those routes not at all; the other routes limit everyone by address.
"""

from __future__ import annotations

from typing import Any

import attrs

from termrooms.cluster.limits import RateLimiter
from termrooms.domain.errors import ApiError
from termrooms.domain.ratelimit import RateLimit, client_key
from termrooms.transport.http.openapi import RouteSpec
from termrooms.transport.http.request import ApiRequest

UNLIMITED_PATHS = frozenset({"/health", "/metrics"})  # probes and scrapes


def exempt(username: str, role: str, exempt_usernames: frozenset[str]) -> bool:
    """Admins and the listed (bot) accounts are never limited per user."""
    return role == "admin" or username.lower() in exempt_usernames


def refusal(retry_after: int) -> ApiError:
    return ApiError(
        "rate_limited",
        f"Too many requests; try again in {retry_after} s.",
        retry_after=retry_after,
    )


@attrs.define(eq=False)
class HttpLimits:
    limiter: RateLimiter
    per_address: RateLimit | None  # None: --no-rate-limits
    per_user: RateLimit | None
    exempt_usernames: frozenset[str] = frozenset()

    async def before_route(self, request: ApiRequest, spec: RouteSpec) -> None:
        """The router's guard: the address pays unless the route will check a token."""
        if spec.auth and request.getHeader(b"authorization") is not None:
            return
        await self.charge_address(request)

    async def charge_address(self, request: ApiRequest) -> None:
        if self.per_address is None:
            return
        key = f"http-address:{client_key(request.client_host)}"
        decision = await self.limiter.hit(key, self.per_address)
        if not decision.allowed:
            raise refusal(decision.retry_after)

    async def charge_user(self, user: Any) -> None:
        if self.per_user is None or exempt(user.username, user.role, self.exempt_usernames):
            return
        decision = await self.limiter.hit(f"http-user:{user.id}", self.per_user)
        if not decision.allowed:
            raise refusal(decision.retry_after)
