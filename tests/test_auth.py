"""Who may call the API: 401 for bad credentials (always with WWW-Authenticate), 403 for a
suspended or unknown tenant."""

from __future__ import annotations

import asyncio
import uuid

import jwt
import pytest

from .conftest import cards, make_jwt, raw_request

RETRIEVE = "/api/v1/cards/retrieve"
NO_IDS = {"ids": [str(uuid.uuid4())]}


async def _refused(client, headers: dict, reason: str) -> dict:
    response = await client.post(RETRIEVE, json=NO_IDS, headers=headers)
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    problem = await response.json()
    assert problem["type"] == "/problems/unauthorized"
    metrics = await (await client.get("/metrics")).text()
    assert f'cards_auth_failures_total{{reason="{reason}"}} 1.0' in metrics
    return problem


async def test_a_live_api_key_is_accepted(client, tenant):
    response = await client.post(RETRIEVE, json=NO_IDS, headers=tenant.auth)
    assert response.status == 200


async def test_missing_authorization_is_401(client):
    await _refused(client, {}, "missing")


@pytest.mark.parametrize(
    "value",
    ["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "ck_0123", "Bearer ck_short", "Bearer not-a-token-at-all"],
)
async def test_a_malformed_authorization_header_is_401(client, value):
    await _refused(client, {"Authorization": value}, "malformed")


async def test_a_token_with_bytes_outside_ascii_is_401_not_a_server_error(client):
    for token in [b"\xff\xfe.abc.def", b"ck_\xc3\xa9", "é.é.é".encode()]:
        head = b"POST " + RETRIEVE.encode() + b" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token
        status, body = await raw_request(client, head + b"\r\nContent-Length: 0\r\n\r\n")
        assert status == 401, token
        assert b"/problems/unauthorized" in body


async def test_an_unknown_api_key_is_401(client):
    key = f"ck_{uuid.uuid4().hex}_{'A' * 43}"
    await _refused(client, {"Authorization": f"Bearer {key}"}, "revoked_or_unknown")


async def test_a_revoked_key_is_refused_once_the_cache_entry_expires(make_client, admin, tenant):
    client = await make_client(auth_cache_ttl_s=0.3)
    assert (await client.post(RETRIEVE, json=NO_IDS, headers=tenant.auth)).status == 200
    assert admin.revoke(tenant)
    await asyncio.sleep(0.4)
    await _refused(client, tenant.auth, "revoked_or_unknown")


async def test_revoking_one_key_leaves_the_tenants_other_keys_working(make_client, admin, tenant):
    client = await make_client(auth_cache_ttl_s=0)
    second = admin.new_key(tenant)
    admin.revoke(tenant)
    assert (await client.post(RETRIEVE, json=NO_IDS, headers=tenant.auth)).status == 401
    assert (await client.post(RETRIEVE, json=NO_IDS, headers=second.auth)).status == 200


async def test_a_valid_jwt_is_accepted(client, tenant):
    response = await client.post("/api/v1/cards/batch", json=cards("jwt"), headers=tenant.jwt())
    assert response.status == 201


async def test_an_expired_jwt_is_401(client, tenant):
    problem = await _refused(client, tenant.jwt(expires_in=-60), "expired")
    assert "expired" in problem["detail"]


async def test_a_jwt_expired_within_the_10_second_leeway_is_still_accepted(client, tenant):
    response = await client.post(RETRIEVE, json=NO_IDS, headers=tenant.jwt(expires_in=-5))
    assert response.status == 200


async def test_a_jwt_signed_with_another_secret_is_401(client, tenant):
    token = make_jwt(tenant.id, secret="some-other-secret-of-enough-length-0123")
    await _refused(client, {"Authorization": f"Bearer {token}"}, "invalid")


async def test_a_jwt_without_exp_is_401(client, tenant):
    await _refused(client, tenant.jwt(exp=None), "invalid")


@pytest.mark.parametrize("tenant_id", ["not-a-uuid", 42, None])
async def test_a_jwt_without_a_uuid_tenant_id_is_401(client, tenant_id):
    token = make_jwt(tenant_id)
    await _refused(client, {"Authorization": f"Bearer {token}"}, "invalid")


async def test_an_unsigned_jwt_is_401(client, tenant):
    token = jwt.encode({"tenant_id": tenant.id, "exp": 9999999999}, None, algorithm="none")
    await _refused(client, {"Authorization": f"Bearer {token}"}, "invalid")


async def test_jwts_are_refused_when_no_secret_is_configured(make_client, tenant):
    client = await make_client(jwt_secret=None)
    await _refused(client, tenant.jwt(), "invalid")


async def test_a_jwt_for_a_suspended_tenant_is_403(client, admin, tenant):
    admin.set_active(tenant, False)
    response = await client.post(RETRIEVE, json=NO_IDS, headers=tenant.jwt())
    assert response.status == 403
    assert (await response.json())["type"] == "/problems/forbidden"


async def test_an_api_key_of_a_suspended_tenant_is_403_until_it_is_reactivated(client, admin, tenant):
    admin.set_active(tenant, False)
    assert (await client.post(RETRIEVE, json=NO_IDS, headers=tenant.auth)).status == 403
    admin.set_active(tenant, True)
    assert (await client.post(RETRIEVE, json=NO_IDS, headers=tenant.auth)).status == 200


async def test_a_jwt_for_an_unknown_tenant_is_403(client):
    token = make_jwt(str(uuid.uuid4()))
    response = await client.post(
        "/api/v1/cards/batch", json=cards("x"), headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status == 403
    assert (await response.json())["type"] == "/problems/forbidden"


async def test_a_suspended_tenant_is_403_whatever_body_it_sends(client, admin, tenant):
    admin.set_active(tenant, False)
    headers = tenant.auth | {"Content-Type": "application/json"}
    for path in ["/api/v1/cards/batch", RETRIEVE, f"/api/v1/cards/{uuid.uuid4()}/usage"]:
        response = await client.post(path, data=b"{not json", headers=headers)
        assert response.status == 403, path
