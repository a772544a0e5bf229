"""How the gateway uses PostgreSQL: one round trip per API request, as `cards_gateway`."""

from __future__ import annotations

import uuid

from gateway.app import DB

from .conftest import cards

ANY_IDS = {"ids": [str(uuid.uuid4())]}


def _delta(after, before) -> dict[str, int]:
    return {kind: after[kind] - before[kind] for kind in after if after[kind] != before[kind]}


async def test_each_api_request_is_one_database_round_trip(make_client, database, proxy, tenant):
    client = await make_client(database_url=proxy.route(database), pool_min=1, pool_max=1)
    headers = tenant.jwt()  # a JWT needs no lookup; API keys are covered below

    async def one_of_each(n: int) -> None:
        body = await (await client.post("/api/v1/cards/batch", json=cards(f"c{n}"), headers=headers)).json()
        card_id = body["cards"][0]["id"]
        await client.post("/api/v1/cards/retrieve", json={"ids": [card_id]}, headers=headers)
        await client.post(
            f"/api/v1/cards/{card_id}/usage", json={"workflow_id": "w", "run_id": "r"}, headers=headers
        )

    await one_of_each(0)  # the connection prepares each statement once
    before = proxy.sent.copy()
    for n in range(1, 6):
        await one_of_each(n)
    # Per request: Bind, Execute, Sync — one round trip, no re-prepare, no reset on release.
    assert _delta(proxy.sent, before) == {"B": 15, "E": 15, "S": 15}


async def test_an_api_key_is_looked_up_once_and_then_served_from_the_cache(
    make_client, database, proxy, tenant
):
    client = await make_client(database_url=proxy.route(database), pool_min=1, pool_max=1)
    await client.post("/api/v1/cards/retrieve", json=ANY_IDS, headers=tenant.auth)
    before = proxy.sent.copy()
    for _ in range(5):
        assert (await client.post("/api/v1/cards/retrieve", json=ANY_IDS, headers=tenant.auth)).status == 200
    assert _delta(proxy.sent, before) == {"B": 5, "E": 5, "S": 5}


async def test_pool_connections_act_as_cards_gateway_even_with_a_superusers_dsn(client):
    row = await client.app[DB].fetchrow("SELECT current_user AS acting, session_user AS login")
    assert (row["acting"], row["login"]) == ("cards_gateway", "postgres")
    row = await client.app[DB].fetchrow("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    assert row["rolsuper"] is False
