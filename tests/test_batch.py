"""POST /api/v1/cards/batch: atomic creation, content dedup, idempotency, and the transport rules
(media type, size limit) that the gateway enforces before the body reaches SQL."""

from __future__ import annotations

import asyncio
import json

import psycopg

from .conftest import cards, raw_request

BATCH = "/api/v1/cards/batch"


async def test_a_batch_creates_cards_and_answers_201_with_one_entry_per_item(client, admin, tenant):
    response = await client.post(BATCH, json=cards("one", "two"), headers=tenant.auth)
    assert response.status == 201
    assert response.content_type == "application/json"
    body = await response.json()
    assert (body["created"], body["duplicates"]) == (2, 0)
    assert [(c["index"], c["status"]) for c in body["cards"]] == [(0, "created"), (1, "created")]
    assert all(len(c["content_hash"]) == 64 for c in body["cards"])
    assert admin.card_count(tenant) == 2
    assert "Idempotent-Replayed" not in response.headers


async def test_items_with_the_same_content_as_a_live_card_or_an_earlier_item_are_duplicates(client, tenant):
    first = await (await client.post(BATCH, json=cards("kept"), headers=tenant.auth)).json()
    body = await (await client.post(BATCH, json=cards("kept", "new", "new"), headers=tenant.auth)).json()
    assert [c["status"] for c in body["cards"]] == ["duplicate", "created", "duplicate"]
    assert body["cards"][0]["id"] == first["cards"][0]["id"]
    assert body["cards"][1]["id"] == body["cards"][2]["id"]
    assert (body["created"], body["duplicates"]) == (1, 2)


async def test_a_repeated_idempotency_key_replays_the_answer_byte_for_byte(client, admin, tenant):
    headers = tenant.auth | {"Idempotency-Key": "order-1"}
    first = await client.post(BATCH, json=cards("a", "b"), headers=headers)
    again = await client.post(BATCH, json=cards("a", "b"), headers=headers)
    assert (first.status, again.status) == (201, 201)
    assert await again.read() == await first.read()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert admin.card_count(tenant) == 2
    metrics = await (await client.get("/metrics")).text()
    assert 'cards_idempotency_requests_total{outcome="stored"} 1.0' in metrics
    assert 'cards_idempotency_requests_total{outcome="replayed"} 1.0' in metrics
    assert 'cards_batch_cards_total{status="created"} 2.0' in metrics


async def test_a_json_equal_body_and_a_quoted_key_count_as_the_same_request(client, tenant):
    first = await client.post(BATCH, json=cards("a"), headers=tenant.auth | {"Idempotency-Key": "k-2"})
    reordered = json.dumps({"cards": [{"content": {"text": "about a"}, "title": "a"}]}, indent=4)
    again = await client.post(
        BATCH,
        data=reordered,
        headers=tenant.auth | {"Idempotency-Key": '"k-2"', "Content-Type": "application/json"},
    )
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await again.read() == await first.read()


async def test_a_key_reused_with_a_different_body_is_422_and_writes_nothing(client, admin, tenant):
    headers = tenant.auth | {"Idempotency-Key": "k-3"}
    await client.post(BATCH, json=cards("a"), headers=headers)
    response = await client.post(BATCH, json=cards("b"), headers=headers)
    assert response.status == 422
    assert (await response.json())["type"] == "/problems/idempotency-key-reused"
    assert admin.card_count(tenant) == 1
    metrics = await (await client.get("/metrics")).text()
    assert 'cards_idempotency_requests_total{outcome="reused"} 1.0' in metrics


async def test_two_tenants_using_the_same_key_do_not_interact(client, admin, tenant, other_tenant):
    for who in (tenant, other_tenant):
        response = await client.post(
            BATCH, json=cards(who.id), headers=who.auth | {"Idempotency-Key": "same"}
        )
        assert response.status == 201
        assert "Idempotent-Replayed" not in response.headers
    assert admin.card_count(tenant) == admin.card_count(other_tenant) == 1


async def test_an_idempotency_key_sent_twice_is_400(client, tenant):
    headers = [*tenant.auth.items(), ("Idempotency-Key", "a"), ("Idempotency-Key", "b")]
    response = await client.post(BATCH, json=cards("a"), headers=headers)
    assert response.status == 400
    assert (await response.json())["type"] == "/problems/invalid-idempotency-key"


async def test_an_empty_or_overlong_idempotency_key_is_400(client, admin, tenant):
    for key in ["", '""', "k" * 256]:
        response = await client.post(BATCH, json=cards("a"), headers=tenant.auth | {"Idempotency-Key": key})
        assert response.status == 400, key
        assert (await response.json())["type"] == "/problems/invalid-idempotency-key"
    assert admin.card_count(tenant) == 0
    response = await client.post(BATCH, json=cards("a"), headers=tenant.auth | {"Idempotency-Key": "k" * 255})
    assert response.status == 201


async def test_an_idempotency_key_with_bytes_outside_ascii_is_400_not_a_server_error(client, tenant):
    body = json.dumps(cards("a")).encode()
    for key in [b"\xff", b"caf\xc3\xa9"]:
        head = (
            f"POST {BATCH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tenant.key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nIdempotency-Key: "
        ).encode()
        status, answer = await raw_request(client, head + key + b"\r\n\r\n", body)
        assert status == 400, key
        assert b"/problems/invalid-idempotency-key" in answer


async def test_twenty_concurrent_requests_with_one_key_create_exactly_one_set_of_cards(client, admin, tenant):
    headers = tenant.auth | {"Idempotency-Key": "burst"}
    responses = await asyncio.gather(
        *[client.post(BATCH, json=cards("x", "y", "z"), headers=headers) for _ in range(20)]
    )
    assert {r.status for r in responses} <= {201, 409}
    created = [r for r in responses if r.status == 201 and "Idempotent-Replayed" not in r.headers]
    assert len(created) == 1
    bodies = {await r.read() for r in responses if r.status == 201}
    assert len(bodies) == 1
    assert admin.card_count(tenant) == 3


async def test_a_key_still_in_use_after_the_bounded_wait_is_409_and_stays_usable(client, admin, tenant):
    # A trusted job holds the key in an open transaction; the HTTP request waits, then gives up.
    with psycopg.connect(admin.dsn) as job:
        job.execute(
            "SELECT * FROM cards.batch_create(%s, %s, 'busy')", (tenant.id, json.dumps(cards("a")["cards"]))
        )
        response = await client.post(
            BATCH, json=cards("a"), headers=tenant.auth | {"Idempotency-Key": "busy"}
        )
        assert response.status == 409
        assert response.headers["Retry-After"] == "1"
        assert (await response.json())["type"] == "/problems/idempotency-key-in-use"
        job.rollback()
    response = await client.post(BATCH, json=cards("a"), headers=tenant.auth | {"Idempotency-Key": "busy"})
    assert response.status == 201
    metrics = await (await client.get("/metrics")).text()
    assert 'cards_idempotency_requests_total{outcome="in_use"} 1.0' in metrics


async def test_a_failed_request_leaves_its_key_usable(client, tenant):
    headers = tenant.auth | {"Idempotency-Key": "retry-me"}
    assert (await client.post(BATCH, json={"cards": [{"title": ""}]}, headers=headers)).status == 422
    assert (await client.post(BATCH, json=cards("fixed"), headers=headers)).status == 201


async def test_invalid_items_are_all_listed_by_index_and_nothing_is_written(client, admin, tenant):
    body = {
        "cards": [{"title": "ok", "content": 1}, {"title": "", "content": 1}, {"content": 1, "colour": "red"}]
    }
    response = await client.post(BATCH, json=body, headers=tenant.auth)
    assert response.status == 422
    problem = await response.json()
    assert problem["type"] == "/problems/validation-error"
    assert {e["index"] for e in problem["errors"]} == {1, 2}
    assert all({"field", "message"} <= set(e) for e in problem["errors"])
    assert admin.card_count(tenant) == 0


async def test_a_nul_in_a_string_is_a_422_naming_the_item(client, admin, tenant):
    body = b'{"cards": [{"title": "fine", "content": 1}, {"title": "bad\\u0000title", "content": 1}]}'
    response = await client.post(BATCH, data=body, headers=tenant.auth | {"Content-Type": "application/json"})
    assert response.status == 422
    errors = (await response.json())["errors"]
    assert [(e["index"], e["field"]) for e in errors] == [(1, "title")]
    assert admin.card_count(tenant) == 0


async def test_malformed_json_is_400(client, tenant):
    for body in [b"{not json", b"", b'{"cards": [', b"\xff\xfe{}"]:
        response = await client.post(
            BATCH, data=body, headers=tenant.auth | {"Content-Type": "application/json"}
        )
        assert response.status == 400, body
        assert (await response.json())["type"] == "/problems/malformed-json"


async def test_a_body_that_is_not_application_json_is_415(client, tenant):
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/json; charset=latin-1",
    ]:
        response = await client.post(
            BATCH, data=json.dumps(cards("a")), headers=tenant.auth | {"Content-Type": content_type}
        )
        assert response.status == 415, content_type
        assert (await response.json())["type"] == "/problems/unsupported-media-type"
    response = await client.post(
        BATCH,
        data=json.dumps(cards("a")),
        headers=tenant.auth | {"Content-Type": "application/json; charset=UTF-8"},
    )
    assert response.status == 201


async def test_a_body_without_a_content_type_is_415(client, tenant):
    response = await client.post(BATCH, data=b'{"cards": []}', headers=tenant.auth)
    assert response.status == 415


async def test_a_declared_length_over_the_limit_is_413_before_the_body_is_sent(make_client, tenant):
    client = await make_client(max_body_bytes=4096)
    head = (
        f"POST {BATCH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tenant.key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {1 << 40}\r\n\r\n"
    )
    status, body = await raw_request(client, head, b'{"cards": [')
    assert status == 413
    assert json.loads(body)["type"] == "/problems/payload-too-large"


async def test_a_chunked_body_is_refused_with_413_once_it_passes_the_limit(make_client, tenant):
    client = await make_client(max_body_bytes=4096)
    head = (
        f"POST {BATCH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tenant.key}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"2000\r\n" + b" " * 0x2000 + b"\r\n"  # 8 KiB, and the body never ends
    status, body = await raw_request(client, head, chunk)
    assert status == 413
    assert json.loads(body)["type"] == "/problems/payload-too-large"


async def test_expect_100_continue_is_answered_413_without_inviting_a_body_over_the_limit(
    make_client, tenant
):
    client = await make_client(max_body_bytes=4096)
    head = (
        f"POST {BATCH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tenant.key}\r\n"
        "Content-Type: application/json\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n"
    )
    status, _ = await raw_request(client, head)
    assert status == 413


async def test_expect_100_continue_invites_a_body_within_the_limit(client, tenant):
    body = json.dumps(cards("a")).encode()
    head = (
        f"POST {BATCH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tenant.key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n"
    )
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(head.encode())
    assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5) == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(body)
    assert (await asyncio.wait_for(reader.readline(), 5)).startswith(b"HTTP/1.1 201")
    writer.close()


async def test_the_default_limit_is_8_mib(client, tenant):
    head = (
        f"POST {BATCH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tenant.key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {8 * 1024 * 1024 + 1}\r\n\r\n"
    )
    status, _ = await raw_request(client, head)
    assert status == 413


async def test_a_body_within_the_limit_reaches_the_database(make_client, tenant):
    client = await make_client(max_body_bytes=4096)
    body = json.dumps(cards("a")).encode().ljust(4096)  # JSON may end in white space
    response = await client.post(BATCH, data=body, headers=tenant.auth | {"Content-Type": "application/json"})
    assert response.status == 201
