"""The gateway's search indexer (gateway/search_index.py): a batch's cards are found by q= shortly
after the batch, with no step of the client's; the backlog and the indexing show in /metrics; with
CARDS_SEARCH_INDEXER=0 new cards stay unindexed. How long indexing takes is measured by the bench
(`bench/`), not asserted here: the deadline below is only generous."""

from __future__ import annotations

import asyncio
import re
import time
import uuid

import asyncpg
from prometheus_client import CollectorRegistry

from gateway.db import session_settings
from gateway.search_index import LOCK_KEY, SearchIndexer

from .conftest import create

DEADLINE_S = 10.0


async def _found_within(client, tenant, word: str, seconds: float) -> float | None:
    """Seconds until `q=word` lists a card, or None if it does not within `seconds`."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        response = await client.get("/api/v1/cards", params={"q": word}, headers=tenant.auth)
        assert response.status == 200, await response.text()
        if (await response.json())["cards"]:
            return time.monotonic() - started
        await asyncio.sleep(0.01)
    return None


def _metric(text: str, name: str) -> float:
    return float(re.search(rf"^{name} (\S+)$", text, re.MULTILINE).group(1))


async def test_a_new_card_is_found_by_q_after_its_batch_with_no_step_of_the_client(
    make_client, tenant, record_property
):
    client = await make_client(search_indexer=True)
    word = f"walrus{uuid.uuid4().hex[:8]}"
    [card] = await create(client, tenant, f"Handbook {word}")
    took = await _found_within(client, tenant, word, DEADLINE_S)
    assert took is not None, f"q={word} did not find the new card within {DEADLINE_S} s"
    record_property("search_index_lag_s", round(took, 3))
    response = await client.get("/api/v1/cards", params={"q": word}, headers=tenant.auth)
    assert [c["id"] for c in (await response.json())["cards"]] == [card]


async def test_the_backlog_its_age_and_the_cards_indexed_are_in_the_metrics(make_client, tenant):
    client = await make_client(search_indexer=True, search_index_interval_s=0.05)
    await create(client, tenant, *(f"metric card {n}" for n in range(3)))
    assert await _found_within(client, tenant, "metric", DEADLINE_S) is not None
    text = await (await client.get("/metrics")).text()
    assert _metric(text, "cards_search_indexed_cards_total") >= 3
    # The gauges are exported; their values: the next test.
    assert "# TYPE cards_search_index_pending gauge" in text
    assert "# TYPE cards_search_index_lag_seconds gauge" in text


async def test_the_gauges_show_the_backlog_the_indexer_found_and_it_indexes_it(
    make_client, config, admin, tenant
):
    client = await make_client(search_indexer=False)
    await create(client, tenant, "Waiting manatee", "Waiting dugong")
    await asyncio.sleep(0.05)  # the oldest waits a measurable time
    registry = CollectorRegistry()
    indexer = SearchIndexer(config, registry)
    conn = await asyncpg.connect(config.database_url, **session_settings(config, "test"))
    try:
        await indexer.index_pending(conn)
    finally:
        await conn.close()
    sample = registry.get_sample_value
    assert sample("cards_search_index_pending") >= 2  # other tests' unindexed cards count too
    assert sample("cards_search_index_lag_seconds") >= 0.05
    assert sample("cards_search_indexed_cards_total") >= 2
    assert (
        admin.value(
            "SELECT count(*) FROM cards.card_search WHERE tenant_id = %s AND search IS NULL", tenant.id
        )
        == 0
    )


async def test_with_the_indexer_off_new_cards_stay_unindexed(make_client, admin, tenant):
    client = await make_client(search_indexer=False)
    await create(client, tenant, "Unindexed narwhal")
    await asyncio.sleep(1.0)  # four of the default intervals
    assert await _found_within(client, tenant, "narwhal", 0.1) is None
    assert (
        admin.value(
            "SELECT count(*) FROM cards.card_search WHERE tenant_id = %s AND search IS NULL", tenant.id
        )
        == 1
    )
    assert "cards_search_index" not in await (await client.get("/metrics")).text()


async def test_of_two_gateways_one_indexes_and_the_other_stands_by(make_client, admin, tenant):
    first = await make_client(search_indexer=True)
    second = await make_client(search_indexer=True)
    await create(second, tenant, "Twice served dugong")
    assert await _found_within(first, tenant, "dugong", DEADLINE_S) is not None
    holders = admin.value(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
        " AND (classid::bigint << 32 | objid::bigint) = %s",
        LOCK_KEY,
    )
    assert holders == 1
