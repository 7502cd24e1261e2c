"""systemd/termrooms.toml.sample: every setting, commented, each line a working value."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from termrooms.config import SETTINGS, Config, resolve_config
from termrooms.sample_config import sample_config_file, toml_value

SAMPLE = Path(__file__).resolve().parent.parent / "systemd" / "termrooms.toml.sample"
COMMENTED_SETTING = re.compile(r"^# ([a-z0-9_]+) = ", re.MULTILINE)


def test_shipped_sample_is_the_one_the_settings_table_gives():
    assert SAMPLE.read_text() == sample_config_file(), "run `make sample-config`"


def test_sample_lists_every_setting_once():
    assert COMMENTED_SETTING.findall(SAMPLE.read_text()) == [s.name for s in SETTINGS]


def test_uncommenting_every_setting_parses_and_shows_the_true_defaults(tmp_path):
    uncommented = re.sub(r"^# ([a-z0-9_]+ = )", r"\1", SAMPLE.read_text(), flags=re.MULTILINE)
    path = tmp_path / "termrooms.toml"
    path.write_text(uncommented)
    config = resolve_config({}, {}, str(path))
    defaults = Config()
    for setting in SETTINGS:
        if setting.default is not None:
            assert getattr(config, setting.name) == getattr(defaults, setting.name), setting.name


def test_everything_else_in_the_sample_stays_a_comment():
    lines = [line for line in SAMPLE.read_text().splitlines() if line.strip()]
    assert all(line.startswith("#") for line in lines)


@pytest.mark.parametrize(
    "value, text",
    [(True, "true"), (10, "10"), (("a", "b"), '["a", "b"]'), ('say "hi"', '"say \\"hi\\""')],
)
def test_toml_values(value, text):
    assert toml_value(value) == text
