"""Tests for termrooms.domain.tokens: access tokens round-trip, and every RFC 8725 attack is refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from typing import Any

import attrs
import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from support import third_party_imports
from termrooms.domain import tokens
from termrooms.domain.tokens import (
    MAX_TOKEN_LENGTH,
    REQUIRED_CLAIMS,
    AccessClaims,
    AccessTokens,
    KeyRing,
    SigningKey,
    TokenError,
    new_signing_key,
)

NOW = 1_750_000_000.0
ISSUER = "https://chat.example"
AUDIENCE = "termrooms"
TOKENS = AccessTokens(issuer=ISSUER, audience=AUDIENCE)  # ttl 900, leeway 5


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def forge(header: dict[str, Any], payload: dict[str, Any], secret: bytes | None = None) -> str:
    """A compact JWS built by hand, HMAC-SHA256 signed with ``secret`` or unsigned."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}"
    if secret is None:
        return f"{signing_input}."
    return f"{signing_input}.{b64url(mac(secret, signing_input))}"


def mac(secret: bytes, signing_input: str) -> bytes:
    return hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()


def signed(ring: KeyRing, claims: dict[str, Any], **header: Any) -> str:
    """A hand-built token, correctly signed with the active key; ``header`` overrides."""
    return forge({"alg": "HS256", "kid": ring.active_kid, **header}, claims, ring.active.secret)


def good_claims(**overrides: Any) -> dict[str, Any]:
    claims = {
        "sub": "42",
        "sid": "family-1",
        "iat": int(NOW),
        "exp": int(NOW) + 900,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "typ": "access",
    }
    claims.update(overrides)
    return claims


def refused(ring: KeyRing, token: Any, now: float = NOW) -> TokenError:
    with pytest.raises(TokenError) as caught:
        TOKENS.verify(ring, token, now)
    return caught.value


@pytest.fixture
def key() -> SigningKey:
    return new_signing_key(NOW - 3600)


@pytest.fixture
def ring(key: SigningKey) -> KeyRing:
    return KeyRing(keys=(key,), active_kid=key.kid)


# -- the happy path -------------------------------------------------------------------


def test_round_trip_returns_the_claims(ring: KeyRing) -> None:
    token = TOKENS.issue(ring, user_id=42, family_id="family-1", now=NOW + 0.7)
    assert TOKENS.verify(ring, token, NOW + 60) == AccessClaims(
        user_id=42, family_id="family-1", issued_at=int(NOW), expires_at=int(NOW) + 900
    )


def test_issued_token_carries_every_claim_and_the_kid(ring: KeyRing) -> None:
    token = TOKENS.issue(ring, user_id=2**63 - 1, family_id="f", now=NOW)
    header = jwt.get_unverified_header(token)
    payload = jwt.decode(token, options={"verify_signature": False})
    assert header["alg"] == "HS256"
    assert header["kid"] == ring.active_kid
    assert payload == {
        "sub": str(2**63 - 1),
        "sid": "f",
        "iat": int(NOW),
        "exp": int(NOW) + 900,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "typ": "access",
    }
    assert set(payload) == set(REQUIRED_CLAIMS)


def test_issue_uses_the_active_key_of_a_rotated_ring(ring: KeyRing) -> None:
    rotated = ring.rotated(NOW, keep_retired_for=3600)
    token = TOKENS.issue(rotated, 42, "f", NOW)
    assert jwt.get_unverified_header(token)["kid"] == rotated.active_kid != ring.active_kid
    # Only the active key's secret verifies it.
    jwt.decode(
        token,
        rotated.active.secret,
        algorithms=["HS256"],
        audience=AUDIENCE,
        options={"verify_exp": False},
    )
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, ring.active.secret, algorithms=["HS256"], options={"verify_exp": False})


def test_ttl_is_configurable(ring: KeyRing) -> None:
    short = AccessTokens(issuer=ISSUER, audience=AUDIENCE, ttl_seconds=60)
    claims = short.verify(ring, short.issue(ring, 42, "f", NOW), NOW)
    assert claims.expires_at - claims.issued_at == 60
    with pytest.raises(TokenError, match="token_expired"):
        short.verify(ring, short.issue(ring, 42, "f", NOW), NOW + 65)


# -- forgery and confusion: all token_invalid ------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none_is_invalid(ring: KeyRing, alg: str) -> None:
    token = forge({"alg": alg, "kid": ring.active_kid}, good_claims())
    assert token.endswith(".")
    assert refused(ring, token).error_code == "token_invalid"


@pytest.mark.parametrize(
    "alg", ["RS256", "ES256", "PS256", "HS384", "HS512", "hs256", "HS256 ", ""]
)
def test_any_other_algorithm_is_invalid_even_when_correctly_keyed(ring: KeyRing, alg: str) -> None:
    # Signed with the real secret (HMAC-SHA256), only the header's alg differs: the
    # classic RS256/HS256 key confusion and downgrade/upgrade attempts.
    token = signed(ring, good_claims(), alg=alg)
    assert refused(ring, token).error_code == "token_invalid"


@pytest.mark.filterwarnings("ignore:The HMAC key")
def test_hs512_signed_with_the_right_key_is_invalid(ring: KeyRing) -> None:
    token = jwt.encode(
        good_claims(), ring.active.secret, algorithm="HS512", headers={"kid": ring.active_kid}
    )
    assert refused(ring, token).error_code == "token_invalid"


def test_missing_alg_is_invalid(ring: KeyRing) -> None:
    token = forge({"kid": ring.active_kid}, good_claims(), ring.active.secret)
    assert refused(ring, token).error_code == "token_invalid"


def test_hand_forged_token_with_the_right_key_verifies(ring: KeyRing) -> None:
    # Proves forge() is faithful, so the refusals above are about what each one changed.
    token = signed(ring, good_claims(), typ="JWT")
    assert TOKENS.verify(ring, token, NOW).user_id == 42


def test_right_kid_but_another_secret_is_invalid(ring: KeyRing) -> None:
    token = jwt.encode(
        good_claims(), secrets.token_bytes(32), algorithm="HS256", headers={"kid": ring.active_kid}
    )
    assert refused(ring, token).error_code == "token_invalid"


def test_tampered_payload_is_invalid(ring: KeyRing) -> None:
    header, _payload, signature = TOKENS.issue(ring, 42, "f", NOW).split(".")
    promoted = b64url(json.dumps(good_claims(sub="1", sid="f")).encode())
    assert refused(ring, f"{header}.{promoted}.{signature}").error_code == "token_invalid"


def test_kid_swapped_to_another_key_in_the_ring_is_invalid(key: SigningKey) -> None:
    other = new_signing_key(NOW)
    ring = KeyRing(keys=(key, other), active_kid=key.kid)
    _header, payload, signature = TOKENS.issue(ring, 42, "f", NOW).split(".")
    swapped = b64url(json.dumps({"alg": "HS256", "kid": other.kid, "typ": "JWT"}).encode())
    assert refused(ring, f"{swapped}.{payload}.{signature}").error_code == "token_invalid"


def test_signature_stripped_is_invalid(ring: KeyRing) -> None:
    header, payload, _signature = TOKENS.issue(ring, 42, "f", NOW).split(".")
    assert refused(ring, f"{header}.{payload}.").error_code == "token_invalid"


def test_wrong_audience_is_invalid(ring: KeyRing) -> None:
    token = AccessTokens(issuer=ISSUER, audience="another-service").issue(ring, 42, "f", NOW)
    assert refused(ring, token).error_code == "token_invalid"


def test_audience_list_is_invalid(ring: KeyRing) -> None:
    # PyJWT accepts a list containing ours; we never issue one, so it is not ours.
    token = signed(ring, good_claims(aud=[AUDIENCE, "other"]))
    assert refused(ring, token).error_code == "token_invalid"


def test_wrong_issuer_is_invalid(ring: KeyRing) -> None:
    token = AccessTokens(issuer="https://evil.example", audience=AUDIENCE).issue(ring, 42, "f", NOW)
    assert refused(ring, token).error_code == "token_invalid"


@pytest.mark.parametrize("typ", ["refresh", "Access", "", None, 1])
def test_token_of_another_type_is_invalid(ring: KeyRing, typ: Any) -> None:
    token = signed(ring, good_claims(typ=typ))
    assert refused(ring, token).error_code == "token_invalid"


@pytest.mark.parametrize("claim", REQUIRED_CLAIMS)
def test_missing_claim_is_invalid(ring: KeyRing, claim: str) -> None:
    claims = good_claims()
    del claims[claim]
    token = signed(ring, claims)
    assert refused(ring, token).error_code == "token_invalid"


@pytest.mark.parametrize("claim", REQUIRED_CLAIMS)
def test_null_claim_is_invalid(ring: KeyRing, claim: str) -> None:
    token = signed(ring, good_claims(**{claim: None}))
    assert refused(ring, token).error_code == "token_invalid"


@pytest.mark.parametrize(
    "overrides",
    [
        {"sub": "0"},
        {"sub": "-1"},
        {"sub": "+1"},
        {"sub": "042"},
        {"sub": "4 2"},
        {"sub": "abc"},
        {"sub": "\u0664\u0662"},  # Arabic-Indic "42": isdigit() says yes, we say no
        {"sub": str(2**63)},
        {"sub": 42},
        {"sid": ""},
        {"sid": 7},
        {"sid": ["f"]},
        {"iat": NOW},  # a float
        {"iat": str(int(NOW))},
        {"iat": True},
        {"exp": float(int(NOW) + 900)},
        {"exp": int(NOW)},  # zero lifetime
        {"exp": int(NOW) - 1},  # expires before it was issued
        {"exp": int(NOW) + 3600},  # longer than the ttl: not minted by us
    ],
    ids=repr,
)
def test_malformed_claims_are_invalid(ring: KeyRing, overrides: dict[str, Any]) -> None:
    token = signed(ring, good_claims(**overrides))
    assert refused(ring, token).error_code == "token_invalid"


@pytest.mark.parametrize("kid", ["0123456789abcdef", "", None, 7, ["x"]], ids=repr)
def test_unknown_or_malformed_kid_is_invalid(ring: KeyRing, kid: Any) -> None:
    token = signed(ring, good_claims(), kid=kid)
    assert refused(ring, token).error_code == "token_invalid"


def test_missing_kid_is_invalid(ring: KeyRing) -> None:
    token = forge({"alg": "HS256"}, good_claims(), ring.active.secret)
    assert refused(ring, token).error_code == "token_invalid"


@pytest.mark.parametrize("crit", [["exp"], ["b64"], [], "b64"], ids=repr)
def test_crit_header_is_invalid(ring: KeyRing, crit: Any) -> None:
    token = signed(ring, good_claims(), crit=crit)
    assert refused(ring, token).error_code == "token_invalid"


def _padded_token(ring: KeyRing, length: int) -> str:
    """A correctly signed token as close to ``length`` characters as padding allows."""
    pad = 0
    while True:
        if len(signed(ring, good_claims(pad="x" * (pad + 1)))) > length:
            return signed(ring, good_claims(pad="x" * pad))
        pad += 1


def test_over_long_token_is_invalid_without_parsing(ring: KeyRing) -> None:
    fits = _padded_token(ring, MAX_TOKEN_LENGTH)
    assert len(fits) <= MAX_TOKEN_LENGTH
    assert TOKENS.verify(ring, fits, NOW).user_id == 42
    too_long = _padded_token(ring, MAX_TOKEN_LENGTH + 4)
    assert len(too_long) > MAX_TOKEN_LENGTH
    assert refused(ring, too_long).error_code == "token_invalid"


@pytest.mark.parametrize(
    "garbage",
    ["", ".", "..", "...", "abc", "a.b", "a.b.c", "a.b.c.d", "eyJ.eyJ.", "Bearer x.y.z"]
    + ["\x00.\x00.\x00", "ü.ü.ü"],
    ids=repr,
)
def test_garbage_is_invalid(ring: KeyRing, garbage: str) -> None:
    assert refused(ring, garbage).error_code == "token_invalid"


@pytest.mark.parametrize("not_a_string", [None, 42, ["x"]], ids=repr)
def test_non_string_is_invalid(ring: KeyRing, not_a_string: Any) -> None:
    assert refused(ring, not_a_string).error_code == "token_invalid"


def test_token_as_bytes_is_invalid(ring: KeyRing) -> None:
    assert refused(ring, TOKENS.issue(ring, 42, "f", NOW).encode()).error_code == "token_invalid"


def test_surrounding_whitespace_is_invalid(ring: KeyRing) -> None:
    token = TOKENS.issue(ring, 42, "f", NOW)
    assert refused(ring, f" {token}").error_code == "token_invalid"
    assert refused(ring, f"{token}\n").error_code == "token_invalid"


def test_deeply_nested_json_is_invalid(ring: KeyRing) -> None:
    header = b64url(json.dumps({"alg": "HS256", "kid": ring.active_kid}).encode())
    payload = b64url(b"[" * 1400 + b"]" * 1400)
    signing_input = f"{header}.{payload}"
    signature = b64url(mac(ring.active.secret, signing_input))
    assert refused(ring, f"{signing_input}.{signature}").error_code == "token_invalid"
    assert refused(ring, f"{b64url(b'[' * 2000 + b']' * 2000)}.e30.").error_code == "token_invalid"


@given(st.text(max_size=300) | st.from_regex(r"\A[\w=-]{0,60}\.[\w=-]{0,60}\.[\w=-]{0,60}\Z"))
def test_arbitrary_input_only_ever_raises_token_invalid(garbage: str) -> None:
    key = SigningKey(kid="k1", secret=b"s" * 32, created_at=NOW)
    with pytest.raises(TokenError) as caught:
        TOKENS.verify(KeyRing(keys=(key,), active_kid="k1"), garbage, NOW)
    assert caught.value.error_code == "token_invalid"


def test_refusal_never_echoes_the_token(ring: KeyRing) -> None:
    token = TOKENS.issue(ring, 42, "secret-family", NOW)
    for bad in (token + "x", token, "nonsense-" + token):
        try:
            AccessTokens(issuer=ISSUER, audience="x").verify(ring, bad, NOW + 10_000)
        except TokenError as e:
            assert token not in str(e) and "secret-family" not in str(e)
            assert e.api_error().status == 401
            assert e.api_error().body() == {"detail": e.detail, "error_code": e.error_code}
        else:  # pragma: no cover
            pytest.fail("verified a token for another audience")


# -- time ------------------------------------------------------------------------------


def test_expired_token_is_token_expired(ring: KeyRing) -> None:
    token = TOKENS.issue(ring, 42, "f", NOW)
    exp = int(NOW) + 900
    assert refused(ring, token, now=exp + 5).error_code == "token_expired"
    assert refused(ring, token, now=exp + 86400).error_code == "token_expired"


def test_token_within_leeway_of_expiry_is_still_valid(ring: KeyRing) -> None:
    token = TOKENS.issue(ring, 42, "f", NOW)
    exp = int(NOW) + 900
    for now in (exp - 1, exp, exp + 4.999):
        assert TOKENS.verify(ring, token, now).user_id == 42


def test_expired_but_tampered_token_is_invalid_not_expired(ring: KeyRing) -> None:
    # Otherwise "expired" would confirm to an attacker that a forgery passed the signature.
    header, _payload, signature = TOKENS.issue(ring, 42, "f", NOW).split(".")
    tampered = b64url(json.dumps(good_claims(sub="1")).encode())
    error = refused(ring, f"{header}.{tampered}.{signature}", now=NOW + 10_000)
    assert error.error_code == "token_invalid"


def test_expired_token_of_another_type_is_invalid(ring: KeyRing) -> None:
    token = signed(ring, good_claims(typ="refresh"))
    assert refused(ring, token, now=NOW + 10_000).error_code == "token_invalid"


def test_token_issued_in_the_future_beyond_leeway_is_invalid(ring: KeyRing) -> None:
    assert TOKENS.verify(ring, TOKENS.issue(ring, 42, "f", NOW + 5), NOW).user_id == 42
    too_early = TOKENS.issue(ring, 42, "f", NOW + 6)
    assert refused(ring, too_early, now=NOW).error_code == "token_invalid"


# -- key rotation ----------------------------------------------------------------------


def test_token_signed_by_a_recently_retired_key_still_verifies(ring: KeyRing) -> None:
    token = TOKENS.issue(ring, 42, "f", NOW)
    rotated = ring.rotated(NOW + 1, keep_retired_for=86400)
    assert rotated.get(ring.active_kid).retired_at == NOW + 1
    assert TOKENS.verify(rotated, token, NOW + 600).user_id == 42


def test_key_retired_longer_ago_than_a_token_lifetime_no_longer_verifies(ring: KeyRing) -> None:
    # A forged iat/exp cannot keep a retired key alive: the retirement age is checked.
    rotated = ring.rotated(NOW, keep_retired_for=86400)
    late = signed(ring, good_claims(iat=int(NOW) + 900, exp=int(NOW) + 1800))
    assert TOKENS.verify(rotated, late, NOW + 905).user_id == 42  # retired 905 s ago: ttl + leeway
    assert refused(rotated, late, now=NOW + 906).error_code == "token_invalid"


def test_rotation_prunes_keys_retired_long_ago(ring: KeyRing) -> None:
    second = ring.rotated(NOW, keep_retired_for=1000)
    third = second.rotated(NOW + 500, keep_retired_for=1000)
    assert [k.kid for k in third.keys] == [ring.active_kid, second.active_kid, third.active_kid]
    fourth = third.rotated(NOW + 1001, keep_retired_for=1000)
    assert [k.kid for k in fourth.keys] == [second.active_kid, third.active_kid, fourth.active_kid]
    assert fourth.active.retired_at is None
    assert [k.retired_at for k in fourth.keys] == [NOW + 500, NOW + 1001, None]


# -- value rules -----------------------------------------------------------------------


def test_new_signing_keys_are_random_and_256_bit() -> None:
    a, b = new_signing_key(NOW), new_signing_key(NOW)
    assert len(a.secret) == 32 and len(a.kid) == 16
    int(a.kid, 16)
    assert a.kid != b.kid and a.secret != b.secret
    assert a.created_at == NOW and a.retired_at is None


def test_signing_key_repr_hides_the_secret() -> None:
    key = new_signing_key(NOW)
    assert key.secret.hex() not in repr(key) and repr(key.secret) not in repr(key)


@pytest.mark.parametrize(
    "fields",
    [
        {"secret": b"short"},
        {"secret": "a" * 32},
        {"kid": ""},
        {"kid": "has space"},
        {"kid": "x" * 65},
        {"created_at": float("nan")},
        {"retired_at": float("inf")},
    ],
    ids=repr,
)
def test_signing_key_rejects_bad_fields(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        SigningKey(**{"kid": "k", "secret": b"s" * 32, "created_at": NOW, **fields})


def test_key_ring_rejects_inconsistent_keys(key: SigningKey) -> None:
    with pytest.raises(ValueError, match="at least one"):
        KeyRing(keys=(), active_kid="x")
    with pytest.raises(ValueError, match="unique"):
        KeyRing(keys=(key, attrs.evolve(key, secret=b"t" * 32)), active_kid=key.kid)
    with pytest.raises(ValueError, match="not in the key ring"):
        KeyRing(keys=(key,), active_kid="missing")
    with pytest.raises(ValueError, match="retired"):
        KeyRing(keys=(attrs.evolve(key, retired_at=NOW),), active_kid=key.kid)
    with pytest.raises(ValueError):
        KeyRing(keys=(key,), active_kid=key.kid).rotated(NOW, keep_retired_for=-1)


def test_key_ring_get(key: SigningKey) -> None:
    ring = KeyRing(keys=[key], active_kid=key.kid)
    assert ring.keys == (key,)
    assert ring.get(key.kid) is key is ring.active
    assert ring.get("nope") is None


@pytest.mark.parametrize(
    "fields", [{"ttl_seconds": 0}, {"leeway_seconds": -1}, {"leeway_seconds": 31}]
)
def test_access_tokens_rejects_bad_settings(fields: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        AccessTokens(issuer=ISSUER, audience=AUDIENCE, **fields)


@pytest.mark.parametrize("user_id", [0, -1, 2**63, True, "42"], ids=repr)
def test_issue_rejects_bad_user_ids(ring: KeyRing, user_id: Any) -> None:
    with pytest.raises(ValueError):
        TOKENS.issue(ring, user_id, "f", NOW)


def test_issue_rejects_empty_family(ring: KeyRing) -> None:
    with pytest.raises(ValueError):
        TOKENS.issue(ring, 42, "", NOW)


def test_token_error_only_carries_contract_codes() -> None:
    error = TokenError("token_expired", "access token expired")
    assert str(error) == "token_expired: access token expired"
    with pytest.raises(ValueError):
        TokenError("unauthorized", "x")


def test_module_is_pure() -> None:
    assert third_party_imports(tokens) == {"attrs", "jwt", "termrooms.domain.errors"}
