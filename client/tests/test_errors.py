"""Problem answers become exceptions: one class per slug, named after it, carrying the problem."""

from __future__ import annotations

import httpx
import pytest
from conftest import problem

import cards_client
from cards_client import _errors

ID = "3f1c1b7e-8a6f-4c55-9d2e-2b1f7b0c0d11"
# Every slug the API documents (API.md), the ones this project adds (request-timeout,
# method-not-allowed) and the ones being added now (quota-exceeded, insufficient-scope).
SLUGS = {
    "malformed-json": 400, "invalid-idempotency-key": 400, "unauthorized": 401, "forbidden": 403,
    "quota-exceeded": 403, "insufficient-scope": 403, "not-found": 404, "method-not-allowed": 405,
    "request-timeout": 408, "idempotency-key-in-use": 409, "duplicate-card": 409,
    "precondition-failed": 412, "payload-too-large": 413, "unsupported-media-type": 415,
    "validation-error": 422, "idempotency-key-reused": 422, "precondition-required": 428,
    "rate-limited": 429, "internal-error": 500, "service-unavailable": 503, "gateway-timeout": 504,
}  # fmt: skip


def camel(slug: str) -> str:
    return "".join(part.capitalize() for part in slug.split("-"))


@pytest.mark.parametrize("slug", SLUGS)
def test_each_slug_has_a_class_named_after_it(slug):
    cls = getattr(cards_client, camel(slug))
    assert issubclass(cls, cards_client.CardsError)
    assert (cls.slug, cls.status) == (slug, SLUGS[slug])
    assert _errors.BY_SLUG[slug] is cls


@pytest.mark.parametrize("slug", SLUGS)
def test_a_problem_answer_raises_its_slugs_class_with_its_fields(mock, slug):
    status = SLUGS[slug]
    errors = [{"index": 2, "field": "title", "message": "is required"}]
    answer = problem(status, slug, {"Retry-After": "3"}, errors=errors, trace_id="trace-9")
    api = mock(answer)
    with pytest.raises(cards_client.CardsError) as raised:
        api.client(max_retries=0).get(ID)
    exc = raised.value
    assert type(exc) is getattr(cards_client, camel(slug))
    assert (exc.status, exc.slug, exc.detail) == (status, slug, f"a {slug}")
    assert (exc.errors, exc.trace_id, exc.retry_after) == (errors, "trace-9", 3.0)


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, cards_client.BadRequest),
        (403, cards_client.Forbidden),
        (409, cards_client.Conflict),
        (422, cards_client.UnprocessableContent),
        (429, cards_client.RateLimited),
        (418, cards_client.ClientError),
        (502, cards_client.ServerError),
    ],
)
def test_an_unknown_slug_raises_a_class_chosen_by_status(mock, status, cls):
    api = mock(problem(status, "something-new"))
    with pytest.raises(cards_client.CardsError) as raised:
        api.client(max_retries=0).get(ID)
    assert type(raised.value) is cls
    assert raised.value.slug == "something-new" and raised.value.status == status


def test_a_slug_sent_with_another_status_is_classed_by_its_status(mock):
    api = mock(problem(400, "not-found"))
    with pytest.raises(cards_client.BadRequest):
        api.client(max_retries=0).get(ID)


def test_an_answer_that_is_not_a_problem_still_raises_by_status(mock):
    api = mock(httpx.Response(502, text="Bad Gateway from the proxy"))
    with pytest.raises(cards_client.ServerError) as raised:
        api.client(max_retries=0).get(ID)
    assert raised.value.status == 502 and raised.value.slug is None
    assert "Bad Gateway" in raised.value.detail


def test_the_message_names_status_slug_items_and_trace(mock):
    errors = [{"index": i, "field": "title", "message": "is required"} for i in range(5)]
    api = mock(problem(422, "validation-error", errors=errors, errors_total=140))
    with pytest.raises(cards_client.ValidationError) as raised:
        api.client().batch_create([{"title": ""}])
    text = str(raised.value)
    assert text.startswith("422 validation-error: a validation-error")
    assert "item 0 title: is required" in text and "137 more" in text and "t-1" in text
    assert raised.value.errors_total == 140


def test_connection_errors_are_cards_errors():
    assert issubclass(cards_client.ConnectionError, cards_client.CardsError)
    assert issubclass(cards_client.ConnectionTimeout, cards_client.ConnectionError)
    assert cards_client.ConnectionError is not ConnectionError


def test_the_status_families_group_the_classes():
    assert issubclass(cards_client.QuotaExceeded, cards_client.Forbidden)
    assert issubclass(cards_client.NotFound, cards_client.ClientError)
    assert issubclass(cards_client.GatewayTimeout, cards_client.ServerError)
