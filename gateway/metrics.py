"""Prometheus metrics on a private registry. Dashboards and alerts use these exact names.

Several worker processes (CARDS_WORKERS > 1) share one port, and a scrape reaches any one of
them, so each must answer for all: they then run in prometheus_client's multiprocess mode
(PROMETHEUS_MULTIPROC_DIR, set by the supervisor before they start). Each worker writes its
values to its own file there; a scrape adds the counters and histograms of every worker,
living or exited, and the pool gauges of the living ones (the gateway's total); `cards_ready`
is the most recent probe's answer, whichever worker took it. A lone process keeps everything
in memory, as before."""

from __future__ import annotations

import asyncio
import os
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
from prometheus_client.multiprocess import MultiProcessCollector

# No `*_created` series: they double the counters' series and nothing here reads them.
disable_created_metrics()

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_HTTP = ("route", "method", "status")
# Read when prometheus_client is imported, as prometheus_client itself does.
MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
POOL_PUBLISH_S = 1.0  # how often a worker writes its pool gauges in multiprocess mode


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
        self.ready = Gauge(
            "cards_ready",
            "1 when the last /ready probe passed, else 0.",
            registry=r,
            multiprocess_mode="livemostrecent",
        )
        # Every worker has a pool of its own: the gateway's are their sum.
        pool = {"registry": r, "multiprocess_mode": "livesum"}
        self.pool_connections = Gauge("cards_db_pool_connections", "Open pool connections.", **pool)
        self.pool_in_use = Gauge("cards_db_pool_connections_in_use", "Pool connections in use.", **pool)
        self.pool_max = Gauge("cards_db_pool_max_connections", "Pool size limit.", **pool)
        self.pool_waiters = Gauge("cards_db_pool_waiters", "Requests waiting for a pool connection.", **pool)
        # The labelled children of the request metrics, by (route, method, status): looking them up
        # in prometheus_client (a lock, the labels checked) cost more than observing.
        self._http: dict[tuple[str, str, int], tuple] = {}
        self._pool: tuple[Callable[[], int], Callable[[], int], Callable[[], int]] | None = None
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
            multiprocess_mode="livemax",
        )
        build.labels(version, str(schema_version)).set(1)

    def watch_pool(
        self, size: Callable[[], int], idle: Callable[[], int], limit: int, waiters: Callable[[], int]
    ):
        """Read the pool's gauges at scrape time (in multiprocess mode: every POOL_PUBLISH_S while
        `publish_pool` runs, and at each scrape this worker answers)."""
        self.pool_max.set(limit)
        if MULTIPROCESS:
            self._pool = (size, idle, waiters)
            return
        self.pool_connections.set_function(size)
        self.pool_in_use.set_function(lambda: size() - idle())
        self.pool_waiters.set_function(waiters)

    def _write_pool(self) -> None:
        if self._pool is not None:
            size, idle, waiters = (read() for read in self._pool)
            self.pool_connections.set(size)
            self.pool_in_use.set(size - idle)
            self.pool_waiters.set(waiters)

    async def publish_pool(self) -> None:
        """Multiprocess mode: keep this worker's pool gauges current, until cancelled."""
        while MULTIPROCESS:
            self._write_pool()
            await asyncio.sleep(POOL_PUBLISH_S)

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        children = self._http.get(key)
        if children is None:
            children = self._http[key] = (self.requests.labels(*key), self.duration.labels(*key))
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> bytes:
        if not MULTIPROCESS:
            return generate_latest(self.registry)
        self._write_pool()
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return generate_latest(registry)
