"""PostgreSQL failing under load: stopped abruptly (`pg_ctl -m immediate`) and started again, and
frozen (SIGSTOP: a host that stops answering without closing anything) and thawed.

The scenario runs once, against a throwaway cluster of its own (the session's cluster is never
touched): a stream of concurrent batches (each with its own Idempotency-Key), usage reports and
retrieves; PostgreSQL is killed, /ready is probed while it is gone, it is started again and the
gateway is watched until it serves again; then the same with a freeze; at the end every batch
whose answer was lost is retried with its key. Each test checks one promise against the record.

The cluster is the `test` flavour, but with `synchronous_commit = on` again: an immediate
shutdown loses commits that were acknowledged but not yet written, which is a property of the
test flavour, not something the gateway could help."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import psycopg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import init_app
from gateway.config import Config
from gateway.db import COMMAND_GRACE_S
from scripts import devstack

from .conftest import ROOT, Admin, Tenant, free_port

PGCLUSTER = ROOT / "scripts" / "pgcluster"
CONFIG = {"pool_min": 2, "pool_max": 8, "pool_timeout_s": 0.5, "statement_timeout_ms": 1000}
# The longest any answer may take: a wait for a pool connection, then a statement that gets no
# answer until the gateway gives up on it (statement timeout + grace), and some slack.
LONGEST_S = CONFIG["pool_timeout_s"] + CONFIG["statement_timeout_ms"] / 1000 + COMMAND_GRACE_S + 1.0
FREEZE_S = LONGEST_S + 1.0  # longer than any answer may take
RECOVERY_S = 5.0
WORKERS = 6
SHARED_TITLES = [f"shared-{n}" for n in range(8)]  # items repeated across batches: duplicates


@dataclasses.dataclass
class Answer:
    what: str  # batch, usage, retrieve, ready
    phases: tuple[str, str]  # what the database was doing when the request was sent, and answered
    status: int | None  # None: no answer (the client gave up)
    content_type: str
    retry_after: str | None
    seconds: float
    body: bytes


@dataclasses.dataclass
class Outage:
    dsn: str
    tenant: Tenant
    answers: list[Answer]  # the stream's, and /ready's while the database was gone
    recovered_after_s: dict[str, float]  # kill, freeze: from the database's return to serving again
    batches: dict[str, dict]  # key -> request body
    answered: dict[str, bytes]  # key -> body of the 201 that reached the client (first try or retry)
    retries: list[Answer]
    usage_ok: list[tuple[str, str]]  # (card, run) of every usage report answered 200

    def failed(self, *phases: str) -> list[Answer]:
        """The requests that failed and met one of these phases (sent or answered in it)."""
        return [a for a in self.answers if a.status not in (200, 201) and set(a.phases) & set(phases)]


def _pgcluster(*args: object) -> None:
    subprocess.run([PGCLUSTER, *map(str, args)], check=True, capture_output=True, timeout=90)


@pytest.fixture(scope="module")
def fault_cluster() -> Iterator[tuple[str, Path, int]]:
    """A cluster of this module's own, migrated, durable on commit; destroyed afterwards."""
    datadir, port = ROOT / ".data" / f"pytest-faults-{os.getpid()}", free_port()
    _pgcluster("start", datadir, port, "test")
    try:
        server = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET synchronous_commit = on")
            conn.execute("SELECT pg_reload_conf()")
            conn.execute("CREATE DATABASE cards_faults")
        dsn = f"postgresql://postgres@127.0.0.1:{port}/cards_faults"
        devstack.migrate(dsn)
        yield dsn, datadir, port
    finally:
        _pgcluster("destroy", datadir)


@pytest.fixture(scope="module")
def outage(fault_cluster) -> Outage:
    dsn, datadir, port = fault_cluster
    admin = Admin(dsn)
    try:
        tenant = admin.tenant("faults")
    finally:
        admin.conn.close()
    return asyncio.run(_run_outage(dsn, datadir, port, tenant))


def _freeze(datadir: Path) -> list[int]:
    """SIGSTOP the cluster's processes: the postmaster first, so that it forks no more."""
    postmaster = int((datadir / "postmaster.pid").read_text().split()[0])
    os.kill(postmaster, signal.SIGSTOP)
    children = Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split()
    for pid in map(int, children):
        os.kill(pid, signal.SIGSTOP)
    return [postmaster, *map(int, children)]


def _thaw(processes: list[int]) -> None:
    for pid in processes:
        os.kill(pid, signal.SIGCONT)


async def _run_outage(dsn: str, datadir: Path, port: int, tenant: Tenant) -> Outage:
    rng = random.Random(7)
    phase = "before"
    answers: list[Answer] = []
    batches: dict[str, dict] = {}
    answered: dict[str, bytes] = {}
    usage_ok: list[tuple[str, str]] = []
    card_ids: list[str] = []
    stop = asyncio.Event()

    async with TestClient(TestServer(init_app(Config(database_url=dsn, **CONFIG)))) as client:

        async def send(what: str, method: str, path: str, **kwargs) -> Answer:
            sent, started = phase, time.monotonic()
            try:
                async with asyncio.timeout(LONGEST_S + 5):  # a hang shows as status None
                    async with client.request(method, path, **kwargs) as response:
                        body = await response.read()
                        status, media = response.status, response.content_type
                        retry_after = response.headers.get("Retry-After")
            except (TimeoutError, aiohttp.ClientError):
                status, media, retry_after, body = None, "", None, b""
            return Answer(what, (sent, phase), status, media, retry_after, time.monotonic() - started, body)

        async def batch(key: str) -> Answer:
            headers = tenant.auth | {"Idempotency-Key": key}
            answer = await send("batch", "POST", "/api/v1/cards/batch", json=batches[key], headers=headers)
            if answer.status == 201:
                answered[key] = answer.body
                card_ids.extend(card["id"] for card in json.loads(answer.body)["cards"])
            return answer

        async def worker(n: int) -> None:
            for i in range(100_000):
                if stop.is_set():
                    return
                key = f"w{n}-{i}"
                titles = [f"{key}-{j}" for j in range(rng.randint(1, 25))] + rng.sample(SHARED_TITLES, 2)
                batches[key] = {"cards": [{"title": t, "content": {"t": t}} for t in titles]}
                step = [await batch(key)]
                if card_ids:
                    card, run = rng.choice(card_ids), f"run-{rng.randint(0, 9)}"
                    usage = {"workflow_id": "wf", "run_id": run}
                    path = f"/api/v1/cards/{card}/usage"
                    step.append(await send("usage", "POST", path, json=usage, headers=tenant.auth))
                    if step[-1].status == 200:
                        usage_ok.append((card, run))
                    ids = {"ids": rng.sample(card_ids, min(len(card_ids), 20))}
                    path = "/api/v1/cards/retrieve"
                    step.append(await send("retrieve", "POST", path, json=ids, headers=tenant.auth))
                answers.extend(step)
                if any(a.status not in (200, 201) for a in step):
                    await asyncio.sleep(0.05)  # back off a little while the database is away

        async def while_away(seconds: float) -> None:
            """Probes /ready while the database is away."""
            until = time.monotonic() + seconds
            while time.monotonic() < until:
                answers.append(await send("ready", "GET", "/ready"))
                await asyncio.sleep(0.1)

        async def until_served() -> float:
            """Seconds from now until an API request and /ready succeed again."""
            back, probe = time.monotonic(), {"ids": card_ids[:1]}
            while time.monotonic() - back < 3 * RECOVERY_S:
                served = await send(
                    "probe", "POST", "/api/v1/cards/retrieve", json=probe, headers=tenant.auth
                )
                if served.status == 200 and (await send("probe", "GET", "/ready")).status == 200:
                    break
                await asyncio.sleep(0.05)
            return time.monotonic() - back

        assert (await send("ready", "GET", "/ready")).status == 200
        workers = [asyncio.create_task(worker(n)) for n in range(WORKERS)]
        recovered = {}
        await asyncio.sleep(1.0)

        phase = "killed"
        await asyncio.to_thread(_pgcluster, "kill", datadir)
        await while_away(1.0)
        await asyncio.to_thread(_pgcluster, "start", datadir, port, "test")  # -w: accepting connections
        phase = "restarted"
        recovered["kill"] = await until_served()
        phase = "after kill"
        await asyncio.sleep(0.5)

        phase = "frozen"
        processes = _freeze(datadir)
        try:
            await while_away(FREEZE_S)
        finally:
            _thaw(processes)
        phase = "thawed"
        recovered["freeze"] = await until_served()
        phase = "after freeze"
        await asyncio.sleep(0.5)

        stop.set()
        await asyncio.gather(*workers)
        phase = "retry"
        retries = [await batch(key) for key in batches if key not in answered]

    return Outage(dsn, tenant, answers, recovered, batches, answered, retries, usage_ok)


def test_the_stream_met_each_fault(outage):
    """The scenario itself: requests succeeded before and after each fault, and some failed in it."""
    ok = {a.phases[0] for a in outage.answers if a.status in (200, 201)}
    assert {"before", "after kill", "after freeze"} <= ok
    assert outage.failed("killed") and outage.failed("frozen")


def test_requests_that_meet_no_fault_succeed(outage):
    faults = outage.failed("killed", "restarted", "frozen", "thawed")
    assert [a for a in outage.answers if a.status not in (200, 201) and a not in faults] == []


def test_requests_meeting_a_stopped_database_are_503_problems_with_retry_after(outage):
    for answer in outage.failed("killed", "restarted"):
        assert answer.status == 503, (answer.what, answer.body)
        assert answer.content_type == "application/problem+json"
        assert json.loads(answer.body)["type"] == "/problems/service-unavailable"
        assert answer.retry_after == "1"


def test_requests_meeting_a_frozen_database_are_503_or_504_problems_with_retry_after(outage):
    for answer in outage.failed("frozen", "thawed"):
        assert answer.status in (503, 504), (answer.what, answer.status, answer.body)
        assert answer.content_type == "application/problem+json"
        slug = {503: "service-unavailable", 504: "gateway-timeout"}[answer.status]
        assert json.loads(answer.body)["type"] == f"/problems/{slug}"
        assert answer.retry_after == "1"


def test_no_request_waits_past_the_configured_timeouts(outage):
    slowest = max(outage.answers + outage.retries, key=lambda a: a.seconds)
    assert slowest.seconds < LONGEST_S, slowest


def test_ready_is_503_while_the_database_is_gone_or_frozen(outage):
    for phase in ("killed", "frozen"):
        statuses = {a.status for a in outage.answers if a.what == "ready" and a.phases[0] == phase}
        assert statuses == {503}, phase


def test_the_gateway_serves_again_within_5_seconds_of_the_databases_return(outage):
    assert outage.recovered_after_s["kill"] < RECOVERY_S
    assert outage.recovered_after_s["freeze"] < RECOVERY_S


def test_every_batch_whose_answer_was_lost_gets_one_answer_when_retried_with_its_key(outage):
    assert outage.retries, "no batch lost its answer"
    assert [a.status for a in outage.retries] == [201] * len(outage.retries)
    assert set(outage.answered) == set(outage.batches)


def _stored(outage: Outage) -> tuple[dict[str, str], set[str]]:
    with psycopg.connect(outage.dsn) as conn:
        records = dict(
            conn.execute(
                "SELECT idempotency_key, response_body FROM cards.idempotency_keys WHERE tenant_id = %s",
                (outage.tenant.id,),
            ).fetchall()
        )
        cards = conn.execute(
            "SELECT card_id::text FROM cards.cards WHERE tenant_id = %s", (outage.tenant.id,)
        )
        return records, {card_id for (card_id,) in cards}


def test_every_batch_is_wholly_present_or_wholly_absent(outage):
    records, cards = _stored(outage)
    named = set()
    for key, body in records.items():
        ids = [card["id"] for card in json.loads(body)["cards"]]
        assert len(ids) == len(outage.batches[key]["cards"]), key
        assert set(ids) <= cards, f"batch {key} is stored without some of its cards"
        named |= set(ids)
    assert cards == named, "cards that no stored batch answers for: part of a batch without its key"


def test_every_answer_a_client_received_is_the_one_stored_for_its_key(outage):
    records, _ = _stored(outage)
    assert {key: body.encode() for key, body in records.items()} == outage.answered


def test_usage_counts_equal_the_distinct_usage_rows(outage):
    with psycopg.connect(outage.dsn) as conn:
        counts = conn.execute(
            """
            SELECT c.card_id::text,
                   coalesce((SELECT sum(n.usage_count) FROM cards.card_usage_counters AS n
                             WHERE n.tenant_id = c.tenant_id AND n.card_id = c.card_id), 0),
                   (SELECT count(*) FROM cards.card_usage AS u
                    WHERE u.tenant_id = c.tenant_id AND u.card_id = c.card_id)
            FROM cards.cards AS c WHERE c.tenant_id = %s
            """,
            (outage.tenant.id,),
        ).fetchall()
        rows = conn.execute(
            "SELECT card_id::text, run_id FROM cards.card_usage WHERE tenant_id = %s", (outage.tenant.id,)
        ).fetchall()
    assert sum(events for _, _, events in counts) > 0
    assert [(card, n, events) for card, n, events in counts if n != events] == []
    assert set(outage.usage_ok) <= set(rows), "a usage report answered 200 is not stored"
