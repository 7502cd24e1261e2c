"""The proxy configurations in docs/deploy pass their own tools' checks."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from support import free_port, unavailable

DEPLOY = Path(__file__).resolve().parent.parent / "docs" / "deploy"
NGINX_CONF = DEPLOY / "nginx.conf"
HAPROXY_CFG = DEPLOY / "haproxy.cfg"


def tool(name: str) -> str:
    """The binary, from PATH or Debian's /usr/sbin (not on a normal user's PATH)."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found is None:
        unavailable(f"{name} is not installed (Debian: apt-get install nginx-light haproxy)")
    return found


def nginx_check(conf: Path, workdir: Path) -> subprocess.CompletedProcess:
    """``nginx -t`` with its pid and startup log in ``workdir``, so any user can run it."""
    return subprocess.run(
        [
            tool("nginx"),
            "-t",
            "-p",
            f"{workdir}/",
            "-e",
            str(workdir / "error.log"),
            "-g",
            f"pid {workdir / 'nginx.pid'};",
            "-c",
            str(conf.resolve()),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_nginx_conf_passes_nginx_t(tmp_path):
    conf = NGINX_CONF
    if os.geteuid() != 0:
        # nginx -t binds the listen ports, and only root may bind port 80: check a copy
        # that listens on a free high port instead, identical otherwise.
        text = NGINX_CONF.read_text()
        assert text.count("listen 80;") == 1
        conf = tmp_path / "nginx.conf"
        conf.write_text(text.replace("listen 80;", f"listen 127.0.0.1:{free_port()};"))
    result = nginx_check(conf, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def test_nginx_check_fails_on_a_broken_conf(tmp_path):
    # The check above means something only if nginx -t rejects a bad file this way.
    conf = tmp_path / "nginx.conf"
    conf.write_text(NGINX_CONF.read_text().replace("least_conn;", "least_conn"))
    result = nginx_check(conf, tmp_path)
    assert result.returncode != 0
    assert "test failed" in result.stderr


def test_nginx_conf_carries_websocket_upgrades_to_three_instances():
    text = NGINX_CONF.read_text()
    for line in (
        "map $http_upgrade $connection_upgrade",
        "proxy_http_version 1.1;",
        "proxy_set_header Upgrade $http_upgrade;",
        "proxy_set_header Connection $connection_upgrade;",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_read_timeout 1h;",
    ):
        assert line in text
    for port in (8081, 8082, 8083):
        assert f"server 127.0.0.1:{port} max_fails=3" in text


def haproxy_check(cfg: Path) -> subprocess.CompletedProcess:
    # -dW: zero-warning mode, so a warning fails the check as an error would.
    return subprocess.run(
        [tool("haproxy"), "-dW", "-c", "-f", str(cfg)],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_haproxy_cfg_passes_haproxy_c_without_warnings():
    result = haproxy_check(HAPROXY_CFG)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Configuration file is valid" in result.stdout + result.stderr


def test_haproxy_check_fails_on_a_warning(tmp_path):
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(HAPROXY_CFG.read_text().replace("    timeout client 30s\n", ""))
    result = haproxy_check(cfg)
    assert result.returncode != 0
    assert "missing timeouts" in result.stdout + result.stderr


def test_haproxy_cfg_checks_health_and_keeps_websockets_open():
    text = HAPROXY_CFG.read_text()
    for line in (
        "option httpchk GET /health",
        "http-check expect status 200",
        "timeout tunnel 1h",
        "balance leastconn",
    ):
        assert line in text
    for port in (8081, 8082, 8083):
        assert f"127.0.0.1:{port}" in text


def test_proxy_logs_leave_out_the_access_token_of_websocket_handshakes():
    # /ws?token=...: a proxy that logs the full request line logs a bearer token.
    haproxy = HAPROXY_CFG.read_text()
    assert '\\"%HM %HP %HV\\"' in haproxy  # the path without its query
    assert "option httplog" not in haproxy
    assert not re.search(r"%(\{[^}]*\})?(r|HU|HQ)(?![a-z])", haproxy)  # request line, URI, query
    assert "access_log off;" in NGINX_CONF.read_text()
