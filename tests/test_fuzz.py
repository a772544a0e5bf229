"""Fuzzing from the spec: a short Schemathesis run against a real gateway process on the session's
database (the same command as `make fuzz`, scripts/fuzz.py, with a small fixed budget and seed), and
one regression test for each defect a fuzz run (docs/FUZZING.md) or the soak (docs/SOAK.md) found."""

from __future__ import annotations

import json
import re
import uuid

import psycopg
import pytest

from gateway.openapi import PARAMETERS, SCHEMAS
from gateway.routes import PATHS, SPEC
from scripts import devstack
from scripts.fuzz import run_schemathesis, summarize, unexpected_errors

from .conftest import cards, create, explain_nested_statements, free_port, gateway_env

# The short run: every phase and check of scripts/fuzz.toml, 20 examples each (≈950 cases, 20-40 s).
SEED = 20261126
EXAMPLES = 20


@pytest.fixture
def gateway_process(database, tmp_path):
    """`python -m gateway` on the session's database, on a free loopback port; its log in a file."""
    port, log_path = free_port(), tmp_path / "gateway.log"
    # The fuzzer sends hundreds of unauthenticated requests from one address on purpose.
    env = gateway_env(DATABASE_URL=database, CARDS_AUTH_FAILURE_LIMIT="0")
    process = devstack.start_gateway(port, env, log_path)
    try:
        yield f"http://127.0.0.1:{port}", log_path
    finally:
        devstack.stop_gateway(process)


def test_schemathesis_finds_no_defect_in_a_short_run(gateway_process, admin, tmp_path):
    url, log = gateway_process
    tenant = admin.tenant("fuzz")
    reports = tmp_path / "reports"
    returncode, output = run_schemathesis(url, tenant.key, EXAMPLES, SEED, reports)
    summary = summarize(reports, SPEC)
    assert returncode == 0, output[-30000:]
    assert not summary.server_errors, summary.server_errors
    assert unexpected_errors(log) == 0, log.read_text()[-10000:]
    assert summary.cases >= 200
    documented = {f"{m.upper()} {p}" for p, item in PATHS.items() for m in item} - {"GET /openapi.json"}
    assert documented <= set(summary.by_operation), "every operation was tried (but the spec's own)"
    assert {"coverage", "fuzzing", "stateful"} <= set(summary.by_phase)
    assert any(not inferred for _, inferred in summary.links), "the stateful phase followed the spec's links"


# --- the spec as a fuzzer reads it ---


def test_every_link_names_an_operation_and_its_parameters():
    operations = {op["operationId"]: op for item in PATHS.values() for op in item.values()}
    links = 0
    for item in PATHS.values():
        for op in item.values():
            for response in op["responses"].values():
                for name, link in response.get("links", {}).items():
                    links += 1
                    target = operations[link["operationId"]]
                    declared = {
                        f"{p['in']}.{p['name']}"
                        for p in (PARAMETERS[ref["$ref"].rsplit("/", 1)[1]] for ref in target["parameters"])
                    }
                    assert set(link.get("parameters", {})) <= declared, (op["operationId"], name)
                    assert "requestBody" not in link or "requestBody" in target, (op["operationId"], name)
    assert links >= 40


# --- regressions: one per defect a fuzz run found (docs/FUZZING.md) ---


@pytest.mark.parametrize("field", ["from", "to"])
@pytest.mark.parametrize(
    "value", ["0263-06-24T10:21:33.2+19:30", "2026-01-01T00:00:00-16:00", "0362-04-17T00:52:12.1160+17:25"]
)
async def test_a_time_offset_postgres_cannot_hold_is_422_not_500(client, tenant, field, value):
    """Found by `make fuzz`: an RFC 3339 offset past ±15:59 raised SQLSTATE 22009, answered 500."""
    response = await client.get("/api/v1/usage/summary", params={field: value}, headers=tenant.auth)
    assert response.status == 422, await response.text()
    problem = await response.json()
    assert problem["type"] == "/problems/validation-error"
    assert {"field": field, "message": "must be an RFC 3339 timestamp with a time zone"} in problem["errors"]


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("2026-01-01T00:00:00Z", True),
        ("2026-01-01t00:00:00.123456+15:59", True),
        ("0001-01-01T00:00:00-15:59", True),
        ("0000-01-01T00:00:00Z", False),
        ("2026-01-01T00:00:00.1234567Z", False),
        ("2026-01-01T00:00:00+16:00", False),
        ("0263-06-24T10:21:33.2+19:30", False),
    ],
)
async def test_the_spec_time_pattern_is_what_the_server_parses(client, tenant, value, valid):
    """Found by `make fuzz`: `format: date-time` allowed times the server refuses (year 0, 7 fractional
    digits, offsets past ±15:59); the spec's pattern now says which ones it takes."""
    assert bool(re.search(PARAMETERS["From"]["schema"]["pattern"], value)) is valid
    # `to` after every `from` here, so that no answer depends on today's date; a window of more
    # than 1000 buckets is refused naming `to`, which says nothing about parsing `from`.
    params = {"from": value, "to": "2026-01-02T00:00:00Z"}
    response = await client.get("/api/v1/usage/summary", params=params, headers=tenant.auth)
    assert response.status in (200, 422), await response.text()
    fields = {e["field"] for e in (await response.json()).get("errors", [])}
    assert ("from" not in fields) is valid, fields
    if valid:
        assert fields <= {"to"}, fields


@pytest.mark.parametrize(
    ("key", "valid"),
    [
        ("a", True),
        ("onboarding-2026-11-26", True),
        ('"quoted"', True),
        ('"', True),
        ('"a', True),
        ('a"', True),
        ('" "', True),
        ("x" * 255, True),
        ('"' + "y" * 255 + '"', True),
        ("3(9\t*L(T", False),  # the fuzzer's: a tab is not printable
        ('""', False),  # empty once unquoted
        ("z" * 256, False),
        ('"' + "w" * 256 + '"', False),
    ],
)
async def test_the_spec_idempotency_key_pattern_is_what_the_server_takes(client, tenant, key, valid):
    """Found by `make fuzz`: the spec allowed any 1-257 characters; the server takes 1-255 printable
    ASCII, bare or quoted, and the pattern now says so."""
    assert bool(re.search(PARAMETERS["IdempotencyKey"]["schema"]["pattern"], key)) is valid
    body = cards(f"key {uuid.uuid4()}")
    headers = tenant.auth | {"Idempotency-Key": key}
    response = await client.post("/api/v1/cards/batch", json=body, headers=headers)
    assert response.status == (201 if valid else 400), await response.text()


@pytest.mark.parametrize(
    ("schema", "route", "body"),
    [
        ("BatchRequest", "/api/v1/cards/batch", cards("extra") | {"note": 1}),
        ("RetrieveRequest", "/api/v1/cards/retrieve", {"ids": [str(uuid.uuid4())], "note": 1}),
        ("UsageRequest", "/api/v1/cards/{id}/usage", {"workflow_id": "w", "run_id": "r", "note": 1}),
    ],
)
async def test_the_spec_refuses_unknown_body_fields_as_the_server_does(client, tenant, schema, route, body):
    """Found by `make fuzz`: three request schemas allowed extra fields that the server refuses."""
    assert SCHEMAS[schema]["additionalProperties"] is False
    if "{id}" in route:
        route = route.format(id=(await create(client, tenant, "used"))[0])
    response = await client.post(route, json=body, headers=tenant.auth)
    assert response.status == 422
    assert {"field": "note", "message": "is not a known field"} in (await response.json())["errors"]


async def test_a_query_value_holding_nul_is_a_422_the_spec_gives(client, tenant):
    """Found by `make fuzz`: the 422 for a query value holding NUL was not in the spec's words."""
    response = await client.get("/api/v1/cards?q=a%00b", headers=tenant.auth)
    assert response.status == 422
    assert (await response.json())["errors"] == [{"field": "q", "message": "must not contain NUL (%00)"}]
    assert "holding NUL (`%00`)" in SPEC["info"]["description"]


async def test_a_listing_contains_object_holding_nul_is_named_as_nul(client, tenant):
    """Found by `make fuzz`: a `contains` object with a \\u0000 escape was refused as "must be a JSON
    object" (jsonb holds no NUL); it is named as NUL, as in a body."""
    params = {"contains": '{"a": "x\\u0000y"}'}
    response = await client.get("/api/v1/cards", params=params, headers=tenant.auth)
    assert response.status == 422
    errors = (await response.json())["errors"]
    assert errors == [{"field": "contains", "message": "must not contain NUL (\\u0000)"}]


async def test_a_spec_valid_query_over_8190_bytes_is_answered_as_a_problem(client, tenant):
    """Found by `make fuzz`: aiohttp answered a request line over 8190 bytes itself, in plain text."""
    # A 1000-character cursor of 4-byte characters: 12,000 bytes once percent-encoded (a forged cursor,
    # so the answer due is a 422 naming it).
    cursor = "\N{GRINNING FACE}" * 1000
    assert len(cursor) <= PARAMETERS["Cursor"]["schema"]["maxLength"]
    response = await client.get("/api/v1/cards", params={"cursor": cursor}, headers=tenant.auth)
    assert response.headers.get("X-Trace-ID")
    assert response.content_type == "application/problem+json"
    assert response.status == 422


async def test_the_longest_query_the_spec_allows_reaches_the_api(client, tenant):
    """Every bounded parameter at its bound, in 4-byte characters: the request line stays under the
    HTTP layer's limit, so the API answers (a 422 for the forged cursor), not the parser."""
    widest = "\N{GRINNING FACE}"
    params = [("tag", widest * 64)] * PARAMETERS["Tag"]["schema"]["maxItems"] + [
        ("kind", "k" * 64),
        ("q", widest * 500),
        ("cursor", widest * PARAMETERS["Cursor"]["schema"]["maxLength"]),
        ("contains", '{"a": "' + widest * 4093 + '"}'),  # 16,381 bytes: the bound is 16,384
        ("limit", "200"),
    ]
    response = await client.get("/api/v1/cards", params=params, headers=tenant.auth)
    assert response.content_type == "application/problem+json"
    errors = (await response.json())["errors"]
    assert [e["field"] for e in errors] == ["cursor"], errors


async def test_a_request_line_over_128_kib_is_refused_by_the_http_layer(client, tenant):
    """Past every parameter's bound the parser answers 400 itself, as the spec's description says."""
    response = await client.get("/api/v1/cards", params={"q": "x" * 140_000}, headers=tenant.auth)
    assert response.status == 400
    assert "128 KiB" in SPEC["info"]["description"]


# --- regressions: found by `make soak` (docs/SOAK.md) ---


def _scans_of(plan: dict, relation: str) -> list[dict]:
    found = [plan] if plan.get("Relation Name") == relation else []
    for child in plan.get("Plans", []):
        found += _scans_of(child, relation)
    return found


def _explained(conn, marker: str, query: str, args: tuple) -> tuple[object, dict]:
    """The answer of `query`, and the plan (auto_explain, analyzed) of the nested statement holding
    `marker`."""
    notices = explain_nested_statements(conn, analyze=True)
    answer = conn.execute(query, args).fetchone()[0]
    [plan] = [json.loads(t.split("plan:", 1)[1])["Plan"] for t in notices if marker in t and "plan:" in t]
    return answer, plan


def _new_tenant_with_cards(conn, name: str, count: int):
    """A tenant with `count` cards, created after the table's statistics were last gathered."""
    tenant = conn.execute("SELECT cards.create_tenant(%s)", (name,)).fetchone()[0]
    for start in range(0, count, 1000):
        batch = [{"title": f"{name} {n}", "content": {"n": n}} for n in range(start, start + 1000)]
        conn.execute("SELECT cards.batch_create(%s, %s)", (tenant, json.dumps(batch)))
    return tenant


def test_batch_dedup_looks_up_only_its_own_hashes_whatever_the_statistics_say(database):
    """Found by `make soak`: as in retrieve, the planner flattened the batch's lookup of duplicates into
    a join that read every card of a tenant not yet in the statistics, for each batch."""
    with psycopg.connect(database, autocommit=True) as conn:
        tenant = _new_tenant_with_cards(conn, "soak dedup", 2000)
        items = [{"title": "soak dedup 1", "content": {"n": 1}}, {"title": "new", "content": {"n": -1}}]
        answer, plan = _explained(
            conn,
            "LEFT JOIN LATERAL",
            "SELECT response FROM cards.batch_create(%s, %s)",
            (tenant, json.dumps(items)),
        )
    assert [card["status"] for card in answer["cards"]] == ["duplicate", "created"]
    read = sum(scan["Actual Rows"] * scan["Actual Loops"] for scan in _scans_of(plan, "cards"))
    assert read <= len(items), f"{read} card rows read for {len(items)} hashes"


def test_retrieve_reads_only_the_cards_asked_for_whatever_the_statistics_say(database):
    """Found by `make soak`: with a new tenant's cards not yet in the statistics, the planner flattened
    retrieve's per-id LATERAL lookup into a join that read (and turned into JSON) every card of the
    tenant for each call: 20-90 ms for 10 ids out of 2,000 cards, growing with the tenant."""
    with psycopg.connect(database, autocommit=True) as conn:
        tenant = _new_tenant_with_cards(conn, "soak retrieve", 2000)
        ids = [
            row[0]
            for row in conn.execute(
                "SELECT card_id FROM cards.cards WHERE tenant_id = %s ORDER BY card_id LIMIT 10", (tenant,)
            )
        ]
        asked = [*ids, uuid.uuid4()]
        answer, plan = _explained(
            conn, "card_usage_counters", "SELECT cards.retrieve(%s, %s)", (tenant, asked)
        )
    assert [card["id"] for card in answer["cards"]] == [str(i) for i in ids]
    # Actual Rows is the mean per loop, rounded: a probe per id may count one row for each.
    read = sum(scan["Actual Rows"] * scan["Actual Loops"] for scan in _scans_of(plan, "cards"))
    assert read <= len(asked), f"{read} card rows read for {len(asked)} ids"


def test_a_repeated_report_finds_its_first_through_the_primary_key_on_a_hot_card(database):
    """Found by `make bench` (hot card): with the statistics taken while every card had one event,
    track_usage's lookup of a repeat read the hot card's whole history. This checks the statement
    the function runs (sql/tests/20_usage_repeat_lookup_plan.sql checks the same shape by hand)."""
    with psycopg.connect(database, autocommit=True) as conn:
        tenant = _new_tenant_with_cards(conn, "hot repeat", 1000)
        conn.execute(
            "SELECT count(cards.track_usage(%s, c.card_id, 'seed-workflow', 'seed'))"
            " FROM cards.cards AS c WHERE c.tenant_id = %s",
            (tenant, tenant),
        )
        conn.execute("ANALYZE cards.card_usage")
        hot = conn.execute(
            "SELECT min(card_id::text)::uuid FROM cards.cards WHERE tenant_id = %s", (tenant,)
        ).fetchone()[0]
        conn.execute(
            "SELECT count(cards.track_usage(%s, %s, 'runs', 'run ' || g)) FROM generate_series(1, 3000) AS g",
            (tenant, hot),
        )
        answer, plan = _explained(
            conn,
            "u.run_id = p_run_id",
            "SELECT cards.track_usage(%s, %s, 'seed-workflow', 'seed')",
            (tenant, hot),
        )
    assert answer["deduplicated"] is True
    scans = _scans_of(plan, "card_usage")
    assert [scan.get("Index Name") for scan in scans] == ["card_usage_pkey"], scans
