"""
``GET /metrics`` in Prometheus's text format, for this instance. Figures are read when
scraped from the objects that keep them (the cluster bus's counters, the connection
registry), so the hot paths pay nothing for being measured.
"""

from __future__ import annotations

from typing import Any, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ServerCollector:
    """Reads a TermroomsServer's figures at scrape time."""

    def __init__(self, server: Any) -> None:
        self.server = server

    def collect(self) -> Iterator[Metric]:
        server = self.server
        yield GaugeMetricFamily(
            "termrooms_websocket_connections",
            "WebSocket connections open on this instance.",
            value=len(server.get_gateway().registry),
        )
        redis = server.get_redis()
        if redis is None:
            return
        bus = server.cluster_bus
        yield GaugeMetricFamily(
            "termrooms_redis_connected",
            "1 while both Redis connections (commands, subscription) are up.",
            value=int(redis.connected and bus is not None and bus.subscribed),
        )
        if bus is None:
            return
        counters = bus.counters
        published = CounterMetricFamily(
            "termrooms_bus_published",
            "Frames handed to the other instances, by the path they took; postgres counts"
            " events hinted through NOTIFY because Redis could not carry them.",
            labels=["via"],
        )
        published.add_metric(["redis"], counters.published_redis)
        published.add_metric(["postgres"], counters.published_postgres)
        yield published
        yield CounterMetricFamily(
            "termrooms_bus_filled_events",
            "Events read from PostgreSQL because Redis had not brought them.",
            value=counters.filled_events,
        )
        yield CounterMetricFamily(
            "termrooms_bus_fills",
            "Reads from PostgreSQL to fill gaps or catch up on hinted events.",
            value=counters.fills,
        )
        yield CounterMetricFamily(
            "termrooms_bus_last_seq_checks",
            "Periodic comparisons of the rooms' last seq with what went out here.",
            value=counters.polls,
        )


def registry_for(server: Any) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServerCollector(server))
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
