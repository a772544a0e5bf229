"""The clients' own behaviour on httpx.MockTransport: settings, requests, pages, results, imports."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import httpx
import pytest
from conftest import BASE, batch_answer, card_doc, problem

import cards_client
from cards_client import AsyncCardsClient, CardsClient

ID = uuid.UUID("3f1c1b7e-8a6f-4c55-9d2e-2b1f7b0c0d11")


def test_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("CARDS_BASE_URL", "http://api.example:9000/")
    monkeypatch.setenv("CARDS_API_KEY", "ck_from_env")
    client = CardsClient()
    assert client.base_url == "http://api.example:9000"
    assert client._core.headers["Authorization"] == "Bearer ck_from_env"
    assert "ck_from_env" not in repr(client)


def test_without_an_api_key_the_client_refuses_to_start(monkeypatch):
    monkeypatch.delenv("CARDS_API_KEY", raising=False)
    with pytest.raises(cards_client.CardsError, match="CARDS_API_KEY"):
        CardsClient("http://x")


def test_the_default_timeout_is_finite_and_none_is_refused():
    client = CardsClient("http://x", "k")
    assert all(v is not None and v > 0 for v in client._core.timeout.as_dict().values())
    assert client.max_retries == 2
    with pytest.raises(ValueError):
        CardsClient("http://x", "k", timeout=None)
    with pytest.raises(ValueError):
        CardsClient("http://x", "k", max_retries=-1)


def test_the_timeout_goes_with_every_request(mock):
    api = mock(httpx.Response(200, json=card_doc()))
    api.client(timeout=3.5).get(ID)
    assert api.requests[0].extensions["timeout"]["read"] == 3.5


def test_ids_may_be_uuids_or_strings(mock):
    api = mock(httpx.Response(200, json={"cards": [], "missing": [str(ID)]}))
    client = api.client()
    client.retrieve([ID, str(ID)])
    assert json.loads(api.requests[0].content) == {"ids": [str(ID), str(ID)]}
    api.answers = [httpx.Response(200, json=card_doc(str(ID)))]
    client.get(ID)
    client.get(str(ID))
    assert api.requests[1].url == api.requests[2].url == f"{BASE}/api/v1/cards/{ID}"


def test_a_card_carries_its_etag_and_typed_fields(mock):
    api = mock(
        httpx.Response(
            200, json=card_doc(str(ID), last_used_at="2026-11-26T12:00:00Z"), headers={"ETag": '"4"'}
        )
    )
    card = api.client().get(ID)
    assert card.etag == '"4"'
    assert card.created_at == datetime(2026, 11, 26, 10, tzinfo=UTC)
    assert card.last_used_at == datetime(2026, 11, 26, 12, tzinfo=UTC)
    assert card.to_input() == {
        "kind": "note",
        "title": "A card",
        "content": {"text": "x"},
        "tags": [],
        "metadata": {},
    }


def test_update_sends_if_match_and_only_the_fields_given(mock):
    api = mock(httpx.Response(200, json=card_doc(str(ID)), headers={"ETag": '"5"'}))
    card = api.client().update(ID, if_match="4", title="New", tags=("a", "b"))
    request = api.requests[0]
    assert (request.method, request.headers["If-Match"]) == ("PATCH", '"4"')
    assert json.loads(request.content) == {"title": "New", "tags": ["a", "b"]}
    assert card.etag == '"5"'


def test_list_follows_next_cursor_through_every_page(mock):
    pages = [
        httpx.Response(200, json={"cards": [card_doc(), card_doc()], "next_cursor": "c1"}),
        httpx.Response(200, json={"cards": [card_doc()], "next_cursor": "c2"}),
        httpx.Response(200, json={"cards": [card_doc()], "next_cursor": None}),
    ]
    api = mock(*pages)
    found = list(api.client().list(kind="fact", tags=["a", "b"], contains={"n": 1}, q="tone", page_size=2))
    assert len(found) == 4
    first = api.requests[0].url.params
    assert first.get_list("tag") == ["a", "b"] and first["kind"] == "fact" and first["limit"] == "2"
    assert json.loads(first["contains"]) == {"n": 1} and first["q"] == "tone" and "cursor" not in first
    assert [r.url.params.get("cursor") for r in api.requests[1:]] == ["c1", "c2"]
    assert api.requests[2].url.params.get_list("tag") == ["a", "b"]


def test_list_fetches_pages_only_as_they_are_read(mock):
    api = mock(httpx.Response(200, json={"cards": [card_doc()], "next_cursor": "more"}))
    pages = api.client().list()
    assert api.requests == []
    next(pages)
    assert len(api.requests) == 1


def test_usage_history_follows_next_cursor(mock):
    record = {"workflow_id": "w", "run_id": "r", "metadata": {}, "recorded_at": "2026-11-26T10:00:00Z"}
    api = mock(
        httpx.Response(200, json={"usage": [record], "next_cursor": "c1"}),
        httpx.Response(200, json={"usage": [record, record], "next_cursor": None}),
    )
    records = list(api.client().usage_history(ID, page_size=1))
    assert [r.run_id for r in records] == ["r", "r", "r"]
    assert api.requests[1].url.params["cursor"] == "c1"


def test_usage_summary_sends_the_window(mock):
    doc = {"from": "2026-11-25T00:00:00Z", "to": "2026-11-26T00:00:00Z", "bucket": "hour"}
    doc |= {"buckets": [{"start": "2026-11-25T00:00:00Z", "events": 3}], "top_cards": []}
    api = mock(httpx.Response(200, json=doc))
    summary = api.client().usage_summary(
        start=datetime(2026, 11, 25, tzinfo=UTC), end="2026-11-26T00:00:00Z", bucket="hour"
    )
    params = api.requests[0].url.params
    assert (params["from"], params["to"], params["bucket"]) == (
        "2026-11-25T00:00:00+00:00",
        "2026-11-26T00:00:00Z",
        "hour",
    )
    assert summary.events == 3


def test_a_naive_datetime_is_refused():
    with pytest.raises(ValueError):
        CardsClient("http://x", "k").usage_summary(start=datetime(2026, 1, 1))


def test_the_client_closes_its_pool_but_not_one_it_was_given(mock):
    with CardsClient("http://x", "k") as client:
        pass
    assert client._http.is_closed
    http = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(204)))
    with CardsClient("http://x", "k", http_client=http):
        pass
    assert not http.is_closed


# --- import_cards ---


def rows(n: int, start: int = 0):
    for i in range(start, start + n):
        yield {"title": f"card {i}", "content": {"n": i}}


def test_import_streams_its_input_a_chunk_at_a_time(mock):
    read = []

    def source():
        for row in rows(25):
            read.append(row)
            yield row

    seen_when_sent = []

    def answer(request):
        seen_when_sent.append(len(read))
        return batch_answer(request)

    api = mock(answer)
    report = api.client().import_cards(source(), chunk_size=10)
    assert seen_when_sent == [10, 20, 25]
    assert (report.chunks, report.created, len(report.card_ids)) == (3, 25, 25)


def test_import_gives_chunk_n_the_key_prefix_dash_n(mock):
    api = mock(batch_answer)
    api.client().import_cards(rows(5), chunk_size=2, key_prefix="acme-onboarding")
    assert [r.headers["Idempotency-Key"] for r in api.requests] == [f"acme-onboarding-{n}" for n in range(3)]


def test_import_derives_the_same_keys_from_the_same_input(mock):
    api = mock(batch_answer)
    client = api.client()
    client.import_cards(rows(5), chunk_size=2)
    client.import_cards(rows(5), chunk_size=2)
    keys = [r.headers["Idempotency-Key"] for r in api.requests]
    assert keys[:3] == keys[3:] and len(set(keys[:3])) == 3


def test_a_chunks_derived_key_depends_on_it_and_the_chunks_before_it_only(mock):
    api = mock(batch_answer)
    client = api.client()
    client.import_cards(rows(6), chunk_size=2)
    client.import_cards([*rows(4), *rows(2, start=100)], chunk_size=2)  # the last chunk differs
    client.import_cards([*rows(1, start=100), *rows(5, start=1)], chunk_size=2)  # the first differs
    keys = [r.headers["Idempotency-Key"] for r in api.requests]
    assert keys[3:5] == keys[0:2] and keys[5] != keys[2]
    assert not set(keys[6:9]) & set(keys[0:3])


def test_import_reports_replayed_chunks_and_counts_only_what_it_created(mock):
    api = mock(batch_answer, lambda r: batch_answer(r, replayed=True))
    report = api.client().import_cards(rows(4), chunk_size=2)
    assert (report.created, report.chunks, report.replayed_chunks) == (2, 2, 1)
    assert len(report.card_ids) == 4 and None not in report.card_ids


def test_import_calls_progress_after_every_chunk(mock):
    seen = []
    api = mock(batch_answer)
    api.client().import_cards(rows(5), chunk_size=2, progress=lambda report: seen.append(report.rows))
    assert seen == [2, 4, 5]


def test_a_refused_row_raises_with_its_input_position(mock):
    errors = [{"index": 1, "field": "title", "message": "is required"}]
    api = mock(batch_answer, problem(422, "validation-error", errors=errors))
    with pytest.raises(cards_client.ValidationError) as raised:
        api.client().import_cards(rows(4), chunk_size=2)
    assert raised.value.errors[0]["index"] == 3
    assert raised.value.import_report.chunks == 1


def test_with_skip_invalid_the_rest_of_the_chunk_is_sent_again_under_a_derived_key(mock):
    errors = [{"index": 1, "field": "title", "message": "is required"}]
    api = mock(problem(422, "validation-error", errors=errors), batch_answer)
    report = api.client().import_cards(rows(3), chunk_size=3, skip_invalid=True)
    first, second = api.requests
    assert [c["title"] for c in json.loads(second.content)["cards"]] == ["card 0", "card 2"]
    assert second.headers["Idempotency-Key"].startswith(first.headers["Idempotency-Key"] + ".")
    assert report.card_ids[1] is None and None not in (report.card_ids[0], report.card_ids[2])
    assert [(r.index, r.errors) for r in report.rejected] == [
        (1, [{"field": "title", "message": "is required"}])
    ]


def test_chunk_size_must_fit_the_api(mock):
    with pytest.raises(ValueError):
        mock(batch_answer).client().import_cards(rows(1), chunk_size=1001)


@pytest.mark.anyio
async def test_async_import_takes_an_async_iterable(mock):
    async def source():
        for row in rows(5):
            yield row

    api = mock(batch_answer)
    async with api.async_client() as client:
        report = await client.import_cards(source(), chunk_size=2, key_prefix="p")
    assert report.chunks == 3 and len(report.card_ids) == 5
    assert [r.headers["Idempotency-Key"] for r in api.requests] == ["p-0", "p-1", "p-2"]


@pytest.mark.anyio
async def test_async_list_is_an_async_iterator_over_every_page(mock):
    api = mock(
        httpx.Response(200, json={"cards": [card_doc()], "next_cursor": "c1"}),
        httpx.Response(200, json={"cards": [card_doc()], "next_cursor": None}),
    )
    async with api.async_client() as client:
        found = [card async for card in client.list(tags=["x"])]
    assert len(found) == 2


def test_both_clients_have_the_same_methods():
    public = {n for n in dir(CardsClient) if not n.startswith("_")}
    assert public == {n for n in dir(AsyncCardsClient) if not n.startswith("_")} - {"aclose"}


def test_with_options_changes_settings_and_shares_the_pool(mock):
    api = mock(problem(503, "service-unavailable"), httpx.Response(200, json=card_doc()))
    client = api.client()
    once = client.with_options(max_retries=0, timeout=2.0)
    assert once._http is client._http and once.max_retries == 0 and client.max_retries == 2
    with pytest.raises(cards_client.ServiceUnavailable):
        once.get(ID)
    assert api.requests[0].extensions["timeout"]["read"] == 2.0
    once.close()
    assert not client._http.is_closed
