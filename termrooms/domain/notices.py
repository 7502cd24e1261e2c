"""
Notices to one user's sockets, on every instance (../shared/spec/protocol-v1.1.md,
Notifications to a user, and the ``task`` frames of Tasks). A notice travels as a short
PostgreSQL NOTIFY payload, a hint with no text in it: the instance that has the user's
sockets reads what it stands for when it delivers it, so nothing hidden rides along.

Pure logic: no Twisted, no database.
"""

from __future__ import annotations

import attrs

__all__ = ["NOTIFY_REASONS", "UserNotice"]

#: The reasons of a ``notify`` frame; a notice of one of these kinds points at the room
#: event that caused it.
NOTIFY_REASONS = frozenset({"task_assigned", "mention", "dm"})


@attrs.frozen
class UserNotice:
    """What one user's sockets hear of: ``task`` (a personal task changed: ``ref`` its
    id), ``task_deleted`` (``ref`` the id), or a ``notify`` reason (``ref`` the room,
    ``seq`` the room event)."""

    user_id: int
    kind: str = attrs.field(
        validator=attrs.validators.in_(frozenset({"task", "task_deleted"}) | NOTIFY_REASONS)
    )
    ref: int
    seq: int = 0

    def payload(self) -> str:
        return f"{self.user_id} {self.kind} {self.ref} {self.seq}"

    @classmethod
    def from_payload(cls, payload: str) -> UserNotice:
        user, kind, ref, seq = payload.split()
        return cls(int(user), kind, int(ref), int(seq))
