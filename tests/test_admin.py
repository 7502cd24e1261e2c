"""termrooms.operations.admin: what the operator's users and rooms commands print."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from support import third_party_imports
from termrooms.operations import admin
from termrooms.operations.admin import account_state, format_table, short_time

NOON = datetime(2026, 1, 2, 12, 30, 59, tzinfo=timezone.utc)


def test_format_table_pads_each_column_to_its_widest_cell():
    table = format_table(("NAME", "ROLE"), [("alice", "admin"), ("bo", "user")])

    assert table.splitlines() == ["NAME   ROLE", "alice  admin", "bo     user"]


def test_format_table_with_no_rows_prints_the_headers():
    assert format_table(("NAME", "ROLE"), []) == "NAME  ROLE"


def test_account_state_prefers_deleted_over_disabled():
    assert account_state(None, None) == "active"
    assert account_state(NOON, None) == "disabled"
    assert account_state(NOON, NOON) == "deleted"


def test_short_time_is_utc_to_the_minute_and_a_dash_for_never():
    two_hours_east = timezone(timedelta(hours=2))
    assert short_time(NOON.astimezone(two_hours_east)) == "2026-01-02 12:30"
    assert short_time(None) == "-"


def test_admin_is_pure():
    assert third_party_imports(admin) == {"termrooms.domain.wire"}
