"""
Retention rules: what a pass removes, and the time before which each kind of row goes.

Pure logic, no database: the store (:mod:`termrooms.storage.retention`) deletes what these
cutoffs say, and the runner (:mod:`termrooms.handlers.retention`) decides when.

"Messages" are every stored room event, not only ``message`` events: retention cuts a
room's history at one point in time, so what is kept is always every event from some seq
on. Keeping membership or moderation events while their messages go would leave holes
in the seq sequence, which neither ``history_truncated`` (one ``oldest_seq``) nor the
delivery guarantee can express, and those events hold no state of their own:
memberships, bans, mutes and the topic live in their tables, moderation in the audit log.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

import attrs

# Age-based kinds: a pass removes rows older than the setting (zero keeps them).
# "deleted_rooms" are rooms soft-deleted (by their owner, an admin or as idle) that long
# ago: they go for good, with their events, members, tasks, polls and retros.
AGE_KINDS = ("messages", "idle_rooms", "deleted_rooms", "audit_rows")
# Expired rows, purged once a day. "sessions" are login sessions (refresh-token
# families) left without any refresh token; they go with their last token.
# "deleted_tasks" are tasks soft-deleted over DELETED_TASKS_KEPT ago.
EXPIRY_KINDS = ("refresh_tokens", "sessions", "invites", "bans", "mutes", "deleted_tasks")
KINDS = AGE_KINDS + EXPIRY_KINDS

# Which setting keeps each age-based kind, for messages to the operator.
SETTING_OF = {
    "messages": "message_retention",
    "idle_rooms": "idle_room_retention",
    "deleted_rooms": "deleted_room_retention",
    "audit_rows": "audit_retention",
}

# A refresh token goes a day after it expired: the longest access-token lifetime the
# settings allow, so no access token issued beside it (whose session must still be found
# while it lives) outlives its session's row.
REFRESH_TOKEN_GRACE = timedelta(days=1)
# A deleted task stays this long (an undo, an admin's question), then goes for good.
DELETED_TASKS_KEPT = timedelta(days=7)
DEFAULT_BATCH_SIZE = 1000
KEEP = timedelta(0)


@attrs.frozen
class RetentionPolicy:
    """How long each age-based kind is kept (zero: forever), and rows per transaction."""

    messages: timedelta = timedelta(days=30)
    idle_rooms: timedelta = timedelta(days=7)
    deleted_rooms: timedelta = timedelta(days=30)
    audit_rows: timedelta = timedelta(days=90)
    batch_size: int = DEFAULT_BATCH_SIZE

    @classmethod
    def from_config(cls, config: Any, batch_size: int = DEFAULT_BATCH_SIZE) -> "RetentionPolicy":
        return cls(
            messages=config.message_retention,
            idle_rooms=config.idle_room_retention,
            deleted_rooms=config.deleted_room_retention,
            audit_rows=config.audit_retention,
            batch_size=batch_size,
        )

    def kept_for(self, kind: str) -> timedelta:
        """How long an age-based kind is kept."""
        return {
            "messages": self.messages,
            "idle_rooms": self.idle_rooms,
            "deleted_rooms": self.deleted_rooms,
            "audit_rows": self.audit_rows,
        }[kind]


def cutoffs(policy: RetentionPolicy, now: datetime, *, purge_expired: bool) -> dict[str, datetime]:
    """
    For each kind this pass removes, the time before which its rows go: created (events,
    audit rows), last active (rooms) or expired (the rest). Kinds kept forever and, unless
    ``purge_expired``, the expiry kinds are absent.
    """
    due: dict[str, datetime] = {}
    for kind in AGE_KINDS:
        kept = policy.kept_for(kind)
        if kept > KEEP:
            due[kind] = now - kept
    if purge_expired:
        due["refresh_tokens"] = due["sessions"] = now - REFRESH_TOKEN_GRACE
        due["invites"] = due["bans"] = due["mutes"] = now
        due["deleted_tasks"] = now - DELETED_TASKS_KEPT
    return due


def expired_purge_due(last_purge: datetime | None, now: datetime) -> bool:
    """Expired rows go on the first pass of each UTC day (never drifting with the interval)."""
    if last_purge is None:
        return True
    return last_purge.astimezone(timezone.utc).date() < now.astimezone(timezone.utc).date()


def zero_counts() -> dict[str, int]:
    return dict.fromkeys(KINDS, 0)


@attrs.frozen
class PassReport:
    """What a pass removed (or, dry, would remove), with the cutoffs it used."""

    counts: Mapping[str, int]
    cutoffs: Mapping[str, datetime]
    dry_run: bool = False
    complete: bool = True  # False when the daemon stopped in the middle of the pass

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def purged_expired(self) -> bool:
        """Whether this pass did the daily purge of expired rows, to the end."""
        return "refresh_tokens" in self.cutoffs and self.complete and not self.dry_run

    def audit_data(self) -> dict[str, Any]:
        """The audit row's data: counts per kind, and whether expired rows were purged."""
        return {
            "removed": {kind: self.counts.get(kind, 0) for kind in KINDS},
            "purged_expired": self.purged_expired,
        }

    def worth_an_audit_row(self) -> bool:
        """A row when something went, and for the daily purge (it dates the next one)."""
        return not self.dry_run and (self.total > 0 or self.purged_expired)

    def lines(self) -> list[str]:
        """One line per kind, as ``termrooms retention`` prints them."""
        verb = "would remove" if self.dry_run else "removed"
        lines = []
        for kind in KINDS:
            if kind not in self.cutoffs:
                if kind in AGE_KINDS:
                    lines.append(f"{kind:<15} kept ({SETTING_OF[kind]} is 0)")
                else:
                    lines.append(f"{kind:<15} not purged in this pass")
                continue
            lines.append(
                f"{kind:<15} {verb} {self.counts.get(kind, 0)}: {_what(kind, self.cutoffs[kind])}"
            )
        return lines


def _what(kind: str, cutoff: datetime) -> str:
    when = cutoff.astimezone(timezone.utc).isoformat(timespec="seconds")
    return {
        "messages": f"room events stored before {when}",
        "idle_rooms": f"rooms (soft-deleted) without an event since {when}",
        "deleted_rooms": f"rooms deleted before {when}, for good, with all they held",
        "audit_rows": f"audit rows written before {when}",
        "refresh_tokens": f"refresh tokens expired before {when}",
        "sessions": "sessions left without a refresh token",
        "invites": f"invites expired before {when}",
        "bans": f"bans expired before {when}",
        "mutes": f"mutes expired before {when}",
        "deleted_tasks": f"tasks deleted before {when}",
    }[kind]
