"""
The access-token signing keys of this process: read from the key file (created on first
start), and re-read when the file changes, so `termrooms rotate-key` takes effect in a
running daemon without a restart.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import attrs
from twisted.logger import Logger

from termrooms.domain.tokens import KeyRing
from termrooms.storage.keys import KeyFileError, load_or_create_key_ring, read_key_ring

RECHECK_SECONDS = 1.0
_log = Logger()


@attrs.define(eq=False)
class SigningKeys:
    path: Path
    clock: Callable[[], float]
    _ring: KeyRing | None = attrs.field(default=None, init=False)
    _mtime_ns: int = attrs.field(default=-1, init=False)
    _checked_at: float = attrs.field(default=float("-inf"), init=False)

    def load(self) -> KeyRing:
        """Read the key file, creating it with a first key when there is none."""
        self._ring = load_or_create_key_ring(self.path, self.clock())
        self._mtime_ns = os.stat(self.path).st_mtime_ns
        self._checked_at = self.clock()
        return self._ring

    def ring(self) -> KeyRing:
        """The current keys; a stat() at most once a second notices a rotation."""
        if self._ring is None:
            return self.load()
        now = self.clock()
        if now - self._checked_at >= RECHECK_SECONDS:
            self._checked_at = now
            try:
                mtime_ns = os.stat(self.path).st_mtime_ns
            except OSError:
                return self._ring  # moved away mid-rotation, say: keep what we have
            if mtime_ns != self._mtime_ns:
                try:
                    self._ring = read_key_ring(self.path)
                except KeyFileError as e:
                    # Keep signing with the keys we have rather than fail every request.
                    _log.error("signing key file not reloaded: {error}", error=str(e))
                self._mtime_ns = mtime_ns
        return self._ring
