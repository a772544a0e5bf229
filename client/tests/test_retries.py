"""Every retry rule, on httpx.MockTransport: which answers and failures are retried, for which
calls, how long the client waits, and that a retried batch keeps its Idempotency-Key."""

from __future__ import annotations

import email.utils
import json
import time

import httpx
import pytest
from conftest import batch_answer, card_doc, problem

import cards_client
from cards_client import _core

ID = "3f1c1b7e-8a6f-4c55-9d2e-2b1f7b0c0d11"
USAGE = httpx.Response(
    200, json={"card_id": ID, "usage_count": 1, "deduplicated": False, "recorded_at": "2026-11-26T10:00:00Z"}
)
RETRIEVED = httpx.Response(200, json={"cards": [], "missing": [ID]})
CARD = httpx.Response(200, json=card_doc(ID), headers={"ETag": '"2"'})

# Each idempotent call, with an answer that ends it.
IDEMPOTENT = {
    "batch_create": (lambda c: c.batch_create([{"title": "t", "content": 1}]), batch_answer),
    "retrieve": (lambda c: c.retrieve([ID]), RETRIEVED),
    "track_usage": (lambda c: c.track_usage(ID, workflow_id="w", run_id="r"), USAGE),
    "get": (lambda c: c.get(ID), CARD),
    "list": (lambda c: list(c.list()), httpx.Response(200, json={"cards": [], "next_cursor": None})),
    "usage_history": (
        lambda c: list(c.usage_history(ID)),
        httpx.Response(200, json={"usage": [], "next_cursor": None}),
    ),
    "usage_summary": (
        lambda c: c.usage_summary(),
        httpx.Response(
            200,
            json={"from": "2026-11-25T00:00:00Z", "to": "2026-11-26T00:00:00Z", "bucket": "day"}
            | {"buckets": [], "top_cards": []},
        ),
    ),
}
# The calls sent at most once after they may have reached the server.
ONCE = {
    "update": lambda c: c.update(ID, if_match='"1"', title="new"),
    "delete": lambda c: c.delete(ID),
    "restore": lambda c: c.restore(ID),
}

RETRIED = {
    "408 request-timeout": lambda: problem(408, "request-timeout"),
    "409 idempotency-key-in-use": lambda: problem(409, "idempotency-key-in-use", {"Retry-After": "1"}),
    "429 rate-limited": lambda: problem(429, "rate-limited", {"Retry-After": "1"}),
    "503 service-unavailable": lambda: problem(503, "service-unavailable", {"Retry-After": "1"}),
    "504 gateway-timeout": lambda: problem(504, "gateway-timeout", {"Retry-After": "1"}),
    "503 from a proxy, not a problem": lambda: httpx.Response(503, text="<html>down</html>"),
}
NOT_RETRIED = {
    "400 malformed-json": (problem(400, "malformed-json"), cards_client.MalformedJson),
    "400 invalid-idempotency-key": (
        problem(400, "invalid-idempotency-key"),
        cards_client.InvalidIdempotencyKey,
    ),
    "401 unauthorized": (problem(401, "unauthorized"), cards_client.Unauthorized),
    "403 forbidden": (problem(403, "forbidden"), cards_client.Forbidden),
    "403 quota-exceeded": (problem(403, "quota-exceeded"), cards_client.QuotaExceeded),
    "403 insufficient-scope": (problem(403, "insufficient-scope"), cards_client.InsufficientScope),
    "404 not-found": (problem(404, "not-found"), cards_client.NotFound),
    "405 method-not-allowed": (problem(405, "method-not-allowed"), cards_client.MethodNotAllowed),
    "409 duplicate-card": (problem(409, "duplicate-card"), cards_client.DuplicateCard),
    "412 precondition-failed": (problem(412, "precondition-failed"), cards_client.PreconditionFailed),
    "413 payload-too-large": (problem(413, "payload-too-large"), cards_client.PayloadTooLarge),
    "415 unsupported-media-type": (problem(415, "unsupported-media-type"), cards_client.UnsupportedMediaType),
    "422 validation-error": (problem(422, "validation-error"), cards_client.ValidationError),
    "422 idempotency-key-reused": (problem(422, "idempotency-key-reused"), cards_client.IdempotencyKeyReused),
    "428 precondition-required": (problem(428, "precondition-required"), cards_client.PreconditionRequired),
    "429 that is not rate-limited": (
        problem(429, "something-else", {"Retry-After": "1"}),
        cards_client.RateLimited,
    ),
    "500 internal-error": (problem(500, "internal-error"), cards_client.InternalError),
}


@pytest.mark.parametrize("answer", RETRIED.values(), ids=RETRIED.keys())
@pytest.mark.parametrize("call", IDEMPOTENT, ids=IDEMPOTENT.keys())
def test_an_idempotent_call_is_retried_after_a_retryable_answer(mock, call, answer):
    send, done = IDEMPOTENT[call]
    api = mock(answer(), done)
    send(api.client())
    assert len(api.requests) == 2


@pytest.mark.parametrize("name", NOT_RETRIED, ids=NOT_RETRIED.keys())
def test_any_other_error_answer_is_raised_at_once(mock, name):
    answer, cls = NOT_RETRIED[name]
    api = mock(answer, batch_answer)
    with pytest.raises(cls) as raised:
        api.client().batch_create([{"title": "t", "content": 1}])
    assert len(api.requests) == 1
    assert raised.value.status == answer.status_code


@pytest.mark.parametrize("answer", RETRIED.values(), ids=RETRIED.keys())
@pytest.mark.parametrize("call", ONCE, ids=ONCE.keys())
def test_update_delete_and_restore_are_not_resent_after_any_answer(mock, call, answer):
    api = mock(answer(), CARD)
    with pytest.raises(cards_client.CardsError):
        ONCE[call](api.client())
    assert len(api.requests) == 1


@pytest.mark.parametrize(
    "error", [httpx.ReadError("reset"), httpx.RemoteProtocolError("closed"), httpx.ReadTimeout("slow")]
)
@pytest.mark.parametrize("call", ONCE, ids=ONCE.keys())
def test_update_delete_and_restore_are_not_resent_after_a_send_error(mock, call, error):
    api = mock(error, CARD)
    with pytest.raises(cards_client.ConnectionError):
        ONCE[call](api.client())
    assert len(api.requests) == 1


@pytest.mark.parametrize("error", [httpx.ConnectError("refused"), httpx.ConnectTimeout("no SYN-ACK")])
@pytest.mark.parametrize("call", ONCE, ids=ONCE.keys())
def test_update_delete_and_restore_are_resent_when_no_connection_was_made(mock, call, error):
    api = mock(error, CARD if call != "delete" else httpx.Response(204))
    ONCE[call](api.client())
    assert len(api.requests) == 2


@pytest.mark.parametrize(
    "error", [httpx.ReadError("reset"), httpx.RemoteProtocolError("closed"), httpx.ReadTimeout("slow")]
)
@pytest.mark.parametrize("call", IDEMPOTENT, ids=IDEMPOTENT.keys())
def test_an_idempotent_call_is_resent_after_a_send_error(mock, call, error):
    send, done = IDEMPOTENT[call]
    api = mock(error, done)
    send(api.client())
    assert len(api.requests) == 2


def test_a_retried_batch_sends_the_key_it_made_on_every_attempt(mock):
    api = mock(httpx.ReadError("lost"), problem(503, "service-unavailable"), batch_answer)
    result = api.client().batch_create([{"title": "t", "content": 1}])
    keys = [r.headers["Idempotency-Key"] for r in api.requests]
    assert len(keys) == 3 and len(set(keys)) == 1
    assert result.idempotency_key == keys[0]
    assert len({r.content for r in api.requests}) == 1


def test_a_retried_batch_sends_the_callers_key_on_every_attempt(mock):
    api = mock(problem(409, "idempotency-key-in-use"), batch_answer)
    api.client().batch_create([{"title": "t", "content": 1}], idempotency_key="onboarding-7")
    assert [r.headers["Idempotency-Key"] for r in api.requests] == ["onboarding-7", "onboarding-7"]


def test_each_batch_call_makes_a_key_of_its_own(mock):
    api = mock(batch_answer)
    client = api.client()
    first = client.batch_create([{"title": "t", "content": 1}])
    second = client.batch_create([{"title": "t", "content": 1}])
    assert first.idempotency_key != second.idempotency_key
    assert api.requests[0].headers["Idempotency-Key"] == first.idempotency_key


def test_the_retries_of_a_call_share_its_trace_id(mock):
    api = mock(problem(503, "service-unavailable"), CARD)
    api.client().get(ID)
    assert len({r.headers["X-Trace-ID"] for r in api.requests}) == 1


def test_retry_after_is_honoured(mock):
    api = mock(problem(429, "rate-limited", {"Retry-After": "7"}), CARD)
    api.client().get(ID)
    assert api.sleeps == [7.0]


def test_retry_after_as_an_http_date_is_honoured(mock):
    when = email.utils.formatdate(time.time() + 20, usegmt=True)
    api = mock(problem(503, "service-unavailable", {"Retry-After": when}), CARD)
    api.client().get(ID)
    assert 17 <= api.sleeps[0] <= 20


def test_retry_after_is_capped(mock):
    api = mock(problem(429, "rate-limited", {"Retry-After": "3600"}), CARD)
    api.client().get(ID)
    assert api.sleeps == [_core.MAX_RETRY_AFTER_S]


def test_a_429_without_retry_after_waits_for_the_ratelimit_reset(mock):
    headers = {"RateLimit": '"tenant";r=0;t=4', "RateLimit-Policy": '"tenant";q=10;w=1'}
    api = mock(problem(429, "rate-limited", headers), CARD)
    api.client().get(ID)
    assert api.sleeps == [4.0]


def test_without_retry_after_the_waits_grow_exponentially_with_jitter(mock):
    api = mock(httpx.Response(503), httpx.Response(503), httpx.Response(503), CARD)
    api.client(max_retries=3).get(ID)
    assert len(api.sleeps) == 3
    for attempt, slept in enumerate(api.sleeps):
        full = _core.INITIAL_BACKOFF_S * 2**attempt
        assert 0.75 * full <= slept <= full


def test_the_jitter_differs_between_retries(mock):
    api = mock(*[httpx.Response(503)] * 8, CARD)
    api.client(max_retries=8).get(ID)
    assert len({s / 2**i for i, s in enumerate(api.sleeps) if 2**i * 0.5 <= _core.MAX_BACKOFF_S}) > 1


def test_the_last_error_is_raised_after_max_retries(mock):
    api = mock(problem(503, "service-unavailable", {"Retry-After": "1"}))
    with pytest.raises(cards_client.ServiceUnavailable) as raised:
        api.client(max_retries=2).get(ID)
    assert len(api.requests) == 3
    assert raised.value.retry_after == 1.0


def test_max_retries_zero_sends_once(mock):
    api = mock(problem(503, "service-unavailable"), CARD)
    with pytest.raises(cards_client.ServiceUnavailable):
        api.client(max_retries=0).get(ID)
    assert len(api.requests) == 1 and api.sleeps == []


def test_max_retries_zero_sends_a_batch_once_after_a_lost_answer(mock):
    api = mock(httpx.ReadError("lost"), batch_answer)
    with pytest.raises(cards_client.ConnectionError):
        api.client(max_retries=0).batch_create([{"title": "t", "content": 1}])
    assert len(api.requests) == 1


def test_a_network_failure_outliving_the_retries_is_a_connection_error(mock):
    api = mock(httpx.ConnectError("refused"))
    with pytest.raises(cards_client.ConnectionError) as raised:
        api.client().retrieve([ID])
    assert len(api.requests) == 3
    assert isinstance(raised.value, cards_client.CardsError)
    assert isinstance(raised.value.__cause__, httpx.ConnectError)


def test_a_timeout_outliving_the_retries_is_a_connection_timeout(mock):
    api = mock(httpx.ReadTimeout("slow"))
    with pytest.raises(cards_client.ConnectionTimeout):
        api.client(max_retries=1).get(ID)
    assert len(api.requests) == 2


# --- the async client follows the same rules (the same core) ---


@pytest.mark.anyio
async def test_async_a_retried_batch_keeps_its_key(mock):
    api = mock(httpx.ReadError("lost"), problem(429, "rate-limited", {"Retry-After": "2"}), batch_answer)
    async with api.async_client() as client:
        await client.batch_create([{"title": "t", "content": 1}])
    assert len({r.headers["Idempotency-Key"] for r in api.requests}) == 1
    assert len(api.requests) == 3 and api.sleeps[1] == 2.0


@pytest.mark.anyio
async def test_async_update_is_not_resent_after_a_send_error(mock):
    api = mock(httpx.ReadError("lost"), CARD)
    async with api.async_client() as client:
        with pytest.raises(cards_client.ConnectionError):
            await client.update(ID, if_match='"1"', title="new")
    assert len(api.requests) == 1


@pytest.mark.anyio
async def test_async_other_4xx_is_not_retried(mock):
    api = mock(problem(403, "quota-exceeded"), batch_answer)
    async with api.async_client() as client:
        with pytest.raises(cards_client.QuotaExceeded):
            await client.batch_create([{"title": "t", "content": 1}])
    assert len(api.requests) == 1


@pytest.mark.anyio
async def test_async_max_retries_zero_sends_once(mock):
    api = mock(problem(504, "gateway-timeout"), CARD)
    async with api.async_client(max_retries=0) as client:
        with pytest.raises(cards_client.GatewayTimeout):
            await client.get(ID)
    assert len(api.requests) == 1


def test_the_request_bodies_are_json(mock):
    api = mock(batch_answer)
    api.client().batch_create([{"title": "é", "content": {"n": 1}}])
    assert api.requests[0].headers["Content-Type"] == "application/json"
    assert json.loads(api.requests[0].content) == {"cards": [{"title": "é", "content": {"n": 1}}]}


def test_a_bad_base_url_is_not_retried(mock):
    api = mock(httpx.UnsupportedProtocol("ftp"))
    with pytest.raises(cards_client.ConnectionError):
        api.client().get(ID)
    assert len(api.requests) == 1


def test_a_success_that_is_not_the_apis_answer_raises_a_cards_error(mock):
    api = mock(httpx.Response(200, text="<html>captive portal</html>"))
    with pytest.raises(cards_client.CardsError, match="cannot read"):
        api.client().get(ID)


def test_each_retry_is_logged_without_the_key(mock, caplog):
    api = mock(problem(503, "service-unavailable", {"Retry-After": "2"}), httpx.ReadError("reset"), CARD)
    with caplog.at_level("INFO", logger="cards_client"):
        api.client().get(ID)
    lines = [r.getMessage() for r in caplog.records if r.name == "cards_client"]
    assert lines == [
        f"GET /api/v1/cards/{ID}: 503 service-unavailable; retry 1 of 2 in 2.00 s",
        f"GET /api/v1/cards/{ID}: ReadError; retry 2 of 2 in {api.sleeps[1]:.2f} s",
    ]
    assert "ck_test" not in caplog.text
