"""
Search, as the contract's Search section has it (../shared/spec/protocol-v1.1.md): what a
``q`` asks for, the limits of a page, and the snippet of each result.

``q`` is PostgreSQL's ``websearch_to_tsquery`` syntax (words, ``"phrases"``, ``-word``,
``OR``). Two things are decided here rather than there: ``OR`` is always an operator (PostgreSQL
reads one at either end as the word "or"), and which part of ``q`` must hold a word to
find: ``q`` without its exclusions and operators. Whether that part holds a word at all is
PostgreSQL's to say (its parser decides what a word is), in the statement that searches.

Pure logic: no Twisted, no database.
"""

from __future__ import annotations

import re
from typing import Any

import attrs

from termrooms.domain.errors import ApiError
from termrooms.domain.events import RoomEvent, event_json
from termrooms.domain.rules import field_error

__all__ = [
    "COMMAND_RESULTS",
    "MARK_END",
    "MARK_START",
    "Q_MAX",
    "SEARCH_PAGE_DEFAULT",
    "SEARCH_PAGE_MAX",
    "SNIPPET_MAX",
    "SearchQuery",
    "SearchResult",
    "excerpt",
    "no_word_to_find",
    "parse_query",
    "result_json",
    "unmarked",
]

SEARCH_PAGE_DEFAULT = 20
SEARCH_PAGE_MAX = 50
COMMAND_RESULTS = 5  # what /search replies with
SNIPPET_MAX = 200  # characters of the body, the marks not counted
# A q longer than the longest body could only ask for words no phrase of a body holds
# together; it bounds the work one request can ask of PostgreSQL.
Q_MAX = 4000
# Around each match: characters no body holds (the body rules forbid C0 controls).
MARK_START = "\x02"
MARK_END = "\x03"
# Characters of the body kept before the first match, when the body must be cut.
_LEAD = 40
# How far a cut moves to fall between words (text without spaces is cut where it is).
_NEAR = 20

# A websearch token: an optionally excluded "phrase" (its closing quote optional, as
# PostgreSQL has it), or a run of anything else up to a space or a quote.
_TOKEN = re.compile(r'-?"[^"]*"?|[^\s"]+')
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@attrs.frozen
class SearchQuery:
    """``text`` is what to find, as websearch_to_tsquery reads it; ``words`` is the part
    of it that must hold a word (no exclusions, no operators), which the snippet marks."""

    text: str
    words: str


@attrs.frozen
class SearchResult:
    event: RoomEvent
    snippet: str


def no_word_to_find() -> ApiError:
    return field_error("q", "must hold a word to find (not only exclusions and operators)")


def parse_query(q: object) -> SearchQuery:
    """The query a ``q`` stands for; a 422 on ``q`` when it plainly has no word to find.

    Control characters (which no body holds, so nothing could match them) are spaces:
    NUL would not even reach PostgreSQL.
    """
    if not isinstance(q, str) or len(q) > Q_MAX:
        raise field_error("q", f"must be text of at most {Q_MAX} characters")
    tokens = _TOKEN.findall(_CONTROL.sub(" ", q))
    kept: list[str] = []
    for token in tokens:
        if _is_or(token) and (not kept or _is_or(kept[-1])):
            continue  # OR with nothing before it to join
        kept.append(token)
    while kept and _is_or(kept[-1]):
        kept.pop()  # nor after it
    words = [t for t in kept if not _is_or(t) and not t.startswith("-")]
    if not words:
        raise no_word_to_find()
    return SearchQuery(text=" ".join(kept), words=" ".join(words))


def _is_or(token: str) -> bool:
    return token.lower() == "or"


def excerpt(marked: str, limit: int = SNIPPET_MAX) -> str:
    """At most ``limit`` characters of a marked body (the marks not counted), from a
    little before its first match, cut between words where a space is near; the whole
    body when it fits. Marks always come in pairs: a match the cut would split is left out,
    unless it is the first, which is cut and kept."""
    plain, spans = _spans(marked)
    if len(plain) <= limit:
        return marked
    first = spans[0][0] if spans else 0
    start = max(0, min(first - _LEAD, len(plain) - limit))
    if start > 0 and not plain[start - 1].isspace():
        space = _first_space(plain, start, min(first, start + _NEAR))
        if space is not None:
            start = space + 1
    end = start + limit
    kept: list[tuple[int, int]] = []
    at_match = False
    for begin, stop in spans:
        if stop <= end:
            kept.append((begin, stop))
        elif begin < end and not kept:
            kept.append((begin, end))
            break
        else:
            if begin < end:
                end, at_match = begin, True  # the match would be split: end before it
            break
    if not at_match and end < len(plain) and not plain[end].isspace():
        floor = max(kept[-1][1] if kept else start, end - _NEAR)
        space = _last_space(plain, floor, end)
        if space is not None:
            end = space
    return _marked(plain, start, end, kept)


def unmarked(snippet: str) -> str:
    """The snippet's text without its marks."""
    return snippet.replace(MARK_START, "").replace(MARK_END, "")


def result_json(result: SearchResult) -> dict[str, Any]:
    """One of a search's ``results``, as the contract shows it."""
    return {
        "room": result.event.room_name,
        "event": event_json(result.event),
        "snippet": result.snippet,
    }


def _spans(marked: str) -> tuple[str, list[tuple[int, int]]]:
    """The text without marks, and where (start, end) each marked match lies in it."""
    plain: list[str] = []
    spans: list[tuple[int, int]] = []
    length = 0
    begin: int | None = None
    for char in marked:
        if char == MARK_START:
            begin = length
        elif char == MARK_END:
            if begin is not None and begin < length:
                spans.append((begin, length))
            begin = None
        else:
            plain.append(char)
            length += 1
    return "".join(plain), spans


def _first_space(text: str, start: int, stop: int) -> int | None:
    for index in range(start, stop):
        if text[index].isspace():
            return index
    return None


def _last_space(text: str, start: int, stop: int) -> int | None:
    for index in range(stop - 1, start, -1):
        if text[index].isspace():
            return index
    return None


def _marked(plain: str, start: int, end: int, spans: list[tuple[int, int]]) -> str:
    parts = []
    at = start
    for begin, stop in spans:
        parts += [plain[at:begin], MARK_START, plain[begin:stop], MARK_END]
        at = stop
    parts.append(plain[at:end])
    return "".join(parts)
