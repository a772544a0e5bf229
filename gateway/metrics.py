"""Prometheus metrics on a private registry. Dashboards and alerts use these exact names."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

# No `*_created` series: they double the counters' series and nothing here reads them.
disable_created_metrics()

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_HTTP = ("route", "method", "status")


class Metrics:
    def __init__(self, version: str, schema_version: int) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = Counter("cards_http_requests", "HTTP requests answered.", _HTTP, registry=r)
        self.duration = Histogram(
            "cards_http_request_duration_seconds",
            "Time from receiving a request to answering it.",
            _HTTP,
            buckets=BUCKETS,
            registry=r,
        )
        self.idempotency = Counter(
            "cards_idempotency_requests",
            "Batch requests carrying an Idempotency-Key, by outcome (stored, replayed, in_use, reused).",
            ["outcome"],
            registry=r,
        )
        self.batch_cards = Counter(
            "cards_batch_cards",
            "Batch items written, by status (created, duplicate).",
            ["status"],
            registry=r,
        )
        self.usage_reports = Counter(
            "cards_usage_reports",
            "Usage reports, by result (recorded, deduplicated).",
            ["result"],
            registry=r,
        )
        self.auth_failures = Counter(
            "cards_auth_failures",
            "Requests refused with 401 by reason: missing, malformed, invalid, expired, revoked_or_unknown.",
            ["reason"],
            registry=r,
        )
        self.db_errors = Counter(
            "cards_db_errors",
            "Requests that failed because the database was unavailable or timed out.",
            ["kind"],
            registry=r,
        )
        self.ready = Gauge("cards_ready", "1 when the last /ready probe passed, else 0.", registry=r)
        self.pool_connections = Gauge("cards_db_pool_connections", "Open pool connections.", registry=r)
        self.pool_in_use = Gauge("cards_db_pool_connections_in_use", "Pool connections in use.", registry=r)
        self.pool_max = Gauge("cards_db_pool_max_connections", "Pool size limit.", registry=r)
        self.pool_waiters = Gauge(
            "cards_db_pool_waiters", "Requests waiting for a pool connection.", registry=r
        )
        # Every known label value starts at 0, so rates and alerts see the series from the start.
        for counter, values in [
            (self.idempotency, ("stored", "replayed", "in_use", "reused")),
            (self.batch_cards, ("created", "duplicate")),
            (self.usage_reports, ("recorded", "deduplicated")),
            (self.auth_failures, ("missing", "malformed", "invalid", "expired", "revoked_or_unknown")),
            (self.db_errors, ("unavailable", "timeout")),
        ]:
            for value in values:
                counter.labels(value)
        build = Gauge(
            "cards_build_info",
            "Gateway version and the schema version it expects.",
            ["version", "schema_version"],
            registry=r,
        )
        build.labels(version, str(schema_version)).set(1)

    def watch_pool(
        self, size: Callable[[], int], idle: Callable[[], int], limit: int, waiters: Callable[[], int]
    ):
        """Read the pool's gauges at scrape time."""
        self.pool_connections.set_function(size)
        self.pool_in_use.set_function(lambda: size() - idle())
        self.pool_max.set(limit)
        self.pool_waiters.set_function(waiters)

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, status).inc()
        self.duration.labels(route, method, status).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
