"""``pip install .`` and ``pip install -e .`` into a fresh virtualenv each give a working plugin."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from support import clean_environ

pytestmark = pytest.mark.slow
PROJECT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wheels = tmp_path_factory.mktemp("wheels")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "-w",
            str(wheels),
            str(PROJECT),
        ],
        check=True,
        timeout=300,
    )
    (built,) = wheels.glob("termrooms-*.whl")
    return built


@pytest.fixture(scope="module")
def fresh_install(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    root = tmp_path_factory.mktemp("fresh-install")
    environment = root / "venv"
    venv.create(environment, with_pip=True)
    subprocess.run(
        [str(environment / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)],
        check=True,
        timeout=600,
    )
    return environment


@pytest.fixture(scope="module")
def editable_install(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A contributor's set-up: the source tree installed in place."""
    environment = tmp_path_factory.mktemp("editable-install") / "venv"
    venv.create(environment, with_pip=True)
    subprocess.run(
        [str(environment / "bin" / "python"), "-m", "pip", "install", "--quiet", "-e", str(PROJECT)],
        check=True,
        timeout=600,
    )
    return environment


def test_wheel_ships_the_plugin_without_claiming_the_twisted_package(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "twisted/plugins/termrooms_plugin.py" in names
    # An __init__.py here would shadow Twisted's own package on install.
    assert not {"twisted/__init__.py", "twisted/plugins/__init__.py"} & names
    source_deltas = {p.name for p in (PROJECT / "sql").glob("*.sql")}
    assert {f"termrooms/storage/sql/{name}" for name in source_deltas} <= names


def test_wheel_ships_every_file_of_the_web_client(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    client = PROJECT / "termrooms" / "client"
    shipped = {f"termrooms/client/{p.relative_to(client).as_posix()}" for p in client.rglob("*")}
    assert {name for name in shipped if not (PROJECT / name).is_dir()} <= names
    assert "termrooms/client/index.html" in names


def test_twistd_help_lists_termrooms_after_a_plain_install(fresh_install, tmp_path):
    result = subprocess.run(
        [str(fresh_install / "bin" / "twistd"), "--help"],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # away from the source tree, which must not be what is found
        env=clean_environ(),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "termrooms" in result.stdout


def test_twistd_finds_the_plugin_of_an_editable_install(editable_install, tmp_path):
    result = subprocess.run(
        [str(editable_install / "bin" / "twistd"), "termrooms", "--help"],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # twistd must find the plugin through the install, not the cwd
        env=clean_environ(),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "--database-url" in result.stdout


def test_installed_command_migrates_a_database(fresh_install, database_url, tmp_path):
    result = subprocess.run(
        [str(fresh_install / "bin" / "termrooms"), "migrate", "--database-url", database_url],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=clean_environ(),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "schema at version" in result.stdout


# Run after every pip install (docs/deploy.md): under ProtectSystem=strict the daemon
# cannot write twisted's plugin cache itself, and would log that it could not at each start.
PLUGIN_CACHE_STEP = "from twisted.plugin import IPlugin, getPlugins; list(getPlugins(IPlugin))"


def test_install_step_writes_the_plugin_cache_so_the_daemon_never_has_to(fresh_install, tmp_path):
    (plugins,) = (fresh_install / "lib").glob("python3*/site-packages/twisted/plugins")
    cache, plugin = plugins / "dropin.cache", plugins / "termrooms_plugin.py"

    def cache_written_by(command: list[str]) -> bool:
        before = cache.stat().st_mtime_ns if cache.exists() else None
        subprocess.run(
            command, check=True, capture_output=True, cwd=tmp_path, env=clean_environ(), timeout=60
        )
        return cache.exists() and cache.stat().st_mtime_ns != before

    twistd_scan = [str(fresh_install / "bin" / "twistd"), "--help"]
    plugin.touch()  # as a pip install or upgrade leaves it: newer than the cache
    assert cache_written_by(twistd_scan), "without the step, twistd rewrites the cache"
    plugin.touch()
    assert cache_written_by([str(fresh_install / "bin" / "python"), "-c", PLUGIN_CACHE_STEP])
    assert not cache_written_by(twistd_scan)


def test_docs_and_unit_give_the_same_plugin_cache_step():
    for document in ("README.md", "docs/deploy.md", "systemd/termrooms.service"):
        assert PLUGIN_CACHE_STEP in (PROJECT / document).read_text(), document
