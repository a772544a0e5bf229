"""scripts/devstack.py's readiness check: a gateway is ready only when the port it was given was free,
the path answers 200, and the answer comes from the process that was started."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from scripts import devstack

from .conftest import free_port, gateway_env


@pytest.fixture
def other_server(tmp_path) -> Iterator[int]:
    """Somebody else's HTTP server answering 200 on every path, on a free port."""
    port = free_port()
    (tmp_path / "ready").write_text("{}")
    (tmp_path / "health").write_text("{}")
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        devstack.wait_ready(port, server.pid, "/health")
        yield port
    finally:
        server.terminate()
        server.wait()


def test_the_gateway_is_not_started_on_a_port_something_listens_on(other_server, database, tmp_path):
    with pytest.raises(RuntimeError, match=f"port {other_server} is in use"):
        devstack.start_gateway(other_server, gateway_env(DATABASE_URL=database), tmp_path / "gateway.log")


def test_an_answer_from_another_process_is_not_readiness(other_server):
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        with pytest.raises(RuntimeError, match="not the gateway"):
            devstack.wait_ready(other_server, bystander.pid, "/health", seconds=5)
    finally:
        bystander.kill()
        bystander.wait()


def test_a_gateway_that_exits_is_reported_at_once_with_its_log(tmp_path):
    log = tmp_path / "gateway.log"
    env = gateway_env(DATABASE_URL="postgresql://nowhere/db", CARDS_DB_POOL_MAX="lots")
    with pytest.raises(RuntimeError, match="exited before it was ready"):
        devstack.start_gateway(free_port(), env, log, seconds=60)
    assert "CARDS_DB_POOL_MAX" in log.read_text()


def test_the_started_gateway_is_ready_and_is_the_one_listening(database, tmp_path):
    port = free_port()
    gateway = devstack.start_gateway(port, gateway_env(DATABASE_URL=database), tmp_path / "gateway.log")
    try:
        # The gateway itself, or its workers (CARDS_WORKERS: children that share the port).
        assert devstack.listening_pids(port) & devstack._family(gateway.pid)
    finally:
        devstack.stop_gateway(gateway)
    assert gateway.returncode == 0
    assert devstack.port_is_free(port)
