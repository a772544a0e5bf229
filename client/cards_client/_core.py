"""The one core both clients share: it builds every request, turns answers into results or
exceptions, and decides whether and when to retry. It does no I/O; `CardsClient` and
`AsyncCardsClient` only send what it builds and sleep as long as it says."""

from __future__ import annotations

import builtins
import dataclasses
import email.utils
import json
import logging
import os
import platform
import random
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

from . import _errors
from ._types import (
    BatchResult,
    Card,
    RetrieveResult,
    UsageRecord,
    UsageResult,
    UsageSummary,
)
from ._version import __version__

log = logging.getLogger("cards_client")

DEFAULT_BASE_URL = "http://localhost:8002"
# A batch of 1000 cards takes well under a second; the gateway gives up on a statement after 15 s
# and on a busy idempotency key after 5 s. A minute is long enough for any answer and still finite.
DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=5.0)
DEFAULT_MAX_RETRIES = 2
INITIAL_BACKOFF_S = 0.5
MAX_BACKOFF_S = 8.0
# A Retry-After longer than this is cut to it: a client should not hang for an hour on one call.
MAX_RETRY_AFTER_S = 30.0

# The statuses worth a retry, and for 409 and 429 the only slug that is.
_RETRY_STATUS = {408: None, 409: "idempotency-key-in-use", 429: "rate-limited", 503: None, 504: None}

# operationId in the API's OpenAPI document -> the client method that calls it. A test compares
# this with the running gateway's /openapi.json, so an endpoint without a method fails it.
OPERATIONS: dict[str, str] = {
    "createCards": "batch_create",
    "retrieveCards": "retrieve",
    "trackUsage": "track_usage",
    "getCard": "get",
    "listCards": "list",
    "updateCard": "update",
    "deleteCard": "delete",
    "restoreCard": "restore",
    "cardUsageHistory": "usage_history",
    "usageSummary": "usage_summary",
}

_UNSET: Any = object()  # a keyword argument the caller did not give (None is not a valid field value)
R = TypeVar("R")
T = TypeVar("T")
# A page of a listing: its items, and the cursor of the next page (None on the last).
Page = tuple[builtins.list[T], str | None]


@dataclasses.dataclass(frozen=True, slots=True)
class Call(Generic[R]):
    """One API call: the request to send (again, identically, on each retry) and how to read the answer.

    `idempotent`: sending it twice has the effect of sending it once (reads; usage reports, which
    the API deduplicates; batches, which carry an Idempotency-Key), so it may be retried even after
    it may have reached the server. Otherwise it is retried only when it provably was not sent."""

    method: str
    path: str
    parse: Callable[[httpx.Response], R]
    idempotent: bool
    params: builtins.list[tuple[str, str]] = dataclasses.field(default_factory=builtins.list)
    body: bytes | None = None
    headers: dict[str, str] = dataclasses.field(default_factory=dict)


def card_id(value: str | uuid.UUID) -> str:
    """An id as a path segment. Anything is passed on (the API answers 404 for what is not a card)."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if not isinstance(value, str):
        raise TypeError(f"a card id is a str or uuid.UUID, not {type(value).__name__}")
    return quote(value, safe="")


def dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def card_input(card: Mapping[str, Any] | Card) -> Mapping[str, Any]:
    return card.to_input() if isinstance(card, Card) else card


def _timestamp(value: datetime | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if value.tzinfo is None:
        raise ValueError("give an aware datetime (with a time zone), not a naive one")
    return value.isoformat()


class Core:
    """Settings shared by both clients, and everything about a call that is not I/O."""

    def __init__(
        self,
        *,
        base_url: str | None,
        api_key: str | None,
        timeout: float | httpx.Timeout | None,
        max_retries: int,
    ) -> None:
        api_key = api_key if api_key is not None else os.environ.get("CARDS_API_KEY")
        if not api_key:
            raise _errors.CardsError("no API key: pass api_key=… or set CARDS_API_KEY")
        if timeout is None:
            raise ValueError(
                "timeout must be a number of seconds or an httpx.Timeout (None would wait forever)"
            )
        if not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError("max_retries must be an integer >= 0")
        self.base_url = (base_url or os.environ.get("CARDS_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self.api_key = api_key
        self.timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(float(timeout))
        self.max_retries = max_retries
        self.headers = {
            "Authorization": f"Bearer {api_key}",
            "Accept": "application/json, application/problem+json",
            "User-Agent": f"cards-client/{__version__} python/{platform.python_version()} "
            f"httpx/{httpx.__version__}",
        }

    def __repr__(self) -> str:  # never the key
        return f"<{self.base_url} max_retries={self.max_retries}>"

    # --- building requests ---

    def request(
        self, http: httpx.Client | httpx.AsyncClient, call: Call[Any], trace_id: str
    ) -> httpx.Request:
        headers = {**self.headers, "X-Trace-ID": trace_id, **call.headers}
        if call.body is not None:
            headers["Content-Type"] = "application/json"
        return http.build_request(
            call.method,
            self.base_url + call.path,
            params=httpx.QueryParams(tuple(call.params)) if call.params else None,
            content=call.body,
            headers=headers,
            timeout=self.timeout,
        )

    def batch_create(
        self, cards: Iterable[Mapping[str, Any] | Card], idempotency_key: str | None
    ) -> Call[BatchResult]:
        # One key per call, made here once: every retry of this Call sends the same one.
        key = idempotency_key if idempotency_key is not None else f"cards-client-{uuid.uuid4()}"
        body = dumps({"cards": [card_input(c) for c in cards]})
        return self.batch_call(body, key)

    def batch_call(self, body: bytes, key: str) -> Call[BatchResult]:
        def parse(response: httpx.Response) -> BatchResult:
            replayed = response.headers.get("Idempotent-Replayed", "").lower() == "true"
            return BatchResult.from_json(response.json(), replayed=replayed, idempotency_key=key)

        return Call("POST", "/api/v1/cards/batch", parse, True, body=body, headers={"Idempotency-Key": key})

    def retrieve(self, ids: Iterable[str | uuid.UUID]) -> Call[RetrieveResult]:
        body = dumps({"ids": [str(i) for i in ids]})
        return Call("POST", "/api/v1/cards/retrieve", _json(RetrieveResult.from_json), True, body=body)

    def track_usage(
        self, card: str | uuid.UUID, workflow_id: str, run_id: str, metadata: Mapping[str, Any] | None
    ) -> Call[UsageResult]:
        doc: dict[str, Any] = {"workflow_id": workflow_id, "run_id": run_id}
        if metadata is not None:
            doc["metadata"] = metadata
        path = f"/api/v1/cards/{card_id(card)}/usage"
        # The API counts a (card, workflow_id, run_id) once however often it is reported: safe to resend.
        return Call("POST", path, _json(UsageResult.from_json), True, body=dumps(doc))

    def get(self, card: str | uuid.UUID) -> Call[Card]:
        return Call("GET", f"/api/v1/cards/{card_id(card)}", _card, True)

    def list_page(
        self,
        kind: str | None,
        tags: Iterable[str],
        contains: Mapping[str, Any] | None,
        q: str | None,
        page_size: int | None,
        cursor: str | None,
    ) -> Call[Page[Card]]:
        params = [("tag", t) for t in ([tags] if isinstance(tags, str) else tags)]
        for name, value in (
            ("kind", kind),
            ("contains", None if contains is None else dumps(contains).decode()),
            ("q", q),
            ("limit", None if page_size is None else str(page_size)),
            ("cursor", cursor),
        ):
            if value is not None:
                params.append((name, value))
        return Call("GET", "/api/v1/cards", _json(_page("cards", Card.from_json)), True, params=params)

    def update(self, card: str | uuid.UUID, if_match: str, fields: dict[str, Any]) -> Call[Card]:
        if not if_match:
            raise ValueError("if_match is required: the card's etag (from get, update or restore)")
        body = dumps({name: value for name, value in fields.items() if value is not _UNSET})
        path = f"/api/v1/cards/{card_id(card)}"
        return Call("PATCH", path, _card, False, body=body, headers={"If-Match": _quoted(if_match)})

    def delete(self, card: str | uuid.UUID) -> Call[None]:
        return Call("DELETE", f"/api/v1/cards/{card_id(card)}", _nothing, False)

    def restore(self, card: str | uuid.UUID) -> Call[Card]:
        return Call("POST", f"/api/v1/cards/{card_id(card)}/restore", _card, False)

    def usage_page(
        self, card: str | uuid.UUID, page_size: int | None, cursor: str | None
    ) -> Call[Page[UsageRecord]]:
        params = [(n, v) for n, v in (("limit", page_size and str(page_size)), ("cursor", cursor)) if v]
        path = f"/api/v1/cards/{card_id(card)}/usage"
        return Call("GET", path, _json(_page("usage", UsageRecord.from_json)), True, params=params)

    def usage_summary(
        self, start: datetime | str | None, end: datetime | str | None, bucket: str
    ) -> Call[UsageSummary]:
        params = [
            (n, v) for n, v in (("from", _timestamp(start)), ("to", _timestamp(end)), ("bucket", bucket)) if v
        ]
        return Call("GET", "/api/v1/usage/summary", _json(UsageSummary.from_json), True, params=params)

    # --- answers and retries ---

    def outcome(self, call: Call[R], response: httpx.Response) -> R:
        """The call's result, or raises the problem the answer holds."""
        if response.status_code < 400:
            try:
                return call.parse(response)
            except (ValueError, KeyError, TypeError, IndexError) as exc:
                # Not the API's answer (a proxy's page, a truncated body): say so, as a CardsError.
                raise _errors.CardsError(
                    f"{call.method} {call.path}: an answer this client cannot read "
                    f"({response.status_code}, {type(exc).__name__}: {exc})",
                    status=response.status_code,
                    trace_id=response.headers.get("X-Trace-ID"),
                ) from exc
        raise problem(response)

    def retry_delay(
        self, call: Call[Any], attempt: int, response: httpx.Response | None, error: Exception | None
    ) -> float | None:
        """Seconds to wait before sending `call` again after its `attempt`-th try (0-based) got
        `response` or failed with `error`; None when it must not be sent again."""
        if attempt >= self.max_retries:
            return None
        if error is not None:
            if isinstance(error, httpx.UnsupportedProtocol | httpx.LocalProtocolError):
                return None  # a bad base_url or request: sending it again cannot help
            if not (call.idempotent or not_sent(error)):
                return None
            return backoff(attempt)
        assert response is not None
        status = response.status_code
        if status not in _RETRY_STATUS:
            return None
        if not call.idempotent:
            return None  # it reached the server: update, delete and restore are sent once
        wanted = _RETRY_STATUS[status]
        if wanted is not None and problem_slug(response) != wanted:
            return None
        hinted = retry_after(response)
        if hinted is None:
            return backoff(attempt)
        return max(0.0, min(hinted, MAX_RETRY_AFTER_S))

    def next_try(
        self, call: Call[Any], attempt: int, response: httpx.Response | None, error: Exception | None
    ) -> float | None:
        """`retry_delay`, and one INFO line (logger `cards_client`) for each retry it allows."""
        delay = self.retry_delay(call, attempt, response, error)
        if delay is not None:
            if response is not None:
                reason = f"{response.status_code} {problem_slug(response) or response.reason_phrase}"
            else:
                reason = type(error).__name__
            log.info(
                "%s %s: %s; retry %d of %d in %.2f s",
                *(call.method, call.path, reason, attempt + 1, self.max_retries, delay),
            )
        return delay


def not_sent(error: Exception) -> bool:
    """The request cannot have reached the server: no connection was made (or none was free)."""
    return isinstance(error, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)


def backoff(attempt: int) -> float:
    """Exponential backoff with jitter: 0.5 s, 1 s, 2 s … (at most MAX_BACKOFF_S), each cut by up to a
    quarter at random so that many clients that failed together do not retry together."""
    return min(INITIAL_BACKOFF_S * 2.0**attempt, MAX_BACKOFF_S) * (1 - 0.25 * random.random())


_RATELIMIT_RESET = re.compile(r"(?:^|;)\s*t=(\d+)")


def retry_after(response: httpx.Response) -> float | None:
    """The wait the answer asks for: `Retry-After` (seconds or an HTTP date), else the `t=` (seconds
    to reset) of a `RateLimit` header (IETF httpapi draft) on a 429."""
    value = response.headers.get("Retry-After")
    if value is not None:
        value = value.strip()
        if value.isdigit():
            return float(value)
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - time.time())
    limit = response.headers.get("RateLimit")
    if limit is not None and response.status_code == 429:
        found = _RATELIMIT_RESET.search(limit)
        if found:
            return float(found.group(1))
    return None


def _problem_doc(response: httpx.Response) -> dict[str, Any] | None:
    try:
        doc = response.json()
    except (ValueError, UnicodeDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def problem_slug(response: httpx.Response) -> str | None:
    doc = _problem_doc(response)
    kind = doc.get("type") if doc else None
    return kind.rsplit("/", 1)[-1] if isinstance(kind, str) and kind else None


def problem(response: httpx.Response) -> _errors.CardsError:
    """The exception for an error answer: its slug's class, or one chosen by status. An answer that is
    not a problem document (from a proxy in front of the API, say) still gets its status's class."""
    doc = _problem_doc(response) or {}
    slug = problem_slug(response)
    status = response.status_code
    detail = doc.get("detail")
    if not isinstance(detail, str):
        detail = doc.get("title") if isinstance(doc.get("title"), str) else None
    if detail is None:
        detail = response.text[:200].strip() or response.reason_phrase or f"HTTP {status}"
    errors = doc.get("errors")
    total = doc.get("errors_total")
    cls = _errors.error_class(status, slug)
    return cls(
        detail,
        status=status,
        slug=slug or cls.slug,
        title=doc.get("title"),
        errors=errors if isinstance(errors, builtins.list) else None,
        errors_total=total if isinstance(total, int) else None,
        trace_id=doc.get("trace_id") or response.headers.get("X-Trace-ID"),
        retry_after=retry_after(response),
        headers=dict(response.headers),
    )


def connection_error(error: Exception, call: Call[Any]) -> _errors.ConnectionError:
    cls = _errors.ConnectionTimeout if isinstance(error, httpx.TimeoutException) else _errors.ConnectionError
    what = f"{call.method} {call.path}"
    detail = f"{what}: {type(error).__name__}: {error}" if str(error) else f"{what}: {type(error).__name__}"
    return cls(detail)


def new_trace_id() -> str:
    return f"cc-{uuid.uuid4().hex}"


def _json(build: Callable[[Any], R]) -> Callable[[httpx.Response], R]:
    return lambda response: build(response.json())


def _nothing(response: httpx.Response) -> None:
    return None


def _card(response: httpx.Response) -> Card:
    return Card.from_json(response.json(), etag=response.headers.get("ETag"))


def _page(field: str, build: Callable[[Any], T]) -> Callable[[Any], Page[T]]:
    return lambda doc: ([build(item) for item in doc[field]], doc.get("next_cursor"))


def _quoted(etag: str) -> str:
    """An ETag as If-Match wants it: `"3"`. Given bare (`3`) it is quoted; `*` and lists pass as they are."""
    etag = etag.strip()
    if etag == "*" or etag.startswith(('"', "W/")):
        return etag
    return f'"{etag}"'
