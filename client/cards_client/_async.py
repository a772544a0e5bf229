"""`AsyncCardsClient`: the asyncio face of the core (`_core.Core`), on one `httpx.AsyncClient`."""

from __future__ import annotations

import asyncio
import builtins
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Callable, Generator, Iterable, Mapping
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
from ._importing import ImportRun, Progress, Row, achunks
from ._types import BatchResult, Card, ImportReport, RetrieveResult, UsageRecord, UsageResult, UsageSummary
from ._workflow import AsyncRun

R = TypeVar("R")
T = TypeVar("T")


class AsyncCardsClient:
    """The asyncio twin of `CardsClient`: the same methods, awaited; `list` and `usage_history`
    are async iterators (`async for card in client.list(...)`).

        async with AsyncCardsClient() as client:
            result = await client.retrieve(ids)
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self._core = Core(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=max_retries)
        self._owns_http = http_client is None
        self._http = http_client if http_client is not None else httpx.AsyncClient(timeout=self._core.timeout)
        self._sleep = asyncio.sleep

    def with_options(
        self, *, timeout: float | httpx.Timeout | None = None, max_retries: int | None = None
    ) -> AsyncCardsClient:
        """A client with other settings that shares this one's connection pool (close this one)."""
        copy = AsyncCardsClient(
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
        return f"AsyncCardsClient{self._core!r}"

    async def close(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    aclose = close

    async def __aenter__(self) -> AsyncCardsClient:
        return self

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        await self.close()

    # --- sending ---

    async def _send(self, call: Call[R]) -> R:
        trace_id = new_trace_id()
        attempt = 0
        while True:
            request = self._core.request(self._http, call, trace_id)
            try:
                response = await self._http.send(request)
            except httpx.TransportError as exc:
                delay = self._core.next_try(call, attempt, None, exc)
                if delay is None:
                    raise connection_error(exc, call) from exc
            else:
                delay = self._core.next_try(call, attempt, response, None)
                if delay is None:
                    return self._core.outcome(call, response)
            await self._sleep(delay)
            attempt += 1

    async def _pages(
        self, first: Call[Page[T]], next_call: Callable[[str], Call[Page[T]]]
    ) -> AsyncIterator[T]:
        call = first
        while True:
            items, cursor = await self._send(call)
            for item in items:
                yield item
            if not cursor:
                return
            call = next_call(cursor)

    async def _drive(self, steps: Generator[Call[Any], Any, T]) -> T:
        try:
            call = next(steps)
            while True:
                try:
                    result = await self._send(call)
                except ValidationError as exc:
                    call = steps.throw(exc)
                else:
                    call = steps.send(result)
        except StopIteration as done:
            return cast(T, done.value)

    # --- the API (see CardsClient for each method) ---

    async def batch_create(
        self, cards: Iterable[Mapping[str, Any] | Card], *, idempotency_key: str | None = None
    ) -> BatchResult:
        return await self._send(self._core.batch_create(cards, idempotency_key))

    async def retrieve(self, ids: Iterable[str | uuid.UUID]) -> RetrieveResult:
        return await self._send(self._core.retrieve(ids))

    async def track_usage(
        self,
        card_id: str | uuid.UUID,
        *,
        workflow_id: str,
        run_id: str,
        metadata: Mapping[str, Any] | None = None,
    ) -> UsageResult:
        return await self._send(self._core.track_usage(card_id, workflow_id, run_id, metadata))

    async def get(self, card_id: str | uuid.UUID) -> Card:
        return await self._send(self._core.get(card_id))

    def list(
        self,
        *,
        kind: str | None = None,
        tags: Iterable[str] = (),
        contains: Mapping[str, Any] | None = None,
        q: str | None = None,
        page_size: int | None = None,
    ) -> AsyncIterator[Card]:
        core = self._core
        tags = builtins.list(tags) if not isinstance(tags, str) else [tags]
        return self._pages(
            core.list_page(kind, tags, contains, q, page_size, None),
            lambda cursor: core.list_page(kind, tags, contains, q, page_size, cursor),
        )

    async def update(
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
        fields = {"title": title, "kind": kind, "content": content, "metadata": metadata}
        fields["tags"] = tags if tags is _UNSET else builtins.list(tags)
        return await self._send(self._core.update(card_id, if_match, fields))

    async def delete(self, card_id: str | uuid.UUID) -> None:
        await self._send(self._core.delete(card_id))

    async def restore(self, card_id: str | uuid.UUID) -> Card:
        return await self._send(self._core.restore(card_id))

    def usage_history(
        self, card_id: str | uuid.UUID, *, page_size: int | None = None
    ) -> AsyncIterator[UsageRecord]:
        core = self._core
        return self._pages(
            core.usage_page(card_id, page_size, None),
            lambda cursor: core.usage_page(card_id, page_size, cursor),
        )

    async def usage_summary(
        self, *, start: datetime | str | None = None, end: datetime | str | None = None, bucket: str = "day"
    ) -> UsageSummary:
        return await self._send(self._core.usage_summary(start, end, bucket))

    async def import_cards(
        self,
        cards: Iterable[Row] | AsyncIterable[Row],
        *,
        chunk_size: int = 1000,
        key_prefix: str | None = None,
        progress: Progress | None = None,
        skip_invalid: bool = False,
    ) -> ImportReport:
        """As `CardsClient.import_cards`; `cards` may also be an async iterable."""
        run = ImportRun(
            self._core,
            chunk_size=chunk_size,
            key_prefix=key_prefix,
            progress=progress,
            skip_invalid=skip_invalid,
        )
        async for chunk in achunks(cards, chunk_size):
            await self._drive(run.chunk(chunk))
        return run.report

    def run(self, workflow_id: str, run_id: str) -> AsyncRun:
        return AsyncRun(self, workflow_id, run_id)
