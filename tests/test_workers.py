"""`python -m gateway` with several worker processes on one port (CARDS_WORKERS): the supervisor
passes signals on, the workers drain, a scrape of any worker answers for all of them, and no worker
outlives its supervisor or runs on alone when a sibling dies."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import time
from pathlib import Path

import aiohttp
import psycopg
import pytest

from .conftest import JWT_SECRET, ROOT, cards, free_port, gateway_env, wait_until_up

POOL_MAX = 4  # a tenant may hold half: two calls at once


def _hold_key(admin, tenant, key: str) -> psycopg.Connection:
    """A trusted job that claimed `key` (with cards of its own) and has not committed yet."""
    job = psycopg.connect(admin.dsn)
    job.execute(
        "SELECT * FROM cards.batch_create(%s, %s, %s)", (tenant.id, json.dumps(cards(key)["cards"]), key)
    )
    return job


def _workers_of(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A reaped child is gone; an unreaped one is a zombie, which has stopped serving too.
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"


async def _until(condition, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "not within the time allowed"
        await asyncio.sleep(0.05)


def _env(database: str, port: int, workers: int, **settings: str) -> dict[str, str]:
    return (
        gateway_env(
            DATABASE_URL=database,
            PORT=str(port),
            CARDS_JWT_SECRET=JWT_SECRET,
            CARDS_DEV="1",
            CARDS_LOG_LEVEL="WARNING",
            CARDS_WORKERS=str(workers),
            CARDS_DB_POOL_MIN="1",
            CARDS_DB_POOL_MAX=str(POOL_MAX),
        )
        | settings
    )


async def _start(database: str, port: int, workers: int, log: Path):
    env = _env(database, port, workers)
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", env=env, cwd=ROOT, stdout=out, stderr=out
        )
    await wait_until_up(port, process)
    forked = workers if workers > 1 else 0  # one worker is the process itself
    await _until(lambda: len(_workers_of(process.pid)) == forked)
    return process


async def _stop(process) -> None:
    if process.returncode is None:
        for worker in _workers_of(process.pid):
            os.kill(worker, signal.SIGKILL)
        process.kill()
        await process.wait()


def _sample(text: str, name: str, labels: str = "") -> float:
    match = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.MULTILINE)
    assert match, f"{name}{labels} is not in the scrape"
    return float(match.group(1))


@pytest.mark.parametrize("workers", [1, 2])
async def test_sigterm_to_the_gateway_lets_each_workers_request_in_flight_finish(
    database, admin, tenant, tmp_path, workers
):
    port = free_port()
    process = await _start(database, port, workers, tmp_path / "gateway.log")
    try:
        jobs = [_hold_key(admin, tenant, f"in-flight-{n}") for n in range(2)]
        # One connection each, so that with two workers each is likely another worker's.
        sessions = [aiohttp.ClientSession() for _ in jobs]
        try:
            requests = [
                asyncio.create_task(
                    http.post(
                        f"http://127.0.0.1:{port}/api/v1/cards/batch",
                        json=cards(f"in-flight-{n}"),
                        headers=tenant.auth | {"Idempotency-Key": f"in-flight-{n}"},
                    )
                )
                for n, http in enumerate(sessions)
            ]
            await asyncio.sleep(0.3)
            process.send_signal(signal.SIGTERM)
            for request in requests:
                response = await request
                assert response.status == 409  # answered in full, not cut off
        finally:
            for job in jobs:
                job.rollback()
                job.close()
            for http in sessions:
                await http.close()
        assert await asyncio.wait_for(process.wait(), 15) == 0
    finally:
        await _stop(process)


async def test_every_scrape_counts_the_requests_of_all_workers(database, tmp_path):
    port = free_port()
    process = await _start(database, port, 2, tmp_path / "gateway.log")
    try:
        for _ in range(20):  # a connection each: the kernel spreads them over the workers
            async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/health") as r:
                assert r.status == 200
        await asyncio.sleep(1.2)  # the pool gauges are written every second
        labels = '{method="GET",route="/health",status="200"}'
        for _ in range(6):  # each scrape reaches one worker or the other
            async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as r:
                text = await r.text()
            assert _sample(text, "cards_http_requests_total", labels) == 21  # and wait_until_up's
            assert _sample(text, "cards_db_pool_max_connections") == 2 * POOL_MAX
    finally:
        await _stop(process)


async def test_workers_stop_when_their_supervisor_is_killed(database, tmp_path):
    port = free_port()
    process = await _start(database, port, 2, tmp_path / "gateway.log")
    workers = _workers_of(process.pid)
    try:
        process.kill()
        await process.wait()
        await _until(lambda: not any(_alive(w) for w in workers))
    finally:
        for worker in workers:
            if _alive(worker):
                os.kill(worker, signal.SIGKILL)


async def test_a_dead_worker_stops_the_others_and_the_gateway_exits_with_an_error(database, tmp_path):
    port = free_port()
    process = await _start(database, port, 2, tmp_path / "gateway.log")
    first, second = _workers_of(process.pid)
    try:
        os.kill(first, signal.SIGKILL)
        assert await asyncio.wait_for(process.wait(), 15) != 0
        assert not _alive(second)
    finally:
        await _stop(process)


async def test_a_gateway_stopped_while_its_workers_start_exits_cleanly(database, tmp_path):
    """SIGTERM right after the workers are forked, before any serves: a stop, not a failure."""
    # INFO for the "supervising" line, unbuffered to read it as soon as it is written.
    env = _env(database, free_port(), 2, CARDS_LOG_LEVEL="INFO", PYTHONUNBUFFERED="1")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", env=env, cwd=ROOT, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        while b'"supervising"' not in (line := await asyncio.wait_for(process.stdout.readline(), 15)):
            assert line, "the gateway exited before supervising"
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 15) == 0
    finally:
        await _stop(process)
