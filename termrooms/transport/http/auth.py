"""``/api/auth/*``, ``/api/invites`` and ``/api/admin/audit``: thin routes over AuthHandler."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from termrooms.domain.browser_session import (
    CSRF_HEADER,
    REFRESH_COOKIE,
    cleared_cookies,
    csrf_matches,
    csrf_token,
    request_origin_allowed,
    session_cookies,
    wants_refresh_cookie,
)
from termrooms.domain.errors import ApiError
from termrooms.domain.invites import (
    DEFAULT_INVITE_USES,
    INVITE_EXPIRY_MAX,
    INVITE_EXPIRY_MIN,
    parse_invite_expiry,
)
from termrooms.domain.polls import poll_json
from termrooms.domain.rules import check_fields
from termrooms.domain.tasks import task_json
from termrooms.domain.wire import iso_time, user_json
from termrooms.handlers.auth import AuthHandler, Requester, Session, User
from termrooms.transport.http.request import ApiRequest
from termrooms.transport.http.router import JsonResponse, Router, json_body, query_int

USER_SCHEMA = {
    "type": "object",
    "required": ["id", "username", "display_name", "role", "created_at"],
    "properties": {
        "id": {"type": "string"},
        "username": {"type": "string"},
        "display_name": {"type": "string"},
        "role": {"enum": ["admin", "user"]},
        "created_at": {"type": "string", "format": "date-time"},
    },
}
SESSION_SCHEMA = {
    "type": "object",
    "required": ["user", "access_token", "refresh_token", "token_type", "expires_in"],
    "properties": {
        "user": USER_SCHEMA,
        "access_token": {"type": "string"},
        # null when the refresh token went into the httpOnly cookie (refresh_cookie)
        "refresh_token": {"type": ["string", "null"]},
        "token_type": {"const": "Bearer"},
        "expires_in": {"type": "integer"},
        "csrf_token": {"type": "string"},  # with refresh_cookie: send as X-CSRF-Token
    },
}
CREDENTIALS_SCHEMA = {
    "type": "object",
    "required": ["username", "password"],
    "properties": {
        "username": {"type": "string", "pattern": "^[A-Za-z0-9._-]{3,32}$"},
        "password": {"type": "string", "minLength": 8, "maxLength": 128},
        "invite_code": {"type": "string"},
        "refresh_cookie": {"type": "boolean"},
    },
}
INVITE_SCHEMA = {
    "type": "object",
    "required": ["code", "expires_at", "uses"],
    "properties": {
        "code": {"type": "string"},
        "expires_at": {"type": ["string", "null"], "format": "date-time"},
        "uses": {"type": "integer"},
    },
}
MAX_AUDIT_PAGE = 200


def session_json(session: Session) -> dict[str, Any]:
    return {
        "user": user_json(session.user),
        "access_token": session.access_token,
        "refresh_token": session.refresh_token,
        "token_type": "Bearer",
        "expires_in": session.expires_in,
    }


def client_address(request: ApiRequest) -> str:
    """As far as trusted proxies tell (see termrooms.web)."""
    return request.client_host


def _cookies_secure(server: Any, request: ApiRequest) -> bool:
    """Secure cookies over TLS, here or at the TLS-terminating proxy --public-url names."""
    return request.isSecure() or (server.config.public_url or "").startswith("https://")


def _set_cookies(request: ApiRequest, cookies: tuple[str, ...]) -> None:
    for cookie in cookies:
        request.responseHeaders.addRawHeader(b"set-cookie", cookie.encode("ascii"))


def _session_answer(
    server: Any, request: ApiRequest, session: Session, status: int, cookie: bool
) -> JsonResponse:
    """The token body; with ``cookie``, the refresh token goes into the httpOnly cookie
    instead of the body, and the body carries the CSRF token bound to it."""
    body = session_json(session)
    if cookie:
        max_age = int(server.config.refresh_token_ttl.total_seconds())
        secure = _cookies_secure(server, request)
        _set_cookies(request, session_cookies(session.refresh_token, max_age, secure))
        body.update(refresh_token=None, csrf_token=csrf_token(session.refresh_token))
    return JsonResponse(body, status, _NO_STORE)


def _check_browser_origin(server: Any, request: ApiRequest) -> None:
    """Cookie sessions start and renew only from the server's own pages (or an allowed
    origin), as /ws does: another site's form cannot plant its account's session in a
    visitor's browser (login CSRF). Clients that send no Origin are not browsers."""
    if not request_origin_allowed(
        request.requestHeaders.getRawHeaders(b"origin"),
        request.getHeader(b"host"),
        server.allowed_origins(),
    ):
        raise ApiError("forbidden", "This Origin may not start or renew a browser session.")


async def authenticated(server: Any, request: ApiRequest) -> Requester:
    """The caller proven by the request's bearer token, charged to its HTTP rate limits."""
    limits = server.get_http_limits()
    try:
        who = await server.get_auth_handler().authenticate(request.getHeader(b"authorization"))
    except ApiError:
        await limits.charge_address(request)
        raise
    request.user_id = who.user_id  # for the access log
    await limits.charge_user(who.user)
    return who


async def signed_in_user(server: Any, request: ApiRequest) -> User:
    """The user behind the request's bearer token, as authenticated() proves it."""
    return (await authenticated(server, request)).user


def _invite_expiry(value: Any) -> timedelta | None:
    """``expires_in``: seconds, or a duration like ``7d``; null for no expiry."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        if INVITE_EXPIRY_MIN.total_seconds() <= value <= INVITE_EXPIRY_MAX.total_seconds():
            return timedelta(seconds=value)
    if isinstance(value, str):
        try:
            return parse_invite_expiry(value)
        except ValueError:
            pass
    check_fields(
        expires_in="must be seconds or a duration like 7d from a minute to a year, or null"
    )
    return None  # unreachable: check_fields raised


def register_auth_routes(router: Router, server: Any) -> None:
    """Account, session, invite and audit routes; ``server`` is the TermroomsServer."""

    def auth() -> AuthHandler:
        return server.get_auth_handler()

    async def requester(request: ApiRequest) -> Requester:
        return await authenticated(server, request)

    @router.route(
        "/api/auth/register",
        "POST",
        summary="Create an account (with an invite code unless registration is open).",
        tags=("auth",),
        request_body=CREDENTIALS_SCHEMA,
        responses={201: SESSION_SCHEMA, 400: None, 403: None, 409: None, 422: None, 429: None},
    )
    async def register(request: ApiRequest) -> JsonResponse:
        body = json_body(request)
        cookie = wants_refresh_cookie(body)
        if cookie:
            _check_browser_origin(server, request)
        session = await auth().register(
            body.get("username"),
            body.get("password"),
            body.get("invite_code"),
            client_address(request),
            request.request_id,
        )
        return _session_answer(server, request, session, 201, cookie)

    @router.route(
        "/api/auth/login",
        "POST",
        summary="Exchange a username and password for a token pair.",
        tags=("auth",),
        request_body=CREDENTIALS_SCHEMA,
        responses={
            200: SESSION_SCHEMA,
            400: None,
            401: None,
            403: None,
            422: None,
            429: None,
            503: None,
        },
    )
    async def login(request: ApiRequest) -> JsonResponse:
        body = json_body(request)
        cookie = wants_refresh_cookie(body)
        if cookie:
            _check_browser_origin(server, request)
        session = await auth().login(
            body.get("username"), body.get("password"), client_address(request), request.request_id
        )
        return _session_answer(server, request, session, 200, cookie)

    @router.route(
        "/api/auth/refresh",
        "POST",
        summary="Spend a refresh token for a new pair; a spent one revokes its session. "
        "Without refresh_token in the body, the termrooms_refresh cookie's, with X-CSRF-Token.",
        tags=("auth",),
        request_body={
            "type": "object",
            "properties": {"refresh_token": {"type": "string"}},
        },
        responses={200: SESSION_SCHEMA, 400: None, 401: None, 403: None, 422: None},
    )
    async def refresh(request: ApiRequest) -> JsonResponse:
        body = json_body(request)
        given = body.get("refresh_token")
        cookie = request.getCookie(REFRESH_COOKIE.encode())
        if given is not None or not cookie:
            session = await auth().refresh(given, request.request_id)
            return JsonResponse(session_json(session), 200, _NO_STORE)
        # A browser session: the cookie comes with every request to /api/auth, so the
        # header proves the page itself asks (double submit), before the token is spent.
        _check_browser_origin(server, request)
        refresh_token = cookie.decode("utf-8", "replace")
        header = request.getHeader(CSRF_HEADER.encode())
        presented = None if header is None else header.decode("latin-1")
        if not csrf_matches(refresh_token, presented):
            raise ApiError("forbidden", f"The {CSRF_HEADER} header is missing or wrong.")
        try:
            session = await auth().refresh(refresh_token, request.request_id)
        except ApiError as e:
            if e.status == 401:  # the cookie is no good any more: let the browser drop it
                _set_cookies(request, cleared_cookies(_cookies_secure(server, request)))
                request.setHeader(b"cache-control", b"no-store")
            raise
        return _session_answer(server, request, session, 200, cookie=True)

    @router.route(
        "/api/auth/logout",
        "POST",
        summary="Revoke every refresh token of the caller, and clear a browser's cookies.",
        tags=("auth",),
        auth=True,
        responses={204: None, 401: None},
    )
    async def logout(request: ApiRequest) -> JsonResponse:
        who = await requester(request)
        await auth().logout(who, request.request_id)
        _set_cookies(request, cleared_cookies(_cookies_secure(server, request)))
        return JsonResponse(None, 204, _NO_STORE)

    @router.route(
        "/api/auth/me",
        "GET",
        summary="The caller's account.",
        tags=("auth",),
        auth=True,
        responses={200: USER_SCHEMA, 401: None},
    )
    async def me(request: ApiRequest) -> dict[str, Any]:
        return user_json(await auth().me(await requester(request)))

    @router.route(
        "/api/auth/me/export",
        "GET",
        summary="Everything stored about the caller: profile, memberships, messages, audit.",
        tags=("auth",),
        auth=True,
        responses={200: {"type": "object"}, 401: None},
    )
    async def export(request: ApiRequest) -> JsonResponse:
        data = await auth().export(await requester(request))
        return JsonResponse(export_json(data), 200, _NO_STORE)

    @router.route(
        "/api/auth/me",
        "DELETE",
        summary="Delete the caller's account (password needed); messages stay, authorless.",
        tags=("auth",),
        auth=True,
        request_body={
            "type": "object",
            "required": ["password"],
            "properties": {"password": {"type": "string"}},
        },
        responses={204: None, 400: None, 401: None, 422: None, 429: None},
    )
    async def delete_me(request: ApiRequest) -> JsonResponse:
        who = await requester(request)
        body = json_body(request)
        await auth().delete_account(
            who, body.get("password"), client_address(request), request.request_id
        )
        return JsonResponse(None, 204)

    @router.route(
        "/api/invites",
        "POST",
        summary="Create a registration invite code (admin).",
        tags=("admin",),
        auth=True,
        request_body={
            "type": "object",
            "properties": {
                "expires_in": {"type": ["integer", "string", "null"]},
                "uses": {"type": "integer", "minimum": 1, "maximum": 1000000},
            },
        },
        responses={201: INVITE_SCHEMA, 401: None, 403: None, 422: None},
    )
    async def create_invite(request: ApiRequest) -> JsonResponse:
        who = await requester(request)
        AuthHandler.require_admin(who)
        body = json_body(request)
        uses = body.get("uses", DEFAULT_INVITE_USES)
        if isinstance(uses, bool) or not isinstance(uses, int) or not 1 <= uses <= 1_000_000:
            check_fields(uses="must be a whole number from 1 to 1000000")
        expires_in = _invite_expiry(body.get("expires_in", 7 * 86400))
        invite = await auth().create_invite(who, expires_in, uses, request.request_id)
        return JsonResponse(
            {
                "code": invite.code,
                "expires_at": iso_time(invite.expires_at) if invite.expires_at else None,
                "uses": invite.uses,
            },
            201,
            _NO_STORE,
        )

    @router.route(
        "/api/admin/audit",
        "GET",
        summary="The audit log, newest first; pass next_before as ?before= for older rows.",
        tags=("admin",),
        auth=True,
        query={
            "before": {"type": "string"},
            "limit": {"type": "integer", "minimum": 1, "maximum": MAX_AUDIT_PAGE},
        },
        responses={200: {"type": "object"}, 401: None, 403: None, 422: None},
    )
    async def audit(request: ApiRequest) -> dict[str, Any]:
        who = await requester(request)
        before = query_int(request, "before", 1, 2**63 - 1)
        limit = query_int(request, "limit", 1, MAX_AUDIT_PAGE) or 50
        rows = await auth().audit_page(who, before, limit)
        entries = [audit_json(row) for row in rows]
        return {
            "entries": entries,
            "next_before": entries[-1]["id"] if len(entries) == limit else None,
        }


_NO_STORE = {"Cache-Control": "no-store"}


def audit_json(row: tuple[Any, ...]) -> dict[str, Any]:
    audit_id, created_at, action, actor_id, target_user_id, room_id, data, request_id = row
    return {
        "id": str(audit_id),
        "ts": iso_time(created_at),
        "action": action,
        "actor_id": _id(actor_id),
        "target_user_id": _id(target_user_id),
        "room_id": _id(room_id),
        "data": data,
        "request_id": request_id,
    }


def export_json(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "profile": user_json(data["profile"]),
        "memberships": [
            {
                "room": room,
                "role": role,
                "joined_at": iso_time(joined_at),
                "last_seen_at": iso_time(last_seen_at) if last_seen_at else None,
                "read_seq": read_seq,
            }
            for room, role, joined_at, last_seen_at, read_seq in data["memberships"]
        ],
        "direct_rooms": [
            {"room": room, "peer": peer, "created_at": iso_time(created_at)}
            for room, peer, created_at in data["direct_rooms"]
        ],
        "blocks": data["blocks"],
        "messages": [
            {
                "id": str(event_id),
                "room": room,
                "seq": seq,
                "ts": iso_time(created_at),
                "body": body,
                "action": action,
                "client_msg_id": client_msg_id,
                "deleted": deleted_at is not None,
            }
            for event_id, room, seq, created_at, body, action, client_msg_id, deleted_at in data[
                "messages"
            ]
        ],
        "tasks": [task_json(task) for task in data["tasks"]],
        "polls": {
            "created": [poll_json(poll) for poll in data["polls"]["created"]],
            "votes": [
                {
                    "poll": str(poll_id),
                    "room": room,
                    "option": index,
                    "text": text,
                    "ts": iso_time(voted_at),
                }
                for poll_id, room, index, text, voted_at in data["polls"]["votes"]
            ],
        },
        "retros": {
            "entries": [
                {
                    "retro": str(retro_id),
                    "room": room,
                    "title": title,
                    "column": column,
                    "text": text,
                    "ts": iso_time(created_at),
                }
                for retro_id, room, title, column, text, created_at in data["retros"]["entries"]
            ],
            "votes": [
                {"retro": str(retro_id), "group": str(group_id), "count": count}
                for retro_id, group_id, count in data["retros"]["votes"]
            ],
            "happiness": [
                {"retro": str(retro_id), "score": score}
                for retro_id, score in data["retros"]["happiness"]
            ],
        },
        "audit": [audit_json(row) for row in data["audit"]],
    }


def _id(value: int | None) -> str | None:
    return None if value is None else str(value)
