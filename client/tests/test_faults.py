"""Lost answers, through a proxy between the client and the real gateway: the server committed,
the client never heard. A batch is retried with its key and exists once; a usage report is
retried and counted once; an update is not sent again."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from urllib.parse import urlsplit

import pytest
from conftest import cards
from lossy_proxy import LossyProxy

import cards_client
from cards_client import AsyncCardsClient, CardsClient

BATCH = "/api/v1/cards/batch"


@pytest.fixture
def proxy(gateway):
    proxy = LossyProxy(urlsplit(gateway.url).port)
    yield proxy
    proxy.close()


@pytest.fixture
def lossy(proxy, tenant):
    with CardsClient(proxy.url, tenant.api_key) as client:
        client._sleep = lambda seconds: None
        yield client


def test_a_batch_whose_answer_was_lost_is_retried_with_its_key_and_exists_once(lossy, proxy, tenant):
    proxy.lose_next("POST", BATCH)
    result = lossy.batch_create(cards("a", "b", "c"))
    sent = proxy.sent("POST", BATCH)
    assert [s.lost for s in sent] == [True, False]
    assert sent[0].headers["idempotency-key"] == sent[1].headers["idempotency-key"] == result.idempotency_key
    assert result.replayed and result.created == 3  # the stored answer of the first, committed, attempt
    assert tenant.card_count() == 3
    with tenant.client() as direct:
        assert [c.id for c in direct.retrieve([c.id for c in result.cards])] == [c.id for c in result.cards]


def test_an_import_whose_answers_were_lost_creates_each_card_once(lossy, proxy, tenant):
    proxy.lose_next("POST", BATCH)
    proxy.lose_next("POST", BATCH)
    report = lossy.import_cards(cards(*(f"c{i}" for i in range(10))), chunk_size=4)
    assert report.chunks == 3 and len(set(report.card_ids)) == 10
    assert tenant.card_count() == 10


def test_a_lost_update_raises_and_is_not_sent_again(lossy, proxy, tenant):
    card = lossy.get(lossy.batch_create(cards("a")).cards[0].id)
    proxy.lose_next("PATCH", "/api/v1/cards/")
    with pytest.raises(cards_client.ConnectionError):
        lossy.update(card.id, if_match=card.etag, title="b")
    assert len(proxy.sent("PATCH")) == 1
    assert lossy.get(card.id).title == "b"  # it did reach the server, once


def test_a_lost_delete_raises_and_is_not_sent_again(lossy, proxy):
    card_id = lossy.batch_create(cards("a")).cards[0].id
    proxy.lose_next("DELETE", "/api/v1/cards/")
    with pytest.raises(cards_client.ConnectionError):
        lossy.delete(card_id)
    assert len(proxy.sent("DELETE")) == 1
    assert lossy.retrieve([card_id]).missing == [card_id]


def test_a_lost_usage_report_is_retried_and_counted_once(lossy, proxy):
    card_id = lossy.batch_create(cards("a")).cards[0].id
    proxy.lose_next("POST", f"/api/v1/cards/{card_id}/usage")
    result = lossy.track_usage(card_id, workflow_id="w", run_id="r")
    assert len(proxy.sent("POST", f"/api/v1/cards/{card_id}/usage")) == 2
    assert result.deduplicated and result.usage_count == 1


def test_with_max_retries_zero_a_lost_batch_raises_and_a_rerun_with_its_key_replays(proxy, tenant):
    with CardsClient(proxy.url, tenant.api_key, max_retries=0) as client:
        proxy.lose_next("POST", BATCH)
        with pytest.raises(cards_client.ConnectionError):
            client.batch_create(cards("a"), idempotency_key="job-9")
        assert client.batch_create(cards("a"), idempotency_key="job-9").replayed
    assert tenant.card_count() == 1


@pytest.mark.anyio
async def test_async_a_lost_batch_is_retried_and_exists_once(proxy, tenant):
    async with AsyncCardsClient(proxy.url, tenant.api_key) as client:

        async def no_wait(seconds: float) -> None:
            return None

        client._sleep = no_wait
        proxy.lose_next("POST", BATCH)
        result = await client.batch_create(cards("a", "b"))
        card = await client.get(result.cards[0].id)
        proxy.lose_next("PATCH", "/api/v1/cards/")
        with pytest.raises(cards_client.ConnectionError):
            await client.update(card.id, if_match=card.etag, title="z")
    assert result.replayed and tenant.card_count() == 2
    assert len(proxy.sent("POST", BATCH)) == 2 and len(proxy.sent("PATCH")) == 1


def test_a_batch_meeting_its_key_in_use_waits_retries_and_replays_the_first(tenant, gateway):
    """A trusted job claimed the key and has not committed: the client gets 409
    idempotency-key-in-use (after the server's 1 s wait), retries after Retry-After, and once the
    job commits gets the job's answer replayed. One set of cards."""
    batch = cards("a", "b")
    outcome: dict = {}
    waits: list[float] = []

    def create() -> None:
        with tenant.client(max_retries=4) as client:
            sleep = client._sleep
            client._sleep = lambda seconds: (waits.append(seconds), sleep(seconds))
            outcome["result"] = client.batch_create(batch, idempotency_key="held-1")

    with subprocess.Popen(
        ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", gateway.dsn],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        assert holder.stdin is not None and holder.stdout is not None
        holder.stdin.write(
            "BEGIN;\n"
            f"SELECT response FROM cards.batch_create('{tenant.id}', '{json.dumps(batch)}', 'held-1');\n"
            "\\echo held\n"
        )
        holder.stdin.flush()
        held = [holder.stdout.readline() for _ in range(2)]
        assert held[1].strip() == "held"
        job_ids = [c["id"] for c in json.loads(held[0])["cards"]]
        worker = threading.Thread(target=create)
        worker.start()
        time.sleep(1.5)  # the client has met the held key at least once
        holder.stdin.write("COMMIT;\n")
        holder.stdin.close()
    worker.join(timeout=30)
    result = outcome["result"]
    assert waits and waits[0] == 1.0  # the server's Retry-After
    assert result.replayed and [c.id for c in result.cards] == job_ids
    assert tenant.card_count() == 2
