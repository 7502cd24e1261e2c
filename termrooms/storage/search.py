"""
Full-text search of messages (sql/0007_search.sql): one statement that checks ``q`` has
a word to find, applies the visibility rule, finds, pages and marks the snippets; before
it, when the search names a room or an author, one that turns the names into what the
planner can use (filters_txn).
"""

from __future__ import annotations

from typing import Any

from termrooms.domain.search import MARK_END, MARK_START, SearchQuery, SearchResult
from termrooms.storage.rooms import EVENT_COLUMNS, EVENT_JOINS, event_of_row

# The one rule for which rooms a user's search reads, ``r`` a room and %(user)s the
# caller: live rooms that are public or of which the caller is a member. Everything that
# is not public is for its members only (private rooms today, direct rooms once they
# exist): a kind of room with a rule of its own adds it here.
READABLE_ROOM = (
    "r.deleted_at IS NULL AND (r.visibility = 'public' OR EXISTS ("
    "SELECT 1 FROM memberships m WHERE m.room_id = r.id AND m.user_id = %(user)s))"
)
# The index expression of room_events_search_idx, exactly: the planner matches it.
_VECTOR = "to_tsvector('termrooms_search', termrooms_search_text(e.body))"
# The whole body with every match marked; domain.search.excerpt cuts it.
_HEADLINE_OPTIONS = f"StartSel={MARK_START}, StopSel={MARK_END}, HighlightAll=true"

# websearch_to_tsquery of a constant is folded when the statement is planned, so the
# planner sees the query and estimates how many messages it matches: an index scan of
# the newest messages for a common word, the GIN index for a rare one. The snippet is
# computed for the page's rows only.
_SEARCH = f"""
SELECT w.ok, h.*
  FROM (SELECT numnode(websearch_to_tsquery('termrooms_search', %(words)s)) > 0 AS ok) w
  LEFT JOIN LATERAL (
    SELECT {EVENT_COLUMNS},
           translate(ts_headline('termrooms_search', termrooms_search_text(e.body),
                                 websearch_to_tsquery('termrooms_search', %(words)s),
                                 %(options)s), chr(1), '<')
      FROM (SELECT e.id
              FROM room_events e
              JOIN rooms r ON r.id = e.room_id
             WHERE w.ok AND NOT %(nowhere)s AND e.type = 'message' AND e.deleted_at IS NULL
               AND {_VECTOR} @@ websearch_to_tsquery('termrooms_search', %(q)s)
               AND {READABLE_ROOM}
               AND (%(before)s::bigint IS NULL OR e.id < %(before)s)
               AND (%(room)s::text IS NULL OR lower(r.name) = lower(%(room)s))
               AND (%(author)s::bigint IS NULL OR e.user_id = %(author)s)
             ORDER BY e.id DESC
             LIMIT %(limit)s) page
      JOIN room_events e ON e.id = page.id{EVENT_JOINS}
  ) h ON true
 ORDER BY h.id DESC
"""


async def filters_txn(
    cursor: Any, user_id: int, room: str | None, author: str | None
) -> tuple[bool, int | None]:
    """Whether the user may read a live room of that name (False without a name), and
    the id of the user of that name (None without). The search then names no room the
    caller cannot read, and its author by id: given a room that is hidden or absent, or
    an author by name, the planner would read every message newest first for a common
    word (4.5 s over 1M), and a hidden room would answer slower than an absent one."""
    await cursor.execute(
        "SELECT EXISTS (SELECT 1 FROM rooms r WHERE lower(r.name) = lower(%(room)s)"
        f"              AND {READABLE_ROOM}),"
        "       (SELECT id FROM users WHERE lower(username) = lower(%(author)s))",
        {"user": user_id, "room": room or "", "author": author or ""},
    )
    return cursor.fetchone()


async def search_txn(
    cursor: Any,
    user_id: int,
    query: SearchQuery,
    *,
    room: str | None,
    author_id: int | None,
    nowhere: bool = False,
    before_id: int | None,
    limit: int,
) -> list[SearchResult] | None:
    """Up to ``limit`` messages the user may read that match, newest first, each with the
    whole body marked; None when ``query`` has no word to find after all. ``room`` (a
    name) and ``author_id`` narrow it; ``nowhere`` finds nothing, yet still checks q."""
    await cursor.execute(
        _SEARCH,
        {
            "user": user_id,
            "q": query.text,
            "words": query.words,
            "options": _HEADLINE_OPTIONS,
            "room": room,
            "author": author_id,
            "nowhere": nowhere,
            "before": before_id,
            "limit": limit,
        },
    )
    rows = cursor.fetchall()
    if not rows[0][0]:
        return None
    return [SearchResult(event_of_row(row[1:-1]), row[-1]) for row in rows if row[1] is not None]


async def find_txn(
    cursor: Any,
    user_id: int,
    query: SearchQuery,
    *,
    room: str | None,
    author: str | None,
    before_id: int | None,
    limit: int,
) -> list[SearchResult] | None:
    """search_txn narrowed by a room's and an author's names, through filters_txn."""
    author_id, nowhere = None, False
    if room is not None or author is not None:
        readable, found = await filters_txn(cursor, user_id, room, author)
        nowhere = room is not None and not readable
        author_id = None if author is None else found or 0
    return await search_txn(
        cursor,
        user_id,
        query,
        room=room,
        author_id=author_id,
        nowhere=nowhere,
        before_id=before_id,
        limit=limit,
    )
