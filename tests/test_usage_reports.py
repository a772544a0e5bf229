"""What usage shows afterwards: GET /api/v1/cards/{id}/usage (the runs that used a card, newest
first, paginated), GET /api/v1/usage/summary (events per hour or day and the most used cards), both
invisible to a second tenant; and scripts/retention, which removes expired idempotency keys and old
usage events but never changes a card's usage_count."""

from __future__ import annotations

import asyncio
import re
from asyncio.subprocess import PIPE, STDOUT
from urllib.parse import quote

from .conftest import ROOT, cards, create

CARDS = "/api/v1/cards"
SUMMARY = "/api/v1/usage/summary"


async def _report(client, tenant, card_id: str, run: str, workflow: str = "onboarding", **metadata) -> dict:
    body = {"workflow_id": workflow, "run_id": run, "metadata": metadata}
    response = await client.post(f"{CARDS}/{card_id}/usage", json=body, headers=tenant.auth)
    assert response.status == 200, await response.text()
    return await response.json()


async def _history(client, tenant, card_id: str, query: str = "") -> dict:
    response = await client.get(f"{CARDS}/{card_id}/usage{query}", headers=tenant.auth)
    assert response.status == 200, await response.text()
    return await response.json()


async def _summary(client, tenant, query: str = "") -> dict:
    response = await client.get(f"{SUMMARY}{query}", headers=tenant.auth)
    assert response.status == 200, await response.text()
    return await response.json()


async def _invalid(response) -> list[str]:
    assert response.status == 422, await response.text()
    problem = await response.json()
    assert problem["type"] == "/problems/validation-error"
    return [e["field"] for e in problem["errors"]]


def _age(admin, tenant, run: str, at: str) -> None:
    """Moves one usage event of the tenant to `at` (as the superuser, whom RLS does not hold)."""
    admin.conn.execute(
        "UPDATE cards.card_usage SET recorded_at = %s WHERE tenant_id = %s AND run_id = %s",
        (at, tenant.id, run),
    )


# --- GET /api/v1/cards/{id}/usage ---


async def test_the_history_lists_the_runs_newest_first_with_their_metadata(client, tenant):
    [card_id] = await create(client, tenant, "used")
    recorded = [await _report(client, tenant, card_id, f"run-{n}", step=n) for n in range(3)]
    body = await _history(client, tenant, card_id)
    assert body["next_cursor"] is None
    assert body["usage"] == [
        {
            "workflow_id": "onboarding",
            "run_id": f"run-{n}",
            "metadata": {"step": n},
            "recorded_at": r["recorded_at"],
        }
        for n, r in reversed(list(enumerate(recorded)))
    ]


async def test_a_repeated_report_appears_once_in_the_history(client, tenant):
    [card_id] = await create(client, tenant, "used")
    for _ in range(3):
        await _report(client, tenant, card_id, "same-run")
    assert [u["run_id"] for u in (await _history(client, tenant, card_id))["usage"]] == ["same-run"]


async def test_a_card_never_used_has_an_empty_history(client, tenant):
    [card_id] = await create(client, tenant, "unused")
    assert await _history(client, tenant, card_id) == {"usage": [], "next_cursor": None}


async def test_history_pages_visit_each_run_exactly_once_newest_first(client, tenant):
    [card_id] = await create(client, tenant, "popular")
    for n in range(7):
        await _report(client, tenant, card_id, f"run-{n}", workflow=f"wf-{n % 2}")
    pages, cursor = [], None
    while True:
        query = "?limit=3" + (f"&cursor={quote(cursor)}" if cursor else "")
        body = await _history(client, tenant, card_id, query)
        pages.append([u["run_id"] for u in body["usage"]])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == [["run-6", "run-5", "run-4"], ["run-3", "run-2", "run-1"], ["run-0"]]


async def test_the_history_of_an_unknown_deleted_or_malformed_card_is_404(client, tenant):
    [card_id] = await create(client, tenant, "gone")
    await _report(client, tenant, card_id, "run-1")
    await client.delete(f"{CARDS}/{card_id}", headers=tenant.auth)
    for target in [card_id, "00000000-0000-0000-0000-000000000000", "not-a-uuid", "%00"]:
        response = await client.get(f"{CARDS}/{target}/usage", headers=tenant.auth)
        assert response.status == 404, target
        assert (await response.json())["type"] == "/problems/not-found"


async def test_the_history_survives_a_delete_and_restore(client, tenant):
    [card_id] = await create(client, tenant, "back")
    await _report(client, tenant, card_id, "run-1")
    await client.delete(f"{CARDS}/{card_id}", headers=tenant.auth)
    await client.post(f"{CARDS}/{card_id}/restore", headers=tenant.auth)
    assert [u["run_id"] for u in (await _history(client, tenant, card_id))["usage"]] == ["run-1"]


async def test_another_tenants_card_history_is_404(client, tenant, other_tenant):
    [card_id] = await create(client, tenant, "mine")
    await _report(client, tenant, card_id, "secret-run")
    response = await client.get(f"{CARDS}/{card_id}/usage", headers=other_tenant.auth)
    assert response.status == 404
    assert b"secret-run" not in await response.read()


async def test_a_bad_history_limit_or_cursor_or_parameter_is_422_naming_it(client, tenant):
    [card_id] = await create(client, tenant, "a")
    url = f"{CARDS}/{card_id}/usage"
    for query, field in [
        ("?limit=0", "limit"),
        ("?limit=201", "limit"),
        ("?limit=abc", "limit"),
        ("?cursor=forged", "cursor"),
        ("?cursor=WyJ4Il0", "cursor"),  # ["x"]: JSON, but not a position
        ("?cursor=%00", "cursor"),
        ("?since=yesterday", "since"),
    ]:
        assert await _invalid(await client.get(url + query, headers=tenant.auth)) == [field], query


# --- GET /api/v1/usage/summary ---


async def test_the_summary_counts_events_per_hour_and_ranks_the_most_used_cards(client, admin, tenant):
    a, b, c = await create(client, tenant, "card a", "card b", "card c")
    for card_id, run, at in [
        (a, "a1", "2020-01-01T00:00:00Z"),  # `from` is inclusive
        (a, "a2", "2020-01-01T00:59:59Z"),
        (a, "a3", "2020-01-01T02:30:00Z"),
        (b, "b1", "2020-01-01T02:40:00Z"),
        (c, "c1", "2020-01-01T04:00:00Z"),  # `to` is exclusive
        (c, "c2", "2019-12-31T23:59:59Z"),  # before `from`
    ]:
        await _report(client, tenant, card_id, run)
        _age(admin, tenant, run, at)
    body = await _summary(client, tenant, "?from=2020-01-01T00:00:00Z&to=2020-01-01T04:00:00Z&bucket=hour")
    assert body == {
        "from": "2020-01-01T00:00:00.000000Z",
        "to": "2020-01-01T04:00:00.000000Z",
        "bucket": "hour",
        "buckets": [
            {"start": "2020-01-01T00:00:00.000000Z", "events": 2},
            {"start": "2020-01-01T01:00:00.000000Z", "events": 0},
            {"start": "2020-01-01T02:00:00.000000Z", "events": 2},
            {"start": "2020-01-01T03:00:00.000000Z", "events": 0},
        ],
        "top_cards": [
            {"card_id": a, "title": "card a", "events": 3},
            {"card_id": b, "title": "card b", "events": 1},
        ],
    }


async def test_the_summary_counts_events_per_utc_day(client, admin, tenant):
    [card_id] = await create(client, tenant, "daily")
    for run, at in [
        ("d1", "2020-03-01T23:30:00Z"),
        ("d2", "2020-03-02T00:30:00+01:00"),
        ("d3", "2020-03-03T12:00:00Z"),
    ]:
        await _report(client, tenant, card_id, run)
        _age(admin, tenant, run, at)
    body = await _summary(client, tenant, "?from=2020-03-01T00:00:00Z&to=2020-03-04T00:00:00Z&bucket=day")
    assert [(b["start"][:10], b["events"]) for b in body["buckets"]] == [
        ("2020-03-01", 2),  # 00:30+01:00 is 23:30 UTC the day before
        ("2020-03-02", 0),
        ("2020-03-03", 1),
    ]
    assert body["top_cards"] == [{"card_id": card_id, "title": "daily", "events": 3}]


async def test_a_window_off_the_hour_starts_with_its_partial_bucket(client, tenant):
    body = await _summary(client, tenant, "?from=2020-01-01T00:30:00%2B00:00&to=2020-01-01T02:30:00Z")
    assert [b["start"][11:16] for b in body["buckets"]] == ["00:00", "01:00", "02:00"]
    assert body["from"] == "2020-01-01T00:30:00.000000Z"


async def test_the_default_summary_is_the_last_24_hours_by_hour_and_counts_fresh_usage(client, tenant):
    [card_id] = await create(client, tenant, "fresh")
    await _report(client, tenant, card_id, "now")
    body = await _summary(client, tenant)
    assert body["bucket"] == "hour"
    assert len(body["buckets"]) in (24, 25)
    assert sum(b["events"] for b in body["buckets"]) == 1
    assert body["top_cards"] == [{"card_id": card_id, "title": "fresh", "events": 1}]


async def test_the_summary_names_at_most_ten_cards(client, tenant):
    ids = await create(client, tenant, *[f"card {n}" for n in range(12)])
    for n, card_id in enumerate(ids):
        for run in range(1 + n % 3):
            await _report(client, tenant, card_id, f"run-{run}")
    top = (await _summary(client, tenant))["top_cards"]
    assert len(top) == 10
    assert [t["events"] for t in top] == sorted((t["events"] for t in top), reverse=True)
    assert top[0]["events"] == 3


async def test_another_tenant_sees_none_of_the_usage_in_its_summary(client, tenant, other_tenant):
    [card_id] = await create(client, tenant, "mine")
    await _report(client, tenant, card_id, "run-1")
    body = await _summary(client, other_tenant)
    assert sum(b["events"] for b in body["buckets"]) == 0
    assert body["top_cards"] == []


async def test_a_bad_bucket_from_or_to_is_422_naming_it(client, tenant):
    for query, field in [
        ("?bucket=week", "bucket"),
        ("?bucket=HOUR", "bucket"),
        ("?bucket=", "bucket"),
        ("?from=yesterday", "from"),
        ("?from=2020-01-01T00:00:00", "from"),  # no time zone
        ("?from=2020-01-01T00:00:00+00:00", "from"),  # an unencoded + is a space
        ("?to=2020-13-01T00:00:00Z", "to"),
        ("?to=", "to"),
        ("?from=2020-01-02T00:00:00Z&to=2020-01-01T00:00:00Z", "from"),  # from after to
        ("?from=2020-01-01T00:00:00Z&to=2020-01-01T00:00:00Z", "from"),  # an empty window
        ("?from=2020-01-01T00:00:00Z&to=2020-03-01T00:00:00Z&bucket=hour", "to"),  # over 1000 buckets
        ("?from=%00", "from"),
        ("?window=1d", "window"),
        ("?bucket=day&bucket=hour", "bucket"),
    ]:
        assert await _invalid(await client.get(f"{SUMMARY}{query}", headers=tenant.auth)) == [field], query


# --- retention: scripts/retention ---


async def _retention(database: str) -> str:
    process = await asyncio.create_subprocess_exec(
        ROOT / "scripts" / "retention", database, stdout=PIPE, stderr=STDOUT
    )
    output, _ = await process.communicate()
    assert process.returncode == 0, output.decode()
    assert re.fullmatch(
        r"retention: removed \d+ expired idempotency keys, \d+ old usage events and \d+ expired sessions\n",
        output.decode(),
    )
    return output.decode()


def _rows(admin, query: str, tenant) -> list[str]:
    return sorted(row[0] for row in admin.conn.execute(query, (tenant.id,)).fetchall())


async def test_retention_removes_expired_keys_and_old_events_keeps_fresh_ones_and_the_count(
    client, admin, database, tenant
):
    [card_id] = await create(client, tenant, "counted")
    for key in ["expired-key", "fresh-key"]:
        await client.post(f"{CARDS}/batch", json=cards(key), headers=tenant.auth | {"Idempotency-Key": key})
    for run in ["old-run", "fresh-run"]:
        await _report(client, tenant, card_id, run)
    admin.conn.execute(
        "UPDATE cards.idempotency_keys SET expires_at = now() - interval '1 minute'"
        " WHERE tenant_id = %s AND idempotency_key = 'expired-key'",
        (tenant.id,),
    )
    admin.conn.execute(
        "UPDATE cards.card_usage SET recorded_at = now() - interval '91 days'"
        " WHERE tenant_id = %s AND run_id = 'old-run'",
        (tenant.id,),
    )

    await _retention(database)

    keys = "SELECT idempotency_key FROM cards.idempotency_keys WHERE tenant_id = %s"
    assert _rows(admin, keys, tenant) == ["fresh-key"]
    assert _rows(admin, "SELECT run_id FROM cards.card_usage WHERE tenant_id = %s", tenant) == ["fresh-run"]
    card = await (await client.get(f"{CARDS}/{card_id}", headers=tenant.auth)).json()
    assert card["usage_count"] == 2
    assert [u["run_id"] for u in (await _history(client, tenant, card_id))["usage"]] == ["fresh-run"]


async def test_after_retention_an_expired_key_runs_afresh_and_a_purged_run_counts_again(
    client, admin, database, tenant
):
    [card_id] = await create(client, tenant, "counted")
    headers = tenant.auth | {"Idempotency-Key": "k"}
    await client.post(f"{CARDS}/batch", json=cards("first"), headers=headers)
    await _report(client, tenant, card_id, "run-1")
    admin.conn.execute(
        "UPDATE cards.idempotency_keys SET expires_at = now() WHERE tenant_id = %s", (tenant.id,)
    )
    _age(admin, tenant, "run-1", "2000-01-01T00:00:00Z")

    await _retention(database)

    response = await client.post(f"{CARDS}/batch", json=cards("second"), headers=headers)
    assert response.status == 201  # not 422 idempotency-key-reused: the key expired
    assert "Idempotent-Replayed" not in response.headers
    again = await _report(client, tenant, card_id, "run-1")  # the dedupe window is the retention window
    assert (again["deduplicated"], again["usage_count"]) == (False, 2)
