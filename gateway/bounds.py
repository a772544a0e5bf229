"""The API's input bounds, stated once on the Python side. SQL enforces them (sql/functions/00, 20, 21, 22,
30, 40, 41, 42); the OpenAPI schemas (openapi.py) and docs/API.md are built from these names, and
tests/test_bounds.py proves, value by value, that the SQL functions accept each bound and refuse one past it.

A length is in characters (PostgreSQL's char_length), a size in bytes of the compact JSON text
(octet_length of the jsonb as text), a count in items."""

from __future__ import annotations

from typing import NamedTuple

KiB = 1024


class Range(NamedTuple):
    lo: int
    hi: int


# --- a card (CardInput, CardPatch) ---
TITLE = Range(1, 500)  # characters
KIND = Range(1, 64)  # characters of KIND_CHARSET
KIND_CHARSET = "a-z0-9_.-"
KIND_DEFAULT = "note"
TAG = Range(1, 64)  # characters
TAGS_PER_CARD = 32
CONTENT_BYTES = 256 * KiB
METADATA_BYTES = 16 * KiB  # a card's and a usage report's

# --- requests ---
CARDS_PER_BATCH = Range(1, 1000)
IDS_PER_RETRIEVE = Range(1, 1000)
RUN_ID = Range(1, 255)  # characters of workflow_id and of run_id
IDEMPOTENCY_KEY = Range(1, 255)  # printable ASCII characters

# --- listings and reports ---
PAGE_LIMIT = Range(1, 200)
PAGE_LIMIT_DEFAULT = 50
QUERY_TEXT = Range(1, 500)  # `q`, characters
CONTAINS_BYTES = 16 * KiB  # `contains`: no card's metadata is larger, so no larger object matches one
CURSOR_CHARS = 1000
SUMMARY_BUCKETS = 1000
TOP_CARDS = 10


def kib(size: int) -> str:
    """A size as the documents write it: `256 KiB`."""
    return f"{size // KiB} KiB"
