"""
Running pg_dump and pg_restore for ``termrooms backup`` and ``restore``: finding the
client programs on this machine (the distribution's, and those the pgserver package
ships for the embedded database) and running one with the password in its environment.
Every function blocks: call them in a thread.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import BinaryIO

from termrooms.operations.pgtools import PgTool, split_password, tool_major


class ToolFailed(Exception):
    """A PostgreSQL client program exited with an error; its message is the error."""


def _candidate_dirs(pg_bin: str | None) -> list[Path]:
    if pg_bin is not None:
        return [Path(pg_bin)]
    dirs = [Path(d) for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"))]
    dirs += [Path(d) for d in sorted(glob.glob("/usr/pgsql-*/bin"))]
    # The embedded database's own tools; found without importing pgserver, which warns.
    spec = importlib.util.find_spec("pgserver")
    if spec is not None and spec.origin is not None:
        dirs.append(Path(spec.origin).parent / "pginstall" / "bin")
    return dirs


def find_tools(name: str, pg_bin: str | None = None) -> list[PgTool]:
    """Every ``name`` (pg_dump, pg_restore) found, with its major version."""
    paths = [directory / name for directory in _candidate_dirs(pg_bin)]
    on_path = shutil.which(name) if pg_bin is None else None
    if on_path:
        paths.append(Path(on_path))
    found: dict[str, PgTool] = {}
    for path in paths:
        if not os.access(path, os.X_OK) or str(path.resolve()) in found:
            continue
        answer = subprocess.run(
            [str(path), "--version"], capture_output=True, text=True, timeout=30, check=False
        )
        major = tool_major(answer.stdout)
        if answer.returncode == 0 and major is not None:
            found[str(path.resolve())] = PgTool(str(path), major)
    return list(found.values())


# How much of a dump goes through memory at a time on its way to standard output.
_CHUNK = 1 << 16


def _command(
    tool: PgTool, args: list[str], database_url: str | None
) -> tuple[list[str], dict[str, str]]:
    """The command line (``--dbname`` for ``database_url``) and its environment, with the
    password moved to PGPASSWORD: never in the command line, which others can read."""
    env = dict(os.environ)
    command = [tool.path, "--no-password", *args]
    if database_url is not None:
        url, password = split_password(database_url)
        command.append(f"--dbname={url}")
        if password is not None:
            env["PGPASSWORD"] = password
    return command, env


def _failed(tool: PgTool, returncode: int, stderr: str) -> ToolFailed:
    lines = [line for line in stderr.splitlines() if line.strip()]
    return ToolFailed("; ".join(lines[-3:]) or f"{tool.path} exited with {returncode}")


def run_tool(tool: PgTool, args: list[str], database_url: str | None = None) -> str:
    """Run ``tool`` with ``args``; its standard output. ToolFailed with its error output
    otherwise."""
    command, env = _command(tool, args, database_url)
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise _failed(tool, result.returncode, result.stderr)
    return result.stdout


def dump_to(tool: PgTool, database_url: str, out: BinaryIO) -> int:
    """pg_dump in custom format to ``out`` (standard output, for ``backup -``) as it
    comes, a chunk at a time; how many bytes it wrote. A failed dump raises ToolFailed
    after what was written: whoever reads the stream must heed the exit status."""
    command, env = _command(tool, ["--format=custom"], database_url)
    written = 0
    with tempfile.TemporaryFile() as errors:  # a pipe for both could fill and stall
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, env=env) as dumping:
            assert dumping.stdout is not None  # PIPE
            while chunk := dumping.stdout.read(_CHUNK):
                out.write(chunk)
                written += len(chunk)
        out.flush()
        if dumping.returncode != 0:
            errors.seek(0)
            raise _failed(tool, dumping.returncode, errors.read().decode("utf-8", "replace"))
    return written


def spool(source: BinaryIO, directory: Path) -> Path:
    """Copy a backup read from ``source`` (standard input, for ``restore -``) into a file
    of ``directory`` readable by its owner only: pg_restore reads a backup twice (its
    schema version first, then everything)."""
    handle, name = tempfile.mkstemp(prefix="restore-", suffix=".dump", dir=directory)
    with os.fdopen(handle, "wb") as target:
        shutil.copyfileobj(source, target, _CHUNK)
    return Path(name)


def dump(tool: PgTool, database_url: str, target: Path) -> None:
    """pg_dump in custom format to ``target``, readable by its owner only; all or nothing."""
    partial = target.with_name(target.name + ".partial")
    os.close(os.open(partial, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600))
    try:
        run_tool(tool, ["--format=custom", f"--file={partial}"], database_url)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
