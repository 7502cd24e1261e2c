"""
The sample ``/etc/termrooms/termrooms.toml``: every setting, commented out, with its help
and its default, written from the settings table so that it never misses one
(``make sample-config`` rewrites ``systemd/termrooms.toml.sample``). Pure logic.
"""

from __future__ import annotations

import ipaddress
import json
import textwrap
from datetime import timedelta
from pathlib import Path
from typing import Any

from termrooms.config import SETTINGS, Setting, show_value
from termrooms.domain.ratelimit import RateLimit

# A value to show for the settings that are unset by default: uncommented, each must be
# a valid value, so the sample's lines are examples that work.
EXAMPLES: dict[str, Any] = {
    "database_url": "postgresql://termrooms@/termrooms?host=/run/postgresql",
    "database_session_url": "postgresql://termrooms@127.0.0.1:5432/termrooms",
    "redis_url": "redis://127.0.0.1:6379/0",
    "public_url": "https://chat.example.com",
    "signing_key_file": "/var/lib/termrooms/signing-keys.json",
    "log_file": "/var/log/termrooms/termrooms.log",
}

HEADER = """\
# termrooms settings (TOML). Every setting is listed, commented out, with its default
# (or, for one that is unset by default, an example). Uncomment what you change.
# Precedence: a command-line flag beats a TERMROOMS_* environment variable (for example
# from /etc/termrooms/env), which beats this file, which beats the default. The shipped
# systemd unit sets TERMROOMS_DATA_DIR and TERMROOMS_LOG_FORMAT itself.
# Point the daemon here with TERMROOMS_CONFIG=/etc/termrooms/termrooms.toml (or --config).
# `termrooms check-config` prints the values in effect.
"""


def toml_value(value: Any) -> str:
    """A setting's value written as TOML that the settings parser reads back."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, (timedelta, RateLimit, Path)):
        value = show_value(value)
    if isinstance(value, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        value = str(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string, escapes included
    raise ValueError(f"no TOML form for {value!r}")


def _entry(setting: Setting) -> str:
    if setting.default is None:
        if setting.name not in EXAMPLES:
            raise ValueError(f"termrooms.sample_config.EXAMPLES needs a value for {setting.name}")
        value, note = EXAMPLES[setting.name], "Unset by default; for example:"
    else:
        value, note = setting.default, "Default:"
    described = textwrap.wrap(f"{setting.help} ({setting.flag}, {setting.env})", 86)
    lines = [*described, note, f"{setting.name} = {toml_value(value)}"]
    return "".join(f"# {line}\n" for line in lines)


def sample_config_file() -> str:
    return HEADER + "".join("\n" + _entry(setting) for setting in SETTINGS)
