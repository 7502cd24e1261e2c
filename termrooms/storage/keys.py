"""
The signing-key file: where the access-token ``KeyRing`` lives between restarts.

One JSON file, owner-only (0600), in the data directory or wherever an operator points::

    {"version": 1, "active": KID,
     "keys": [{"kid": ..., "secret": base64url, "created_at": float, "retired_at": float|null}]}

Every write is atomic (a complete temporary file, then link or rename), so a daemon that
reads the file while ``termrooms rotate-key`` runs sees the old ring or the new one,
never half of either. Blocking file I/O, no Twisted: called at start-up and from the CLI.
"""

from __future__ import annotations

import base64
import binascii
import errno
import fcntl
import json
import math
import os
import re
import secrets
import stat
from pathlib import Path
from typing import Any

from termrooms.domain.tokens import KeyRing, SigningKey, new_signing_key

__all__ = [
    "KEY_FILE_VERSION",
    "KeyFileError",
    "load_or_create_key_ring",
    "read_key_ring",
    "rotate_key",
]

KEY_FILE_VERSION = 1
_MAX_FILE_BYTES = 1 << 20  # thousands of keys; anything bigger is not a key file
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*={0,2}")
_KEY_FIELDS = frozenset({"kid", "secret", "created_at", "retired_at"})


class KeyFileError(ValueError):
    """The key file is missing, unsafe or unreadable; the message says which file and the fix."""


def read_key_ring(path: Path) -> KeyRing:
    """The ring in ``path``, without creating anything (for reloads and rotation)."""
    ring = _read_if_present(path)
    if ring is None:
        raise KeyFileError(
            f"signing key file {path} does not exist; start termrooms once to create it, "
            "or check the key file path"
        )
    return ring


def _read_if_present(path: Path) -> KeyRing | None:
    """The ring in ``path``, None if there is no file (so callers need no racy exists())."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise KeyFileError(f"cannot open signing key file {path}: {e.strerror}") from None
    try:
        # fstat the open file, not the path, so the checks apply to what is read.
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise KeyFileError(f"signing key file {path} is not a regular file")
        if info.st_mode & 0o006:
            raise KeyFileError(
                f"signing key file {path} is accessible to other users "
                f"(mode {stat.S_IMODE(info.st_mode):04o}); anyone who reads it can forge "
                f"access tokens. Fix it with: chmod 600 {path} (and rotate the key if it "
                "may have been read)"
            )
        with os.fdopen(fd, "rb", closefd=False) as f:
            raw = f.read(_MAX_FILE_BYTES + 1)
    finally:
        os.close(fd)
    if len(raw) > _MAX_FILE_BYTES:
        raise KeyFileError(f"signing key file {path} is larger than {_MAX_FILE_BYTES} bytes")
    return _parse(raw, path)


def load_or_create_key_ring(path: Path, now: float) -> KeyRing:
    """The ring in ``path``, creating the file with one fresh key on first start.

    Safe when several processes start at once: each writes a complete temporary file and
    links it into place, which fails if the file exists; a loser drops its own key and
    reads the winner's, so all of them sign with the same key.
    """
    try:
        _make_private_directory(path.parent)
        existing = _read_if_present(path)
        if existing is not None:
            return existing
        ring = _first_ring(now)
        temp = _write_temp_file(path, _serialize(ring))
        try:
            os.link(temp, path)  # never replaces: EEXIST if someone else created it first
        except FileExistsError:
            return read_key_ring(path)
        finally:
            os.unlink(temp)
        _fsync_directory(path.parent)
        return ring
    except OSError as e:
        raise KeyFileError(f"cannot create signing key file {path}: {e}") from e


def rotate_key(path: Path, now: float, keep_retired_for: float) -> KeyRing:
    """Retire the active key at ``now`` and make a new one active; returns the new ring.

    Retired keys keep verifying (tokens they signed stay valid until they expire); those
    retired more than ``keep_retired_for`` seconds ago are dropped, so pass at least the
    access-token lifetime plus leeway. Holds an exclusive lock on ``<path>.lock`` so two
    rotations never both start from the same old ring and lose a key.
    """
    try:
        return _rotate_locked(path, now, keep_retired_for)
    except OSError as e:
        raise KeyFileError(f"cannot rotate signing key file {path}: {e}") from e


def _rotate_locked(path: Path, now: float, keep_retired_for: float) -> KeyRing:
    lock_fd = os.open(_lock_path(path), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        ring = read_key_ring(path).rotated(now, keep_retired_for)
        temp = _write_temp_file(path, _serialize(ring), like=os.stat(path))
        try:
            os.replace(temp, path)
        except BaseException:
            os.unlink(temp)
            raise
        _fsync_directory(path.parent)
        return ring
    finally:
        # Closing releases the lock. The lock file stays: deleting it would let a
        # third process lock a fresh inode while the second still holds the old one.
        os.close(lock_fd)


def _first_ring(now: float) -> KeyRing:
    key = new_signing_key(now)
    return KeyRing(keys=(key,), active_kid=key.kid)


def _lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


def _make_private_directory(directory: Path) -> None:
    """Create the data directory owner-only; an existing one is the operator's business."""
    try:
        directory.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        return
    os.chmod(directory, 0o700)  # mkdir's mode is filtered through the umask


def _write_temp_file(path: Path, data: bytes, like: os.stat_result | None = None) -> Path:
    """A complete, fsynced, owner-only file next to ``path``, ready to link or rename.

    With ``like`` (the file being replaced), keep its owner, group and group bits:
    ``rotate-key`` run as root must not leave a file the daemon's user can no longer read.
    """
    temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temp, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o600)
    try:
        file_mode = 0o600
        if like is not None:
            try:
                os.fchown(fd, like.st_uid if os.geteuid() == 0 else -1, like.st_gid)
            except PermissionError:
                pass  # not a member of that group: stay owner-only
            else:
                file_mode |= stat.S_IMODE(like.st_mode) & 0o060
        os.fchmod(fd, file_mode)  # the umask may have stripped bits from os.open's mode
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(temp)
        raise
    os.close(fd)
    return temp


def _fsync_directory(directory: Path) -> None:
    """Make the new directory entry durable, so a crash cannot bring the old file back."""
    fd = os.open(directory, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOTSUP):  # some filesystems refuse
            raise
    finally:
        os.close(fd)


def _serialize(ring: KeyRing) -> bytes:
    document = {
        "version": KEY_FILE_VERSION,
        "active": ring.active_kid,
        "keys": [
            {
                "kid": key.kid,
                "secret": base64.urlsafe_b64encode(key.secret).rstrip(b"=").decode("ascii"),
                "created_at": float(key.created_at),
                "retired_at": None if key.retired_at is None else float(key.retired_at),
            }
            for key in ring.keys
        ],
    }
    return (json.dumps(document, indent=2) + "\n").encode("utf-8")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _parse(raw: bytes, path: Path) -> KeyRing:
    """Validate every field, so a hand-edited file fails at start-up, not at the first login."""

    def bad(problem: str) -> KeyFileError:
        return KeyFileError(
            f"signing key file {path} is malformed ({problem}); fix it, or move it away "
            "and restart termrooms to create a new one (which logs everyone out)"
        )

    try:
        document = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as e:
        raise bad(f"not JSON: {e}") from None
    if not isinstance(document, dict):
        raise bad("not a JSON object")
    if document.get("version") != KEY_FILE_VERSION or isinstance(document.get("version"), bool):
        raise bad(f"version must be {KEY_FILE_VERSION}")
    active, entries = document.get("active"), document.get("keys")
    if not isinstance(active, str):
        raise bad('"active" must be a key id')
    if not isinstance(entries, list) or not entries:
        raise bad('"keys" must be a non-empty list')
    keys = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or set(entry) != _KEY_FIELDS:
            raise bad(f"keys[{index}] must have exactly {', '.join(sorted(_KEY_FIELDS))}")
        keys.append(
            _parse_key(entry, lambda problem, index=index: bad(f"keys[{index}]: {problem}"))
        )
    try:
        return KeyRing(keys=tuple(keys), active_kid=active)
    except ValueError as e:
        raise bad(str(e)) from None


def _parse_key(entry: dict[str, Any], bad: Any) -> SigningKey:
    secret_text = entry["secret"]
    if not isinstance(secret_text, str) or not _BASE64URL.fullmatch(secret_text):
        raise bad("secret must be base64url")
    unpadded = secret_text.rstrip("=")
    try:
        secret = base64.urlsafe_b64decode(unpadded + "=" * (-len(unpadded) % 4))
    except (binascii.Error, ValueError):
        raise bad("secret must be base64url") from None
    for name in ("created_at", "retired_at"):
        value = entry[name]
        if value is None and name == "retired_at":
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad(f"{name} must be a number of seconds")
        if not math.isfinite(value):
            raise bad(f"{name} must be finite")
    try:
        return SigningKey(
            kid=entry["kid"],
            secret=secret,
            created_at=float(entry["created_at"]),
            retired_at=None if entry["retired_at"] is None else float(entry["retired_at"]),
        )
    except ValueError as e:
        raise bad(str(e)) from None
