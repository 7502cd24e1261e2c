"""``/api/search``: a thin route over SearchHandler."""

from __future__ import annotations

from typing import Any

from termrooms.domain.search import (
    Q_MAX,
    SEARCH_PAGE_DEFAULT,
    SEARCH_PAGE_MAX,
    SNIPPET_MAX,
    result_json,
)
from termrooms.handlers.search import SearchHandler
from termrooms.transport.http.auth import signed_in_user
from termrooms.transport.http.request import ApiRequest
from termrooms.transport.http.rooms import EVENT_SCHEMA
from termrooms.transport.http.router import (
    Router,
    cursor_query,
    page_schema,
    query_int,
    query_text,
)

RESULT_SCHEMA = {
    "type": "object",
    "required": ["room", "event", "snippet"],
    "properties": {
        "room": {"type": "string"},
        "event": EVENT_SCHEMA,
        # the marks U+0002 and U+0003 around each match are not counted
        "snippet": {"type": "string", "minLength": 1},
    },
}


def register_search_routes(router: Router, server: Any) -> None:
    """Search of every room the caller may read; ``server`` is the TermroomsServer."""

    def search() -> SearchHandler:
        return server.get_search_handler()

    @router.route(
        "/api/search",
        "GET",
        summary='Messages the caller may read that match q (words, "phrases", -excluded,'
        f" OR), newest first, each with a snippet of at most {SNIPPET_MAX} characters in"
        " which U+0002 ... U+0003 wrap each match; ?before=ID pages back.",
        tags=("search",),
        auth=True,
        query={
            "q": {"type": "string", "minLength": 1, "maxLength": Q_MAX},
            "room": {"type": "string"},
            "from": {"type": "string"},
            **cursor_query(SEARCH_PAGE_MAX),
        },
        # 400: a q of 4,000 characters can make a URL longer than the HTTP layer takes.
        responses={200: page_schema("results", RESULT_SCHEMA), 400: None, 401: None, 422: None},
    )
    async def search_messages(request: ApiRequest) -> dict[str, Any]:
        user = await signed_in_user(server, request)
        before = query_int(request, "before", 1)
        limit = query_int(request, "limit", 1, SEARCH_PAGE_MAX)
        results, has_more = await search().search(
            user,
            query_text(request, "q"),
            room=query_text(request, "room"),
            author=query_text(request, "from"),
            before_id=before,
            limit=SEARCH_PAGE_DEFAULT if limit is None else limit,
        )
        return {"results": [result_json(result) for result in results], "has_more": has_more}
