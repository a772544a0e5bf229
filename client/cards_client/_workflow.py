"""The workflow side: a run fetches its cards and reports each use exactly once.

    with client.run("welcome-email", run_id) as run:
        for card in run.cards(card_ids):
            ...use card...
            run.used(card)

The API counts a (card, workflow_id, run_id) once, however often it is reported, so `used` is safe
to retry and a whole run that is restarted with the same run_id counts nothing twice. Within one
`Run`, a card already reported is not sent again."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ._types import Card, RetrieveResult, UsageResult

if TYPE_CHECKING:
    from ._async import AsyncCardsClient
    from ._sync import CardsClient


def _id(card: Card | str | uuid.UUID) -> str:
    return card.id if isinstance(card, Card) else str(card)


class Run:
    """One workflow run (workflow_id, run_id) of a `CardsClient`."""

    def __init__(self, client: CardsClient, workflow_id: str, run_id: str) -> None:
        if not workflow_id or not run_id:
            raise ValueError("a run needs a workflow_id and a run_id")
        self.client, self.workflow_id, self.run_id = client, workflow_id, run_id
        self.reported: dict[str, UsageResult] = {}  # card id -> the answer to its report

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        return None

    def cards(self, ids: Iterable[str | uuid.UUID]) -> RetrieveResult:
        """The run's cards (iterate over the result; `.missing` names the ids not found)."""
        return self.client.retrieve(ids)

    def used(self, card: Card | str | uuid.UUID, *, metadata: Mapping[str, Any] | None = None) -> UsageResult:
        """Report that this run used `card`. Counted once per run, whatever happens: a second call
        for the same card answers the first report's result without a request."""
        card_id = _id(card)
        if card_id not in self.reported:
            self.reported[card_id] = self.client.track_usage(
                card_id, workflow_id=self.workflow_id, run_id=self.run_id, metadata=metadata
            )
        return self.reported[card_id]


class AsyncRun:
    """One workflow run of an `AsyncCardsClient`: `await run.cards(ids)`, `await run.used(card)`."""

    def __init__(self, client: AsyncCardsClient, workflow_id: str, run_id: str) -> None:
        if not workflow_id or not run_id:
            raise ValueError("a run needs a workflow_id and a run_id")
        self.client, self.workflow_id, self.run_id = client, workflow_id, run_id
        self.reported: dict[str, UsageResult] = {}

    async def __aenter__(self) -> AsyncRun:
        return self

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        return None

    async def cards(self, ids: Iterable[str | uuid.UUID]) -> RetrieveResult:
        return await self.client.retrieve(ids)

    async def used(
        self, card: Card | str | uuid.UUID, *, metadata: Mapping[str, Any] | None = None
    ) -> UsageResult:
        card_id = _id(card)
        if card_id not in self.reported:
            self.reported[card_id] = await self.client.track_usage(
                card_id, workflow_id=self.workflow_id, run_id=self.run_id, metadata=metadata
            )
        return self.reported[card_id]
