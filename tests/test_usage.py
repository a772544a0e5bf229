"""POST /api/v1/cards/{id}/usage: one count per (card, workflow, run), 404 for anything not ours."""

from __future__ import annotations

import asyncio
import uuid

from .conftest import create


async def _card(client, tenant) -> str:
    [card_id] = await create(client, tenant, "used")
    return card_id


async def _usage_count(client, tenant, card_id: str) -> int:
    response = await client.post("/api/v1/cards/retrieve", json={"ids": [card_id]}, headers=tenant.auth)
    return (await response.json())["cards"][0]["usage_count"]


def _report(run: str = "run-1") -> dict:
    return {"workflow_id": "onboarding", "run_id": run, "metadata": {"step": 3}}


async def test_the_first_report_counts_and_a_repeat_is_deduplicated(client, tenant):
    card_id = await _card(client, tenant)
    first = await client.post(f"/api/v1/cards/{card_id}/usage", json=_report(), headers=tenant.auth)
    assert first.status == 200
    body = await first.json()
    assert (body["card_id"], body["usage_count"], body["deduplicated"]) == (card_id, 1, False)
    again = await (
        await client.post(f"/api/v1/cards/{card_id}/usage", json=_report(), headers=tenant.auth)
    ).json()
    assert (again["usage_count"], again["deduplicated"], again["recorded_at"]) == (
        1,
        True,
        body["recorded_at"],
    )
    other_run = await (
        await client.post(f"/api/v1/cards/{card_id}/usage", json=_report("run-2"), headers=tenant.auth)
    ).json()
    assert other_run["usage_count"] == 2
    metrics = await (await client.get("/metrics")).text()
    assert 'cards_usage_reports_total{result="recorded"} 2.0' in metrics
    assert 'cards_usage_reports_total{result="deduplicated"} 1.0' in metrics


async def test_fifty_concurrent_identical_reports_count_once(client, tenant):
    card_id = await _card(client, tenant)
    url = f"/api/v1/cards/{card_id}/usage"
    responses = await asyncio.gather(
        *[client.post(url, json=_report(), headers=tenant.auth) for _ in range(50)]
    )
    assert [r.status for r in responses] == [200] * 50
    bodies = [await r.json() for r in responses]
    assert sum(not b["deduplicated"] for b in bodies) == 1
    assert await _usage_count(client, tenant, card_id) == 1


async def test_an_unknown_card_is_404(client, tenant):
    response = await client.post(f"/api/v1/cards/{uuid.uuid4()}/usage", json=_report(), headers=tenant.auth)
    assert response.status == 404
    assert (await response.json())["type"] == "/problems/not-found"


async def test_a_malformed_card_id_is_404_not_a_server_error(client, tenant):
    for card_id in ["not-a-uuid", "%00", "%FF%FE", "x%00y", "é"]:
        response = await client.post(f"/api/v1/cards/{card_id}/usage", json=_report(), headers=tenant.auth)
        assert response.status == 404, card_id
        assert (await response.json())["type"] == "/problems/not-found"


async def test_another_tenants_card_is_404_and_its_count_is_unchanged(client, tenant, other_tenant):
    card_id = await _card(client, tenant)
    response = await client.post(f"/api/v1/cards/{card_id}/usage", json=_report(), headers=other_tenant.auth)
    assert response.status == 404
    assert await _usage_count(client, tenant, card_id) == 0


async def test_an_invalid_report_is_422_naming_the_field(client, tenant):
    card_id = await _card(client, tenant)
    response = await client.post(
        f"/api/v1/cards/{card_id}/usage", json={"workflow_id": "w"}, headers=tenant.auth
    )
    assert response.status == 422
    assert "run_id" in {e["field"] for e in (await response.json())["errors"]}


async def test_a_nul_in_a_report_is_422(client, tenant):
    card_id = await _card(client, tenant)
    body = b'{"workflow_id": "w\\u0000", "run_id": "r"}'
    response = await client.post(
        f"/api/v1/cards/{card_id}/usage",
        data=body,
        headers=tenant.auth | {"Content-Type": "application/json"},
    )
    assert response.status == 422
    assert [e["field"] for e in (await response.json())["errors"]] == ["workflow_id"]
