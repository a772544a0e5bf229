"""POST /api/v1/cards/retrieve: the tenant's live cards by id; everything else is `missing`."""

from __future__ import annotations

import uuid

from .conftest import create

RETRIEVE = "/api/v1/cards/retrieve"


async def _create(client, tenant, *titles: str) -> list[str]:
    return await create(client, tenant, *titles, tags=["t"])


async def test_cards_come_in_the_order_of_first_appearance_each_once(client, tenant):
    first, second = await _create(client, tenant, "first", "second")
    unknown = str(uuid.uuid4())
    response = await client.post(
        RETRIEVE, json={"ids": [second, unknown, first, second]}, headers=tenant.auth
    )
    assert response.status == 200
    body = await response.json()
    assert [c["id"] for c in body["cards"]] == [second, first]
    assert body["missing"] == [unknown]


async def test_a_card_has_every_field_of_the_contract(client, tenant):
    [card_id] = await _create(client, tenant, "full")
    [card] = (await (await client.post(RETRIEVE, json={"ids": [card_id]}, headers=tenant.auth)).json())[
        "cards"
    ]
    assert set(card) == {
        *("id", "kind", "title", "content", "tags", "metadata", "content_hash"),
        *("usage_count", "created_at", "updated_at", "last_used_at"),
    }
    assert (card["kind"], card["title"], card["tags"], card["metadata"]) == ("note", "full", ["t"], {})
    assert (card["usage_count"], card["last_used_at"]) == (0, None)


async def test_another_tenants_cards_are_missing_as_if_they_did_not_exist(client, tenant, other_tenant):
    ids = await _create(client, tenant, "secret")
    response = await client.post(RETRIEVE, json={"ids": ids}, headers=other_tenant.auth)
    assert response.status == 200
    assert await response.json() == {"cards": [], "missing": ids}


async def test_a_malformed_id_is_a_422_with_its_index(client, tenant):
    response = await client.post(RETRIEVE, json={"ids": [str(uuid.uuid4()), "nope"]}, headers=tenant.auth)
    assert response.status == 422
    problem = await response.json()
    assert problem["type"] == "/problems/validation-error"
    assert [e["index"] for e in problem["errors"]] == [1]


async def test_retrieve_refuses_malformed_json_and_other_media_types(client, tenant):
    bad_json = await client.post(
        RETRIEVE, data=b"[", headers=tenant.auth | {"Content-Type": "application/json"}
    )
    assert bad_json.status == 400
    form = await client.post(RETRIEVE, data=b"ids=1", headers=tenant.auth | {"Content-Type": "text/plain"})
    assert form.status == 415
