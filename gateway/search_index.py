"""The search indexer: makes new cards findable by `q=` shortly after their batch commits.

A batch leaves its cards' full-text search (`cards.card_search`) empty (it was two thirds of a
batch's PostgreSQL CPU). This task, one per gateway process, looks every
CARDS_SEARCH_INDEX_INTERVAL_S on a connection of its own: it reads the backlog
(`cards.search_index_backlog()`: per tenant, the pending cards and the oldest one's age), exports
it, and indexes the tenants' cards in chunks (`cards.index_pending_search`). Of several workers or
gateways only the holder of an advisory lock indexes; the others stand by and take over when it
goes. sql/functions/23_search_index.sql.

It polls rather than LISTENs: a NOTIFY from each batch made concurrent batches commit one at a
time (the notifying transaction holds a database-wide lock through its commit), and a NOTIFY sent on
a Citus worker never reaches the coordinator anyway."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import asyncpg
from prometheus_client import Counter, Gauge

from .config import Config
from .db import session_settings

log = logging.getLogger("cards.search_index")

BACKLOG = "SELECT tenant_id, pending, oldest_age_s FROM cards.search_index_backlog()"
INDEX = "SELECT cards.index_pending_search($1::uuid, $2::integer)"
LOCK_KEY = 0x63617264735F7371  # pg_try_advisory_lock: one indexer per database ("cards_sq")
CHUNK = 500  # cards per call: ~70 ms of stemming, one short transaction
STANDBY_S = 2.0  # how often a standing-by indexer tries to take the lock
RETRY_MAX_S = 30.0  # the longest wait before reconnecting after an error


class SearchIndexer:
    def __init__(self, config: Config, registry) -> None:
        self.config = config
        # Only the indexing process measures; the others show 0, so the most is the backlog.
        gauge = {"registry": registry, "multiprocess_mode": "livemax"}
        self.pending = Gauge(
            "cards_search_index_pending", "Cards not yet indexed for q=, every tenant.", **gauge
        )
        self.lag = Gauge(
            "cards_search_index_lag_seconds",
            "Age of the oldest card not yet indexed for q= (0 when none is waiting).",
            **gauge,
        )
        self.indexed = Counter(
            "cards_search_indexed_cards", "Cards indexed for q= by this gateway.", registry=registry
        )

    async def running(self, app) -> AsyncIterator[None]:
        """The app's cleanup context: the indexer runs while the app does."""
        task = asyncio.get_running_loop().create_task(self.run())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def run(self) -> None:
        """Index until cancelled; a lost or refused connection is retried with a growing pause."""
        pause = self.config.search_index_interval_s
        while True:
            try:
                await self._serve()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                # The gauges keep the last backlog seen: an indexer that cannot work must not
                # report that nothing waits (the lag alert would never fire).
                log.warning("search indexer: %r; reconnecting in %.1f s", exc, pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, RETRY_MAX_S)
            else:
                pause = self.config.search_index_interval_s

    async def _serve(self) -> None:
        c = self.config
        conn = await asyncpg.connect(
            c.database_url, timeout=c.pool_timeout_s, **session_settings(c, "cards-search-indexer")
        )
        try:
            while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY):  # noqa: ASYNC110
                await asyncio.sleep(STANDBY_S)  # another process indexes: a database lock, no Event
            while True:
                await self.index_pending(conn)
                await asyncio.sleep(c.search_index_interval_s)
        finally:
            conn.terminate()  # the lock ends with the session; no wait on a frozen server

    async def index_pending(self, conn: asyncpg.Connection) -> None:
        # In a transaction block: on Citus only then does the function's maintenance scope (SET
        # LOCAL) reach the workers, which it reads from every shard.
        async with conn.transaction():
            backlog = await conn.fetch(BACKLOG)
        self.pending.set(sum(row["pending"] for row in backlog))
        self.lag.set(max((row["oldest_age_s"] for row in backlog), default=0))
        for row in backlog:
            while True:
                indexed = await conn.fetchval(INDEX, row["tenant_id"], CHUNK)
                self.indexed.inc(indexed)
                if indexed < CHUNK:
                    break
