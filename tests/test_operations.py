"""Operations endpoints, routing, trace ids and the access log."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from asyncio.subprocess import PIPE, STDOUT

from openapi_spec_validator import validate

from gateway.app import SCHEMA_VERSION, init_app
from gateway.errors import PROBLEMS
from gateway.logs import JsonFormatter
from gateway.migrate import latest_version

from .conftest import cards

# Web pages, not API routes: the Card Center (test_center.py) and the files of /docs.
PAGES = ("/center", "/docs/static/")


async def test_health_answers_ok(client):
    response = await client.get("/health")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


async def test_ready_answers_the_schema_version(client):
    response = await client.get("/ready")
    assert response.status == 200
    assert await response.json() == {"status": "ready", "schema_version": latest_version()}


async def test_ready_is_503_when_the_schema_is_older_than_the_gateway_expects(make_client, config):
    app = init_app(config)
    app[SCHEMA_VERSION] = latest_version() + 1
    client = await make_client(app)
    response = await client.get("/ready")
    assert response.status == 503
    problem = await response.json()
    assert problem["type"] == "/problems/service-unavailable"
    assert f"expects {latest_version() + 1}" in problem["detail"]
    assert "cards_ready 0.0" in await (await client.get("/metrics")).text()


async def test_ready_stays_200_on_the_next_schema_version_so_migrations_can_go_first(make_client, config):
    app = init_app(config)
    app[SCHEMA_VERSION] = latest_version() - 1
    client = await make_client(app)
    response = await client.get("/ready")
    assert response.status == 200
    assert await response.json() == {"status": "ready", "schema_version": latest_version()}


async def test_ready_is_503_when_the_schema_is_two_versions_ahead(make_client, config):
    app = init_app(config)
    app[SCHEMA_VERSION] = latest_version() - 2
    client = await make_client(app)
    assert (await client.get("/ready")).status == 503


async def test_ready_is_503_and_health_still_200_when_the_database_is_down(make_client, database, proxy):
    client = await make_client(database_url=proxy.route(database), pool_timeout_s=1.0)
    assert (await client.get("/ready")).status == 200
    await proxy.cut()
    response = await client.get("/ready")
    assert response.status == 503
    assert response.content_type == "application/problem+json"
    assert response.headers["Retry-After"] == "1"
    assert (await client.get("/health")).status == 200
    assert "cards_ready 0.0" in await (await client.get("/metrics")).text()


async def test_metrics_pass_promtool_and_carry_every_agreed_family(client, tenant):
    await client.post(
        "/api/v1/cards/batch", json=cards("a", "a"), headers=tenant.auth | {"Idempotency-Key": "m"}
    )
    await client.get("/ready")
    await client.get("/nowhere")
    await client.post("/api/v1/cards/batch", json=cards("a"))
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = await response.text()
    promtool = await asyncio.create_subprocess_exec(
        "promtool", "check", "metrics", stdin=PIPE, stdout=PIPE, stderr=STDOUT
    )
    report, _ = await promtool.communicate(text.encode())
    assert promtool.returncode == 0, report.decode()
    for sample in [
        'cards_http_requests_total{method="POST",route="/api/v1/cards/batch",status="201"} 1.0',
        'cards_http_request_duration_seconds_bucket{le="0.0005",method="GET",route="/ready",status="200"}',
        'cards_http_requests_total{method="GET",route="unmatched",status="404"} 1.0',
        'cards_idempotency_requests_total{outcome="stored"} 1.0',
        'cards_batch_cards_total{status="created"} 1.0',
        'cards_batch_cards_total{status="duplicate"} 1.0',
        'cards_auth_failures_total{reason="missing"} 1.0',
        "cards_ready 1.0",
        "cards_db_pool_connections ",
        "cards_db_pool_connections_in_use 0.0",
        "cards_db_pool_max_connections 10.0",
        "cards_db_pool_waiters 0.0",
        f'cards_build_info{{schema_version="{latest_version()}",version="0.1.0"}} 1.0',
    ]:
        assert sample in text
    for zero in [
        'cards_idempotency_requests_total{outcome="in_use"} 0.0',
        'cards_usage_reports_total{result="recorded"} 0.0',
        'cards_auth_failures_total{reason="revoked_or_unknown"} 0.0',
        'cards_db_errors_total{kind="timeout"} 0.0',
    ]:
        assert zero in text
    assert "_created" not in text


async def test_openapi_document_is_valid_openapi_3_1(client):
    response = await client.get("/openapi.json")
    assert response.status == 200
    spec = await response.json()
    assert spec["openapi"].startswith("3.1")
    validate(spec)


async def test_openapi_describes_every_route_and_every_problem(client):
    spec = await (await client.get("/openapi.json")).json()
    routes = {
        (r.method.lower(), r.resource.canonical)
        for r in client.app.router.routes()
        if r.method != "HEAD" and not r.resource.canonical.startswith(PAGES)
    }
    assert routes == {(method, path) for path, item in spec["paths"].items() for method in item}
    described = set(spec["components"]["schemas"]["Problem"]["properties"]["type"]["enum"])
    assert described == {f"/problems/{slug}" for slug in PROBLEMS}
    for path in ["/api/v1/cards/batch", "/api/v1/cards/retrieve", "/api/v1/cards/{id}/usage"]:
        responses = spec["paths"][path]["post"]["responses"]
        assert {"400", "401", "403", "413", "415", "422", "500", "503", "504"} <= set(responses)


async def test_docs_page_loads_swagger_ui_from_this_origin_on_openapi_json(client):
    response = await client.get("/docs")
    assert response.status == 200
    assert response.content_type == "text/html"
    page = await response.text()
    assert '<script src="/docs/static/swagger-ui-bundle.js" defer></script>' in page
    assert not re.search(r"(src|href)=\"https?://", page)
    init = await (await client.get("/docs/static/init.js")).text()
    assert 'url: "/openapi.json"' in init


async def test_unknown_route_is_a_404_problem(client):
    response = await client.get("/api/v1/nothing-here")
    assert response.status == 404
    assert response.content_type == "application/problem+json"
    assert (await response.json())["type"] == "/problems/not-found"


async def test_wrong_method_is_a_405_problem_naming_the_allowed_ones(client, tenant):
    response = await client.get("/api/v1/cards/batch", headers=tenant.auth)
    assert response.status == 405
    assert response.headers["Allow"] == "POST"
    problem = await response.json()
    assert problem["type"] == "/problems/method-not-allowed"
    assert problem["status"] == 405


async def test_a_valid_trace_id_is_echoed_on_the_response_and_in_the_error_body(client):
    response = await client.post(
        "/api/v1/cards/batch", json=cards("a"), headers={"X-Trace-ID": "run-42.step_7"}
    )
    assert response.headers["X-Trace-ID"] == "run-42.step_7"
    assert (await response.json())["trace_id"] == "run-42.step_7"
    assert (await client.get("/health", headers={"X-Trace-ID": "abc"})).headers["X-Trace-ID"] == "abc"


async def test_an_invalid_or_missing_trace_id_is_replaced_by_a_generated_one(client):
    for sent in ["has space", "x" * 129, "semi;colon", ""]:
        response = await client.get("/nowhere", headers={"X-Trace-ID": sent})
        echoed = response.headers["X-Trace-ID"]
        assert echoed != sent and re.fullmatch(r"[A-Za-z0-9._-]{1,128}", echoed)
        assert (await response.json())["trace_id"] == echoed
    first, second = [(await client.get("/health")).headers["X-Trace-ID"] for _ in range(2)]
    assert first != second


async def test_access_log_is_one_json_line_per_request_without_credentials(client, tenant, caplog):
    caplog.set_level(logging.INFO, logger="cards.access")
    await client.post("/api/v1/cards/batch", json=cards("a"), headers=tenant.auth | {"X-Trace-ID": "t-1"})
    await client.get("/health", headers={"Authorization": "Bearer secret-token-value"})
    lines = [JsonFormatter().format(r) for r in caplog.records if r.name == "cards.access"]
    assert len(lines) == 2
    entry = json.loads(lines[0])
    assert entry["trace_id"] == "t-1"
    assert entry["tenant"] == tenant.id
    assert (entry["method"], entry["route"], entry["status"]) == ("POST", "/api/v1/cards/batch", 201)
    assert entry["duration_ms"] > 0
    assert tenant.key not in caplog.text + "".join(lines)
    assert "secret-token-value" not in caplog.text + "".join(lines)
