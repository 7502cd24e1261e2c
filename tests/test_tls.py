"""TLS on the daemon itself: an ``ssl:`` endpoint serves HTTPS and wss://, with HSTS."""

from __future__ import annotations

import datetime
import ipaddress
import time
from pathlib import Path

import pytest_twisted
import treq
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.internet import reactor
from twisted.internet.ssl import Certificate, optionsForClientTLS
from twisted.internet.task import deferLater
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS

from support import free_port, port_answers, ws_connect
from termrooms.config import ConfigError, resolve_config


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for localhost and 127.0.0.1, and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_path, cert_path = directory / "key.pem", directory / "cert.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


def test_listen_accepts_an_ssl_endpoint_and_names_a_missing_key(tmp_path):
    key, cert = self_signed(tmp_path)
    description = f"ssl:8443:privateKey={key}:certKey={cert}"
    assert resolve_config({"listen": [description]}, {}).listen == (description,)
    missing = f"ssl:8443:privateKey={tmp_path / 'nope.pem'}:certKey={cert}"
    try:
        resolve_config({"listen": [missing]}, {})
    except ConfigError as e:
        assert e.option == "--listen" and "nope.pem" in e.reason
    else:
        raise AssertionError("a missing key file was accepted")


@pytest_twisted.ensureDeferred
async def test_daemon_serves_https_and_wss_with_hsts_only_over_tls(
    daemons, fresh_migrated_database_url, tmp_path
):
    key, cert = self_signed(tmp_path)
    tls_port = free_port()
    daemon = daemons(
        [
            "--database-url",
            fresh_migrated_database_url,
            "--listen",
            f"ssl:{tls_port}:interface=127.0.0.1:privateKey={key}:certKey={cert}",
            "--open-registration",
            "--argon2-memory-kib",
            "8192",
            "--argon2-time-cost",
            "1",
        ]
    )
    deadline = time.monotonic() + 30
    while not port_answers("127.0.0.1", tls_port):
        assert time.monotonic() < deadline, daemon.log()
        time.sleep(0.05)
    trusted = Certificate.loadPEM(cert.read_bytes())
    agent = Agent(reactor, contextFactory=BrowserLikePolicyForHTTPS(trustRoot=trusted))
    base = f"https://localhost:{tls_port}"

    response = await treq.get(base + "/health", agent=agent)
    while response.code == 503:  # migrations still running
        assert time.monotonic() < deadline, daemon.log()
        await deferLater(reactor, 0.1)
        response = await treq.get(base + "/health", agent=agent)
    assert response.code == 200
    assert (await response.json())["status"] == "ok"
    assert response.headers.getRawHeaders("strict-transport-security") == ["max-age=31536000"]
    plain = await treq.get(daemon.base_url + "/health")
    assert plain.code == 200
    assert plain.headers.getRawHeaders("strict-transport-security") is None

    response = await treq.post(
        base + "/api/auth/register",
        json={"username": "ada", "password": "correct horse battery"},
        agent=agent,
    )
    assert response.code == 201
    token = (await response.json())["access_token"]
    client = await ws_connect(
        f"wss://localhost:{tls_port}/ws?token={token}",
        tls=optionsForClientTLS("localhost", trustRoot=trusted),
    )
    welcome = await client.next_frame()
    assert welcome["type"] == "welcome" and welcome["user"]["username"] == "ada"
    client.send({"type": "ping"})
    assert (await client.next_frame())["type"] == "pong"
    client.protocol.sendClose(1000)
    await client.close_code()
