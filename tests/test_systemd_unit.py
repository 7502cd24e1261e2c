"""The shipped systemd unit stays sandboxed (checked where systemd-analyze exists)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support import unavailable

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "termrooms.service"


@pytest.fixture
def analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        unavailable("systemd-analyze is not installed (Debian's systemd package)")
    return tool


def test_unit_exposure_is_at_most_2_0(analyze):
    # --threshold is in tenths: 20 means an overall exposure level of 2.0.
    result = subprocess.run(
        [analyze, "security", "--offline=yes", "--threshold=20", str(UNIT)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_unit_runs_twistd_in_the_foreground_as_its_own_user():
    text = UNIT.read_text()
    assert "ExecStart=/opt/termrooms/bin/twistd --nodaemon --pidfile= termrooms" in text
    assert "User=termrooms" in text
    assert "StateDirectory=termrooms" in text


def test_unit_verifies_clean_when_its_twistd_exists(analyze, tmp_path):
    # The unit names /opt/termrooms/bin/twistd; verify a copy that names this
    # environment's twistd, so that any complaint left is about the unit itself.
    twistd = Path(sys.executable).parent / "twistd"
    copy = tmp_path / "termrooms.service"
    copy.write_text(UNIT.read_text().replace("/opt/termrooms/bin/twistd", str(twistd)))
    result = subprocess.run(
        [analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_unit_is_notify_type_with_a_watchdog_and_reload_reopens_logs():
    text = UNIT.read_text()
    for line in (
        "Type=notify",
        "NotifyAccess=main",
        "WatchdogSec=30s",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "LogsDirectory=termrooms",
        "EnvironmentFile=-/etc/termrooms/env",
        "Restart=on-failure",
        "ProtectSystem=strict",
    ):
        assert line in text.splitlines(), line
