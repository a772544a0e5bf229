"""The per-tenant retention functions (sql/functions/91_maintenance_by_tenant.sql), which
scripts/retention calls on a Citus cluster: each removes only its tenant's expired rows."""

from __future__ import annotations

import psycopg
import pytest

from .conftest import cards, create

CARDS = "/api/v1/cards"


async def _expired_key(client, admin, tenant, key: str) -> None:
    response = await client.post(
        f"{CARDS}/batch", json=cards(key), headers=tenant.auth | {"Idempotency-Key": key}
    )
    assert response.status == 201
    admin.conn.execute(
        "UPDATE cards.idempotency_keys SET expires_at = now() - interval '1 minute'"
        " WHERE tenant_id = %s AND idempotency_key = %s",
        (tenant.id, key),
    )


async def _old_event(client, admin, tenant) -> None:
    [card_id] = await create(client, tenant, "used")
    body = {"workflow_id": "w", "run_id": "old"}
    assert (await client.post(f"{CARDS}/{card_id}/usage", json=body, headers=tenant.auth)).status == 200
    admin.conn.execute(
        "UPDATE cards.card_usage SET recorded_at = now() - interval '91 days' WHERE tenant_id = %s",
        (tenant.id,),
    )


def _count(admin, table: str, tenant) -> int:
    return admin.value(f"SELECT count(*) FROM cards.{table} WHERE tenant_id = %s", tenant.id)


async def test_a_tenants_key_purge_removes_its_expired_keys_and_no_one_elses(
    client, admin, tenant, other_tenant
):
    await _expired_key(client, admin, tenant, "mine")
    await _expired_key(client, admin, other_tenant, "theirs")
    assert admin.value("SELECT cards.purge_expired_idempotency_keys(%s::uuid, 100)", tenant.id) == 1
    assert (_count(admin, "idempotency_keys", tenant), _count(admin, "idempotency_keys", other_tenant)) == (
        0,
        1,
    )


async def test_a_tenants_event_purge_removes_its_old_events_and_no_one_elses(
    client, admin, tenant, other_tenant
):
    await _old_event(client, admin, tenant)
    await _old_event(client, admin, other_tenant)
    assert admin.value("SELECT cards.purge_usage_events(%s::uuid, NULL, 100)", tenant.id) == 1
    assert (_count(admin, "card_usage", tenant), _count(admin, "card_usage", other_tenant)) == (0, 1)


def test_a_tenants_event_purge_refuses_a_window_under_an_hour(admin, tenant):
    with pytest.raises(psycopg.Error) as raised:
        admin.value("SELECT cards.purge_usage_events(%s::uuid, interval '5 minutes', 100)", tenant.id)
    assert raised.value.sqlstate == "CKVAL"
