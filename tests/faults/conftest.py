"""Fixtures of the fault tests: servers of their own, which they may stop, crash and fill."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from support import PrivatePostgres, unavailable


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """An initialised PostgreSQL of this test's own, running, with a ``termrooms`` database."""
    if not PrivatePostgres.available():
        unavailable("no pgserver binaries for a private PostgreSQL")
    # Not under tmp_path: the server's unprivileged user must reach the directory.
    server = PrivatePostgres(Path(tempfile.mkdtemp(prefix="termrooms-faults-pg-")))
    try:
        server.init()
        server.start()
        server.create_database("termrooms")
    except (subprocess.CalledProcessError, OSError) as e:
        shutil.rmtree(server.directory, ignore_errors=True)
        unavailable(f"a private PostgreSQL would not start: {e}")
    yield server
    if server.running:
        try:
            server.stop("immediate")
        except subprocess.CalledProcessError:
            pass  # already gone
    shutil.rmtree(server.directory, ignore_errors=True)
