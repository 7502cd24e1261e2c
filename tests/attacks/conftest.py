"""Fixtures of the identity and access attack tests."""

from __future__ import annotations

from typing import Callable

import attrs
import pytest

from support import RunningServer


@attrs.frozen
class DaemonClient:
    """Requests to a daemon process, answered as RunningServer.request answers them."""

    url: str

    request = RunningServer.request


@pytest.fixture
def daemon_client() -> Callable[[str], DaemonClient]:
    """Makes a client for a daemon's base URL."""
    return DaemonClient
