"""
Password hashing with argon2id (argon2-cffi). Defaults follow OWASP: 19 MiB, 2 passes,
1 lane. A hash or a check costs tens of milliseconds of CPU, so it runs in a thread pool
of its own with a bounded queue: a flood of logins gets 503s instead of stalling the
event loop or growing a queue without end.
"""

from __future__ import annotations

import secrets
from typing import Any, Callable

import argon2
import attrs
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

OWASP_MEMORY_KIB = 19 * 1024
OWASP_TIME_COST = 2
OWASP_PARALLELISM = 1


@attrs.frozen
class PasswordPolicy:
    """The argon2id parameters; changing them re-hashes each account at its next login."""

    memory_kib: int = OWASP_MEMORY_KIB
    time_cost: int = OWASP_TIME_COST
    parallelism: int = OWASP_PARALLELISM

    def hasher(self) -> argon2.PasswordHasher:
        return argon2.PasswordHasher(
            time_cost=self.time_cost,
            memory_cost=self.memory_kib,
            parallelism=self.parallelism,
            type=argon2.Type.ID,
        )


def hash_password(password: str, policy: PasswordPolicy = PasswordPolicy()) -> str:
    """The encoded argon2id hash to store (parameters and salt included). Blocking."""
    return policy.hasher().hash(password)


@attrs.frozen
class Verdict:
    """The outcome of checking a password against a stored hash."""

    matches: bool
    needs_rehash: bool = False


class PasswordsBusy(Exception):
    """More password checks are waiting than the queue allows."""


def _check(hasher: argon2.PasswordHasher, stored_hash: str, password: str) -> Verdict:
    try:
        hasher.verify(stored_hash, password)
    except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
        return Verdict(False)
    except UnicodeEncodeError:  # a lone surrogate: no stored password has one
        return Verdict(False)
    return Verdict(True, hasher.check_needs_rehash(stored_hash))


@attrs.define(eq=False)
class PasswordWorkers:
    """
    Hashes and checks passwords in ``threads`` threads, with at most ``queue`` more
    waiting. ``check_unknown`` does the same work as ``check`` against a fixed dummy
    hash, so an unknown username costs what a wrong password costs.
    """

    reactor: Any
    policy: PasswordPolicy = PasswordPolicy()
    threads: int = 2
    queue: int = 64
    make_hasher: Callable[[PasswordPolicy], Any] = PasswordPolicy.hasher
    _pool: ThreadPool | None = attrs.field(default=None, init=False)
    _hasher: Any = attrs.field(default=None, init=False)
    _dummy_hash: str | None = attrs.field(default=None, init=False)
    _in_flight: int = attrs.field(default=0, init=False)

    def start(self) -> None:
        self._hasher = self.make_hasher(self.policy)
        self._pool = ThreadPool(self.threads, self.threads, name="termrooms-passwords")
        self._pool.start()
        self._run(self._check_against_dummy, "warm-up")  # make the dummy hash now

    def stop(self) -> None:
        if self._pool is not None:
            self._pool.stop()
            self._pool = None

    def _run(self, work: Callable[..., Any], *args: Any) -> Deferred:
        if self._pool is None:
            raise RuntimeError("PasswordWorkers.start() was not called")
        if self._in_flight >= self.threads + self.queue:
            raise PasswordsBusy("too many password checks are waiting")
        self._in_flight += 1

        def done(result: Any) -> Any:
            self._in_flight -= 1
            return result

        return deferToThreadPool(self.reactor, self._pool, work, *args).addBoth(done)

    def hash(self, password: str) -> Deferred:
        """Fires with the hash to store."""
        return self._run(self._hasher.hash, password)

    def check(self, stored_hash: str, password: str) -> Deferred:
        """Fires with a Verdict."""
        return self._run(_check, self._hasher, stored_hash, password)

    def check_unknown(self, password: str) -> Deferred:
        """A check that always fails, costing what a real one costs."""
        return self._run(self._check_against_dummy, password)

    def _check_against_dummy(self, password: str) -> Verdict:
        # In a worker thread. The dummy is made once, with this process's parameters, so
        # its cost matches real hashes; two threads making it at once is harmless.
        if self._dummy_hash is None:
            self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))
        _check(self._hasher, self._dummy_hash, password)
        return Verdict(False)
