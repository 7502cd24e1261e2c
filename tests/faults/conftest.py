"""Fixtures of the fault tests: servers of their own, which they may stop, crash and fill."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from support import PGSERVER_BIN, PrivatePostgres, unavailable


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


@pytest.fixture
def small_disk() -> Iterator[Path]:
    """A 192 MB tmpfs of this test's own, reachable by the embedded PostgreSQL's user, to
    fill up. Whatever PostgreSQL still runs on it at the end is stopped, then unmounted."""
    mount_point = Path(tempfile.mkdtemp(prefix="termrooms-faults-disk-"))
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=192m,mode=755", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        mount_point.rmdir()
        unavailable(f"cannot mount a small tmpfs: {mounted.stderr.strip()}")
    yield mount_point
    for pid_file in mount_point.glob("**/postmaster.pid"):
        subprocess.run(
            [str(PGSERVER_BIN / "pg_ctl"), "-D", str(pid_file.parent), "-m", "immediate", "stop"],
            capture_output=True,
            user="pgserver" if os.geteuid() == 0 else None,
        )
    if subprocess.run(["umount", str(mount_point)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)
    mount_point.rmdir()
