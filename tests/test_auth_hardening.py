"""Credentials under attack: API keys carry at least 128 random bits, failed authentications are
counted and throttled per client address, and no key or token ever reaches a log line."""

from __future__ import annotations

import asyncio
import base64
import re
import signal
import uuid

import aiohttp
import pytest

from gateway.auth import Throttle, address_prefix
from gateway.config import Config, ConfigError
from gateway.routes import SPEC

from .conftest import cards, free_port, hold_key, make_jwt, process_env, start_gateway_process

RETRIEVE = "/api/v1/cards/retrieve"
ANY_IDS = {"ids": [str(uuid.uuid4())]}
KEYS = 2000


def _unknown_key() -> dict[str, str]:
    return {"Authorization": f"Bearer ck_{uuid.uuid4().hex}_{'A' * 43}"}


# --- key entropy ---


def test_an_api_keys_secret_carries_244_random_bits(admin):
    """The secret is two v4 UUIDs (gen_random_uuid: the server's strong random source) in base64url:
    256 bits of which 2 × 6 are fixed (version 4, variant 10), so 244 vary, well over 128."""
    tenant = admin.tenant("entropy")
    keys = [
        key
        for (key,) in admin.conn.execute(
            "SELECT k.api_key FROM generate_series(1, %s) AS n, cards.create_api_key(%s, 'key ' || n) AS k",
            (KEYS, tenant.id),
        )
    ]
    prefix = f"ck_{uuid.UUID(tenant.id).hex}_"
    secrets = [key.removeprefix(prefix) for key in keys]
    assert all(key.startswith(prefix) for key in keys)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{43}", secret) for secret in secrets)
    assert len(set(secrets)) == KEYS
    raw = [base64.urlsafe_b64decode(secret + "=") for secret in secrets]
    assert {len(value) for value in raw} == {32}
    ones = [sum(value[bit // 8] >> (7 - bit % 8) & 1 for value in raw) for bit in range(256)]
    fixed = {bit: ones[bit] // KEYS for bit in range(256) if ones[bit] in (0, KEYS)}
    version, variant = {48: 0, 49: 1, 50: 0, 51: 0}, {64: 1, 65: 0}  # bits of each 16-byte UUID
    assert fixed == {bit + half: value for half in (0, 128) for bit, value in (version | variant).items()}
    spread = 6 * (KEYS * 0.25) ** 0.5  # six standard deviations of a fair coin's count of ones
    varying = [n for bit, n in enumerate(ones) if bit not in fixed]
    assert len(varying) == 244
    assert all(abs(n - KEYS / 2) < spread for n in varying)


# --- failures counted and throttled ---


async def _metric(client, reason: str) -> float:
    text = await (await client.get("/metrics")).text()
    return float(re.search(rf'cards_auth_failures_total{{reason="{reason}"}} (\S+)', text).group(1))


async def test_every_failed_authentication_is_counted_by_reason_and_nothing_else_is(
    make_client, admin, tenant
):
    client = await make_client(auth_cache_ttl_s=0)
    revoked = admin.new_key(tenant)
    admin.revoke(revoked)
    sent = {
        "missing": [{}],
        "malformed": [{"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer ck_short"}],
        "invalid": [{"Authorization": f"Bearer {make_jwt(tenant.id, secret='x' * 40)}"}],
        "expired": [tenant.jwt(expires_in=-60)],
        "revoked_or_unknown": [_unknown_key(), revoked.auth, _unknown_key()],
    }
    for headers in [tenant.auth, tenant.jwt()]:  # successes
        assert (await client.post(RETRIEVE, json=ANY_IDS, headers=headers)).status == 200
    admin.set_active(tenant, False)
    assert (await client.post(RETRIEVE, json=ANY_IDS, headers=tenant.jwt())).status == 403  # not a 401
    for attempts in sent.values():
        for headers in attempts:
            assert (await client.post(RETRIEVE, json=ANY_IDS, headers=headers)).status == 401
    assert {reason: await _metric(client, reason) for reason in sent} == {
        reason: float(len(attempts)) for reason, attempts in sent.items()
    }


async def test_a_throttled_address_gets_429_for_its_failed_attempts_only(make_client, tenant):
    client = await make_client(auth_failure_limit=5, auth_failure_window_s=60)
    for _ in range(5):
        assert (await client.post(RETRIEVE, json=ANY_IDS, headers=_unknown_key())).status == 401
    response = await client.post(RETRIEVE, json=ANY_IDS, headers=_unknown_key())
    assert response.status == 429
    assert response.content_type == "application/problem+json"
    assert (await response.json())["type"] == "/problems/rate-limited"
    assert 55 <= int(response.headers["Retry-After"]) <= 60
    assert await _metric(client, "revoked_or_unknown") == 6


async def test_valid_credentials_are_served_from_an_address_throttled_for_others_failures(
    make_client, admin, tenant
):
    """Behind a NAT or a proxy, one client's failures must not lock out every tenant."""
    client = await make_client(auth_failure_limit=3, auth_failure_window_s=60, auth_cache_ttl_s=0)
    for _ in range(10):
        await client.post(RETRIEVE, json=ANY_IDS, headers=_unknown_key())
    fresh = admin.new_key(tenant)  # never seen by this gateway: looked up while throttled
    for headers in [tenant.auth, tenant.jwt(), fresh.auth]:
        assert (await client.post(RETRIEVE, json=ANY_IDS, headers=headers)).status == 200


async def test_a_throttled_address_gets_401_again_once_its_window_passes(make_client, tenant):
    client = await make_client(auth_failure_limit=3, auth_failure_window_s=0.5)
    for _ in range(3):
        await client.post(RETRIEVE, json=ANY_IDS, headers=_unknown_key())
    assert (await client.post(RETRIEVE, json=ANY_IDS, headers=_unknown_key())).status == 429
    await asyncio.sleep(0.6)
    assert (await client.post(RETRIEVE, json=ANY_IDS, headers=_unknown_key())).status == 401


async def test_the_throttle_leaves_other_client_addresses_alone(make_client, tenant):
    client = await make_client(auth_failure_limit=3, auth_failure_window_s=60)
    for _ in range(3):
        await client.post(RETRIEVE, json=ANY_IDS, headers=_unknown_key())
    assert (await client.post(RETRIEVE, json=ANY_IDS, headers=_unknown_key())).status == 429
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))  # another address on the loopback
    async with aiohttp.ClientSession(connector=connector) as other:
        async with other.post(client.make_url(RETRIEVE), json=ANY_IDS, headers=_unknown_key()) as response:
            assert response.status == 401


async def test_a_failure_limit_of_0_turns_the_throttle_off(make_client, tenant):
    client = await make_client(auth_failure_limit=0)
    for _ in range(40):
        assert (await client.post(RETRIEVE, json=ANY_IDS, headers=_unknown_key())).status == 401


async def test_forwarded_for_is_believed_only_from_a_trusted_proxy(make_client):
    """The proxy at 127.0.0.1 names the client; a client cannot pick its own address by the header."""
    trusting = await make_client(auth_failure_limit=3, trusted_proxies=("127.0.0.1/32",))
    for _ in range(3):
        await trusting.post(
            RETRIEVE, json=ANY_IDS, headers=_unknown_key() | {"X-Forwarded-For": "203.0.113.5"}
        )
    behind = {"X-Forwarded-For": "198.51.100.7, 203.0.113.5"}  # forged left part, real right part
    assert (await trusting.post(RETRIEVE, json=ANY_IDS, headers=_unknown_key() | behind)).status == 429
    other = {"X-Forwarded-For": "203.0.113.6"}
    assert (await trusting.post(RETRIEVE, json=ANY_IDS, headers=_unknown_key() | other)).status == 401

    untrusting = await make_client(auth_failure_limit=3)
    for n in range(3):
        forged = {"X-Forwarded-For": f"203.0.113.{n}"}  # ignored: all count against 127.0.0.1
        await untrusting.post(RETRIEVE, json=ANY_IDS, headers=_unknown_key() | forged)
    assert (await untrusting.post(RETRIEVE, json=ANY_IDS, headers=_unknown_key())).status == 429


async def test_failed_lookups_count_when_the_database_cannot_answer(make_client, database, proxy):
    """A flood that breaks the key lookup is throttled like one that fails it."""
    client = await make_client(database_url=proxy.route(database), auth_failure_limit=3, pool_timeout_s=0.5)
    await proxy.cut()
    for _ in range(3):
        assert (await client.post(RETRIEVE, json=ANY_IDS, headers=_unknown_key())).status == 503
    assert (await client.post(RETRIEVE, json=ANY_IDS, headers={"Authorization": "Bearer ck_x"})).status == 429


def test_ipv6_failures_count_against_the_clients_64_and_ipv4_against_its_address():
    assert (
        address_prefix("2001:db8:1:2:aaaa::1")
        == address_prefix("2001:db8:1:2:ffff::9")
        == "2001:db8:1:2::/64"
    )
    assert address_prefix("2001:db8:1:3::1") != address_prefix("2001:db8:1:2::1")
    assert address_prefix("192.0.2.1") == "192.0.2.1/32" != address_prefix("192.0.2.2")
    assert address_prefix("::ffff:192.0.2.1") == "192.0.2.1/32"


def test_the_throttle_remembers_at_most_its_size_of_addresses():
    throttle = Throttle(limit=2, window=60, size=100)
    for n in range(10_000):
        throttle.failed(f"10.0.{n // 256}.{n % 256}")
    assert len(throttle) == 100
    throttle.failed("10.0.39.15")  # among the 100 most recent: its second failure
    assert throttle.retry_after("10.0.39.15") is not None
    assert throttle.retry_after("10.0.0.1") is None  # forgotten


# --- no credential in any log line ---


async def _raw(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(5):
            return await reader.read(65536)
    finally:
        writer.close()


async def test_no_key_or_token_reaches_the_gateways_log_even_at_debug(database, admin, tmp_path):
    """`python -m gateway` at DEBUG through a representative sequence: good, unknown, malformed and
    revoked keys, good and bad JWTs, a suspended tenant, malformed requests that aiohttp's parser
    quotes in its errors, a database timeout, the throttle; then no credential may be in its output."""
    tenant, suspended = admin.tenant("logs"), admin.tenant("logs, suspended")
    revoked = admin.new_key(tenant)
    admin.revoke(revoked)
    admin.set_active(suspended, False)
    good_jwt, bad_jwt = make_jwt(tenant.id), make_jwt(tenant.id, secret="y" * 40)
    expired_jwt = make_jwt(tenant.id, expires_in=-60)
    unknown = f"ck_{uuid.UUID(tenant.id).hex}_{'B' * 43}"
    basic = base64.b64encode(b"user:hunter2-password").decode()
    secrets = [tenant.key, revoked.key, suspended.key, unknown, good_jwt, bad_jwt, expired_jwt, basic]

    port, log = free_port(), tmp_path / "gateway.log"
    env = process_env(
        database,
        port,
        CARDS_LOG_LEVEL="DEBUG",
        CARDS_AUTH_CACHE_TTL_S="0",
        CARDS_STATEMENT_TIMEOUT_MS="300",
        CARDS_AUTH_FAILURE_LIMIT="40",
    )
    process = await start_gateway_process(env, log)
    try:
        base = f"http://127.0.0.1:{port}"
        statuses = []
        async with aiohttp.ClientSession() as http:

            async def call(token: str | None, path: str = RETRIEVE, scheme: str = "Bearer", **kwargs) -> None:
                headers = {"Authorization": f"{scheme} {token}"} if token else {}
                if "data" not in kwargs:
                    kwargs.setdefault("json", ANY_IDS)
                async with http.post(base + path, headers=headers | kwargs.pop("headers", {}), **kwargs) as r:
                    statuses.append(r.status)

            for token in [tenant.key, tenant.key, good_jwt, suspended.key, unknown, "ck_short", revoked.key]:
                await call(token)
            for token in [bad_jwt, expired_jwt, None]:
                await call(token)
            await call(basic, scheme="Basic")
            await call(tenant.key, f"/api/v1/cards/{uuid.uuid4()}/restore")  # 404
            await call(tenant.key, "/api/v1/cards/batch", data=b"{", headers={"Content-Type": "text/plain"})
            await call(tenant.key, f"/api/v1/cards/batch?token={tenant.key}", json={"cards": []})
            job = hold_key(admin, tenant, "held")  # a statement that times out: 504, logged as a warning
            try:
                held = {"Idempotency-Key": "held"}
                await call(tenant.key, "/api/v1/cards/batch", headers=held, json=cards("a"))
            finally:
                job.rollback()
                job.close()
            head = b"POST /api/v1/cards/retrieve HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
            for line in [
                b"Authorization: Bearer " + tenant.key.encode() + b"\x01\r\n",  # a control character
                b"Authorization : Bearer " + good_jwt.encode() + b"\r\n",  # space before the colon
                b"Authorization: Bearer " + tenant.key.encode() * 120 + b"\r\n",  # a field over 8 KiB
                b"Authorization: Basic " + basic.encode() + b"\x7f\r\n",
            ]:
                statuses.append(int((await _raw(port, head + line + b"\r\n")).split(b" ", 2)[1]))
            statuses.append(int((await _raw(port, f"GET /{tenant.key}\0 HTTP/1.1\r\n\r\n".encode()))[9:12]))
            for _ in range(40):  # to the throttle's limit, and over it
                await call(unknown)
        assert {200, 400, 401, 403, 404, 415, 422, 429, 504} <= set(statuses), statuses
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 30)

    text = log.read_text()
    assert "Error handling request" in text and "[redacted]" in text  # the parser's errors were logged
    for secret in secrets:
        for part in {secret, *re.split(r"[._]", secret)} - {"ck", ""}:
            if len(part) >= 16:  # a key's secret, a JWT's signature or payload, on its own
                assert part not in text, f"a credential is in the log: {secret[:12]}…"


def test_the_throttle_settings_are_read_from_the_environment_and_checked():
    env = {"DATABASE_URL": "postgresql://u@h/db"}
    config = Config.from_env(env)
    assert (config.auth_failure_limit, config.auth_failure_window_s) == (30, 60)
    config = Config.from_env(env | {"CARDS_AUTH_FAILURE_LIMIT": "0", "CARDS_AUTH_FAILURE_WINDOW_S": "5"})
    assert (config.auth_failure_limit, config.auth_failure_window_s) == (0, 5)
    with pytest.raises(ConfigError, match="CARDS_AUTH_FAILURE_LIMIT must be an integer >= 0, got '-1'"):
        Config.from_env(env | {"CARDS_AUTH_FAILURE_LIMIT": "-1"})
    with pytest.raises(
        ConfigError, match=re.escape("CARDS_AUTH_FAILURE_WINDOW_S must be a number >= 0.001 and <= 86400")
    ):
        Config.from_env(env | {"CARDS_AUTH_FAILURE_WINDOW_S": "0"})


def test_the_openapi_document_gives_every_api_route_a_429_with_retry_after():
    for path, item in SPEC["paths"].items():
        for method, operation in item.items():
            if path.startswith("/api/"):
                assert "Retry-After" in operation["responses"]["429"]["headers"], (method, path)
