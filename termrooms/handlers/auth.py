"""
Accounts and sessions: registration, login, refresh rotation, logout, the caller's own
data, invites and the audit log. Routes call these; these hold the rules and call the
store, the password workers and the token signer.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Protocol

import attrs
from twisted.logger import Logger

from termrooms.cluster.limits import RateLimiter
from termrooms.domain.errors import ApiError
from termrooms.domain.invites import new_invite_code
from termrooms.domain.ratelimit import RateLimit, client_key
from termrooms.domain.rules import (
    check_fields,
    is_utf8_text,
    new_username_problem,
    password_problem,
    username_problem,
)
from termrooms.domain.snowflake import SnowflakeGenerator
from termrooms.domain.tokens import AccessTokens, TokenError
from termrooms.handlers.passwords import PasswordsBusy, PasswordWorkers, Verdict
from termrooms.storage.audit import audit_page_txn, insert_audit_txn
from termrooms.storage.database import Database
from termrooms.storage.invites import Invite, create_invite_txn
from termrooms.storage.sessions import (
    logout_txn,
    rotate_refresh_txn,
    session_is_live_txn,
    start_family_txn,
)
from termrooms.storage.signing import SigningKeys
from termrooms.storage.users import (
    User,
    delete_user_txn,
    export_user_txn,
    live_session_user_txn,
    login_record_by_id_txn,
    login_record_txn,
    register_user_txn,
    replace_password_hash_txn,
    user_by_id_txn,
)

_log = Logger()
PASSWORDS_BUSY_RETRY_AFTER = 1


@attrs.frozen
class Requester:
    """Who is calling, as proven by a verified access token whose session still stands."""

    user: User
    family_id: str
    token_expires_at: int

    @property
    def user_id(self) -> int:
        return self.user.id

    @property
    def is_admin(self) -> bool:
        return self.user.role == "admin"


@attrs.frozen
class Session:
    """A fresh pair of tokens, as register, login and refresh answer."""

    user: User
    access_token: str
    refresh_token: str
    expires_in: int


def refresh_token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def new_refresh_token() -> str:
    """256 random bits, opaque to the client."""
    return secrets.token_urlsafe(32)


class AuthSettings(Protocol):
    """The settings the account rules read (``termrooms.config.Config`` has them)."""

    @property
    def open_registration(self) -> bool: ...

    @property
    def refresh_token_ttl(self) -> timedelta: ...

    @property
    def login_rate_limit(self) -> RateLimit: ...

    @property
    def register_rate_limit(self) -> RateLimit: ...


@attrs.define(eq=False)
class AuthHandler:
    """The rules of accounts and sessions; routes and the gateway call it."""

    config: AuthSettings
    database: Database
    passwords: PasswordWorkers
    keys: SigningKeys
    tokens: AccessTokens
    limiter: RateLimiter
    snowflakes: SnowflakeGenerator
    clock: Callable[[], float]
    # Usernames whose login throttling was audited recently: one row per burst, not per try.
    _throttle_audited: dict[str, float] = attrs.field(factory=dict, init=False)

    # ------------------------------------------------------------------ sessions

    async def register(
        self, username: Any, password: Any, invite_code: Any, client: str, request_id: str
    ) -> Session:
        await self._limit(f"register:{client_key(client)}", self.config.register_rate_limit)
        check_fields(username=new_username_problem(username), password=password_problem(password))
        if self.config.open_registration:
            invite_code = None
        elif invite_code is None or invite_code == "":
            raise ApiError("invite_required", "Registration needs an invite code.")
        elif not isinstance(invite_code, str) or not is_utf8_text(invite_code):
            check_fields(invite_code="must be a string UTF-8 can carry")
        password_hash = await self._password_work(self.passwords.hash, password)
        refresh_token = new_refresh_token()
        user, family_id = await self.database.run_interaction(
            register_user_txn,
            self.snowflakes.next_id(),
            username,
            password_hash,
            invite_code=invite_code,
            token_hash=refresh_token_hash(refresh_token),
            refresh_expires_at=self._refresh_expiry(),
            request_id=request_id,
        )
        return self._session(user, family_id, refresh_token)

    async def login(self, username: Any, password: Any, client: str, request_id: str) -> Session:
        check_fields(
            username=None if isinstance(username, str) else "must be a string",
            password=None if isinstance(password, str) else "must be a string",
        )
        await self._limit_password_guess(username, client, request_id)
        # Only a well-formed name can name an account: PostgreSQL's lower() folds some
        # other characters into ASCII ("admİn" -> "admin"), which would let each such
        # spelling reach the account under a username limit of its own.
        record = None
        if username_problem(username) is None:
            record = await self.database.run_interaction(login_record_txn, username)
        if record is None:
            # The same work and the same answer as a wrong password: no enumeration.
            await self._password_work(self.passwords.check_unknown, password)
            raise wrong_credentials()
        verdict: Verdict = await self._password_work(
            self.passwords.check, record.password_hash, password
        )
        if not verdict.matches:
            raise wrong_credentials()
        if verdict.needs_rehash:
            new_hash = await self._password_work(self.passwords.hash, password)
            await self.database.run_interaction(replace_password_hash_txn, record.user.id, new_hash)
        refresh_token = new_refresh_token()
        family_id = await self.database.run_interaction(
            start_family_txn,
            record.user.id,
            refresh_token_hash(refresh_token),
            self._refresh_expiry(),
        )
        return self._session(record.user, family_id, refresh_token)

    async def refresh(self, refresh_token: Any, request_id: str) -> Session:
        if (
            not isinstance(refresh_token, str)
            or not 1 <= len(refresh_token) <= 256
            or not is_utf8_text(refresh_token)
        ):
            check_fields(refresh_token="must be the refresh token a login returned")
        next_token = new_refresh_token()
        outcome = await self.database.run_interaction(
            rotate_refresh_txn,
            refresh_token_hash(refresh_token),
            refresh_token_hash(next_token),
            self._refresh_expiry(),
            request_id,
        )
        if outcome.kind == "reused":
            _log.warn(
                "spent refresh token presented again: session {family} of user {user_id} revoked",
                family=outcome.family_id,
                user_id=outcome.user_id,
            )
            raise ApiError(
                "refresh_reused",
                "This refresh token was already used; the session is revoked. Log in again.",
            )
        if outcome.kind == "expired":
            raise ApiError("token_expired", "The refresh token has expired. Log in again.")
        if outcome.kind != "rotated":
            raise ApiError("token_invalid", "The refresh token is not valid. Log in again.")
        user = await self.database.run_interaction(user_by_id_txn, outcome.user_id)
        if user is None:
            raise ApiError("token_invalid", "The refresh token is not valid. Log in again.")
        return self._session(user, outcome.family_id, next_token)

    async def logout(self, requester: Requester, request_id: str) -> None:
        await self.database.run_interaction(logout_txn, requester.user_id, request_id)

    async def authenticate(self, authorization: bytes | None) -> Requester:
        """The requester behind an ``Authorization: Bearer`` header, or 401."""
        if authorization is None:
            raise ApiError("unauthorized", "This needs an access token: Authorization: Bearer.")
        scheme, _, token = authorization.decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError("unauthorized", "This needs an access token: Authorization: Bearer.")
        return await self.requester_for_token(token.strip())

    async def requester_for_token(self, token: str) -> Requester:
        """Verify an access token and that its session and user still stand."""
        try:
            claims = self.tokens.verify(self.keys.ring(), token, self.clock())
        except TokenError as e:
            raise ApiError(e.error_code, e.detail) from None
        user = await self.database.run_autocommit(
            live_session_user_txn, claims.user_id, claims.family_id
        )
        if user is None:
            raise ApiError("token_invalid", "This session has ended. Log in again.")
        return Requester(user, claims.family_id, claims.expires_at)

    async def session_is_live(self, user_id: int, family_id: str) -> bool:
        return await self.database.run_autocommit(session_is_live_txn, user_id, family_id)

    # ------------------------------------------------------------------ the caller's data

    async def me(self, requester: Requester) -> User:
        user = await self.database.run_interaction(user_by_id_txn, requester.user_id)
        if user is None:
            raise ApiError("token_invalid", "This session has ended. Log in again.")
        return user

    async def export(self, requester: Requester) -> dict[str, Any]:
        return await self.database.run_interaction(export_user_txn, requester.user_id)

    async def delete_account(
        self, requester: Requester, password: Any, client: str, request_id: str
    ) -> None:
        check_fields(password=None if isinstance(password, str) else "must be a string")
        # A password check like a login's: a stolen access token is no way round the limits.
        await self._limit_password_guess(requester.user.username, client, request_id)
        record = await self.database.run_interaction(login_record_by_id_txn, requester.user_id)
        if record is None:
            raise ApiError("token_invalid", "This session has ended. Log in again.")
        verdict = await self._password_work(self.passwords.check, record.password_hash, password)
        if not verdict.matches:
            raise wrong_credentials()
        await self.database.run_interaction(delete_user_txn, requester.user_id, request_id)

    # ------------------------------------------------------------------ admin

    async def create_invite(
        self, requester: Requester, expires_in: timedelta | None, uses: int, request_id: str
    ) -> Invite:
        self.require_admin(requester)
        return await self.database.run_interaction(
            create_invite_txn,
            new_invite_code(),
            created_by=requester.user_id,
            uses=uses,
            expires_in=expires_in,
            request_id=request_id,
        )

    async def audit_page(
        self, requester: Requester, before_id: int | None, limit: int
    ) -> list[tuple[Any, ...]]:
        self.require_admin(requester)
        return await self.database.run_interaction(audit_page_txn, before_id, limit)

    @staticmethod
    def require_admin(requester: Requester) -> None:
        if not requester.is_admin:
            raise ApiError("forbidden", "Only a server admin can do this.")

    # ------------------------------------------------------------------ helpers

    def _session(self, user: User, family_id: str, refresh_token: str) -> Session:
        access_token = self.tokens.issue(self.keys.ring(), user.id, family_id, self.clock())
        return Session(user, access_token, refresh_token, self.tokens.ttl_seconds)

    def _refresh_expiry(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), timezone.utc) + self.config.refresh_token_ttl

    async def _password_work(self, work: Callable[..., Any], *args: Any) -> Any:
        try:
            return await work(*args)
        except PasswordsBusy:
            raise ApiError(
                "unavailable",
                "The server is busy checking passwords; try again shortly.",
                retry_after=PASSWORDS_BUSY_RETRY_AFTER,
            ) from None

    async def _limit_password_guess(self, username: str, client: str, request_id: str) -> None:
        """The login limits, per client address and per username, on any password check.
        Throttled either way, the burst is audited under the username tried (client
        addresses are never written to the database)."""
        for key in (f"login-address:{client_key(client)}", f"login-user:{username.lower()}"):
            await self._limit(
                key,
                self.config.login_rate_limit,
                audit_username=username.lower(),
                request_id=request_id,
            )

    async def _limit(
        self,
        key: str,
        limit: RateLimit,
        *,
        audit_username: str | None = None,
        request_id: str | None = None,
    ) -> None:
        decision = await self.limiter.hit(key, limit)
        if decision.allowed:
            return
        if audit_username is not None:
            await self._audit_login_burst(audit_username, limit, request_id)
        raise ApiError(
            "rate_limited",
            f"Too many attempts; try again in {decision.retry_after} s.",
            retry_after=decision.retry_after,
        )

    async def _audit_login_burst(
        self, username: str, limit: RateLimit, request_id: str | None
    ) -> None:
        now = self.clock()
        if self._throttle_audited.get(username, 0.0) > now:
            return
        window = limit.burst * limit.period
        self._throttle_audited = {u: t for u, t in self._throttle_audited.items() if t > now}
        self._throttle_audited[username] = now + window
        await self.database.run_interaction(
            insert_audit_txn,
            "auth.login_throttled",
            data={"username": username, "limit": str(limit)},
            request_id=request_id,
        )


def wrong_credentials() -> ApiError:
    """One answer for an unknown user and a wrong password alike."""
    return ApiError("invalid_credentials", "Wrong username or password.")
