"""Fairness between tenants, through the gateway: a rate limit per tenant shared by every gateway,
its headers on every answer, a tenant's share of the pool, and card quotas."""

from __future__ import annotations

import asyncio
import re
import statistics
import time
import uuid

from gateway.app import init_app

from .conftest import cards, hold_key

RETRIEVE = "/api/v1/cards/retrieve"
ANY_IDS = {"ids": [str(uuid.uuid4())]}
POLICY = re.compile(r'"tenant";q=(\d+);w=(\d+)')
LEFT = re.compile(r'"tenant";r=(\d+);t=(\d+)')


async def test_every_api_answer_carries_the_tenants_rate_limit_headers(client, tenant):
    answers = [
        await client.post(RETRIEVE, json=ANY_IDS, headers=tenant.auth),
        await client.get(f"/api/v1/cards/{uuid.uuid4()}", headers=tenant.auth),  # 404
        await client.post(RETRIEVE, json={"ids": "x"}, headers=tenant.auth),  # 422
        await client.post(
            "/api/v1/cards/batch", data=b"{", headers=tenant.auth | {"Content-Type": "application/json"}
        ),
    ]
    assert [a.status for a in answers] == [200, 404, 422, 400]
    for answer in answers:
        assert POLICY.fullmatch(answer.headers["RateLimit-Policy"]).groups() == ("2000", "2")
        remaining, reset = map(int, LEFT.fullmatch(answer.headers["RateLimit"]).groups())
        assert 0 <= remaining <= 2000 and 0 <= reset <= 2


async def test_a_tenant_over_its_limit_gets_429_with_retry_after_and_others_do_not(
    make_client, admin, tenant, other_tenant
):
    admin.value("SELECT cards.set_tenant_limits(%s, 2, 3)", tenant.id)
    client = await make_client()
    statuses = [(await client.post(RETRIEVE, json=ANY_IDS, headers=tenant.auth)).status for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    refused = await client.post(RETRIEVE, json=ANY_IDS, headers=tenant.auth)
    problem = await refused.json()
    assert problem["type"] == "/problems/rate-limited" and "2 requests per second" in problem["detail"]
    assert int(refused.headers["Retry-After"]) == 1
    assert LEFT.fullmatch(refused.headers["RateLimit"]).group(1) == "0"
    assert POLICY.fullmatch(refused.headers["RateLimit-Policy"]).groups() == ("3", "2")
    assert (await client.post(RETRIEVE, json=ANY_IDS, headers=other_tenant.auth)).status == 200
    await asyncio.sleep(0.6)  # a request's worth of the rate comes back
    assert (await client.post(RETRIEVE, json=ANY_IDS, headers=tenant.auth)).status == 200


async def test_gateways_share_one_budget_per_tenant(make_client, config, admin, tenant):
    """Two gateway processes' worth of apps on one database: the burst is spent once, not twice."""
    admin.value("SELECT cards.set_tenant_limits(%s, 0.5, 10)", tenant.id)
    first, second = await make_client(), await make_client(init_app(config))
    served = 0
    for _ in range(10):
        for client in (first, second):
            served += (await client.post(RETRIEVE, json=ANY_IDS, headers=tenant.auth)).status == 200
    assert served == 10


async def test_an_answer_that_spent_nothing_carries_the_default_policy_whole(client, admin, tenant):
    reader = admin.new_key(tenant, scopes=["cards:read"])
    for response in [
        await client.post(RETRIEVE, json=ANY_IDS),  # 401: no tenant named
        await client.post("/api/v1/cards/batch", json=cards("x"), headers=reader.auth),  # 403 scope
    ]:
        assert response.status in (401, 403)
        assert response.headers["RateLimit-Policy"] == '"tenant";q=2000;w=2'
        assert response.headers["RateLimit"] == '"tenant";r=2000;t=0'
    assert "RateLimit" not in (await client.get("/health")).headers


async def test_failed_authentication_and_scope_refusals_do_not_spend_the_budget(make_client, admin, tenant):
    admin.value("SELECT cards.set_tenant_limits(%s, 0.5, 2)", tenant.id)
    reader = admin.new_key(tenant, scopes=["cards:read"])
    client = await make_client()
    for _ in range(5):
        forged = {"Authorization": f"Bearer ck_{uuid.UUID(tenant.id).hex}_{'A' * 43}"}
        assert (await client.post(RETRIEVE, json=ANY_IDS, headers=forged)).status == 401
        assert (await client.post("/api/v1/cards/batch", json=cards("x"), headers=reader.auth)).status == 403
    assert [(await client.post(RETRIEVE, json=ANY_IDS, headers=tenant.auth)).status for _ in range(3)] == [
        200,
        200,
        429,
    ]


async def test_a_rate_limit_of_0_turns_the_limiter_off(make_client, admin, tenant):
    admin.value("SELECT cards.set_tenant_limits(%s, 0.5, 1)", tenant.id)
    client = await make_client(rate_limit_rps=0)
    for _ in range(5):
        response = await client.post(RETRIEVE, json=ANY_IDS, headers=tenant.auth)
        assert response.status == 200 and "RateLimit" not in response.headers


async def _p95(client, tenant, n: int = 40) -> float:
    seconds = []
    for _ in range(n):
        started = time.perf_counter()
        assert (await client.post(RETRIEVE, json=ANY_IDS, headers=tenant.auth)).status == 200
        seconds.append(time.perf_counter() - started)
    return statistics.quantiles(seconds, n=20)[18]


async def test_one_tenant_holding_its_share_of_the_pool_leaves_another_served_as_when_idle(
    make_client, admin, tenant, other_tenant
):
    """Tenant A keeps 30 batches waiting in SQL (on an idempotency key a job holds): without a cap they
    would take all 10 connections and B would queue behind them for a second each."""
    client = await make_client(pool_min=10, pool_max=10, tenant_pool_share=0.5)
    idle = await _p95(client, other_tenant)
    job = hold_key(admin, tenant, "held")
    try:
        heavy = [
            asyncio.create_task(
                client.post(
                    "/api/v1/cards/batch", json=cards("a"), headers=tenant.auth | {"Idempotency-Key": "held"}
                )
            )
            for _ in range(30)
        ]
        await asyncio.sleep(0.2)  # A's batches are at the database
        busy = await _p95(client, other_tenant)
    finally:
        job.rollback()
        job.close()
    statuses = [response.status for response in await asyncio.gather(*heavy)]
    # Without the cap B waits about a second; the bound leaves room for a busy machine (make test).
    assert busy <= max(3 * idle, 0.05), (idle, busy)
    assert set(statuses) <= {201, 409, 503}  # A's own excess waits for A's share, then 503


async def test_a_batch_that_would_pass_the_quota_is_403_and_writes_nothing(client, admin, tenant):
    admin.value("SELECT cards.set_tenant_limits(%s, NULL, NULL, 2)", tenant.id)
    response = await client.post("/api/v1/cards/batch", json=cards("a", "b", "c"), headers=tenant.auth)
    assert response.status == 403
    problem = await response.json()
    assert problem["type"] == "/problems/quota-exceeded"
    assert "quota is 2" in problem["detail"]
    assert "Retry-After" not in response.headers
    assert admin.card_count(tenant) == 0
    created = await client.post("/api/v1/cards/batch", json=cards("a", "b", "a"), headers=tenant.auth)
    assert created.status == 201  # two new cards, the third a duplicate of the first
