"""Hostile input (docs/SECURITY.md, "Hostile input"): every finding of the hardening review, sent the
way an attacker would — over HTTP through the gateway and, where a trusted job may call the function
directly, in SQL. Each is a 422 naming its field (and index), never a 500, never a gigabyte."""

from __future__ import annotations

import asyncio
import io
import json
import sys
import time
from decimal import Decimal

import aiohttp
import asyncpg
import psycopg
import pytest

from gateway.errors import from_database

from .conftest import ROOT, create, free_port, process_env, wait_until_up

BATCH = "/api/v1/cards/batch"
NUMBERS = "must hold numbers that are 0 or of magnitude 1e-20 to 1e20, with at most 20 digits after the point"
DEEP = "must not nest deeper than 64 levels"
JSON = {"Content-Type": "application/json"}


def _nested(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


def _batch(content: str, *, before: int = 0, **fields: str) -> bytes:
    """A batch body whose card at index `before` has `content` (raw JSON text), after valid cards."""
    valid = [json.dumps({"title": f"fine {n}", "content": n}) for n in range(before)]
    extra = "".join(f', "{name}": {value}' for name, value in fields.items())
    return (
        '{"cards": [' + "".join(f"{v}, " for v in valid) + f'{{"title": "t", "content": {content}{extra}}}]}}'
    ).encode()


async def _problem(response) -> dict:
    assert response.content_type == "application/problem+json", await response.text()
    return await response.json()


async def _post(client, tenant, body: bytes, path: str = BATCH) -> tuple[int, dict]:
    response = await client.post(path, data=io.BytesIO(body), headers=tenant.auth | JSON)
    return response.status, await _problem(response) if response.status >= 400 else await response.json()


# --- 1. numbers that expand when printed (1e1000 is 6 bytes in, 1,001 characters out) ---


async def test_an_array_of_1e1000_in_content_is_a_422_naming_content_and_its_index(client, admin, tenant):
    status, problem = await _post(client, tenant, _batch("[" + ",".join(["1e1000"] * 10000) + "]", before=2))
    assert status == 422
    assert problem["errors"] == [{"index": 2, "field": "content", "message": NUMBERS}]
    assert admin.card_count(tenant) == 0


@pytest.mark.parametrize(
    "number",
    [
        "1e1000",
        "-1e20",
        "1e-21",
        "0e-21",
        "0." + "0" * 40 + "1",
        "1" * 21,
        "1." + "0" * 20 + "1",
        "9" * 15000,
    ],
)
async def test_a_number_that_would_print_long_is_refused_in_content(client, tenant, number):
    status, problem = await _post(client, tenant, _batch(f'{{"n": [{number}]}}'))
    assert (status, problem["errors"]) == (422, [{"index": 0, "field": "content", "message": NUMBERS}])


@pytest.mark.parametrize(
    "number", ["1e19", "-99999999999999999999", "1e-20", "0e-20", "0.5", "12345678901234567890"]
)
async def test_a_number_within_the_bounds_is_stored(client, tenant, number):
    status, body = await _post(client, tenant, _batch(f"[{number}]"))
    assert status == 201, body
    [card_id] = [c["id"] for c in body["cards"]]
    stored = await (await client.get(f"/api/v1/cards/{card_id}", headers=tenant.auth)).text()
    assert json.loads(stored, parse_float=Decimal, parse_int=Decimal)["content"] == [Decimal(number)]


async def test_1e1000_in_metadata_usage_metadata_a_patch_and_contains_is_a_422_naming_each(client, tenant):
    [card] = await create(client, tenant, "target")
    status, problem = await _post(client, tenant, _batch("1", metadata='{"x": [1e1000]}'))
    assert (status, problem["errors"]) == (422, [{"index": 0, "field": "metadata", "message": NUMBERS}])
    status, problem = await _post(
        client,
        tenant,
        b'{"workflow_id": "w", "run_id": "r", "metadata": {"x": 1e1000}}',
        f"/api/v1/cards/{card}/usage",
    )
    assert (status, problem["errors"]) == (422, [{"field": "metadata", "message": NUMBERS}])
    response = await client.patch(
        f"/api/v1/cards/{card}", data=b'{"content": [1e1000]}', headers=tenant.auth | JSON | {"If-Match": "*"}
    )
    assert (response.status, (await _problem(response))["errors"]) == (
        422,
        [{"field": "content", "message": NUMBERS}],
    )
    response = await client.get("/api/v1/cards", params={"contains": '{"x": 1e1000}'}, headers=tenant.auth)
    assert (response.status, (await _problem(response))["errors"]) == (
        422,
        [{"field": "contains", "message": NUMBERS}],
    )


def _sql_error(admin, query: str, *args) -> psycopg.errors.Error:
    with pytest.raises(psycopg.errors.Error) as raised:
        with admin.conn.transaction():
            admin.conn.execute(query, args)
    return raised.value


def test_a_trusted_job_calling_batch_create_with_1e1000_gets_ckval_naming_the_field(admin, tenant):
    content = "[" + ",".join(["1e1000"] * 10000) + "]"
    error = _sql_error(
        admin,
        "SELECT cards.batch_create(%s, %s::jsonb)",
        tenant.id,
        f'[{{"title": "t", "content": {content}}}]',
    )
    assert error.sqlstate == "CKVAL"
    assert json.loads(error.diag.message_detail) == [{"index": 0, "field": "content", "message": NUMBERS}]


def test_a_trusted_job_calling_track_usage_or_update_card_with_1e1000_gets_ckval(admin, tenant):
    created = admin.value(
        "SELECT response FROM cards.batch_create(%s, %s)", tenant.id, '[{"title": "t", "content": 1}]'
    )
    card = created["cards"][0]["id"]
    error = _sql_error(
        admin, "SELECT cards.track_usage(%s, %s, 'w', 'r', '{\"x\": [1e1000]}')", tenant.id, card
    )
    assert (error.sqlstate, json.loads(error.diag.message_detail)) == (
        "CKVAL",
        [{"field": "metadata", "message": NUMBERS}],
    )
    error = _sql_error(
        admin,
        "SELECT * FROM cards.update_card(%s, %s, '*', convert_to('{\"metadata\": {\"x\": 1e1000}}', 'UTF8'))",
        tenant.id,
        card,
    )
    assert (error.sqlstate, json.loads(error.diag.message_detail)) == (
        "CKVAL",
        [{"field": "metadata", "message": NUMBERS}],
    )
    error = _sql_error(admin, "SELECT cards.list_cards(%s, p_contains => '{\"x\": [0e-16000]}')", tenant.id)
    assert (error.sqlstate, json.loads(error.diag.message_detail)) == (
        "CKVAL",
        [{"field": "contains", "message": NUMBERS}],
    )


# --- 6. valid JSON that PostgreSQL cannot hold: numeric overflow, nesting deeper than its stack ---


async def test_a_decimal_of_16400_digits_overflowing_numeric_is_a_422_not_a_500(client, tenant):
    status, problem = await _post(client, tenant, _batch("0." + "0" * 16400 + "1"))
    assert status == 422
    assert [e["field"] for e in problem["errors"]] == ["(body)"]


@pytest.mark.parametrize("depth", [65, 10000, 50000])
async def test_nesting_deeper_than_64_levels_is_a_422(client, tenant, depth):
    status, problem = await _post(client, tenant, _batch(_nested(depth)))
    assert status == 422
    assert problem["errors"][0]["message"] == DEEP
    assert problem["errors"][0]["field"] in ("content", "(body)")  # (body): too deep to parse at all


async def test_nesting_of_64_levels_is_accepted(client, tenant):
    status, body = await _post(client, tenant, _batch(_nested(64), metadata='{"a": ' + _nested(63) + "}"))
    assert status == 201, body


async def test_deep_nesting_in_metadata_usage_metadata_and_contains_is_a_422_naming_each(client, tenant):
    [card] = await create(client, tenant, "target")
    status, problem = await _post(client, tenant, _batch("1", metadata='{"a": ' + _nested(64) + "}"))
    assert (status, problem["errors"]) == (422, [{"index": 0, "field": "metadata", "message": DEEP}])
    usage = ('{"workflow_id": "w", "run_id": "r", "metadata": {"a": ' + _nested(8000) + "}}").encode()
    status, problem = await _post(client, tenant, usage, f"/api/v1/cards/{card}/usage")
    assert (status, problem["errors"]) == (422, [{"field": "metadata", "message": DEEP}])
    response = await client.get(
        "/api/v1/cards", params={"contains": '{"a": ' + _nested(8000) + "}"}, headers=tenant.auth
    )
    assert (response.status, (await _problem(response))["errors"]) == (
        422,
        [{"field": "contains", "message": DEEP}],
    )


# --- 2. unbounded error lists ---


async def test_700000_unknown_keys_answer_100_errors_errors_total_and_at_most_64_kib(client, admin, tenant):
    keys = ",".join(f'"{n:05x}":0' for n in range(700_000))
    body = f'{{"cards": [{{"title": "t", "content": 1, {keys}}}]}}'.encode()
    assert len(body) < 8 * 1024 * 1024
    response = await client.post(BATCH, data=io.BytesIO(body), headers=tenant.auth | JSON)
    answer = await response.read()
    assert response.status == 422
    assert len(answer) <= 64 * 1024
    problem = json.loads(answer)
    assert len(problem["errors"]) == 100
    assert problem["errors_total"] == 700_000
    assert problem["errors"][0] == {"index": 0, "field": "00000", "message": "is not a known field"}
    assert admin.card_count(tenant) == 0


async def test_an_echoed_field_name_is_cut_to_64_characters_and_a_422_stays_under_64_kib(client, tenant):
    keys = ", ".join(f'"{n:03d}' + "\\u0001" * 200 + '": 0' for n in range(300))
    response = await client.post(BATCH, data=f'{{"cards": [], {keys}}}'.encode(), headers=tenant.auth | JSON)
    answer = await response.read()
    assert response.status == 422
    assert len(answer) <= 64 * 1024
    problem = json.loads(answer)
    assert problem["errors_total"] == 301
    assert all(len(e["field"]) <= 64 for e in problem["errors"])


def test_the_error_list_of_a_422_stays_out_of_the_server_log(admin, tenant):
    try:
        start = admin.value("SELECT size FROM pg_stat_file('server.log')")
    except psycopg.errors.Error:
        pytest.skip("the server's log is not server.log in its data directory (scripts/pgcluster)")
    error = _sql_error(
        admin,
        "SELECT cards.batch_create(%s, %s::jsonb)",
        tenant.id,
        '[{"title": "t", "content": 1, "secret_marker_key": 1}]',
    )
    assert "secret_marker_key" in error.diag.message_detail  # the client gets the list
    time.sleep(0.2)
    logged = admin.value("SELECT pg_read_file('server.log', %s, 1000000)", start)
    assert "The request is invalid: 1 error(s)" in logged
    assert "secret_marker_key" not in logged


async def test_a_retrieve_of_a_million_bad_ids_is_one_error(client, tenant):
    body = ('{"ids": [' + ",".join(["1"] * 999_000) + "]}").encode()
    status, problem = await _post(client, tenant, body, "/api/v1/cards/retrieve")
    assert (status, problem["errors"]) == (422, [{"field": "ids", "message": "must hold 1 to 1000 ids"}])


async def test_too_many_values_or_containers_in_a_body_is_a_422_before_parsing(client, tenant):
    for content in ["[" + ",".join(["0"] * 1_000_001) + "]", "[" + ",".join(["{}"] * 100_001) + "]"]:
        status, problem = await _post(client, tenant, _batch(content))
        assert status == 422
        assert [e["field"] for e in problem["errors"]] == ["(body)"]


async def test_commas_and_brackets_inside_strings_do_not_count_as_values(client, tenant):
    status, body = await _post(client, tenant, _batch(json.dumps("[{," * 60_000)))
    assert status == 201, body


# --- 3. quadratic containment ---


async def test_the_quadratic_contains_of_the_review_is_a_422(client, tenant):
    metadata = json.dumps({"a": [[1]] * 3270 + [[2]]})
    status, _ = await _post(client, tenant, _batch("1", metadata=metadata))
    assert status == 201
    response = await client.get(
        "/api/v1/cards",
        params={"contains": json.dumps({"a": [[2]] * 4091}, separators=(",", ":"))},
        headers=tenant.auth,
    )
    assert response.status == 422
    assert (await _problem(response))["errors"] == [
        {
            "field": "contains",
            "message": "must hold at most 8 array elements in all, at most 2 of them arrays or objects",
        }
    ]


async def test_a_contains_within_the_bounds_still_matches(client, tenant):
    await _post(client, tenant, _batch("1", metadata=json.dumps({"a": [[1]] * 3000 + [[2]]})))
    response = await client.get(
        "/api/v1/cards", params={"contains": json.dumps({"a": [[2]] * 2})}, headers=tenant.auth
    )
    assert response.status == 200
    assert len((await response.json())["cards"]) == 1


# --- input-caused PostgreSQL errors are 422 problems (gateway/errors.py) ---


@pytest.mark.parametrize(
    "statement, sqlstate",
    [
        ("SELECT '1e131072'::numeric", "22003"),  # numeric overflow
        ("SELECT 1 / 0", "22012"),  # a data exception of another kind
        ("SELECT repeat('[', 200000)::jsonb", "54001"),  # stack depth
        ("SELECT array_fill(1, ARRAY[200000000])", "54000"),  # over an array's largest size
    ],
)
async def test_a_data_exception_or_a_program_limit_from_postgresql_is_a_422_problem(
    database, statement, sqlstate
):
    conn = await asyncpg.connect(database)
    try:
        with pytest.raises(asyncpg.PostgresError) as raised:
            await conn.execute(statement)
    finally:
        await conn.close()
    assert raised.value.sqlstate == sqlstate
    problem = from_database(raised.value)
    assert (problem.status, problem.slug) == (422, "validation-error")
    assert raised.value.message not in problem.detail  # the database's words stay inside


# --- memory: no request up to the body limit takes a process past a few hundred MiB ---

_MIB = 1024 * 1024
_PRIVATE_MEMORY_BOUND = 384 * _MIB  # "a few hundred MiB", per process (docs/SECURITY.md)


def _status_bytes(pid: int, field: str) -> int:
    """A memory figure of /proc/<pid>/status, in bytes (0 once the process is gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) * 1024
    except FileNotFoundError:
        pass
    return 0


def _private_bytes(pid: int) -> int:
    """Resident memory of the process that is its own (anonymous): not the shared buffers it maps."""
    return _status_bytes(pid, "RssAnon")


def _body_limit_attacks() -> dict[str, bytes]:
    """The shapes of the review at (just under) the 8 MiB body limit."""
    limit = 8 * _MIB - 200

    def filled(unit: str) -> str:
        return "[" + ",".join([unit] * ((limit - 60) // (len(unit) + 1))) + "]"

    keys = ",".join(f'"{n:05x}":0' for n in range((limit - 60) // 10))
    card_of_1e1000 = ('{"title": "t", "content": [' + ",".join(["1e1000"] * 1100) + "]}").encode()
    return {
        "1e1000": _batch(filled("1e1000")),
        "1e131071": _batch(filled("1e131071")),
        "0e-16383": _batch(filled("0e-16383")),
        "zeros": _batch(filled("0")),
        "empty objects": _batch(filled("{}")),
        "empty arrays": _batch(filled("[]")),
        "700k unknown keys": f'{{"cards": [{{"title": "t", "content": 1, {keys}}}]}}'.encode(),
        "long decimal": _batch("0." + "0" * 16000 + "1"),
        "deep": _batch(_nested(30000)),
        "one long string": _batch(json.dumps("x" * (limit - 60))),
        "1000 cards of 1e1000": b'{"cards": [' + b",".join([card_of_1e1000] * 1000) + b"]}",
    }


async def test_no_request_up_to_the_body_limit_takes_a_process_past_a_few_hundred_mib(
    database, admin, tenant
):
    port = free_port()
    env = process_env(database, port, CARDS_LOG_LEVEL="WARNING")
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "gateway", env=env, cwd=ROOT)
    peaks: dict[str, int] = {}
    slowest_health = 0.0
    try:
        await wait_until_up(port, process)
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:
            for name, body in _body_limit_attacks().items():
                assert len(body) <= 8 * _MIB, name
                backends = [
                    r[0]
                    for r in admin.conn.execute(
                        "SELECT pid FROM pg_stat_activity WHERE application_name = 'cards-gateway'"
                    ).fetchall()
                ]
                pids = [process.pid, *backends]
                request = asyncio.create_task(
                    http.post(f"{base}{BATCH}", data=io.BytesIO(body), headers=tenant.auth | JSON)
                )
                peak = 0
                while not request.done():
                    peak = max(peak, *(_private_bytes(pid) for pid in pids))
                    started = time.perf_counter()
                    async with http.get(f"{base}/health") as health:
                        assert health.status == 200
                    slowest_health = max(slowest_health, time.perf_counter() - started)
                    await asyncio.sleep(0.02)
                response = await request
                assert response.status == 422, (name, await response.text())
                assert response.content_type == "application/problem+json"
                assert len(await response.read()) <= 64 * 1024
                peaks[name] = peak
        gateway_peak = _status_bytes(process.pid, "VmHWM")  # exact: the gateway maps no shared buffers
    finally:
        process.terminate()
        await process.wait()
    assert gateway_peak < _PRIVATE_MEMORY_BOUND, gateway_peak // _MIB
    print(
        {name: f"{peak / _MIB:.0f} MiB" for name, peak in peaks.items()},
        f"gateway peak {gateway_peak / _MIB:.0f} MiB",
    )
    assert max(peaks.values()) < _PRIVATE_MEMORY_BOUND, {k: v // _MIB for k, v in peaks.items()}
    assert slowest_health < 1.0
    assert admin.card_count(tenant) == 0


@pytest.mark.parametrize(
    "contains", ['{"a": [[2], [2], [2]]}', '{"a": [[[2]], [2]]}', '{"a": [1, 2, 3, 4, 5, 6, 7, 8, 9]}']
)
async def test_a_contains_over_8_array_elements_or_2_nested_ones_is_a_422(client, tenant, contains):
    response = await client.get("/api/v1/cards", params={"contains": contains}, headers=tenant.auth)
    assert response.status == 422
    [error] = (await _problem(response))["errors"]
    assert error["field"] == "contains"
