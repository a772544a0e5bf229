"""`CardsClient`: the blocking face of the core (`_core.Core`), on one `httpx.Client`."""

from __future__ import annotations

import builtins
import time
import uuid
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar, cast

import httpx

from ._core import (
    _UNSET,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    Call,
    Core,
    Page,
    connection_error,
    new_trace_id,
)
from ._errors import ValidationError
from ._importing import ImportRun, Progress, Row, chunks
from ._types import BatchResult, Card, ImportReport, RetrieveResult, UsageRecord, UsageResult, UsageSummary
from ._workflow import Run

R = TypeVar("R")
T = TypeVar("T")


class CardsClient:
    """A client of the Cards API.

        with CardsClient(base_url="http://localhost:8002", api_key="ck_…") as client:
            client.batch_create([{"title": "Brand voice", "content": {"tone": "warm"}}])

    Without arguments it reads CARDS_BASE_URL and CARDS_API_KEY. `timeout` (seconds, or an
    httpx.Timeout) bounds every request; `max_retries` is how often a failed call is sent again
    when that is safe (0: never). `http_client` lets you pass an httpx.Client of your own (proxies,
    transports); it is then yours to close. One connection pool serves every call."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        http_client: httpx.Client | None = None,
    ) -> None:
        self._core = Core(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=max_retries)
        self._owns_http = http_client is None
        self._http = http_client if http_client is not None else httpx.Client(timeout=self._core.timeout)
        self._sleep = time.sleep

    def with_options(
        self, *, timeout: float | httpx.Timeout | None = None, max_retries: int | None = None
    ) -> CardsClient:
        """A client with other settings that shares this one's connection pool (close this one)."""
        copy = CardsClient(
            self._core.base_url,
            self._core.api_key,
            timeout=timeout if timeout is not None else self._core.timeout,
            max_retries=max_retries if max_retries is not None else self._core.max_retries,
            http_client=self._http,
        )
        copy._sleep = self._sleep
        return copy

    @property
    def base_url(self) -> str:
        return self._core.base_url

    @property
    def max_retries(self) -> int:
        return self._core.max_retries

    def __repr__(self) -> str:
        return f"CardsClient{self._core!r}"

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> CardsClient:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    # --- sending ---

    def _send(self, call: Call[R]) -> R:
        trace_id = new_trace_id()  # one per call: its retries share it
        attempt = 0
        while True:
            request = self._core.request(self._http, call, trace_id)
            try:
                response = self._http.send(request)
            except httpx.TransportError as exc:
                delay = self._core.next_try(call, attempt, None, exc)
                if delay is None:
                    raise connection_error(exc, call) from exc
            else:
                delay = self._core.next_try(call, attempt, response, None)
                if delay is None:
                    return self._core.outcome(call, response)
            self._sleep(delay)
            attempt += 1

    def _pages(self, first: Call[Page[T]], next_call: Callable[[str], Call[Page[T]]]) -> Iterator[T]:
        call = first
        while True:
            items, cursor = self._send(call)
            yield from items
            if not cursor:
                return
            call = next_call(cursor)

    def _drive(self, steps: Generator[Call[Any], Any, T]) -> T:
        try:
            call = next(steps)
            while True:
                try:
                    result = self._send(call)
                except ValidationError as exc:
                    call = steps.throw(exc)
                else:
                    call = steps.send(result)
        except StopIteration as done:
            return cast(T, done.value)

    # --- the API ---

    def batch_create(
        self, cards: Iterable[Mapping[str, Any] | Card], *, idempotency_key: str | None = None
    ) -> BatchResult:
        """Create up to 1000 cards atomically, with content deduplication. Always sends an
        Idempotency-Key (yours, or one made for this call), so a retried batch never creates a
        second set of cards."""
        return self._send(self._core.batch_create(cards, idempotency_key))

    def retrieve(self, ids: Iterable[str | uuid.UUID]) -> RetrieveResult:
        return self._send(self._core.retrieve(ids))

    def track_usage(
        self,
        card_id: str | uuid.UUID,
        *,
        workflow_id: str,
        run_id: str,
        metadata: Mapping[str, Any] | None = None,
    ) -> UsageResult:
        """Record that a run used a card; a repeat for the same (card, workflow_id, run_id) counts once."""
        return self._send(self._core.track_usage(card_id, workflow_id, run_id, metadata))

    def get(self, card_id: str | uuid.UUID) -> Card:
        return self._send(self._core.get(card_id))

    def list(
        self,
        *,
        kind: str | None = None,
        tags: Iterable[str] = (),
        contains: Mapping[str, Any] | None = None,
        q: str | None = None,
        page_size: int | None = None,
    ) -> Iterator[Card]:
        """Every matching live card, newest first, fetched a page at a time as you iterate."""
        core = self._core
        tags = builtins.list(tags) if not isinstance(tags, str) else [tags]
        return self._pages(
            core.list_page(kind, tags, contains, q, page_size, None),
            lambda cursor: core.list_page(kind, tags, contains, q, page_size, cursor),
        )

    def update(
        self,
        card_id: str | uuid.UUID,
        *,
        if_match: str,
        title: str = _UNSET,
        kind: str = _UNSET,
        content: Any = _UNSET,
        tags: Iterable[str] = _UNSET,
        metadata: Mapping[str, Any] = _UNSET,
    ) -> Card:
        """Replace the fields given, if the card is still at `if_match` (its etag). Sent once: never
        retried once it may have reached the server."""
        fields = {"title": title, "kind": kind, "content": content, "metadata": metadata}
        fields["tags"] = tags if tags is _UNSET else builtins.list(tags)
        return self._send(self._core.update(card_id, if_match, fields))

    def delete(self, card_id: str | uuid.UUID) -> None:
        """Soft-delete a card (`restore` brings it back). Sent once."""
        self._send(self._core.delete(card_id))

    def restore(self, card_id: str | uuid.UUID) -> Card:
        return self._send(self._core.restore(card_id))

    def usage_history(
        self, card_id: str | uuid.UUID, *, page_size: int | None = None
    ) -> Iterator[UsageRecord]:
        """The runs that used the card, newest first, fetched a page at a time as you iterate."""
        core = self._core
        return self._pages(
            core.usage_page(card_id, page_size, None),
            lambda cursor: core.usage_page(card_id, page_size, cursor),
        )

    def usage_summary(
        self, *, start: datetime | str | None = None, end: datetime | str | None = None, bucket: str = "day"
    ) -> UsageSummary:
        return self._send(self._core.usage_summary(start, end, bucket))

    def import_cards(
        self,
        cards: Iterable[Row],
        *,
        chunk_size: int = 1000,
        key_prefix: str | None = None,
        progress: Progress | None = None,
        skip_invalid: bool = False,
    ) -> ImportReport:
        """Create every card of `cards` (any iterable: it is read as it goes, never held whole) in
        chunks, each with its own Idempotency-Key, so running the same import again replays the
        chunks already done and creates nothing twice. `progress(report)` is called after each
        chunk. With `skip_invalid`, rows the API refuses are left out (and listed in
        `report.rejected`) and the rest of their chunk is stored; otherwise the first refusal
        raises ValidationError, its `errors` indexed by input row."""
        run = ImportRun(
            self._core,
            chunk_size=chunk_size,
            key_prefix=key_prefix,
            progress=progress,
            skip_invalid=skip_invalid,
        )
        for chunk in chunks(cards, chunk_size):
            self._drive(run.chunk(chunk))
        return run.report

    def run(self, workflow_id: str, run_id: str) -> Run:
        """A workflow run's view: `run.cards(ids)` fetches its cards, `run.used(card)` reports a use
        exactly once (safe to call again, and to retry)."""
        return Run(self, workflow_id, run_id)
