"""Lost answers, through a proxy between the client and the real gateway: the server committed,
the client never heard. A batch is retried with its key and exists once; a usage report is
retried and counted once; an update is not sent again."""

from __future__ import annotations

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
