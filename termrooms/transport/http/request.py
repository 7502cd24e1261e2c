"""The request the routes are handed: twisted.web's, with what the router and the
access log learn about it (its id, client, route, room, user and error code)."""

from __future__ import annotations

from twisted.web.server import Request

UNMATCHED_ROUTE = "(unmatched)"  # the metrics label of a path no route serves


class ApiRequest(Request):
    """What a route may read and record about its request; ``web`` fills it in."""

    request_id: str = ""
    client_host: str = "local"  # the client's address, as far as trusted proxies tell
    route: str = UNMATCHED_ROUTE  # the route template that served it (set by the router)
    room: str | None = None
    user_id: int | None = None
    error_code: str | None = None
