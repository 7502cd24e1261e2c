"""
Mentions, as the contract's Mentions section has them (../shared/spec/protocol-v1.1.md):
``@name`` where ``@`` starts the body or follows a character that cannot be in a
username, ``name`` the longest run of username characters after it with trailing ``.``,
``-`` and ``_`` dropped. So ``@bob.`` names bob and ``x@bob.com`` names nobody.

This finds the names written; which of them are members of the room (and so are
mentioned) is decided where the message is stored, against the room's members then.

Pure logic: no Twisted, no database.
"""

from __future__ import annotations

import re

__all__ = ["MENTIONS_PAGE_DEFAULT", "MENTIONS_PAGE_MAX", "written_names"]

MENTIONS_PAGE_DEFAULT = 50  # GET /api/mentions
MENTIONS_PAGE_MAX = 100

# A run of username characters after an @ that no username character precedes.
_MENTION = re.compile(r"(?<![A-Za-z0-9._-])@([A-Za-z0-9._-]+)")
_NAME_MIN, _NAME_MAX = 3, 32  # a username's length (rules.USERNAME)


def written_names(body: str) -> tuple[str, ...]:
    """The names written as ``@name`` in ``body``, lowercased, each once, in order of
    first appearance; only those long enough and short enough to be a username."""
    if "@" not in body:  # most messages: no regex at all
        return ()
    seen: dict[str, None] = {}
    for run in _MENTION.findall(body):
        name = run.rstrip("._-").lower()
        if _NAME_MIN <= len(name) <= _NAME_MAX:
            seen.setdefault(name, None)
    return tuple(seen)
