"""
Access tokens: short-lived HS256 JWTs (PyJWT), verified the way RFC 8725 asks.

An access token names a user (``sub``) and the refresh-token family it was minted from
(``sid``), so revoking the family can be checked without a database round trip per
frame. Signing keys are identified by ``kid`` and kept in a ``KeyRing``: rotation adds
a new active key and keeps the retired ones verifying until their tokens have expired.

Pure logic: no I/O, no clock. ``now`` is passed in (seconds since the Unix epoch), so
tests move time by passing a bigger number. The key file lives in ``termrooms.storage.keys``.
"""

from __future__ import annotations

import math
import re
import secrets
from collections.abc import Iterable
from typing import Any

import attrs
import jwt

from termrooms.domain.errors import ApiError

__all__ = [
    "ALGORITHM",
    "MAX_LEEWAY_SECONDS",
    "MAX_TOKEN_LENGTH",
    "MIN_SECRET_BYTES",
    "REQUIRED_CLAIMS",
    "TOKEN_TYPE",
    "AccessClaims",
    "AccessTokens",
    "KeyRing",
    "SigningKey",
    "TokenError",
    "new_signing_key",
]

#: The only algorithm issued or accepted (RFC 8725 §3.1: pin it, never read it from the token).
ALGORITHM = "HS256"
#: The ``typ`` claim of an access token, so a token of another kind never passes (RFC 8725 §3.11).
TOKEN_TYPE = "access"
#: Every claim an access token must carry.
REQUIRED_CLAIMS: tuple[str, ...] = ("sub", "sid", "iat", "exp", "iss", "aud", "typ")
#: An HMAC key as long as the hash output (RFC 7518 §3.2).
MIN_SECRET_BYTES = 32
#: Ours are ~300 characters; anything this long is not ours and is not worth parsing.
MAX_TOKEN_LENGTH = 4096
#: Clock skew between nodes is seconds, not minutes; more leeway only stretches stolen tokens.
MAX_LEEWAY_SECONDS = 30

# PyJWT wraps these itself in recent releases; older 2.x let some escape.
_PARSE_ERRORS = (jwt.PyJWTError, ValueError, RecursionError)
_MAX_USER_ID = (1 << 63) - 1  # user ids are snowflakes: positive, fit a signed BIGINT
_USER_ID = re.compile(r"[1-9][0-9]{0,18}")
_KID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _check_kid(_instance: Any, _attribute: Any, value: Any) -> None:
    """A kid goes into every token header and the key file, so keep it plain."""
    if not isinstance(value, str) or not _KID.fullmatch(value):
        raise ValueError(f"kid must be 1-64 characters of A-Z a-z 0-9 _ -, got {value!r}")


def _check_secret(_instance: Any, _attribute: Any, value: Any) -> None:
    """A short HMAC key can be brute-forced offline from any one token."""
    if not isinstance(value, bytes) or len(value) < MIN_SECRET_BYTES:
        raise ValueError(f"secret must be at least {MIN_SECRET_BYTES} bytes")


def _check_time(_instance: Any, attribute: Any, value: Any) -> None:
    """Reject bools, NaN and infinities, which compare in surprising ways."""
    if value is None and attribute.name == "retired_at":
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{attribute.name} must be a finite number of seconds, got {value!r}")


@attrs.frozen
class SigningKey:
    """One HMAC key; ``retired_at`` is set once a newer key took over signing."""

    kid: str = attrs.field(validator=_check_kid)
    secret: bytes = attrs.field(validator=_check_secret, repr=False)  # never in logs
    created_at: float = attrs.field(validator=_check_time)
    retired_at: float | None = attrs.field(default=None, validator=_check_time)


def new_signing_key(now: float) -> SigningKey:
    """A fresh 256-bit key with a random kid, so kids never collide across rotations."""
    return SigningKey(kid=secrets.token_hex(8), secret=secrets.token_bytes(32), created_at=now)


def _key_tuple(keys: Iterable[SigningKey]) -> tuple[SigningKey, ...]:
    """KeyRing's converter: a typed ``tuple`` (a bare one would make ``keys`` untyped)."""
    return tuple(keys)


@attrs.frozen
class KeyRing:
    """The keys a node verifies with, and the one it signs with."""

    keys: tuple[SigningKey, ...] = attrs.field(converter=_key_tuple)
    active_kid: str

    def __attrs_post_init__(self) -> None:
        if not self.keys:
            raise ValueError("a key ring needs at least one key")
        kids = [key.kid for key in self.keys]
        if len(set(kids)) != len(kids):
            raise ValueError("key ids in a key ring must be unique")
        if self.active_kid not in kids:
            raise ValueError(f"active key {self.active_kid!r} is not in the key ring")
        if self.active.retired_at is not None:
            raise ValueError(f"active key {self.active_kid!r} is marked retired")

    @property
    def active(self) -> SigningKey:
        """The key new tokens are signed with."""
        key = self.get(self.active_kid)
        assert key is not None  # checked at construction
        return key

    def get(self, kid: str) -> SigningKey | None:
        """The key with this kid, or None (a kid from a token is untrusted input)."""
        for key in self.keys:
            if key.kid == kid:
                return key
        return None

    def rotated(self, now: float, keep_retired_for: float) -> KeyRing:
        """A ring with a new active key: the old one retires at ``now`` but keeps verifying.

        Keys retired more than ``keep_retired_for`` seconds ago are dropped; pass at least
        the access-token lifetime plus leeway so no live token loses its key.
        """
        if not math.isfinite(keep_retired_for) or keep_retired_for < 0:
            raise ValueError("keep_retired_for must be a non-negative number of seconds")
        fresh = new_signing_key(now)
        kept = tuple(
            attrs.evolve(key, retired_at=now) if key.kid == self.active_kid else key
            for key in self.keys
            if key.retired_at is None or now - key.retired_at <= keep_retired_for
        )
        return KeyRing(keys=(*kept, fresh), active_kid=fresh.kid)


@attrs.frozen
class AccessClaims:
    """What a verified access token says: who, which refresh family, and its lifetime."""

    user_id: int
    family_id: str
    issued_at: int
    expires_at: int


_TOKEN_ERROR_CODES = frozenset({"token_invalid", "token_expired"})


@attrs.frozen
class TokenError(Exception):
    """Why a token was refused; ``detail`` is for logs and clients, never the token itself."""

    error_code: str = attrs.field(validator=attrs.validators.in_(_TOKEN_ERROR_CODES))
    detail: str

    def __str__(self) -> str:
        return f"{self.error_code}: {self.detail}"

    def api_error(self) -> ApiError:
        """The contract's 401 body for this refusal."""
        return ApiError(self.error_code, self.detail)


def _invalid(detail: str) -> TokenError:
    return TokenError("token_invalid", detail)


def _positive(_instance: Any, attribute: Any, value: int) -> None:
    if not _is_int(value) or value <= 0:
        raise ValueError(f"{attribute.name} must be a positive int, got {value!r}")


def _small_leeway(_instance: Any, attribute: Any, value: int) -> None:
    if not _is_int(value) or not 0 <= value <= MAX_LEEWAY_SECONDS:
        raise ValueError(f"{attribute.name} must be 0..{MAX_LEEWAY_SECONDS} seconds, got {value!r}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@attrs.frozen
class AccessTokens:
    """Issues and verifies access tokens for one issuer and audience."""

    issuer: str
    audience: str
    ttl_seconds: int = attrs.field(default=900, validator=_positive)
    leeway_seconds: int = attrs.field(default=5, validator=_small_leeway)

    def issue(self, ring: KeyRing, user_id: int, family_id: str, now: float) -> str:
        """Sign a token for ``user_id`` with the ring's active key, valid for ``ttl_seconds``."""
        if not _is_int(user_id) or not 0 < user_id <= _MAX_USER_ID:
            raise ValueError(f"user_id must be a positive 63-bit int, got {user_id!r}")
        if not isinstance(family_id, str) or not family_id:
            raise ValueError("family_id must be a non-empty string")
        issued_at = math.floor(now)
        key = ring.active
        token = jwt.encode(
            {
                "sub": str(user_id),
                "sid": family_id,
                "iat": issued_at,
                "exp": issued_at + self.ttl_seconds,
                "iss": self.issuer,
                "aud": self.audience,
                "typ": TOKEN_TYPE,
            },
            key.secret,
            algorithm=ALGORITHM,
            headers={"kid": key.kid},
        )
        if len(token) > MAX_TOKEN_LENGTH:
            # verify() would refuse it; fail here, where the cause is visible.
            raise ValueError(f"token would exceed {MAX_TOKEN_LENGTH} characters")
        return token

    @property
    def _longest_lifetime(self) -> int:
        return self.ttl_seconds + self.leeway_seconds

    def verify(self, ring: KeyRing, token: str, now: float) -> AccessClaims:
        """The claims of a valid access token; TokenError (never a PyJWT error) otherwise.

        An expired token is ``token_expired`` so the client knows to refresh; every other
        refusal is ``token_invalid``. Expiry is checked last, so a forged or foreign token
        is never reported as merely expired.
        """
        if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
            raise _invalid("malformed token")
        try:
            header = jwt.get_unverified_header(token)
        except _PARSE_ERRORS:
            raise _invalid("malformed token") from None
        # Checked before any key is touched: "none", RS256 (key confusion) and friends
        # must never reach a verifier. PyJWT pins the list again below.
        if header.get("alg") != ALGORITHM:
            raise _invalid("unsupported algorithm")
        if "crit" in header:
            raise _invalid("unsupported critical header")
        kid = header.get("kid")
        key = ring.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise _invalid("unknown signing key")
        # Every token a key signed before it retired has expired by then, so a token
        # it "signed" later was not minted here (or the key leaked after retirement).
        if key.retired_at is not None and now - key.retired_at > self._longest_lifetime:
            raise _invalid("signing key retired")
        try:
            claims = jwt.decode(
                token,
                key.secret,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                options={
                    "require": list(REQUIRED_CLAIMS),
                    "verify_signature": True,
                    "verify_aud": True,
                    "verify_iss": True,
                    # Time is checked below against the injected ``now``.
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except _PARSE_ERRORS:
            raise _invalid("signature or claims rejected") from None
        return self._check_claims(claims, now)

    def _check_claims(self, claims: dict[str, Any], now: float) -> AccessClaims:
        """The checks PyJWT does not do, or does against the wall clock."""
        # PyJWT accepts an audience list containing ours; we only ever issue the string.
        if claims["aud"] != self.audience or claims["iss"] != self.issuer:
            raise _invalid("wrong audience or issuer")
        if claims["typ"] != TOKEN_TYPE:
            raise _invalid("not an access token")
        sub, sid = claims["sub"], claims["sid"]
        if not isinstance(sub, str) or not _USER_ID.fullmatch(sub) or int(sub) > _MAX_USER_ID:
            raise _invalid("malformed subject")
        if not isinstance(sid, str) or not sid:
            raise _invalid("malformed session")
        iat, exp = claims["iat"], claims["exp"]
        if not _is_int(iat) or not _is_int(exp):
            raise _invalid("malformed timestamps")
        if iat > now + self.leeway_seconds:
            raise _invalid("issued in the future")
        if not 0 < exp - iat <= self._longest_lifetime:
            raise _invalid("lifetime out of range")
        if now >= exp + self.leeway_seconds:
            raise TokenError("token_expired", "access token expired")
        return AccessClaims(user_id=int(sub), family_id=sid, issued_at=iat, expires_at=exp)
