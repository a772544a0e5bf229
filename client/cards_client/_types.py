"""Typed results. Each is a frozen dataclass built from the API's JSON by `from_json`; unknown fields
the API may add later are ignored, so an older client keeps working against a newer API."""

from __future__ import annotations

import builtins
import dataclasses
from collections.abc import Iterator
from datetime import datetime
from typing import Any

# The fields of the card representation that the API computes: not part of the card input shape.
COMPUTED_FIELDS = ("id", "content_hash", "usage_count", "created_at", "updated_at", "last_used_at")
INPUT_FIELDS = ("kind", "title", "content", "tags", "metadata")


def parse_time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def format_time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


@dataclasses.dataclass(frozen=True, slots=True)
class Card:
    """A card as the API represents it, plus its `etag` (from the ETag header) where the answer
    carried one: `get`, `update` and `restore` do; cards from `retrieve` and `list` have None."""

    id: str
    kind: str
    title: str
    content: Any
    tags: builtins.list[str]
    metadata: dict[str, Any]
    content_hash: str
    usage_count: int
    created_at: datetime
    updated_at: datetime
    last_used_at: datetime | None
    etag: str | None = None

    @classmethod
    def from_json(cls, doc: dict[str, Any], etag: str | None = None) -> Card:
        return cls(
            id=doc["id"],
            kind=doc["kind"],
            title=doc["title"],
            content=doc["content"],
            tags=doc["tags"],
            metadata=doc["metadata"],
            content_hash=doc["content_hash"],
            usage_count=doc["usage_count"],
            created_at=parse_time(doc["created_at"]),  # type: ignore[arg-type]
            updated_at=parse_time(doc["updated_at"]),  # type: ignore[arg-type]
            last_used_at=parse_time(doc.get("last_used_at")),
            etag=etag,
        )

    def to_dict(self) -> dict[str, Any]:
        """The card representation (JSON-ready), as the API sends it."""
        doc = {name: getattr(self, name) for name in ("id", *INPUT_FIELDS, "content_hash", "usage_count")}
        doc |= {
            "created_at": format_time(self.created_at),
            "updated_at": format_time(self.updated_at),
            "last_used_at": format_time(self.last_used_at),
        }
        return doc

    def to_input(self) -> dict[str, Any]:
        """The card input shape (`kind`, `title`, `content`, `tags`, `metadata`): what `batch_create`
        takes, so a card read from one tenant can be created in another with the same content_hash."""
        return {name: getattr(self, name) for name in INPUT_FIELDS}


@dataclasses.dataclass(frozen=True, slots=True)
class BatchItem:
    index: int
    id: str
    status: str  # "created" or "duplicate"
    content_hash: str


@dataclasses.dataclass(frozen=True, slots=True)
class BatchResult:
    cards: builtins.list[BatchItem]
    created: int
    duplicates: int
    replayed: bool  # the API answered the stored result of an earlier request with this key
    idempotency_key: str

    @classmethod
    def from_json(cls, doc: dict[str, Any], *, replayed: bool, idempotency_key: str) -> BatchResult:
        return cls(
            cards=[BatchItem(c["index"], c["id"], c["status"], c["content_hash"]) for c in doc["cards"]],
            created=doc["created"],
            duplicates=doc["duplicates"],
            replayed=replayed,
            idempotency_key=idempotency_key,
        )


@dataclasses.dataclass(frozen=True, slots=True)
class RetrieveResult:
    """The cards found, in the order of their first appearance in the ids asked for, each once, and
    the ids not found (unknown, deleted, or another tenant's: indistinguishable). Iterating over it
    iterates over `cards`."""

    cards: builtins.list[Card]
    missing: builtins.list[str]

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> RetrieveResult:
        return cls([Card.from_json(c) for c in doc["cards"]], builtins.list(doc["missing"]))

    def __iter__(self) -> Iterator[Card]:
        return iter(self.cards)

    def __len__(self) -> int:
        return len(self.cards)


@dataclasses.dataclass(frozen=True, slots=True)
class UsageResult:
    card_id: str
    usage_count: int
    deduplicated: bool  # this (card, workflow_id, run_id) was reported before: nothing changed
    recorded_at: datetime

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> UsageResult:
        return cls(doc["card_id"], doc["usage_count"], doc["deduplicated"], parse_time(doc["recorded_at"]))  # type: ignore[arg-type]


@dataclasses.dataclass(frozen=True, slots=True)
class UsageRecord:
    """One run's use of a card (from `usage_history`)."""

    workflow_id: str
    run_id: str
    metadata: dict[str, Any]
    recorded_at: datetime

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> UsageRecord:
        return cls(doc["workflow_id"], doc["run_id"], doc["metadata"], parse_time(doc["recorded_at"]))  # type: ignore[arg-type]


@dataclasses.dataclass(frozen=True, slots=True)
class UsageBucket:
    start: datetime
    events: int


@dataclasses.dataclass(frozen=True, slots=True)
class TopCard:
    card_id: str
    title: str | None  # None once the card is gone
    events: int


@dataclasses.dataclass(frozen=True, slots=True)
class UsageSummary:
    """Usage events per UTC hour or day in [start, end), oldest first, and the ten most used cards."""

    start: datetime
    end: datetime
    bucket: str
    buckets: builtins.list[UsageBucket]
    top_cards: builtins.list[TopCard]

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> UsageSummary:
        return cls(
            start=parse_time(doc["from"]),  # type: ignore[arg-type]
            end=parse_time(doc["to"]),  # type: ignore[arg-type]
            bucket=doc["bucket"],
            buckets=[UsageBucket(parse_time(b["start"]), b["events"]) for b in doc["buckets"]],  # type: ignore[arg-type]
            top_cards=[TopCard(t["card_id"], t.get("title"), t["events"]) for t in doc["top_cards"]],
        )

    @property
    def events(self) -> int:
        return sum(b.events for b in self.buckets)


@dataclasses.dataclass(frozen=True, slots=True)
class RejectedRow:
    """An input row the API refused (`import_cards(..., skip_invalid=True)`): its position in the
    input (0-based) and the validation items about it."""

    index: int
    errors: builtins.list[dict[str, Any]]


@dataclasses.dataclass(slots=True)
class ImportReport:
    """What `import_cards` did. `card_ids[i]` is the id of input row i (None for a rejected row)."""

    created: int = 0
    duplicates: int = 0
    chunks: int = 0
    replayed_chunks: int = 0  # chunks whose stored answer the API replayed (done by an earlier run)
    card_ids: builtins.list[str | None] = dataclasses.field(default_factory=builtins.list)
    rejected: builtins.list[RejectedRow] = dataclasses.field(default_factory=builtins.list)

    @property
    def rows(self) -> int:
        """Input rows handled so far."""
        return len(self.card_ids)
