"""GET /health tells the truth about PostgreSQL and Redis, and recovers without a restart."""

from __future__ import annotations

import time
from typing import Any

import pytest_twisted
import treq
from twisted.internet import reactor
from twisted.internet.task import deferLater

from support import free_port

from termrooms.config import Config
from termrooms.server import TermroomsServer
from termrooms.service import DatabaseStartupService


class RunningServer:
    """An in-process termrooms server (start-up service and site) on a free port."""

    def __init__(self, config: Config) -> None:
        self.server = TermroomsServer(config, reactor)
        self.fatal_messages: list[str] = []
        self.startup = DatabaseStartupService(self.server, self.fatal_messages.append)

    async def start(self) -> "RunningServer":
        self.startup.startService()
        self.port = reactor.listenTCP(0, self.server.get_site(), interface="127.0.0.1")
        self.url = f"http://127.0.0.1:{self.port.getHost().port}"
        return self

    async def stop(self) -> None:
        await self.port.stopListening()
        await self.startup.stopService()

    async def health(self) -> tuple[int, dict, Any]:
        response = await treq.get(self.url + "/health")
        return response.code, await response.json(), response.headers

    async def wait_for_status(self, code: int, timeout: float = 20.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            status, body, _ = await self.health()
            if status == code:
                return body
            if time.monotonic() > deadline:
                raise AssertionError(f"/health stayed {status} {body}, wanted {code}")
            await deferLater(reactor, 0.1)


@pytest_twisted.ensureDeferred
async def test_health_is_ok_with_database_connected_and_redis_disabled(database_proxy):
    running = await RunningServer(Config(database_url=database_proxy.url)).start()
    try:
        body = await running.wait_for_status(200)
        assert body == {"status": "ok", "database": "connected", "redis": "disabled"}
        assert running.fatal_messages == []
    finally:
        await running.stop()


@pytest_twisted.ensureDeferred
async def test_health_is_503_while_database_is_unreachable_and_recovers_without_restart(
    database_proxy,
):
    running = await RunningServer(Config(database_url=database_proxy.url)).start()
    try:
        await running.wait_for_status(200)

        await database_proxy.cut()
        started = time.monotonic()
        code, body, headers = await running.health()
        assert code == 503
        assert time.monotonic() - started < 3, "health must answer quickly, not hang"
        assert body["status"] == "degraded"
        assert body["database"] == "disconnected"
        assert body["error_code"] == "unavailable"
        assert body["detail"]
        assert headers.getRawHeaders("retry-after") == ["5"]

        await database_proxy.restore()
        body = await running.wait_for_status(200)
        assert body["database"] == "connected"
    finally:
        await running.stop()


@pytest_twisted.ensureDeferred
async def test_health_reports_redis_connected_when_configured(database_proxy, redis_url):
    running = await RunningServer(
        Config(database_url=database_proxy.url, redis_url=redis_url)
    ).start()
    try:
        body = await running.wait_for_status(200)
        assert body == {"status": "ok", "database": "connected", "redis": "connected"}
    finally:
        await running.stop()


@pytest_twisted.ensureDeferred
async def test_unreachable_redis_is_reported_but_does_not_make_the_instance_degraded(
    database_proxy,
):
    running = await RunningServer(
        Config(database_url=database_proxy.url, redis_url=f"redis://127.0.0.1:{free_port()}")
    ).start()
    try:
        body = await running.wait_for_status(200)
        assert body["redis"] == "disconnected"
        assert body["status"] == "ok"
    finally:
        await running.stop()
