"""The shipped systemd unit stays sandboxed (checked where systemd-analyze exists)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "termrooms.service"
analyze = shutil.which("systemd-analyze")
pytestmark = pytest.mark.skipif(analyze is None, reason="systemd-analyze is not installed")


def test_unit_exposure_is_at_most_2_0():
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
