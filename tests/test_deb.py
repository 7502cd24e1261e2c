"""``make deb``'s package, installed with dpkg as an admin would: the settings it ships,
the daemon started as its unit starts it, as its user, and a purge that leaves the data.

No systemd here, so the unit's ``ExecStart`` runs under ``runuser`` with the unit's
environment and the env file's. It installs into this machine's /opt, /etc and /var/lib:
it needs root and dpkg, and refuses to touch a termrooms package, user or data directory
it did not make. From a clean tree it took 41 to 50 s here, most of it the build (17 to
35 s when ``make deb`` finds its package up to date, as the machine's load went), so it
runs in ``make test-hostile`` (TERMROOMS_HOSTILE=1), not in the default suite.
"""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import signal
import subprocess
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import HOSTILE, clean_environ, free_port, unavailable

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not HOSTILE, reason="builds and installs a .deb: make test-hostile"),
]

PROJECT = Path(__file__).resolve().parent.parent
VENV = Path("/opt/venvs/termrooms")
UNIT = Path("/lib/systemd/system/termrooms.service")
ETC = Path("/etc/termrooms")
DATA = Path("/var/lib/termrooms")


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    kwargs.setdefault("timeout", 120)
    return subprocess.run(command, capture_output=True, text=True, **kwargs)


def user_exists(name: str) -> bool:
    return run(["getent", "passwd", name]).returncode == 0


def group_exists(name: str) -> bool:
    return run(["getent", "group", name]).returncode == 0


def package_installed() -> bool:
    status = run(["dpkg-query", "-W", "-f=${db:Status-Status}", "termrooms"])
    return status.returncode == 0 and status.stdout not in ("", "not-installed")


def unit_settings(text: str) -> dict[str, list[str]]:
    """Each key of the unit with its values, in order (keys may repeat)."""
    settings: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


def env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines, as systemd's EnvironmentFile= reads these (no quoting used)."""
    variables = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, value = line.split("=", 1)
            variables[key] = value
    return variables


@pytest.fixture
def debian_machine() -> Iterator[None]:
    """Root, dpkg, and nothing of termrooms' own on the machine; and so again afterwards."""
    if os.geteuid() != 0:
        unavailable("installs a .deb with dpkg -i: needs root")
    if shutil.which("dpkg") is None or shutil.which("runuser") is None:
        unavailable("needs dpkg and runuser (a Debian machine)")
    if package_installed() or user_exists("termrooms") or DATA.exists() or ETC.exists():
        unavailable("termrooms is installed here (package, user or data): not touching it")
    try:
        yield
    finally:
        for process in run(["pgrep", "-u", "termrooms"]).stdout.split():
            os.kill(int(process), signal.SIGKILL)
        if package_installed():
            run(["dpkg", "--purge", "termrooms"])
        shutil.rmtree(DATA, ignore_errors=True)


def test_package_installs_runs_the_daemon_as_its_unit_does_and_purges_all_but_the_data(
    debian_machine, database_url, tmp_path
):
    started = time.monotonic()
    built = run(["make", "-C", str(PROJECT), "deb"], timeout=600)
    assert built.returncode == 0, built.stdout + built.stderr
    version = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]["version"]
    arch = run(["dpkg", "--print-architecture"]).stdout.strip()
    deb = PROJECT / "dist" / f"termrooms_{version}_{arch}.deb"
    assert deb.is_file()

    installed = run(
        ["dpkg", "-i", str(deb)], env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr

    # What it installed, and where.
    files = set(run(["dpkg", "-L", "termrooms"]).stdout.split())
    assert {str(UNIT), "/usr/bin/termrooms", f"{VENV}/bin/twistd"} <= files
    assert os.path.realpath("/usr/bin/termrooms") == f"{VENV}/bin/termrooms"
    assert (VENV / "bin" / "twistd").read_text().startswith(f"#!{VENV}/bin/python")
    conffiles = run(["dpkg-query", "-W", "-f=${Conffiles}", "termrooms"]).stdout
    assert {line.split()[0] for line in conffiles.strip().splitlines()} == {
        f"{ETC}/termrooms.toml",
        f"{ETC}/env",
    }
    user = pwd.getpwnam("termrooms")
    assert user.pw_dir == str(DATA) and user.pw_shell == "/usr/sbin/nologin"
    assert DATA.stat().st_uid == user.pw_uid
    for path, mode in ((ETC, 0o750), (ETC / "termrooms.toml", 0o640), (ETC / "env", 0o640)):
        assert (path.stat().st_uid, path.stat().st_gid) == (0, user.pw_gid), path
        assert path.stat().st_mode & 0o777 == mode, path

    # The unit is the one of systemd/ with its ExecStart on the packaged virtualenv, every
    # hardening line kept.
    unit = unit_settings(UNIT.read_text())
    source = unit_settings((PROJECT / "systemd" / "termrooms.service").read_text())
    (exec_start,) = unit.pop("ExecStart")
    assert exec_start == f"{VENV}/bin/twistd --nodaemon --pidfile= termrooms"
    source.pop("ExecStart")
    assert unit == source
    if shutil.which("systemd-analyze"):
        security = run(
            ["systemd-analyze", "security", "--offline=yes", "--threshold=20", str(UNIT)]
        )
        assert security.returncode == 0, security.stdout + security.stderr

    # The environment the unit gives the daemon: its Environment= lines, then the env
    # file (which names the config file), then this test's database and a free port.
    (unit_env_file,) = unit["EnvironmentFile"]
    environment = clean_environ()
    for assignment in unit["Environment"]:
        environment.update(item.split("=", 1) for item in shlex.split(assignment))
    environment.update(env_file(Path(unit_env_file.lstrip("-"))))
    assert environment["TERMROOMS_CONFIG"] == f"{ETC}/termrooms.toml"

    checked = run(["/usr/bin/termrooms", "check-config"], env=environment, cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert f"config_file            {ETC}/termrooms.toml" in checked.stdout

    # The admin's edit survives reinstalling (dpkg's upgrade path).
    with open(ETC / "termrooms.toml", "a") as config:
        config.write('\n# edited by the admin\nlog_level = "info"\n')
    reinstalled = run(
        ["dpkg", "-i", str(deb)], env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    )
    assert reinstalled.returncode == 0, reinstalled.stdout + reinstalled.stderr
    assert "# edited by the admin" in (ETC / "termrooms.toml").read_text()

    port = free_port()
    environment["TERMROOMS_DATABASE_URL"] = database_url
    environment["TERMROOMS_LISTEN"] = f"tcp:{port}:interface=127.0.0.1"
    (working_directory,) = unit["WorkingDirectory"]
    (runs_as,) = unit["User"]
    log = tmp_path / "daemon.log"
    with open(log, "w") as output:
        daemon = subprocess.Popen(
            ["runuser", "-u", runs_as, "--", *shlex.split(exec_start)],
            env=environment,
            cwd=working_directory,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline and daemon.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
                    status = answer.status
                    break
            except OSError:
                time.sleep(0.2)
        assert status == 200, log.read_text()
        assert run(["pgrep", "-u", runs_as, "-f", "twistd"]).returncode == 0, "runs as its user"
    finally:
        # The daemon is runuser's child, running as termrooms: SIGTERM to it drains it,
        # and runuser exits with its status.
        for process in run(["pgrep", "-u", runs_as]).stdout.split():
            os.kill(int(process), signal.SIGTERM)
        code = daemon.wait(timeout=30)
    assert code == 0, log.read_text()
    text = log.read_text()
    assert "Unable to write to plugin cache" not in text
    assert (DATA / "signing-keys.json").exists()  # written by the daemon, as its user
    assert run(["pgrep", "-u", runs_as]).returncode == 1, "nothing of termrooms' still runs"

    purged = run(["dpkg", "--purge", "termrooms"])
    assert purged.returncode == 0, purged.stdout + purged.stderr
    assert f"kept {DATA}" in purged.stdout
    assert not package_installed()
    assert not ETC.exists() and not VENV.exists() and not UNIT.exists()
    assert not os.path.lexists("/usr/bin/termrooms")
    assert not user_exists("termrooms") and not group_exists("termrooms")
    assert (DATA / "signing-keys.json").exists(), "purging keeps the data"
    print(f"test_deb: {time.monotonic() - started:.1f} s")
