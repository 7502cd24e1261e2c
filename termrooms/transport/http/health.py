"""``GET /health`` and ``GET /api/openapi.json``: what load balancers and clients probe first."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import gatherResults, succeed

from termrooms.domain.errors import RETRY_AFTER_SECONDS, ApiError
from termrooms.operations.metrics import CONTENT_TYPE, address_allowed, exposition, registry_for
from termrooms.transport.http.request import ApiRequest
from termrooms.transport.http.router import JsonResponse, Router

PROBE_TIMEOUT_SECONDS = 2.0

HEALTH_SCHEMA = {
    "type": "object",
    "required": ["status", "database", "redis"],
    "properties": {
        "status": {"enum": ["ok", "degraded"]},
        "database": {"enum": ["connected", "disconnected", "starting"]},
        "redis": {"enum": ["connected", "disconnected", "disabled"]},
        "error_code": {"type": "string"},
        "detail": {"type": "string"},
    },
}


def register_health_routes(router: Router, server: Any) -> None:
    """Health and the OpenAPI document; ``server`` is the TermroomsServer."""

    @router.route(
        "/health",
        "GET",
        summary="Liveness and dependency status; 503 while PostgreSQL is unreachable.",
        tags=("operations",),
        responses={200: HEALTH_SCHEMA, 503: HEALTH_SCHEMA},
    )
    async def health(request: ApiRequest) -> JsonResponse:
        redis = server.get_redis()
        url_known = server.database_url is not None  # unknown while embedded one starts
        database_ok, redis_ok = await gatherResults(
            [
                server.get_database().probe(PROBE_TIMEOUT_SECONDS) if url_known else succeed(None),
                redis.probe(PROBE_TIMEOUT_SECONDS) if redis else succeed(None),
            ]
        )
        request.setHeader(b"cache-control", b"no-store")
        database = "disconnected" if url_known else "starting"
        if database_ok:
            database = "connected" if server.schema_ready else "starting"
        if redis_ok and server.cluster_bus is not None:
            redis_ok = server.cluster_bus.subscribed  # both of the two connections are needed
        redis_state = (
            "disabled" if redis_ok is None else ("connected" if redis_ok else "disconnected")
        )
        body: dict[str, Any] = {"status": "ok", "database": database, "redis": redis_state}
        # Redis only carries hints (PostgreSQL is the truth), so without it the instance
        # still serves: it is reported, but only the database makes the instance degraded.
        if database != "connected":
            body.update(
                status="degraded",
                error_code="unavailable",
                detail=f"PostgreSQL is {database}.",
            )
            return JsonResponse(body, 503, {"Retry-After": str(RETRY_AFTER_SECONDS)})
        return JsonResponse(body)

    metrics = registry_for(server)

    @router.route(
        "/metrics",
        "GET",
        summary="Prometheus metrics of this instance; only to the networks of --metrics-allow.",
        tags=("operations",),
        responses={200: None, 403: None},
    )
    async def prometheus_metrics(request: ApiRequest) -> bytes:
        if not address_allowed(request.client_host, server.config.metrics_allow):
            raise ApiError("forbidden", "Metrics are not served to this address.")
        request.setHeader(b"content-type", CONTENT_TYPE.encode())
        request.setHeader(b"cache-control", b"no-store")
        return exposition(metrics)

    @router.route(
        "/api/openapi.json",
        "GET",
        summary="This OpenAPI 3.1 document.",
        tags=("meta",),
        responses={200: {"type": "object"}},
    )
    async def openapi(request: ApiRequest) -> bytes:
        return router.openapi_json()
