"""The OpenAPI document and SQL agree on every input bound: each bound is read from the served
document (built from gateway/bounds.py), and the SQL the route table says the gateway calls accepts a
value at it and refuses one past it with a CKVAL naming the field. Called as `cards_gateway`, directly."""

from __future__ import annotations

import dataclasses
import json
import re
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from gateway.routes import ROUTES, SPEC

SCHEMAS = SPEC["components"]["schemas"]
PARAMETERS = SPEC["components"]["parameters"]
STATEMENTS = {route.operation_id: re.sub(r"\$\d+", "%s", route.sql) for route in ROUTES if route.sql}


class Gateway:
    """A connection acting as the gateway does: as `cards_gateway`, one route statement per call."""

    def __init__(self, dsn: str, tenant: str) -> None:
        self.conn = psycopg.connect(dsn, autocommit=True)
        self.conn.execute("SET ROLE cards_gateway")
        self.tenant = tenant

    def call(self, operation_id: str, *args) -> tuple:
        return self.conn.execute(STATEMENTS[operation_id], (self.tenant, *args)).fetchone()

    def batch(self, *cards: dict, key: str | None = None) -> tuple:
        return self.call("createCards", json.dumps({"cards": list(cards)}).encode(), key)

    def list(self, kind=None, tags=None, contains=None, q=None, limit=None) -> tuple:
        return self.call("listCards", kind, tags, contains, q, limit, None)


@pytest.fixture
def gateway(database: str, admin) -> Iterator[Gateway]:
    gateway = Gateway(database, admin.tenant("bounds").id)
    yield gateway
    gateway.conn.close()


@pytest.fixture
def card_id(gateway: Gateway) -> str:
    (response, *_) = gateway.batch({"title": "used", "content": str(uuid.uuid4())})
    return response["cards"][0]["id"]


# --- where the document states each bound ---


def length(schema: dict) -> tuple[int, int]:
    return schema["minLength"], schema["maxLength"]


def items(schema: dict) -> tuple[int | None, int]:
    return schema.get("minItems"), schema["maxItems"]


def kib_in(text: str) -> tuple[None, int]:
    """A size the document gives in prose: "at most 16 KiB" → (no lower bound, 16384)."""
    return None, int(re.search(r"at most (\d+) KiB", text).group(1)) * 1024


CARD = SCHEMAS["CardInput"]["properties"]
PATCH = SCHEMAS["CardPatch"]["properties"]
USAGE = SCHEMAS["UsageRequest"]["properties"]


def text(n: int) -> str:
    """n characters, each of two bytes in UTF-8: the bounds count characters."""
    return "é" * n


def json_string(size: int) -> str:
    """A JSON string whose serialised form is `size` bytes."""
    return "x" * (size - 2)


def json_object(size: int) -> dict:
    """A JSON object whose serialised form (PostgreSQL's jsonb text, `{"k": "…"}`) is `size` bytes."""
    return {"k": "x" * (size - len('{"k": ""}'))}


def a_card(**fields) -> dict:
    return {"title": "card", "content": str(uuid.uuid4())} | fields


@dataclasses.dataclass(frozen=True)
class Bound:
    name: str
    field: str  # what the CKVAL error must name
    documented: Callable[[], tuple[int | None, int]]  # (lowest, highest) accepted, per the document
    send: Callable[..., object]  # (gateway, value size, card id) → the SQL call

    def __str__(self) -> str:
        return self.name


BOUNDS = [
    Bound(
        "batch title", "title", lambda: length(CARD["title"]), lambda g, n, _: g.batch(a_card(title=text(n)))
    ),
    Bound(
        "batch kind",
        "kind",
        lambda: length(CARD["kind"]),
        lambda g, n, _: g.batch(a_card(kind="k" * n)),
    ),
    Bound(
        "batch tags",
        "tags",
        lambda: items(CARD["tags"]),
        lambda g, n, _: g.batch(a_card(tags=[f"t{i}" for i in range(n)])),
    ),
    Bound(
        "batch tag length",
        "tags",
        lambda: length(CARD["tags"]["items"]),
        lambda g, n, _: g.batch(a_card(tags=[text(n)])),
    ),
    Bound(
        "batch content size",
        "content",
        lambda: kib_in(CARD["content"]["description"]),
        lambda g, n, _: g.batch(a_card(content=json_string(n))),
    ),
    Bound(
        "batch metadata size",
        "metadata",
        lambda: kib_in(CARD["metadata"]["description"]),
        lambda g, n, _: g.batch(a_card(metadata=json_object(n))),
    ),
    Bound(
        "cards per batch",
        "cards",
        lambda: items(SCHEMAS["BatchRequest"]["properties"]["cards"]),
        lambda g, n, _: g.batch(*(a_card(title=f"c{i}") for i in range(n))),
    ),
    Bound(
        "patch title",
        "title",
        lambda: length(PATCH["title"]),
        lambda g, n, card: g.call("updateCard", card, "*", json.dumps({"title": text(n)}).encode()),
    ),
    Bound(
        "patch tags",
        "tags",
        lambda: items(PATCH["tags"]),
        lambda g, n, card: g.call(
            "updateCard", card, "*", json.dumps({"tags": [f"t{i}" for i in range(n)]}).encode()
        ),
    ),
    Bound(
        "patch metadata size",
        "metadata",
        lambda: kib_in(PATCH["metadata"]["description"]),
        lambda g, n, card: g.call("updateCard", card, "*", json.dumps({"metadata": json_object(n)}).encode()),
    ),
    Bound(
        "ids per retrieve",
        "ids",
        lambda: items(SCHEMAS["RetrieveRequest"]["properties"]["ids"]),
        lambda g, n, _: g.call(
            "retrieveCards", json.dumps({"ids": [str(uuid.uuid4()) for _ in range(n)]}).encode()
        ),
    ),
    *(
        Bound(
            f"usage {name}",
            name,
            lambda name=name: length(USAGE[name]),
            lambda g, n, card, name=name: g.call(
                "trackUsage", card, json.dumps({"workflow_id": "w", "run_id": "r"} | {name: text(n)}).encode()
            ),
        )
        for name in ("workflow_id", "run_id")
    ),
    Bound(
        "usage metadata size",
        "metadata",
        lambda: kib_in(USAGE["metadata"]["description"]),
        lambda g, n, card: g.call(
            "trackUsage",
            card,
            json.dumps({"workflow_id": "w", "run_id": "r", "metadata": json_object(n)}).encode(),
        ),
    ),
    Bound(
        "listing kind",
        "kind",
        lambda: length(PARAMETERS["Kind"]["schema"]),
        lambda g, n, _: g.list(kind="k" * n),
    ),
    Bound(
        "listing tags",
        "tag",
        lambda: items(PARAMETERS["Tag"]["schema"]),
        lambda g, n, _: g.list(tags=[f"t{i}" for i in range(n)]),
    ),
    Bound(
        "listing tag length",
        "tag",
        lambda: length(PARAMETERS["Tag"]["schema"]["items"]),
        lambda g, n, _: g.list(tags=[text(n)]),
    ),
    Bound(
        "listing contains size",
        "contains",
        lambda: kib_in(PARAMETERS["Contains"]["description"]),
        # As sent in a query string: compact JSON, measured as the text it is.
        lambda g, n, _: g.list(contains='{"k":"' + "x" * (n - len('{"k":""}')) + '"}'),
    ),
    Bound("listing q", "q", lambda: length(PARAMETERS["Q"]["schema"]), lambda g, n, _: g.list(q=text(n))),
    Bound(
        "listing limit",
        "limit",
        lambda: (PARAMETERS["Limit"]["schema"]["minimum"], PARAMETERS["Limit"]["schema"]["maximum"]),
        lambda g, n, _: g.list(limit=str(n)),
    ),
    Bound(
        "usage history limit",
        "limit",
        lambda: (PARAMETERS["Limit"]["schema"]["minimum"], PARAMETERS["Limit"]["schema"]["maximum"]),
        lambda g, n, card: g.call("cardUsageHistory", card, str(n), None),
    ),
    Bound(
        "summary buckets",
        "to",
        lambda: (None, int(re.search(r"At most (\d+) buckets", PARAMETERS["To"]["description"]).group(1))),
        lambda g, n, _: g.call(
            "usageSummary",
            "2026-01-01T00:00:00Z",
            (datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=n)).isoformat(),
            "hour",
        ),
    ),
]


@pytest.mark.parametrize("bound", BOUNDS, ids=str)
def test_sql_accepts_a_value_at_each_documented_bound(gateway, card_id, bound: Bound):
    for size in bound.documented():
        if size is not None:
            bound.send(gateway, size, card_id)  # raises if refused


@pytest.mark.parametrize("bound", BOUNDS, ids=str)
def test_sql_refuses_a_value_one_past_each_documented_bound_naming_the_field(gateway, card_id, bound: Bound):
    lowest, highest = bound.documented()
    for size in (highest + 1, *(() if lowest in (None, 0) else (lowest - 1,))):
        with pytest.raises(psycopg.Error) as refused:
            bound.send(gateway, size, card_id)
        assert refused.value.sqlstate == "CKVAL", (size, refused.value)
        fields = {error["field"] for error in json.loads(refused.value.diag.message_detail)}
        assert bound.field in fields, (size, fields)


def test_sql_accepts_an_idempotency_key_as_long_as_documented_and_refuses_a_longer_one(gateway):
    pattern = re.compile(PARAMETERS["IdempotencyKey"]["schema"]["pattern"])
    longest = max(n for n in range(1, 300) if pattern.fullmatch("k" * n))
    gateway.batch(a_card(), key="k" * longest)
    with pytest.raises(psycopg.Error) as refused:
        gateway.batch(a_card(), key="k" * (longest + 1))
    assert refused.value.sqlstate == "CKIKI"
