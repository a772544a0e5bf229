"""The gateway as a process (`python -m gateway`) and `scripts/run-dev` (what `make run` starts)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from asyncio.subprocess import PIPE, STDOUT
from pathlib import Path

import aiohttp
import pytest

from .conftest import (
    ROOT,
    cards,
    free_port,
    gateway_env,
    hold_key,
    process_env,
    start_gateway_process,
    wait_until_up,
)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # as in a terminal, even if our parent ignores it


def test_a_bad_setting_stops_the_gateway_with_a_message_naming_it():
    env = gateway_env(DATABASE_URL="postgresql://nowhere/db", CARDS_DB_POOL_MAX="lots")
    result = subprocess.run(
        [sys.executable, "-m", "gateway"], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 1
    assert "CARDS_DB_POOL_MAX must be an integer >= 1, got 'lots'" in result.stderr


async def test_sigterm_lets_the_request_in_flight_finish_then_exits_cleanly(database, admin, tenant):
    port = free_port()
    env = process_env(database, port, CARDS_LOG_LEVEL="WARNING")
    process = await start_gateway_process(env)
    try:
        job = hold_key(admin, tenant, "in-flight")  # the request below waits on it for ~1 s
        async with aiohttp.ClientSession() as http:
            request = asyncio.create_task(
                http.post(
                    f"http://127.0.0.1:{port}/api/v1/cards/batch",
                    json=cards("a"),
                    headers=tenant.auth | {"Idempotency-Key": "in-flight"},
                )
            )
            await asyncio.sleep(0.3)
            process.send_signal(signal.SIGTERM)
            response = await request
            assert response.status == 409  # answered in full, not cut off
            assert (await response.json())["type"] == "/problems/idempotency-key-in-use"
            job.rollback()
            job.close()
        assert await asyncio.wait_for(process.wait(), 15) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@pytest.fixture
def dev_cluster_dir():
    datadir = ROOT / ".data" / f"pytest-run-dev-{os.getpid()}"
    yield datadir
    subprocess.run([ROOT / "scripts" / "pgcluster", "stop", datadir], check=False)
    shutil.rmtree(datadir, ignore_errors=True)
    Path(f"{datadir}-credentials").unlink(missing_ok=True)


async def _run_dev(
    datadir: Path, port: int, pgport: int, signals: tuple[int, ...] = (signal.SIGINT,)
) -> tuple[str, list[str]]:
    """Starts run-dev, tries the printed curl, stops it with Ctrl-C (or `signals`, 20 ms apart);
    answers the key and the output."""
    env = gateway_env(
        PORT=str(port), DEV_PGDATA=str(datadir), DEV_PGPORT=str(pgport), CARDS_LOG_LEVEL="WARNING"
    )
    process = await asyncio.create_subprocess_exec(
        ROOT / "scripts" / "run-dev", env=env, cwd=ROOT, stdout=PIPE, preexec_fn=_default_sigint
    )
    try:
        lines = []
        while not lines or "Ctrl-C stops" not in lines[-1]:
            lines.append((await asyncio.wait_for(process.stdout.readline(), 60)).decode())
            assert lines[-1], "run-dev ended early: " + "".join(lines)
        await wait_until_up(port, process)
        output = "".join(lines)
        curl = output[output.index("curl -s") : output.index("Ctrl-C")].strip()
        shell = await asyncio.create_subprocess_exec("bash", "-c", curl, stdout=PIPE, stderr=STDOUT)
        created, _ = await shell.communicate()
        assert re.search(rb'"created"\s*:\s*1\b', created), created
        for number, signum in enumerate(signals):
            if number:
                await asyncio.sleep(0.02)
            with contextlib.suppress(ProcessLookupError):  # it may be done already
                process.send_signal(signum)
        assert await asyncio.wait_for(process.wait(), 30) == 128 + signals[0]
        return re.search(r"ck_[0-9a-f]{32}_\S{43}", output).group(0), lines
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_run_dev_serves_a_working_curl_example_and_ctrl_c_leaves_nothing_running(dev_cluster_dir):
    port, pgport = free_port(), free_port()
    key, _ = await _run_dev(dev_cluster_dir, port, pgport)
    assert not (dev_cluster_dir / "postmaster.pid").exists()  # the cluster is stopped
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()  # and the gateway too
    again, _ = await _run_dev(dev_cluster_dir, port, pgport)
    assert again == key  # the second run reuses the cluster and its dev key


async def test_run_dev_stopped_by_sigterm_twice_still_stops_the_cluster(dev_cluster_dir):
    """`make run` passes a SIGTERM on to run-dev, which may have had its own (a TERM to the whole
    process group): the second arrives while it stops the gateway, and must not cut that short."""
    port, pgport = free_port(), free_port()
    await _run_dev(dev_cluster_dir, port, pgport, signals=(signal.SIGTERM, signal.SIGTERM))
    assert not (dev_cluster_dir / "postmaster.pid").exists()
