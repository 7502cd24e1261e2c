"""
Password hashing with argon2id (argon2-cffi). Defaults follow OWASP: 19 MiB, 2 passes,
1 lane. Hashing is CPU-bound for tens of milliseconds: callers on the reactor run it in
a thread.
"""

from __future__ import annotations

import argon2
import attrs

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
    """The encoded argon2id hash to store (parameters and salt included)."""
    return policy.hasher().hash(password)
