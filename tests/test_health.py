"""GET /health tells the truth about PostgreSQL and Redis, and recovers without a restart."""

from __future__ import annotations

import time

import pytest_twisted

from support import RunningServer, free_port
from termrooms.config import Config


@pytest_twisted.ensureDeferred
async def test_health_is_ok_with_database_connected_and_redis_disabled(database_proxy, tmp_path):
    running = await RunningServer(
        Config(database_url=database_proxy.url, data_dir=tmp_path)
    ).start()
    try:
        body = await running.wait_for_status(200)
        assert body == {"status": "ok", "database": "connected", "redis": "disabled"}
        assert running.fatal_messages == []
    finally:
        await running.stop()


@pytest_twisted.ensureDeferred
async def test_health_is_503_while_database_is_unreachable_and_recovers_without_restart(
    database_proxy, tmp_path
):
    running = await RunningServer(
        Config(database_url=database_proxy.url, data_dir=tmp_path)
    ).start()
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
async def test_health_reports_redis_connected_when_configured(database_proxy, redis_url, tmp_path):
    running = await RunningServer(
        Config(database_url=database_proxy.url, redis_url=redis_url, data_dir=tmp_path)
    ).start()
    try:
        body = await running.wait_for_status(200)
        assert body == {"status": "ok", "database": "connected", "redis": "connected"}
    finally:
        await running.stop()


@pytest_twisted.ensureDeferred
async def test_unreachable_redis_is_reported_but_does_not_make_the_instance_degraded(
    database_proxy, tmp_path
):
    running = await RunningServer(
        Config(
            database_url=database_proxy.url,
            redis_url=f"redis://127.0.0.1:{free_port()}",
            data_dir=tmp_path,
        )
    ).start()
    try:
        body = await running.wait_for_status(200)
        assert body["redis"] == "disconnected"
        assert body["status"] == "ok"
    finally:
        await running.stop()
