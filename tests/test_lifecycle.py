"""One card's lifecycle: GET /api/v1/cards/{id} with its ETag, PATCH guarded by If-Match, soft
DELETE and POST …/restore; and for each route, a second tenant who must not reach the card."""

from __future__ import annotations

import json
import uuid

from .conftest import cards, create, raw_request
from .conftest import expect_problem as _problem

CARDS = "/api/v1/cards"
JSON = {"Content-Type": "application/json"}


async def _get(client, tenant, card_id: str) -> dict:
    response = await client.get(f"{CARDS}/{card_id}", headers=tenant.auth)
    assert response.status == 200, await response.text()
    return await response.json()


async def _patch(client, tenant, card_id: str, body, if_match: str | None = '"1"'):
    headers = tenant.auth if if_match is None else tenant.auth | {"If-Match": if_match}
    return await client.patch(f"{CARDS}/{card_id}", json=body, headers=headers)


async def _retrieve(client, tenant, card_id: str) -> dict:
    response = await client.post(f"{CARDS}/retrieve", json={"ids": [card_id]}, headers=tenant.auth)
    return await response.json()


async def _listed(client, tenant) -> list[str]:
    body = await (await client.get(CARDS, headers=tenant.auth)).json()
    return [card["id"] for card in body["cards"]]


# --- GET /api/v1/cards/{id} ---


async def test_a_card_is_answered_with_its_etag_and_the_document_retrieve_gives(client, tenant):
    [card_id] = await create(client, tenant, "read me", tags=["a"], metadata={"source": "wiki"})
    response = await client.get(f"{CARDS}/{card_id}", headers=tenant.auth)
    assert response.status == 200
    assert response.content_type == "application/json"
    assert response.headers["ETag"] == '"1"'
    card = await response.json()
    assert card == (await _retrieve(client, tenant, card_id))["cards"][0]
    assert (card["id"], card["title"], card["tags"], card["metadata"]) == (
        card_id,
        "read me",
        ["a"],
        {"source": "wiki"},
    )


async def test_an_unknown_or_malformed_card_id_is_404(client, tenant):
    for card_id in [str(uuid.uuid4()), "not-a-uuid", "%00", "%FF%FE", "x%00y", "é", "12345"]:
        response = await client.get(f"{CARDS}/{card_id}", headers=tenant.auth)
        await _problem(response, 404, "not-found")


async def test_another_tenants_card_is_404_to_get(client, tenant, other_tenant):
    [card_id] = await create(client, tenant, "mine")
    await _problem(await client.get(f"{CARDS}/{card_id}", headers=other_tenant.auth), 404, "not-found")


async def test_a_query_parameter_a_card_route_does_not_define_is_422_naming_it(client, tenant):
    [card_id] = await create(client, tenant, "a")
    for response in [
        await client.get(f"{CARDS}/{card_id}?fields=title", headers=tenant.auth),
        await client.patch(
            f"{CARDS}/{card_id}?fields=title", json={}, headers=tenant.auth | {"If-Match": "*"}
        ),
        await client.delete(f"{CARDS}/{card_id}?fields=title", headers=tenant.auth),
        await client.post(f"{CARDS}/{card_id}/restore?fields=title", headers=tenant.auth),
    ]:
        problem = await _problem(response, 422, "validation-error")
        assert problem["errors"] == [{"field": "fields", "message": "is not a parameter of this route"}]
    assert (await _get(client, tenant, card_id))["title"] == "a"


async def test_the_post_routes_beside_a_card_are_not_card_ids(client, tenant):
    for method, path in [("GET", "batch"), ("DELETE", "retrieve"), ("PATCH", "batch")]:
        response = await client.request(method, f"{CARDS}/{path}", headers=tenant.auth)
        await _problem(response, 405, "method-not-allowed")
        assert response.headers["Allow"] == "POST"


# --- PATCH /api/v1/cards/{id} ---


async def test_a_patch_with_the_current_etag_replaces_the_named_fields_and_bumps_the_etag(client, tenant):
    [card_id] = await create(client, tenant, "before", tags=["old"], metadata={"keep": True})
    before = await _get(client, tenant, card_id)
    response = await _patch(client, tenant, card_id, {"title": "after", "tags": ["new", "tags"]})
    assert response.status == 200
    assert response.headers["ETag"] == '"2"'
    card = await response.json()
    assert (card["title"], card["tags"]) == ("after", ["new", "tags"])
    unchanged = ("id", "kind", "content", "metadata", "created_at", "usage_count")
    assert {k: card[k] for k in unchanged} == {k: before[k] for k in unchanged}
    assert card["updated_at"] > before["updated_at"]
    assert await _get(client, tenant, card_id) == card


async def test_a_content_change_rehashes_so_a_batch_with_that_content_is_its_duplicate(client, tenant):
    [card_id] = await create(client, tenant, "fact")
    before = await _get(client, tenant, card_id)
    card = await (await _patch(client, tenant, card_id, {"content": {"text": "corrected"}})).json()
    assert card["content_hash"] != before["content_hash"]
    body = {"cards": [{"title": "fact", "content": {"text": "corrected"}}]}
    batch = await (await client.post(f"{CARDS}/batch", json=body, headers=tenant.auth)).json()
    assert batch["cards"][0] == {
        "index": 0,
        "id": card_id,
        "status": "duplicate",
        "content_hash": card["content_hash"],
    }


async def test_a_tags_or_metadata_change_keeps_the_content_hash(client, tenant):
    [card_id] = await create(client, tenant, "stable")
    before = await _get(client, tenant, card_id)
    card = await (await _patch(client, tenant, card_id, {"tags": ["x"], "metadata": {"y": 1}})).json()
    assert card["content_hash"] == before["content_hash"]
    assert (card["tags"], card["metadata"]) == (["x"], {"y": 1})


async def test_a_patch_without_if_match_is_428_and_changes_nothing(client, tenant):
    [card_id] = await create(client, tenant, "guarded")
    response = await _patch(client, tenant, card_id, {"title": "lost update"}, if_match=None)
    await _problem(response, 428, "precondition-required")
    assert (await _get(client, tenant, card_id))["title"] == "guarded"


async def test_a_patch_with_a_stale_etag_is_412_and_changes_nothing(client, tenant):
    [card_id] = await create(client, tenant, "v1")
    assert (await _patch(client, tenant, card_id, {"title": "v2"}, if_match='"1"')).status == 200
    response = await _patch(client, tenant, card_id, {"title": "from a stale read"}, if_match='"1"')
    await _problem(response, 412, "precondition-failed")
    assert (await _get(client, tenant, card_id))["title"] == "v2"


async def test_if_match_star_or_a_list_naming_the_current_etag_matches(client, tenant):
    [card_id] = await create(client, tenant, "v1")
    assert (await _patch(client, tenant, card_id, {"title": "v2"}, if_match="*")).status == 200
    assert (await _patch(client, tenant, card_id, {"title": "v3"}, if_match='"7", "2"')).status == 200
    headers = [*tenant.auth.items(), ("If-Match", '"1"'), ("If-Match", '"3"')]  # two field lines: one list
    response = await client.patch(f"{CARDS}/{card_id}", json={"title": "v4"}, headers=headers)
    assert response.status == 200
    assert response.headers["ETag"] == '"4"'


async def test_a_weak_or_unreadable_if_match_is_412(client, tenant):
    [card_id] = await create(client, tenant, "strong")
    await _problem(
        await _patch(client, tenant, card_id, {"title": "x"}, if_match='W/"1"'), 412, "precondition-failed"
    )
    body = b'{"title": "x"}'
    head = (
        f"PATCH {CARDS}/{card_id} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tenant.key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nIf-Match: "
    ).encode()
    status, answer = await raw_request(client, head + b'"1\xff"\r\n\r\n', body)
    assert status == 412
    assert b"/problems/precondition-failed" in answer
    assert (await _get(client, tenant, card_id))["title"] == "strong"


async def test_a_patch_that_would_duplicate_another_live_card_is_409(client, tenant):
    _, second = await create(client, tenant, "one", "two")
    response = await _patch(client, tenant, second, {"title": "one", "content": {"text": "about one"}})
    await _problem(response, 409, "duplicate-card")
    assert (await _get(client, tenant, second))["title"] == "two"


async def test_an_invalid_patch_is_422_naming_every_broken_field(client, tenant):
    [card_id] = await create(client, tenant, "valid")
    response = await _patch(client, tenant, card_id, {"title": "", "kind": "Not A Kind", "tags": "x"})
    problem = await _problem(response, 422, "validation-error")
    assert {e["field"] for e in problem["errors"]} == {"title", "kind", "tags"}
    assert all("index" not in e for e in problem["errors"])
    assert (await _get(client, tenant, card_id))["title"] == "valid"


async def test_an_unknown_field_in_a_patch_is_422_naming_it(client, tenant):
    [card_id] = await create(client, tenant, "a")
    problem = await _problem(
        await _patch(client, tenant, card_id, {"colour": "red"}), 422, "validation-error"
    )
    assert [e["field"] for e in problem["errors"]] == ["colour"]


async def test_a_null_field_or_a_nul_in_a_patch_is_422(client, tenant):
    [card_id] = await create(client, tenant, "a")
    problem = await _problem(
        await _patch(client, tenant, card_id, {"content": None}), 422, "validation-error"
    )
    assert [e["field"] for e in problem["errors"]] == ["content"]
    headers = tenant.auth | JSON | {"If-Match": '"1"'}
    response = await client.patch(f"{CARDS}/{card_id}", data=b'{"title": "a\\u0000b"}', headers=headers)
    problem = await _problem(response, 422, "validation-error")
    assert [e["field"] for e in problem["errors"]] == ["title"]


async def test_a_patch_body_that_is_not_a_json_object_is_422(client, tenant):
    [card_id] = await create(client, tenant, "a")
    for body in [[], "title", 1]:
        await _problem(await _patch(client, tenant, card_id, body), 422, "validation-error")


async def test_a_malformed_patch_body_is_400(client, tenant):
    [card_id] = await create(client, tenant, "a")
    headers = tenant.auth | JSON | {"If-Match": '"1"'}
    response = await client.patch(f"{CARDS}/{card_id}", data=b'{"title": ', headers=headers)
    await _problem(response, 400, "malformed-json")


async def test_a_patch_not_sent_as_application_json_is_415_merge_patch_included(client, tenant):
    [card_id] = await create(client, tenant, "a")
    for media in ["application/merge-patch+json", "text/plain", "application/json; charset=latin-1"]:
        headers = tenant.auth | {"Content-Type": media, "If-Match": '"1"'}
        response = await client.patch(f"{CARDS}/{card_id}", data=b'{"title": "b"}', headers=headers)
        await _problem(response, 415, "unsupported-media-type")
    assert (await _get(client, tenant, card_id))["title"] == "a"


async def test_a_patch_that_changes_nothing_keeps_the_etag(client, tenant):
    [card_id] = await create(client, tenant, "same", tags=["t"])
    before = await _get(client, tenant, card_id)
    for body in [{}, {"title": "same", "tags": ["t"]}]:
        response = await _patch(client, tenant, card_id, body)
        assert response.status == 200
        assert response.headers["ETag"] == '"1"'
        assert await response.json() == before


async def test_another_tenants_card_is_404_to_patch_and_unchanged(client, tenant, other_tenant):
    [card_id] = await create(client, tenant, "mine")
    await _problem(
        await _patch(client, other_tenant, card_id, {"title": "theirs"}, if_match="*"), 404, "not-found"
    )
    assert (await _get(client, tenant, card_id))["title"] == "mine"


# --- DELETE /api/v1/cards/{id} ---


async def test_delete_is_204_without_a_body_and_the_card_leaves_get_retrieve_and_listing(client, tenant):
    kept, gone = await create(client, tenant, "kept", "gone")
    response = await client.delete(f"{CARDS}/{gone}", headers=tenant.auth)
    assert response.status == 204
    assert await response.read() == b""
    await _problem(await client.get(f"{CARDS}/{gone}", headers=tenant.auth), 404, "not-found")
    retrieved = await _retrieve(client, tenant, gone)
    assert (retrieved["cards"], retrieved["missing"]) == ([], [gone])
    assert await _listed(client, tenant) == [kept]


async def test_deleting_a_deleted_or_unknown_card_is_404(client, tenant):
    [card_id] = await create(client, tenant, "once")
    assert (await client.delete(f"{CARDS}/{card_id}", headers=tenant.auth)).status == 204
    for target in [card_id, str(uuid.uuid4()), "not-a-uuid"]:
        await _problem(await client.delete(f"{CARDS}/{target}", headers=tenant.auth), 404, "not-found")


async def test_after_a_delete_a_batch_with_the_same_content_creates_a_new_card(client, tenant):
    [old] = await create(client, tenant, "recreated")
    await client.delete(f"{CARDS}/{old}", headers=tenant.auth)
    body = await (await client.post(f"{CARDS}/batch", json=cards("recreated"), headers=tenant.auth)).json()
    assert body["cards"][0]["status"] == "created"
    assert body["cards"][0]["id"] != old


async def test_a_deleted_card_cannot_be_patched_or_used(client, tenant):
    [card_id] = await create(client, tenant, "retired")
    await client.delete(f"{CARDS}/{card_id}", headers=tenant.auth)
    await _problem(await _patch(client, tenant, card_id, {"title": "x"}, if_match="*"), 404, "not-found")
    report = {"workflow_id": "w", "run_id": "r"}
    response = await client.post(f"{CARDS}/{card_id}/usage", json=report, headers=tenant.auth)
    await _problem(response, 404, "not-found")


async def test_another_tenants_card_is_404_to_delete_and_stays_live(client, tenant, other_tenant):
    [card_id] = await create(client, tenant, "mine")
    await _problem(await client.delete(f"{CARDS}/{card_id}", headers=other_tenant.auth), 404, "not-found")
    assert (await _get(client, tenant, card_id))["id"] == card_id


# --- POST /api/v1/cards/{id}/restore ---


async def test_restore_brings_a_deleted_card_back_with_a_new_etag(client, tenant):
    [card_id] = await create(client, tenant, "back")
    await client.delete(f"{CARDS}/{card_id}", headers=tenant.auth)
    response = await client.post(f"{CARDS}/{card_id}/restore", headers=tenant.auth)
    assert response.status == 200
    assert response.headers["ETag"] == '"3"'  # created 1, deleted 2, restored 3
    card = await response.json()
    assert card == await _get(client, tenant, card_id)
    assert (await _retrieve(client, tenant, card_id))["cards"] == [card]
    assert await _listed(client, tenant) == [card_id]


async def test_restoring_a_live_card_answers_it_as_it_is(client, tenant):
    [card_id] = await create(client, tenant, "alive")
    before = await _get(client, tenant, card_id)
    response = await client.post(f"{CARDS}/{card_id}/restore", json={"ignored": True}, headers=tenant.auth)
    assert response.status == 200
    assert response.headers["ETag"] == '"1"'
    assert await response.json() == before


async def test_restore_is_409_when_a_live_duplicate_exists_now_and_the_card_stays_deleted(client, tenant):
    [old] = await create(client, tenant, "twin")
    await client.delete(f"{CARDS}/{old}", headers=tenant.auth)
    [new] = await create(client, tenant, "twin")
    response = await client.post(f"{CARDS}/{old}/restore", headers=tenant.auth)
    await _problem(response, 409, "duplicate-card")
    await _problem(await client.get(f"{CARDS}/{old}", headers=tenant.auth), 404, "not-found")
    assert await _listed(client, tenant) == [new]


async def test_restoring_an_unknown_or_malformed_card_is_404(client, tenant):
    for card_id in [str(uuid.uuid4()), "not-a-uuid", "%00"]:
        await _problem(await client.post(f"{CARDS}/{card_id}/restore", headers=tenant.auth), 404, "not-found")


async def test_another_tenants_card_is_404_to_restore_and_stays_deleted(client, tenant, other_tenant):
    [card_id] = await create(client, tenant, "mine")
    await client.delete(f"{CARDS}/{card_id}", headers=tenant.auth)
    response = await client.post(f"{CARDS}/{card_id}/restore", headers=other_tenant.auth)
    await _problem(response, 404, "not-found")
    await _problem(await client.get(f"{CARDS}/{card_id}", headers=tenant.auth), 404, "not-found")


# --- every route: credentials, round trips, metrics ---


async def test_every_lifecycle_route_needs_credentials(client, tenant):
    [card_id] = await create(client, tenant, "a")
    for method, path in [
        ("GET", f"{CARDS}/{card_id}"),
        ("PATCH", f"{CARDS}/{card_id}"),
        ("DELETE", f"{CARDS}/{card_id}"),
        ("POST", f"{CARDS}/{card_id}/restore"),
        ("GET", f"{CARDS}/{card_id}/usage"),
        ("GET", CARDS),
        ("GET", "/api/v1/usage/summary"),
    ]:
        response = await client.request(method, path)
        await _problem(response, 401, "unauthorized")
        assert response.headers["WWW-Authenticate"] == "Bearer"
    assert (await _get(client, tenant, card_id))["title"] == "a"


async def test_a_suspended_tenant_is_403_on_the_lifecycle_routes(client, admin, tenant):
    [card_id] = await create(client, tenant, "a")
    admin.set_active(tenant, False)
    for method, path in [("GET", f"{CARDS}/{card_id}"), ("GET", CARDS), ("DELETE", f"{CARDS}/{card_id}")]:
        response = await client.request(method, path, headers=tenant.jwt())  # a JWT is not cached
        await _problem(response, 403, "forbidden")


async def test_each_lifecycle_request_is_one_database_round_trip(make_client, database, proxy, tenant):
    client = await make_client(database_url=proxy.route(database), pool_min=1, pool_max=1)
    headers = tenant.jwt()  # a JWT needs no lookup

    async def one_of_each(n: int) -> None:
        batch = await client.post(f"{CARDS}/batch", json=cards(f"c{n}"), headers=headers)
        card_id = (await batch.json())["cards"][0]["id"]
        await client.get(f"{CARDS}/{card_id}", headers=headers)
        await client.patch(f"{CARDS}/{card_id}", json={"tags": ["t"]}, headers=headers | {"If-Match": '"1"'})
        await client.delete(f"{CARDS}/{card_id}", headers=headers)
        await client.post(f"{CARDS}/{card_id}/restore", headers=headers)
        await client.get(f"{CARDS}/{card_id}/usage", headers=headers)
        await client.get(f"{CARDS}?tag=t&limit=1", headers=headers)
        await client.get("/api/v1/usage/summary", headers=headers)

    await one_of_each(0)  # the connection prepares each statement once
    before = proxy.sent.copy()
    for n in range(1, 4):
        await one_of_each(n)
    sent = {kind: proxy.sent[kind] - before[kind] for kind in proxy.sent if proxy.sent[kind] != before[kind]}
    assert sent == {"B": 24, "E": 24, "S": 24}  # per request: Bind, Execute, Sync


async def test_metrics_label_the_lifecycle_routes_by_their_templates(client, tenant):
    [card_id] = await create(client, tenant, "a")
    await client.get(f"{CARDS}/{card_id}", headers=tenant.auth)
    await client.patch(f"{CARDS}/{card_id}", json={}, headers=tenant.auth)
    await client.delete(f"{CARDS}/{card_id}", headers=tenant.auth)
    await client.post(f"{CARDS}/{card_id}/restore", headers=tenant.auth)
    await client.get(f"{CARDS}/{card_id}/usage", headers=tenant.auth)
    await client.get(f"{CARDS}?limit=0", headers=tenant.auth)
    await client.get("/api/v1/usage/summary", headers=tenant.auth)
    text = await (await client.get("/metrics")).text()
    for method, route, status in [
        ("GET", "/api/v1/cards/{id}", 200),
        ("PATCH", "/api/v1/cards/{id}", 428),
        ("DELETE", "/api/v1/cards/{id}", 204),
        ("POST", "/api/v1/cards/{id}/restore", 200),
        ("GET", "/api/v1/cards/{id}/usage", 200),
        ("GET", "/api/v1/cards", 422),
        ("GET", "/api/v1/usage/summary", 200),
    ]:
        assert f'cards_http_requests_total{{method="{method}",route="{route}",status="{status}"}} 1.0' in text
    assert card_id not in text


async def test_the_openapi_document_describes_etag_if_match_and_the_lifecycle_problems(client):
    spec = await (await client.get("/openapi.json")).json()
    card = spec["paths"]["/api/v1/cards/{id}"]
    assert set(card) == {"get", "patch", "delete"}
    assert "ETag" in card["get"]["responses"]["200"]["headers"]
    assert {"$ref": "#/components/parameters/IfMatch"} in card["patch"]["parameters"]
    assert {"200", "404", "409", "412", "415", "422", "428"} <= set(card["patch"]["responses"])
    assert set(card["delete"]["responses"]) >= {"204", "404"}
    assert "409" in spec["paths"]["/api/v1/cards/{id}/restore"]["post"]["responses"]
    listing = [p["$ref"].rsplit("/", 1)[1] for p in spec["paths"]["/api/v1/cards"]["get"]["parameters"]]
    assert listing == ["TraceId", "Kind", "Tag", "Contains", "Q", "Limit", "Cursor"]
    assert json.dumps(spec).count("application/merge-patch+json") >= 1
