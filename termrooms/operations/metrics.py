"""
``GET /metrics`` in Prometheus's text format, for this instance. Figures are read when
scraped from the objects that keep them (``Meters``, the database pool, the cluster
bus's counters, the connection registry), so the hot paths pay a dict increment, never a
lock or a label lookup, for being measured. Every label comes from a bounded set: frame
types, command names, limit names, error codes, route templates.
"""

from __future__ import annotations

import bisect
import ipaddress
from typing import Any, Iterable, Iterator

import attrs
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def address_allowed(host: str | None, networks: Iterable[Network]) -> bool:
    """Whether a client address is inside one of the networks (IPv4-mapped IPv6 too)."""
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


@attrs.define(eq=False)
class Histogram:
    """Cumulative-bucket histogram without locks: the reactor thread alone observes."""

    bounds: tuple[float, ...] = LATENCY_BOUNDS
    counts: list[int] = attrs.field(init=False)
    total: float = attrs.field(default=0.0, init=False)

    def __attrs_post_init__(self) -> None:
        self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, seconds)] += 1
        self.total += seconds

    def family(self, name: str, documentation: str) -> HistogramMetricFamily:
        buckets, running = [], 0
        for bound, count in zip((*map(repr, self.bounds), "+Inf"), self.counts, strict=True):
            running += count
            buckets.append((bound, running))
        return HistogramMetricFamily(name, documentation, buckets=buckets, sum_value=self.total)


def _bump(counter: dict[Any, int], key: Any) -> None:
    counter[key] = counter.get(key, 0) + 1


@attrs.define(eq=False)
class Meters:
    """What the request, frame and command paths count, read by the collector."""

    frames_received: dict[str, int] = attrs.Factory(dict)
    frames_sent: dict[str, int] = attrs.Factory(dict)
    closed_by_server: dict[int, int] = attrs.Factory(dict)
    handshakes_refused: dict[str, int] = attrs.Factory(dict)
    deliveries: int = 0
    ack_seconds: Histogram = attrs.Factory(Histogram)
    commands: dict[str, int] = attrs.Factory(dict)
    rate_limited: dict[str, int] = attrs.Factory(dict)
    errors: dict[tuple[str, str], int] = attrs.Factory(dict)
    http_requests: dict[tuple[str, str, int], int] = attrs.Factory(dict)
    http_seconds: Histogram = attrs.Factory(Histogram)

    def frame_received(self, frame_type: str) -> None:
        _bump(self.frames_received, frame_type)

    def frame_sent(self, frame_type: str) -> None:
        _bump(self.frames_sent, frame_type)

    def server_closed(self, code: int) -> None:
        _bump(self.closed_by_server, code)

    def handshake_refused(self, error_code: str) -> None:
        _bump(self.handshakes_refused, error_code)

    def command(self, name: str) -> None:
        _bump(self.commands, name)

    def refused(self, limit_name: str) -> None:
        _bump(self.rate_limited, limit_name)

    def error(self, error_code: str, via: str) -> None:
        _bump(self.errors, (error_code, via))

    def http_request(self, method: str, route: str, status: int, seconds: float) -> None:
        _bump(self.http_requests, (method, route, status))
        self.http_seconds.observe(seconds)


@attrs.define(eq=False)
class MeteredLimiter:
    """A RateLimiter that counts refusals by limit name: a key's part before ``:``."""

    limiter: Any
    meters: Meters

    def hit(self, key: str, limit: Any) -> Any:
        return self.limiter.hit(key, limit).addCallback(self._counted, key)

    def _counted(self, decision: Any, key: str) -> Any:
        if not decision.allowed:
            self.meters.refused(key.partition(":")[0])
        return decision


def _counter(
    name: str, documentation: str, labels: list[str], values: dict[Any, int]
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=labels)
    for key, value in list(values.items()):
        key = key if isinstance(key, tuple) else (key,)
        family.add_metric([str(part) for part in key], value)
    return family


class ServerCollector:
    """Reads a TermroomsServer's figures at scrape time."""

    def __init__(self, server: Any) -> None:
        self.server = server

    def collect(self) -> Iterator[Metric]:
        server = self.server
        meters: Meters = server.get_meters()
        yield GaugeMetricFamily(
            "termrooms_websocket_connections",
            "WebSocket connections open on this instance.",
            value=len(server.get_gateway().registry),
        )
        yield _counter(
            "termrooms_websocket_frames_received",
            "WebSocket frames received, by type (invalid: not a frame of the contract).",
            ["type"],
            meters.frames_received,
        )
        yield _counter(
            "termrooms_websocket_frames_sent",
            "Frames written to one connection (acks, replies, errors, replayed events...), by type.",
            ["type"],
            meters.frames_sent,
        )
        yield _counter(
            "termrooms_websocket_closed_by_server",
            "WebSockets this instance closed, by close code (4009: too slow to keep up).",
            ["code"],
            meters.closed_by_server,
        )
        yield _counter(
            "termrooms_websocket_handshakes_refused",
            "WebSocket handshakes answered with an HTTP error, by error_code.",
            ["error_code"],
            meters.handshakes_refused,
        )
        yield CounterMetricFamily(
            "termrooms_deliveries",
            "Room frames (events, presence, typing) fanned out to a subscribed socket.",
            value=meters.deliveries,
        )
        yield meters.ack_seconds.family(
            "termrooms_ack_latency_seconds",
            "From a send frame received to its ack written.",
        )
        yield _counter(
            "termrooms_commands",
            "Slash commands run, by name.",
            ["command"],
            meters.commands,
        )
        yield _counter(
            "termrooms_rate_limited",
            "Requests, frames and attempts refused by a rate limit, by the limit's name.",
            ["limit"],
            meters.rate_limited,
        )
        yield _counter(
            "termrooms_errors",
            "Errors answered to clients, by error_code and by http or websocket.",
            ["error_code", "via"],
            meters.errors,
        )
        yield _counter(
            "termrooms_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            meters.http_requests,
        )
        yield meters.http_seconds.family(
            "termrooms_http_request_duration_seconds",
            "From an HTTP request read to its response finished.",
        )
        yield from self._database(server.database)
        yield from self._redis(server)

    def _database(self, database: Any) -> Iterator[Metric]:
        if database is None:
            return
        yield GaugeMetricFamily(
            "termrooms_database_connections",
            "PostgreSQL connections up in the pool.",
            value=database.size_up,
        )
        yield GaugeMetricFamily(
            "termrooms_database_connections_in_use",
            "PostgreSQL connections checked out of the pool.",
            value=database.in_use,
        )
        yield GaugeMetricFamily(
            "termrooms_database_waiting",
            "Calls waiting now for a free PostgreSQL connection.",
            value=database.waiting,
        )
        yield CounterMetricFamily(
            "termrooms_database_waits",
            "Calls that found every PostgreSQL connection busy and had to wait.",
            value=database.waits,
        )
        yield database.query_seconds.family(
            "termrooms_database_query_duration_seconds",
            "How long a transaction or query held its PostgreSQL connection.",
        )

    def _redis(self, server: Any) -> Iterator[Metric]:
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
