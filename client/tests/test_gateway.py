"""Every client method against the real gateway and PostgreSQL, sync and async."""

from __future__ import annotations

import uuid

import pytest
from conftest import cards, found_by_q

import cards_client
from cards_client import Card


def test_batch_create_creates_and_deduplicates(client, tenant):
    result = client.batch_create([*cards("a", "b"), *cards("a")])
    assert (result.created, result.duplicates, result.replayed) == (2, 1, False)
    assert [c.status for c in result.cards] == ["created", "created", "duplicate"]
    assert result.cards[0].id == result.cards[2].id and len(result.cards[0].content_hash) == 64
    assert tenant.card_count() == 2


def test_batch_create_with_the_same_key_replays_and_writes_nothing(client, tenant):
    first = client.batch_create(cards("a", "b"), idempotency_key="job-1")
    again = client.batch_create(cards("a", "b"), idempotency_key="job-1")
    assert again.replayed and not first.replayed
    assert [c.id for c in again.cards] == [c.id for c in first.cards]
    assert tenant.card_count() == 2


def test_batch_create_with_a_used_key_and_other_cards_raises_key_reused(client, tenant):
    client.batch_create(cards("a"), idempotency_key="job-2")
    with pytest.raises(cards_client.IdempotencyKeyReused):
        client.batch_create(cards("b"), idempotency_key="job-2")
    assert tenant.card_count() == 1


def test_an_invalid_batch_raises_validation_error_by_index_and_writes_nothing(client, tenant):
    with pytest.raises(cards_client.ValidationError) as raised:
        client.batch_create([*cards("ok"), {"title": "", "content": 1}, {"title": "x", "content": None}])
    assert sorted({e["index"] for e in raised.value.errors}) == [1, 2]
    assert raised.value.trace_id and raised.value.status == 422
    assert tenant.card_count() == 0


def test_batch_create_takes_cards_read_back(client, other_tenant):
    card = client.get(client.batch_create(cards("a", tags=["x"])).cards[0].id)
    with other_tenant.client() as other:
        copy = other.get(other.batch_create([card]).cards[0].id)
    assert copy.content_hash == card.content_hash and copy.id != card.id


def test_retrieve_takes_uuids_and_strings_and_names_the_missing(client):
    ids = [c.id for c in client.batch_create(cards("a", "b")).cards]
    unknown = uuid.uuid4()
    result = client.retrieve([uuid.UUID(ids[1]), ids[0], unknown, ids[1]])
    assert [c.id for c in result] == [ids[1], ids[0]]
    assert result.missing == [str(unknown)]
    assert all(isinstance(c, Card) and c.etag is None for c in result.cards)


def test_retrieve_does_not_see_another_tenants_cards(client, other_tenant):
    card_id = client.batch_create(cards("a")).cards[0].id
    with other_tenant.client() as other:
        assert other.retrieve([card_id]).missing == [card_id]


def test_track_usage_counts_a_run_once(client):
    card_id = client.batch_create(cards("a")).cards[0].id
    first = client.track_usage(card_id, workflow_id="w", run_id="r1", metadata={"step": 1})
    again = client.track_usage(uuid.UUID(card_id), workflow_id="w", run_id="r1")
    other = client.track_usage(card_id, workflow_id="w", run_id="r2")
    assert (first.deduplicated, again.deduplicated, other.deduplicated) == (False, True, False)
    assert (first.usage_count, again.usage_count, other.usage_count) == (1, 1, 2)
    assert client.get(card_id).usage_count == 2


def test_track_usage_of_an_unknown_card_raises_not_found(client):
    with pytest.raises(cards_client.NotFound):
        client.track_usage(uuid.uuid4(), workflow_id="w", run_id="r")


def test_get_returns_the_card_and_its_etag(client):
    card_id = client.batch_create(cards("a", tags=["t"], metadata={"m": 1})).cards[0].id
    card = client.get(card_id)
    assert (card.id, card.title, card.tags, card.metadata) == (card_id, "a", ["t"], {"m": 1})
    assert card.etag and card.etag.startswith('"')


def test_get_of_an_unknown_or_malformed_id_raises_not_found(client):
    for card_id in (uuid.uuid4(), "not-a-uuid", "a/b?c"):
        with pytest.raises(cards_client.NotFound):
            client.get(card_id)


def test_list_follows_the_cursor_through_every_page(client):
    client.batch_create(cards(*(f"card {i}" for i in range(7)), tags=["bulk"]))
    client.batch_create(cards("other"))
    titles = [c.title for c in client.list(tags=["bulk"], page_size=2)]
    assert sorted(titles) == [f"card {i}" for i in range(7)]


def test_list_filters_by_kind_contains_and_text(client):
    client.batch_create(
        [
            {"kind": "fact", "title": "Founded", "content": "1999", "metadata": {"source": "wiki"}},
            {"kind": "note", "title": "Tone", "content": {"text": "warm and direct"}},
        ]
    )
    assert [c.title for c in client.list(kind="fact")] == ["Founded"]
    assert [c.title for c in client.list(contains={"source": "wiki"})] == ["Founded"]
    assert found_by_q(client, "warm") == ["Tone"]


def test_list_with_a_bad_page_size_raises_validation_error(client):
    with pytest.raises(cards_client.ValidationError):
        list(client.list(page_size=0))


def test_update_with_the_etag_changes_the_card_and_its_etag(client):
    card = client.get(client.batch_create(cards("a")).cards[0].id)
    updated = client.update(card.id, if_match=card.etag, title="b", tags=["new"])
    assert (updated.title, updated.tags) == ("b", ["new"]) and updated.etag != card.etag
    assert updated.content_hash != card.content_hash


def test_update_with_a_stale_etag_raises_precondition_failed(client):
    card = client.get(client.batch_create(cards("a")).cards[0].id)
    client.update(card.id, if_match=card.etag, title="b")
    with pytest.raises(cards_client.PreconditionFailed):
        client.update(card.id, if_match=card.etag, title="c")
    assert client.get(card.id).title == "b"


def test_update_onto_another_cards_content_raises_duplicate_card(client):
    ids = [c.id for c in client.batch_create(cards("a", "b")).cards]
    card = client.get(ids[1])
    with pytest.raises(cards_client.DuplicateCard):
        client.update(card.id, if_match=card.etag, title="a", content={"text": "about a"})


def test_delete_and_restore(client):
    card_id = client.batch_create(cards("a")).cards[0].id
    assert client.delete(card_id) is None
    assert client.retrieve([card_id]).missing == [card_id]
    with pytest.raises(cards_client.NotFound):
        client.delete(card_id)
    restored = client.restore(card_id)
    assert restored.id == card_id and restored.etag
    assert [c.id for c in client.retrieve([card_id])] == [card_id]


def test_usage_history_lists_every_run_newest_first(client):
    card_id = client.batch_create(cards("a")).cards[0].id
    for run in range(5):
        client.track_usage(card_id, workflow_id="w", run_id=f"r{run}")
    records = list(client.usage_history(card_id, page_size=2))
    assert [r.run_id for r in records] == [f"r{run}" for run in reversed(range(5))]


def test_usage_summary_counts_the_events(client):
    ids = [c.id for c in client.batch_create(cards("a", "b")).cards]
    for run in range(3):
        client.track_usage(ids[0], workflow_id="w", run_id=f"r{run}")
    client.track_usage(ids[1], workflow_id="w", run_id="r0")
    summary = client.usage_summary(bucket="hour")
    assert summary.bucket == "hour" and summary.events == 4
    assert [(t.card_id, t.events) for t in summary.top_cards] == [(ids[0], 3), (ids[1], 1)]
    assert client.usage_summary().bucket == "day"


def test_a_bad_key_raises_unauthorized(gateway):
    with cards_client.CardsClient(gateway.url, "ck_" + "0" * 32 + "_" + "A" * 43) as client:
        with pytest.raises(cards_client.Unauthorized):
            client.get(uuid.uuid4())


def test_nothing_listening_raises_connection_error_after_the_retries():
    from conftest import free_port

    with cards_client.CardsClient(f"http://127.0.0.1:{free_port()}", "ck_x", max_retries=1) as client:
        client._sleep = lambda seconds: None
        with pytest.raises(cards_client.ConnectionError):
            client.get(uuid.uuid4())


# --- import_cards ---


def test_import_keeps_input_order_and_a_second_run_replays_every_chunk(client, tenant):
    source = [{"title": f"row {i}", "content": {"i": i % 7}} for i in range(23)]
    source.append(source[3])  # a duplicate within the input
    first = client.import_cards(iter(source), chunk_size=5)
    assert (first.created, first.duplicates, first.chunks, first.replayed_chunks) == (23, 1, 5, 0)
    assert [c.title for c in client.retrieve(first.card_ids[:10])] == [f"row {i}" for i in range(10)]
    assert first.card_ids[23] == first.card_ids[3]
    again = client.import_cards(iter(source), chunk_size=5)
    assert (again.created, again.duplicates, again.replayed_chunks) == (0, 0, 5)
    assert again.card_ids == first.card_ids
    assert tenant.card_count() == 23


def test_import_with_skip_invalid_stores_the_valid_rows_and_names_the_others(client, tenant):
    source = [*cards("a", "b"), {"title": "", "content": 1}, *cards("c"), {"title": "d"}, *cards("e")]
    report = client.import_cards(source, chunk_size=4, skip_invalid=True)
    assert [r.index for r in report.rejected] == [2, 4]
    assert report.card_ids[2] is None and report.card_ids[4] is None
    assert report.created == 4 and tenant.card_count() == 4
    again = client.import_cards(source, chunk_size=4, skip_invalid=True)
    assert again.replayed_chunks == 2 and again.created == 0 and [r.index for r in again.rejected] == [2, 4]
    assert tenant.card_count() == 4


def test_import_without_skip_invalid_raises_naming_the_input_row(client, tenant):
    source = [*cards("a", "b", "c"), {"title": "", "content": 1}]
    with pytest.raises(cards_client.ValidationError) as raised:
        client.import_cards(source, chunk_size=2)
    assert [e["index"] for e in raised.value.errors] == [3]
    assert tenant.card_count() == 2


# --- the workflow side ---


def test_a_run_reports_each_card_once(client):
    ids = [c.id for c in client.batch_create(cards("a", "b")).cards]
    with client.run("welcome-email", "run-1") as run:
        got = run.cards(ids)
        for card in got:
            run.used(card)
        repeat = run.used(got.cards[0])
    assert not repeat.deduplicated and repeat.usage_count == 1
    with client.run("welcome-email", "run-1") as rerun:  # the same run, restarted
        assert all(rerun.used(card_id).deduplicated for card_id in ids)
    assert [c.usage_count for c in client.retrieve(ids)] == [1, 1]


# --- the async client, every method ---


@pytest.mark.anyio
async def test_async_client_every_method(tenant):
    async with tenant.async_client() as client:
        batch = await client.batch_create(cards("a", "b"), idempotency_key="async-1")
        assert (await client.batch_create(cards("a", "b"), idempotency_key="async-1")).replayed
        ids = [c.id for c in batch.cards]
        assert [c.id for c in await client.retrieve(ids)] == ids
        card = await client.get(ids[0])
        updated = await client.update(card.id, if_match=card.etag, title="a2")
        assert updated.title == "a2"
        await client.delete(ids[1])
        assert (await client.retrieve([ids[1]])).missing == [ids[1]]
        assert (await client.restore(ids[1])).id == ids[1]
        assert sorted([c.title async for c in client.list(page_size=1)]) == ["a2", "b"]
        async with client.run("w", "r") as run:
            for card in await run.cards(ids):
                await run.used(card)
            assert (await client.track_usage(ids[0], workflow_id="w", run_id="r")).deduplicated
        assert [r.run_id async for r in client.usage_history(ids[0])] == ["r"]
        assert (await client.usage_summary()).events == 2
        report = await client.import_cards(cards("c", "d", "e"), chunk_size=2)
        assert report.created == 3 and report.chunks == 2
    assert tenant.card_count() == 5
