"""Retention's pure rules: cutoffs from settings and a fixed now, when the daily purge is due."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from termrooms.config import ConfigError, resolve_config, show_value
from termrooms.domain.retention import (
    KINDS,
    PassReport,
    RetentionPolicy,
    cutoffs,
    expired_purge_due,
    zero_counts,
)

NOW = datetime(2026, 11, 23, 6, 30, tzinfo=timezone.utc)


def test_default_policy_cuts_events_at_30_days_rooms_at_7_and_audit_at_90() -> None:
    due = cutoffs(RetentionPolicy(), NOW, purge_expired=False)

    assert due == {
        "messages": datetime(2026, 10, 24, 6, 30, tzinfo=timezone.utc),
        "idle_rooms": datetime(2026, 11, 16, 6, 30, tzinfo=timezone.utc),
        "deleted_rooms": datetime(2026, 10, 24, 6, 30, tzinfo=timezone.utc),  # 30 days
        "audit_rows": datetime(2026, 8, 25, 6, 30, tzinfo=timezone.utc),
    }


def test_zero_keeps_a_kind_forever_so_it_has_no_cutoff() -> None:
    policy = RetentionPolicy(
        messages=timedelta(0), idle_rooms=timedelta(0), deleted_rooms=timedelta(0)
    )

    assert cutoffs(policy, NOW, purge_expired=False) == {"audit_rows": NOW - timedelta(days=90)}
    keep_all = RetentionPolicy(timedelta(0), timedelta(0), timedelta(0), timedelta(0))
    assert cutoffs(keep_all, NOW, purge_expired=False) == {}


def test_expired_rows_go_at_expiry_refresh_tokens_a_day_after_it() -> None:
    keep_all = RetentionPolicy(timedelta(0), timedelta(0), timedelta(0), timedelta(0))

    due = cutoffs(keep_all, NOW, purge_expired=True)

    assert due == {
        "refresh_tokens": NOW - timedelta(days=1),
        "sessions": NOW - timedelta(days=1),
        "invites": NOW,
        "bans": NOW,
        "mutes": NOW,
        "deleted_tasks": NOW - timedelta(days=7),
    }


def test_policy_comes_from_the_settings() -> None:
    config = resolve_config(
        {"message_retention": "0", "audit_retention": "365d"},
        {"TERMROOMS_IDLE_ROOM_RETENTION": "12h", "TERMROOMS_DELETED_ROOM_RETENTION": "0"},
    )

    policy = RetentionPolicy.from_config(config, batch_size=5)

    assert policy == RetentionPolicy(
        timedelta(0), timedelta(hours=12), timedelta(0), timedelta(days=365), 5
    )


@pytest.mark.parametrize(
    "last, now, due",
    [
        (None, NOW, True),
        (datetime(2026, 11, 23, 0, 0, 1, tzinfo=timezone.utc), NOW, False),
        (datetime(2026, 11, 22, 23, 59, 59, tzinfo=timezone.utc), NOW, True),
        # Just after midnight UTC, however little time has passed.
        (
            datetime(2026, 11, 22, 23, 59, tzinfo=timezone.utc),
            datetime(2026, 11, 23, 0, 1, tzinfo=timezone.utc),
            True,
        ),
        # 01:00 at +02:00 is the previous UTC day.
        (datetime(2026, 11, 23, 1, 0, tzinfo=timezone(timedelta(hours=2))), NOW, True),
        # 23:00 at -05:00 on the 22nd is the 23rd in UTC.
        (datetime(2026, 11, 22, 23, 0, tzinfo=timezone(timedelta(hours=-5))), NOW, False),
    ],
)
def test_expired_rows_are_purged_on_the_first_pass_of_each_utc_day(last, now, due) -> None:
    assert expired_purge_due(last, now) is due


def test_audit_data_has_every_kind_and_whether_the_daily_purge_ran() -> None:
    due = cutoffs(RetentionPolicy(), NOW, purge_expired=True)
    counts = {**zero_counts(), "messages": 12, "sessions": 2}

    data = PassReport(counts, due).audit_data()

    assert data == {
        "removed": {kind: counts[kind] for kind in KINDS},
        "purged_expired": True,
    }
    assert list(data["removed"]) == list(KINDS)


def test_a_pass_writes_an_audit_row_when_it_removed_something_or_did_the_daily_purge() -> None:
    hourly = cutoffs(RetentionPolicy(), NOW, purge_expired=False)
    daily = cutoffs(RetentionPolicy(), NOW, purge_expired=True)
    some = {**zero_counts(), "audit_rows": 1}

    assert not PassReport(zero_counts(), hourly).worth_an_audit_row()
    assert PassReport(some, hourly).worth_an_audit_row()
    assert PassReport(zero_counts(), daily).worth_an_audit_row()
    # Stopped halfway, the purge is not recorded as done: the next pass does it again.
    assert not PassReport(zero_counts(), daily, complete=False).worth_an_audit_row()
    assert PassReport(some, daily, complete=False).audit_data()["purged_expired"] is False
    assert not PassReport(some, daily, dry_run=True).worth_an_audit_row()


def test_report_lines_give_each_kind_its_count_cutoff_or_why_it_is_kept() -> None:
    policy = RetentionPolicy(messages=timedelta(0))
    due = cutoffs(policy, NOW, purge_expired=True)
    counts = {**zero_counts(), "idle_rooms": 3, "invites": 1}

    lines = PassReport(counts, due, dry_run=True).lines()

    assert lines == [
        "messages        kept (message_retention is 0)",
        "idle_rooms      would remove 3: rooms (soft-deleted) without an event since "
        "2026-11-16T06:30:00+00:00",
        "deleted_rooms   would remove 0: rooms deleted before 2026-10-24T06:30:00+00:00, for"
        " good, with all they held",
        "audit_rows      would remove 0: audit rows written before 2026-08-25T06:30:00+00:00",
        "refresh_tokens  would remove 0: refresh tokens expired before 2026-11-22T06:30:00+00:00",
        "sessions        would remove 0: sessions left without a refresh token",
        "invites         would remove 1: invites expired before 2026-11-23T06:30:00+00:00",
        "bans            would remove 0: bans expired before 2026-11-23T06:30:00+00:00",
        "mutes           would remove 0: mutes expired before 2026-11-23T06:30:00+00:00",
        "deleted_tasks   would remove 0: tasks deleted before 2026-11-16T06:30:00+00:00",
    ]
    assert PassReport(counts, due).lines()[1].startswith("idle_rooms      removed 3: ")


@pytest.mark.parametrize("zero", ["0", "0d", " 0s ", "00"])
def test_a_retention_setting_of_zero_keeps_forever(zero) -> None:
    config = resolve_config({"message_retention": zero}, {})

    assert config.message_retention == timedelta(0)
    # What check-config prints reads back as the same value.
    again = resolve_config({"message_retention": show_value(config.message_retention)}, {})
    assert again.message_retention == timedelta(0)


def test_retention_settings_have_defaults_and_toml_integer_zero(tmp_path) -> None:
    defaults = resolve_config({}, {})
    assert (
        defaults.message_retention,
        defaults.audit_retention,
        defaults.idle_room_retention,
        defaults.deleted_room_retention,
        defaults.retention_interval,
    ) == (
        timedelta(days=30),
        timedelta(days=90),
        timedelta(days=7),
        timedelta(days=30),
        timedelta(hours=1),
    )
    path = tmp_path / "termrooms.toml"
    path.write_text("audit_retention = 0\n")
    assert resolve_config({}, {}, str(path)).audit_retention == timedelta(0)


@pytest.mark.parametrize(
    "setting, value, reason",
    [
        ("audit_retention", "12h", "must be between 1d and"),
        ("message_retention", "30m", "must be between 1h and"),
        ("message_retention", "-1d", "is not a duration"),
        ("retention_interval", "0s", "is not a positive duration"),
        ("retention_interval", "2d", "must be between 1m and 1d"),
    ],
)
def test_retention_settings_out_of_range_are_refused(setting, value, reason) -> None:
    with pytest.raises(ConfigError, match=reason):
        resolve_config({setting: value}, {})
