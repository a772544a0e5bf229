"""The gateway killed (SIGKILL) in the middle of a stream of batches and started again.

The scenario runs once: `python -m gateway` serves concurrent batches, each with its own
Idempotency-Key and cards of its own; it is killed while some are in flight, started again, and
every batch whose answer never arrived is sent again with the same key and body. One of the batches
in flight is made to wait in SQL (a trusted job holds its key) until the gateway is dead, so that it
commits with nobody left to answer: its retry must be a replay. (It is small on purpose: PostgreSQL
commits at the protocol's Sync before it flushes a small answer, but an answer larger than its 8 KB
send buffer is flushed while the statement runs, and the failed send to the dead gateway rolls the
batch back; either way there is one set of cards per key.) Each test checks one promise against what
the clients received and what the database holds."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from scripts import devstack

from .conftest import Admin, Tenant, free_port, hold_key, process_env, start_gateway_process

WORKERS = 6
KILL_AFTER = 30  # answered batches before the kill
HELD = "crash-held"  # the batch that commits after the gateway died


@dataclasses.dataclass
class Crash:
    tenant: Tenant
    batches: dict[str, dict]  # key -> request body, for every batch sent
    first: dict[str, int]  # key -> status of the first try, for those answered before the kill
    lost: list[str]  # keys whose first try got no answer
    retried: dict[str, list[int]]  # key -> statuses of its tries after the restart
    replayed: set[str]  # keys whose answer after the restart was a replay
    answers: dict[str, dict]  # key -> the 201 body the client finally holds
    log: str  # everything both gateway processes wrote (at DEBUG)


async def _start(database: str, port: int, log: Path):
    return await start_gateway_process(process_env(database, port, CARDS_LOG_LEVEL="DEBUG"), log, "ab")


async def _until_a_statement_waits_on_a_lock(admin: Admin) -> None:
    for _ in range(250):
        waiting = admin.value(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND application_name = 'cards-gateway' AND wait_event_type = 'Lock'"
            # the held key's row, not a relation extension lock of some other batch of the stream
            " AND wait_event = 'transactionid'"
        )
        if waiting:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the held batch never reached its wait in SQL")


async def _run_crash(database: str, admin: Admin, tenant: Tenant, log: Path) -> Crash:
    rng = random.Random(3)
    port = free_port()
    url = f"http://127.0.0.1:{port}/api/v1/cards/batch"
    batches: dict[str, dict] = {}
    first: dict[str, int] = {}
    lost: list[str] = []
    answers: dict[str, dict] = {}
    replayed: set[str] = set()
    answered = asyncio.Event()

    async def send(http: aiohttp.ClientSession, key: str) -> int:
        headers = tenant.auth | {"Idempotency-Key": key}
        async with http.post(url, json=batches[key], headers=headers) as response:
            if response.status == 201:
                answers[key] = await response.json()
            if response.headers.get("Idempotent-Replayed") == "true":
                replayed.add(key)
            return response.status

    async def stream(http: aiohttp.ClientSession, worker: int) -> None:
        for i in range(10_000):
            key = f"crash-{worker}-{i}"
            size = rng.choice([1, 5, 50, 200, 400])
            batches[key] = {"cards": [{"title": f"{key}/{j}", "content": {"j": j}} for j in range(size)]}
            try:
                first[key] = await send(http, key)
            except aiohttp.ClientError:  # killed under it, or refused once dead
                lost.append(key)
                return
            if len(first) >= KILL_AFTER:
                answered.set()

    process = await _start(database, port, log)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            workers = [asyncio.create_task(stream(http, n)) for n in range(WORKERS)]
            await asyncio.wait_for(answered.wait(), 30)
            batches[HELD] = {"cards": [{"title": f"{HELD}/{j}", "content": {"j": j}} for j in range(3)]}
            job = hold_key(admin, tenant, HELD)
            try:
                held = asyncio.create_task(send(http, HELD))
                await _until_a_statement_waits_on_a_lock(admin)
                process.send_signal(signal.SIGKILL)
                await process.wait()
            finally:
                job.rollback()  # the dead gateway's statement goes on: it claims the key and commits
                job.close()
            with pytest.raises(aiohttp.ClientError):
                await held
            lost.append(HELD)
            await asyncio.wait_for(asyncio.gather(*workers), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    retried: dict[str, list[int]] = {key: [] for key in lost}
    process = await _start(database, port, log)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            for key in lost:
                # The killed gateway's statement may still hold the key for a moment: 409 says retry.
                while len(retried[key]) < 10:
                    retried[key].append(await send(http, key))
                    if retried[key][-1] != 409:
                        break
                    await asyncio.sleep(0.2)
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 30)
    return Crash(tenant, batches, first, lost, retried, replayed, answers, log="")


@pytest.fixture(scope="module")
def admin(make_database) -> Iterator[Admin]:
    """A database of this module's own: thousands of cards would skew the session's statistics."""
    dsn = make_database("cards_gateway_faults")
    devstack.migrate(dsn)
    admin = Admin(dsn)
    yield admin
    admin.conn.close()


@pytest.fixture(scope="module")
def crash(admin, tmp_path_factory) -> Crash:
    tenant = admin.tenant("gateway faults")
    log = tmp_path_factory.mktemp("gateway-faults") / "gateway.log"
    crash = asyncio.run(_run_crash(admin.dsn, admin, tenant, log))
    crash.log = log.read_text()
    return crash


def test_the_kill_cut_off_batches_in_flight(crash):
    assert len(crash.first) >= KILL_AFTER
    assert set(crash.first.values()) == {201}
    assert set(crash.lost) - {HELD}, "no batch of the stream was in flight when the gateway died"


def test_a_batch_committed_after_its_gateway_died_is_replayed_to_its_retry(crash):
    assert HELD in crash.replayed
    assert crash.retried[HELD][-1] == 201


def test_a_batch_whose_answer_was_lost_gets_one_answer_when_retried_with_its_key(crash):
    assert {key: statuses[-1] for key, statuses in crash.retried.items()} == dict.fromkeys(crash.lost, 201)
    assert set(crash.answers) == set(crash.batches)


def _stored_cards(admin, tenant: Tenant) -> dict[str, list[tuple[str, str]]]:
    """The tenant's cards by the key of the batch that made them (the title names it)."""
    by_key: dict[str, list[tuple[str, str]]] = {}
    rows = admin.conn.execute(
        "SELECT title, card_id::text FROM cards.cards WHERE tenant_id = %s", (tenant.id,)
    ).fetchall()
    for title, card_id in rows:
        by_key.setdefault(title.partition("/")[0], []).append((title, card_id))
    return by_key


def test_each_key_has_exactly_one_whole_set_of_cards(crash, admin):
    stored = _stored_cards(admin, crash.tenant)
    assert set(stored) == set(crash.batches)
    for key, body in crash.batches.items():
        assert sorted(title for title, _ in stored[key]) == sorted(card["title"] for card in body["cards"])


def test_the_answer_each_client_holds_names_the_stored_cards(crash, admin):
    stored = _stored_cards(admin, crash.tenant)
    for key, answer in crash.answers.items():
        assert answer["created"] == len(crash.batches[key]["cards"])
        assert sorted(card["id"] for card in answer["cards"]) == sorted(card_id for _, card_id in stored[key])


def test_each_key_has_one_stored_answer(crash, admin):
    records = admin.conn.execute(
        "SELECT idempotency_key, response_body FROM cards.idempotency_keys WHERE tenant_id = %s",
        (crash.tenant.id,),
    ).fetchall()
    assert {key: json.loads(body) for key, body in records} == crash.answers


def test_the_gateways_debug_log_carries_no_credentials(crash):
    assert '"msg": "serving"' in crash.log or '"msg":"serving"' in crash.log
    assert crash.tenant.key not in crash.log
    assert crash.tenant.key.rpartition("_")[2] not in crash.log
    assert not re.search(r"ck_[0-9a-f]{32}_", crash.log)
