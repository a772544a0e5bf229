"""Timeouts and overload: a slow statement, a full pool and a slow client each get a bounded,
explained answer (504, 503, 408) instead of a queue or a connection held open for ever."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid

import psycopg
import pytest

from gateway.config import Config, ConfigError
from gateway.routes import SPEC

from .conftest import cards, hold_key
from .conftest import expect_problem as _problem

ANY_IDS = {"ids": [str(uuid.uuid4())]}


@pytest.fixture
def locked_cards(admin):
    """A transaction holding an exclusive lock on the cards table: every read of it waits."""
    job = psycopg.connect(admin.dsn)
    job.execute("LOCK TABLE cards.cards IN ACCESS EXCLUSIVE MODE")
    yield
    job.rollback()
    job.close()


async def test_a_statement_over_the_timeout_is_a_504_problem_with_retry_after(
    make_client, tenant, locked_cards
):
    client = await make_client(statement_timeout_ms=200)
    started = time.monotonic()
    response = await client.post("/api/v1/cards/retrieve", json=ANY_IDS, headers=tenant.jwt())
    await _problem(response, 504, "gateway-timeout")
    assert response.headers["Retry-After"] == "1"
    assert time.monotonic() - started < 2  # the statement was cancelled, not left to wait for the lock


async def test_requests_queued_for_a_pool_connection_get_503_with_retry_after_when_the_wait_ends(
    make_client, admin, tenant
):
    client = await make_client(pool_min=1, pool_max=1, pool_timeout_s=0.3)
    job = hold_key(admin, tenant, "held")  # the first request holds the only connection while it waits
    try:
        holder = asyncio.create_task(
            client.post(
                "/api/v1/cards/batch", json=cards("a"), headers=tenant.jwt() | {"Idempotency-Key": "held"}
            )
        )
        await asyncio.sleep(0.1)
        started = time.monotonic()
        queued = [client.post("/api/v1/cards/retrieve", json=ANY_IDS, headers=tenant.jwt()) for _ in range(8)]
        for response in await asyncio.gather(*queued):
            await _problem(response, 503, "service-unavailable")
            assert response.headers["Retry-After"] == "1"
        assert time.monotonic() - started < 1.5  # each waited its 0.3 s, not in a line behind the others
        assert "cards_db_pool_waiters 0.0" in await (await client.get("/metrics")).text()
    finally:
        job.rollback()
        job.close()
    assert (await holder).status in (201, 409)
    assert (await client.post("/api/v1/cards/retrieve", json=ANY_IDS, headers=tenant.jwt())).status == 200


async def _send_and_read_all(client, head: bytes, seconds: float) -> tuple[bytes, float]:
    """Sends `head` and nothing more; answers all the server sends until it closes, and when it did."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    started = time.monotonic()
    try:
        writer.write(head)
        await writer.drain()
        async with asyncio.timeout(seconds):
            answer = await reader.read()  # to EOF: the server closed the connection
        return answer, time.monotonic() - started
    finally:
        writer.close()


def _head(tenant, length: int, first: bytes = b"") -> bytes:
    return (
        "POST /api/v1/cards/retrieve HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {tenant.key}\r\nContent-Length: {length}\r\n\r\n"
    ).encode() + first


async def test_a_body_that_does_not_arrive_in_time_is_a_408_problem_and_the_connection_closes(
    make_client, tenant
):
    client = await make_client(body_timeout_s=0.3)
    answer, seconds = await _send_and_read_all(client, _head(tenant, 100, b'{"ids": ['), 5)
    assert 0.3 <= seconds < 2
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ")
    assert b"Connection: close" in head
    problem = json.loads(body)
    assert problem["type"] == "/problems/request-timeout" and problem["status"] == 408
    metrics = await (await client.get("/metrics")).text()
    assert 'route="/api/v1/cards/retrieve",status="408"} 1.0' in metrics


async def test_a_client_that_hangs_up_before_its_body_arrived_is_counted_499_not_an_error(
    make_client, tenant, caplog
):
    client = await make_client()
    _, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(_head(tenant, 100, b'{"ids": ['))
    await writer.drain()
    await asyncio.sleep(0.2)  # its key is looked up; its body is awaited
    writer.close()
    await writer.wait_closed()
    metrics = ""
    for _ in range(50):  # the server notices the hang-up on its own time
        metrics = await (await client.get("/metrics")).text()
        if 'route="/api/v1/cards/retrieve",status="499"} 1.0' in metrics:
            break
        await asyncio.sleep(0.05)
    assert 'route="/api/v1/cards/retrieve",status="499"} 1.0' in metrics
    assert 'status="500"' not in metrics
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_client_sending_its_body_slowly_holds_no_database_connection(make_client, tenant):
    client = await make_client(pool_min=1, pool_max=1, pool_timeout_s=0.5, body_timeout_s=10)
    _, writer = await asyncio.open_connection(client.host, client.port)
    try:
        writer.write(_head(tenant, 100, b'{"ids": ['))  # its key is looked up, then its body waits
        await writer.drain()
        await asyncio.sleep(0.2)
        for _ in range(3):
            response = await client.post("/api/v1/cards/retrieve", json=ANY_IDS, headers=tenant.auth)
            assert response.status == 200
    finally:
        writer.close()


async def test_a_connection_that_never_completes_its_request_head_is_closed_after_the_keepalive_timeout(
    make_client,
):
    client = await make_client(keepalive_timeout_s=0.3)
    answer, seconds = await _send_and_read_all(client, b"POST /api/v1/cards/batch HTTP/1.1\r\nHost: x\r\n", 5)
    assert answer == b""  # closed without an answer: there was no request yet
    assert seconds < 2


async def test_an_idle_keep_alive_connection_is_closed_after_the_keepalive_timeout(make_client):
    client = await make_client(keepalive_timeout_s=0.3)
    answer, seconds = await _send_and_read_all(client, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", 5)
    assert answer.startswith(b"HTTP/1.1 200 ")  # answered, kept open, then closed when idle
    assert 0.3 <= seconds < 2


def test_the_timeout_settings_are_read_from_the_environment_and_checked():
    env = {
        "DATABASE_URL": "postgresql://u@h/db",
        "CARDS_BODY_TIMEOUT_S": "2.5",
        "CARDS_KEEPALIVE_TIMEOUT_S": "9",
    }
    config = Config.from_env(env)
    assert (config.body_timeout_s, config.keepalive_timeout_s) == (2.5, 9)
    assert (Config.from_env({"DATABASE_URL": "x"}).body_timeout_s, config.statement_timeout_ms) == (
        30,
        15_000,
    )
    for name in ("CARDS_BODY_TIMEOUT_S", "CARDS_KEEPALIVE_TIMEOUT_S"):
        with pytest.raises(ConfigError, match=re.escape(f"{name} must be a number >= 0.001, got '0'")):
            Config.from_env(env | {name: "0"})


def test_the_openapi_document_gives_408_to_the_routes_with_a_body_and_retry_after_to_504():
    for path, item in SPEC["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            if path.startswith("/api/"):
                assert "Retry-After" in responses["504"]["headers"], (method, path)
                assert ("408" in responses) == ("requestBody" in operation), (method, path)
