"""Errors: every SQLSTATE maps to its problem through the one table; database trouble is a 503 or
504 with Retry-After where a retry helps; anything unexpected is a logged 500 problem."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid

import asyncpg
import pytest

from gateway.errors import PROBLEMS, from_database

from .conftest import cards, hold_key

ANY_IDS = {"ids": [str(uuid.uuid4())]}

EXPECTED = {  # sql/CONVENTIONS.md, "Errors"
    "CKJSN": (400, "malformed-json"),
    "CKIKI": (400, "invalid-idempotency-key"),
    "CKFBD": (403, "forbidden"),
    "CKNFD": (404, "not-found"),
    "CKIKU": (409, "idempotency-key-in-use"),
    "CKDUP": (409, "duplicate-card"),
    "CKPFL": (412, "precondition-failed"),
    "CKVAL": (422, "validation-error"),
    "CKIKR": (422, "idempotency-key-reused"),
    "CKPRQ": (428, "precondition-required"),
    "40001": (503, "service-unavailable"),
    "40P01": (503, "service-unavailable"),
    "57014": (504, "gateway-timeout"),
    "08006": (503, "service-unavailable"),
    "53300": (503, "service-unavailable"),
    "57P01": (503, "service-unavailable"),
}


async def _raised(database: str, sqlstate: str, detail: str = "") -> asyncpg.PostgresError:
    conn = await asyncpg.connect(database)
    try:
        await conn.execute(
            f"DO $$ BEGIN RAISE EXCEPTION 'raised %', '{sqlstate}' "
            f"USING ERRCODE = '{sqlstate}', DETAIL = '{detail}'; END $$"
        )
    except asyncpg.PostgresError as exc:
        return exc
    finally:
        await conn.close()
    raise AssertionError("nothing was raised")


@pytest.mark.parametrize("sqlstate", EXPECTED)
async def test_each_sqlstate_raised_by_postgres_maps_to_its_problem(database, sqlstate):
    problem = from_database(await _raised(database, sqlstate))
    assert problem is not None
    assert (problem.status, problem.slug) == EXPECTED[sqlstate]
    if sqlstate.startswith("CK"):
        assert problem.detail == f"raised {sqlstate}"  # SQL's MESSAGE is the detail
    else:
        assert sqlstate not in problem.detail  # internals stay inside
    retryable = problem.status in (503, 504) or sqlstate == "CKIKU"
    assert ("Retry-After" in problem.headers) == retryable


async def test_a_validation_errors_detail_becomes_the_problems_errors_list(database):
    errors = [{"index": 3, "field": "title", "message": "must be 1 to 500 characters"}]
    problem = from_database(await _raised(database, "CKVAL", json.dumps(errors)))
    assert problem.errors == errors


async def test_an_unexpected_sqlstate_is_not_mapped(database):
    assert from_database(await _raised(database, "42P01")) is None
    assert from_database(ValueError("not a database error")) is None
    assert from_database(ConnectionResetError("a client hung up")) is None  # not a database outage


def test_every_problem_slug_of_the_contract_is_in_the_table():
    contract = {
        *("malformed-json", "invalid-idempotency-key", "unauthorized", "forbidden", "not-found"),
        *("idempotency-key-in-use", "payload-too-large", "unsupported-media-type", "validation-error"),
        *("idempotency-key-reused", "precondition-failed", "precondition-required", "duplicate-card"),
        *("rate-limited", "service-unavailable", "gateway-timeout", "internal-error"),
        *("quota-exceeded", "insufficient-scope"),  # the hardening stage
    }
    assert contract <= set(PROBLEMS)
    assert set(PROBLEMS) - contract == {"method-not-allowed", "request-timeout"}


async def test_an_unexpected_database_error_is_a_logged_500_problem_without_internals(
    make_client, make_database, tenant, caplog
):
    client = await make_client(database_url=make_database("cards_unmigrated"))
    response = await client.post("/api/v1/cards/batch", json=cards("a"), headers=tenant.jwt())
    assert response.status == 500
    assert response.content_type == "application/problem+json"
    problem = await response.json()
    assert problem["type"] == "/problems/internal-error"
    assert "cards" not in problem["detail"] and "Traceback" not in await response.text()
    [logged] = [r for r in caplog.records if r.levelno == logging.ERROR and r.name == "cards.gateway"]
    assert logged.trace_id == problem["trace_id"] and logged.exc_info


async def test_an_api_request_is_503_with_retry_after_when_the_database_is_unreachable(
    make_client, database, proxy, tenant
):
    client = await make_client(database_url=proxy.route(database), pool_timeout_s=1.0)
    await proxy.cut()
    response = await client.post("/api/v1/cards/retrieve", json=ANY_IDS, headers=tenant.jwt())
    assert response.status == 503
    assert response.headers["Retry-After"] == "1"
    assert (await response.json())["type"] == "/problems/service-unavailable"
    metrics = await (await client.get("/metrics")).text()
    assert 'cards_db_errors_total{kind="unavailable"} 1.0' in metrics


async def test_a_request_is_503_when_no_pool_connection_frees_up_in_time(make_client, admin, tenant):
    client = await make_client(pool_min=1, pool_max=1, pool_timeout_s=0.2)
    job = hold_key(admin, tenant, "held")
    try:
        blocked = asyncio.create_task(
            client.post(
                "/api/v1/cards/batch", json=cards("a"), headers=tenant.jwt() | {"Idempotency-Key": "held"}
            )
        )
        await asyncio.sleep(0.1)
        metrics = asyncio.create_task(client.get("/metrics"))
        response = await client.post("/api/v1/cards/retrieve", json=ANY_IDS, headers=tenant.jwt())
        assert response.status == 503
        assert response.headers["Retry-After"] == "1"
        assert "cards_db_pool_connections_in_use 1.0" in await (await metrics).text()
    finally:
        job.rollback()
        job.close()
    assert (await blocked).status in (201, 409)


async def test_a_statement_over_the_timeout_is_504(make_client, admin, tenant):
    client = await make_client(statement_timeout_ms=200)
    job = hold_key(admin, tenant, "slow")
    try:
        response = await client.post(
            "/api/v1/cards/batch", json=cards("a"), headers=tenant.jwt() | {"Idempotency-Key": "slow"}
        )
    finally:
        job.rollback()
        job.close()
    assert response.status == 504
    assert (await response.json())["type"] == "/problems/gateway-timeout"
    metrics = await (await client.get("/metrics")).text()
    assert 'cards_db_errors_total{kind="timeout"} 1.0' in metrics
