"""Credentials in the hardening stage: scopes and expiry of API keys, JWT scopes, lifetimes, key
rotation by kid and public keys from a JWKS file, and refusing published or short secrets."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.config import Config, ConfigError

from .conftest import JWT_SECRET, ROOT, _issued, cards, create, make_jwt

RETRIEVE = "/api/v1/cards/retrieve"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hs256(header: dict, claims: dict, key: bytes) -> str:
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    return _issued(f"{signing_input}.{_b64(hmac.new(key, signing_input.encode(), hashlib.sha256).digest())}")


ANY_IDS = {"ids": [str(uuid.uuid4())]}


async def test_a_read_only_key_reads_and_is_refused_writes_with_insufficient_scope(client, admin, tenant):
    card_id = (await create(client, tenant, "a"))[0]
    reader = admin.new_key(tenant, scopes=["cards:read"])
    assert (await client.post(RETRIEVE, json={"ids": [card_id]}, headers=reader.auth)).status == 200
    assert (await client.get(f"/api/v1/cards/{card_id}", headers=reader.auth)).status == 200
    for method, path, body in [
        ("POST", "/api/v1/cards/batch", cards("b")),
        ("DELETE", f"/api/v1/cards/{card_id}", None),
        ("POST", f"/api/v1/cards/{card_id}/usage", {"workflow_id": "w", "run_id": "r"}),
    ]:
        response = await client.request(method, path, json=body, headers=reader.auth)
        assert response.status == 403, path
        problem = await response.json()
        assert problem["type"] == "/problems/insufficient-scope"
        assert "cards:read" in problem["detail"]
    assert admin.card_count(tenant) == 1


async def test_a_usage_only_key_reports_usage_and_reads_nothing(client, admin, tenant):
    card_id = (await create(client, tenant, "a"))[0]
    reporter = admin.new_key(tenant, scopes=["usage:write"])
    usage = {"workflow_id": "w", "run_id": "r"}
    assert (
        await client.post(f"/api/v1/cards/{card_id}/usage", json=usage, headers=reporter.auth)
    ).status == 200
    assert (await client.post(RETRIEVE, json={"ids": [card_id]}, headers=reporter.auth)).status == 403


async def test_an_expired_key_is_401_saying_so(make_client, admin, tenant):
    client = await make_client(auth_cache_ttl_s=4)
    soon = admin.new_key(tenant, expires_at=datetime.now(UTC) + timedelta(seconds=1.5))
    assert (await client.post(RETRIEVE, json=ANY_IDS, headers=soon.auth)).status == 200
    await asyncio.sleep(1.6)  # within the cache's 4 s: the cached entry does not outlive the key
    response = await client.post(RETRIEVE, json=ANY_IDS, headers=soon.auth)
    assert response.status == 401
    assert "expired" in (await response.json())["detail"]


async def test_list_api_keys_shows_when_a_key_was_last_used(client, admin, tenant):
    assert (await client.post(RETRIEVE, json=ANY_IDS, headers=tenant.auth)).status == 200
    keys = admin.conn.execute(
        "SELECT key_id, last_used_at FROM cards.list_api_keys(%s)", (tenant.id,)
    ).fetchall()
    used = {str(key_id): at for key_id, at in keys}[tenant.key_id]
    assert used is not None and (datetime.now(UTC) - used).total_seconds() < 60


async def test_a_jwt_scope_claim_limits_it_like_a_keys_scopes(client, tenant):
    reader = tenant.jwt(scope="cards:read")
    assert (await client.post(RETRIEVE, json=ANY_IDS, headers=reader)).status == 200
    response = await client.post("/api/v1/cards/batch", json=cards("a"), headers=reader)
    assert response.status == 403 and (await response.json())["type"] == "/problems/insufficient-scope"
    assert (await client.post("/api/v1/cards/batch", json=cards("a"), headers=tenant.jwt())).status == 201


async def test_a_jwt_whose_lifetime_is_over_the_maximum_is_401(make_client, tenant):
    client = await make_client(jwt_max_lifetime_s=3600)
    now = int(time.time())
    year_3000 = {"Authorization": f"Bearer {make_jwt(tenant.id, expires_in=(32503680000 - now))}"}
    long_lived = {"Authorization": f"Bearer {make_jwt(tenant.id, iat=now - 60, expires_in=3600)}"}
    fine = {"Authorization": f"Bearer {make_jwt(tenant.id, iat=now, expires_in=3000)}"}
    for headers in (year_3000, long_lived):
        response = await client.post(RETRIEVE, json=ANY_IDS, headers=headers)
        assert response.status == 401
        assert "lifetime" in (await response.json())["detail"]
    assert (await client.post(RETRIEVE, json=ANY_IDS, headers=fine)).status == 200


async def test_secrets_rotate_by_kid_without_downtime(make_client, tenant):
    old, new = "o" * 40, "n" * 40
    client = await make_client(jwt_secret=None, jwt_secrets={"2026-11": old, "2026-12": new})
    for kid, secret in [("2026-11", old), ("2026-12", new)]:
        token = make_jwt(tenant.id, secret=secret, headers={"kid": kid})
        assert (
            await client.post(RETRIEVE, json=ANY_IDS, headers={"Authorization": f"Bearer {token}"})
        ).status == 200
    crossed = make_jwt(tenant.id, secret=old, headers={"kid": "2026-12"})
    unknown = make_jwt(tenant.id, secret=new, headers={"kid": "2027-01"})
    no_kid = make_jwt(tenant.id, secret=new)
    for token in (crossed, unknown, no_kid):
        assert (
            await client.post(RETRIEVE, json=ANY_IDS, headers={"Authorization": f"Bearer {token}"})
        ).status == 401


async def test_es256_tokens_verify_against_a_jwks_file_and_nothing_else_does(make_client, tenant, tmp_path):
    private = ec.generate_private_key(ec.SECP256R1())
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private.public_key()))
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [public | {"kid": "idp-1", "alg": "ES256"}]}))
    client = await make_client(jwt_jwks_file=str(tmp_path / "jwks.json"))
    claims = {"tenant_id": tenant.id, "exp": int(time.time()) + 300}
    good = _issued(jwt.encode(claims, private, algorithm="ES256", headers={"kid": "idp-1"}))
    assert (
        await client.post(RETRIEVE, json=ANY_IDS, headers={"Authorization": f"Bearer {good}"})
    ).status == 200
    # The public key taken as an HMAC secret (algorithm confusion) does not verify. PyJWT will not sign
    # such a token, so it is put together here the way an attacker would.
    forged = _hs256({"alg": "HS256", "kid": "idp-1"}, claims, json.dumps(public).encode())
    assert (
        await client.post(RETRIEVE, json=ANY_IDS, headers={"Authorization": f"Bearer {forged}"})
    ).status == 401


async def test_audience_and_issuer_are_required_when_configured(make_client, tenant):
    client = await make_client(jwt_audience="cards-api", jwt_issuer="https://idp.example")
    right = make_jwt(tenant.id, aud="cards-api", iss="https://idp.example")
    wrong = make_jwt(tenant.id, aud="other-api", iss="https://idp.example")
    missing = make_jwt(tenant.id)
    assert (
        await client.post(RETRIEVE, json=ANY_IDS, headers={"Authorization": f"Bearer {right}"})
    ).status == 200
    for token in (wrong, missing):
        assert (
            await client.post(RETRIEVE, json=ANY_IDS, headers={"Authorization": f"Bearer {token}"})
        ).status == 401


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("short-secret", "at least 32 bytes"),
        ("dev-only-jwt-secret-change-me-0123456789", "published"),
        (JWT_SECRET, "published"),
    ],
)
def test_the_gateway_refuses_a_short_or_published_secret_outside_a_development_run(secret, message):
    env = {"DATABASE_URL": "postgresql://x@127.0.0.1/x", "CARDS_JWT_SECRET": secret}
    with pytest.raises(ConfigError, match=message):
        Config.from_env(env)
    assert Config.from_env(env | {"CARDS_DEV": "1"}).jwt_secret == secret


def test_the_compose_file_ships_no_usable_jwt_secret():
    compose = (ROOT / "docker-compose.yml").read_text()
    assert "dev-only-jwt-secret" not in compose
    assert "CARDS_JWT_SECRET: ${CARDS_JWT_SECRET:-}" in compose  # empty: JWTs are off
