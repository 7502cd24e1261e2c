"""Search between the route (and ``/search``) and storage: the checks of a request, then
the statement that decides what the caller may find (storage.search.READABLE_ROOM)."""

from __future__ import annotations

import attrs

from termrooms.domain.rules import ROOM_NAME, username_problem
from termrooms.domain.search import (
    SearchResult,
    excerpt,
    no_word_to_find,
    parse_query,
)
from termrooms.storage.database import Database
from termrooms.storage.search import find_txn
from termrooms.storage.users import User


@attrs.define(eq=False)
class SearchHandler:
    database: Database

    async def search(
        self,
        user: User,
        q: object,
        *,
        room: str | None,
        author: str | None,
        before_id: int | None,
        limit: int,
    ) -> tuple[list[SearchResult], bool]:
        """The newest ``limit`` matches the user may read (older than ``before_id``), and
        whether there are more. A ``room`` or ``from`` that names nothing the user can
        see finds nothing, exactly as a room or user that does not exist."""
        query = parse_query(q)
        # A name no room or user can have (NUL even, which PostgreSQL cannot take) names
        # none: "" is such a name.
        if room is not None and not ROOM_NAME.match(room):
            room = ""
        if author is not None and username_problem(author):
            author = ""
        found = await self.database.run_autocommit(
            find_txn,
            user.id,
            query,
            room=room,
            author=author,
            before_id=before_id,
            limit=limit + 1,
        )
        if found is None:
            raise no_word_to_find()
        page = [attrs.evolve(result, snippet=excerpt(result.snippet)) for result in found]
        return page[:limit], len(page) > limit
