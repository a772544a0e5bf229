"""The client covers the API: every operation under /api/ in the running gateway's OpenAPI
document has a method (cards_client.OPERATIONS), on both clients, and every problem type the
document names has an exception class."""

from __future__ import annotations

import httpx

import cards_client
from cards_client import OPERATIONS, AsyncCardsClient, CardsClient


def spec(gateway) -> dict:
    return httpx.get(f"{gateway.url}/openapi.json", timeout=10).json()


def test_every_api_operation_has_a_client_method(gateway):
    operations = {
        op["operationId"]: f"{method.upper()} {path}"
        for path, item in spec(gateway)["paths"].items()
        if path.startswith("/api/")
        for method, op in item.items()
        if isinstance(op, dict) and "operationId" in op
    }
    without = {op: route for op, route in operations.items() if op not in OPERATIONS}
    assert not without, f"operations without a client method: {without}"
    assert set(OPERATIONS) <= set(operations), "a client method names an operation the API no longer has"


def test_every_mapped_method_exists_on_both_clients():
    for method in OPERATIONS.values():
        assert callable(getattr(CardsClient, method)) and callable(getattr(AsyncCardsClient, method))


def test_every_problem_type_of_the_api_has_its_exception_class(gateway):
    types = spec(gateway)["components"]["schemas"]["Problem"]["properties"]["type"]["enum"]
    slugs = [t.rsplit("/", 1)[-1] for t in types]
    assert slugs and not [s for s in slugs if s not in cards_client.BY_SLUG]
