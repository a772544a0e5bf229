"""The compose stack without Docker: PostgreSQL, `python -m gateway` and a real Prometheus
(Debian's /usr/bin/prometheus) that scrapes it every second with the repository's rule
files, checked through Prometheus's own HTTP API.

The gateway logs in as its own role made by deploy/ensure_login_role.py (what the compose
`migrate` one-shot runs), a member of cards_gateway, never as the superuser."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from scripts import devstack

from .conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS = Path("/usr/bin/prometheus")
RULE_FILES = sorted((ROOT / "deploy" / "prometheus" / "rules").glob("*.yml"))
CONTRACT = yaml.safe_load((ROOT / "deploy" / "metrics.yml").read_text())
JOB = CONTRACT["job"]
JWT_SECRET = "scrape-test-only-hs256-secret-0123456789"
WAIT_S = 30.0

pytestmark = pytest.mark.skipif(
    not PROMETHEUS.exists(), reason="/usr/bin/prometheus is missing (Debian package `prometheus`)"
)


def request(url: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json"} | (headers or {})
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()


def api(base: str, path: str, **params: str) -> Any:
    """GET a Prometheus API endpoint; the `data` of a successful answer."""
    status, body = request(f"{base}{path}?{urllib.parse.urlencode(params)}")
    answer = json.loads(body)
    assert status == 200 and answer["status"] == "success", answer
    return answer["data"]


def wait_for(what: str, probe: Callable[[], Any], log: Path | None = None, timeout: float = WAIT_S) -> Any:
    """Calls probe until it returns something truthy; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except (OSError, urllib.error.URLError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(0.25)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}; last: {last!r}\n{tail}")


@contextmanager
def running(args: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen]:
    """A child process with its output in `log`, stopped (SIGTERM, then SIGKILL) on exit."""
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)


def alive(proc: subprocess.Popen, log: Path) -> None:
    if proc.poll() is not None:
        pytest.fail(
            f"{proc.args[0]} exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}"
        )


@pytest.fixture
def gateway_dsn(database: str, admin) -> Iterator[str]:
    """A login role for the gateway, made by deploy/ensure_login_role.py, and its DSN."""
    user, password = f"cards_app_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    env = os.environ | {
        "DATABASE_URL": database,
        "CARDS_GATEWAY_DB_USER": user,
        "CARDS_GATEWAY_DB_PASSWORD": password,
    }
    done = subprocess.run(
        [sys.executable, "deploy/ensure_login_role.py"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert admin.value("SELECT pg_has_role(%s, 'cards_gateway', 'USAGE')", user)
    assert not admin.value("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = %s", user)
    url = urlsplit(database)
    try:
        yield url._replace(netloc=f"{user}:{password}@{url.hostname}:{url.port or 5432}").geturl()
    finally:
        admin.conn.execute(f'DROP ROLE IF EXISTS "{user}"')


@pytest.fixture
def gateway(gateway_dsn: str, tmp_path: Path) -> Iterator[str]:
    """`python -m gateway` on a free loopback port; yields its base URL."""
    port = free_port()
    env = os.environ | {
        "DATABASE_URL": gateway_dsn,
        "PORT": str(port),
        "CARDS_JWT_SECRET": JWT_SECRET,
        "CARDS_DEV": "1",
        "CARDS_DB_POOL_MIN": "1",
        "CARDS_DB_POOL_MAX": "4",
        "CARDS_LOG_LEVEL": "WARNING",
    }
    log = tmp_path / "gateway.log"
    proc = devstack.start_gateway(port, env, log, path="/health")
    try:
        yield f"http://127.0.0.1:{port}"
        alive(proc, log)
    finally:
        devstack.stop_gateway(proc, 15)


@pytest.fixture
def prometheus(gateway: str, tmp_path: Path) -> Iterator[str]:
    """A real Prometheus scraping the gateway every second with the repository's rules."""
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(path) for path in RULE_FILES],
        "scrape_configs": [
            {"job_name": JOB, "static_configs": [{"targets": [urlsplit(gateway).netloc]}]},
        ],
    }
    config_path = tmp_path / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config))
    log = tmp_path / "prometheus.log"
    args = [
        str(PROMETHEUS),
        f"--config.file={config_path}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    with running(args, log) as proc:
        base = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            alive(proc, log)
            return request(f"{base}/-/ready")[0] == 200

        wait_for("Prometheus's /-/ready", ready, log)
        yield base
        alive(proc, log)


def query(base: str, promql: str) -> list[dict]:
    data = api(base, "/api/v1/query", query=promql)
    assert data["resultType"] == "vector", data
    return data["result"]


def test_prometheus_scrapes_the_gateway_and_evaluates_the_rules(gateway: str, prometheus: str, admin) -> None:
    tenant = admin.tenant("prometheus scrape")
    auth = {"Authorization": f"Bearer {tenant.key}"}
    # cards_ready follows /ready, which a load balancer or Docker's healthcheck would probe.
    assert request(f"{gateway}/ready")[0] == 200

    def target_up() -> list[dict]:
        targets = api(prometheus, "/api/v1/targets", state="active")["activeTargets"]
        return [t for t in targets if t["labels"]["job"] == JOB and t["health"] == "up"]

    (target,) = wait_for(f"the {JOB} target to be up", target_up)
    assert target["scrapeUrl"] == f"{gateway}/metrics"
    assert query(prometheus, f'up{{job="{JOB}"}}')[0]["value"][1] == "1"

    batches = iter(range(1_000_000))

    def post_batch() -> None:
        n = next(batches)
        body = {"cards": [{"title": f"scrape {n}", "content": n}, {"title": f"scrape {n}", "content": n}]}
        status, answer = request(f"{gateway}/api/v1/cards/batch", body, auth)
        assert status == 201, answer
        assert json.loads(answer)["created"] == 1

    def recorded(promql: str) -> Callable[[], list[dict]]:
        def probe() -> list[dict]:
            post_batch()  # keep the counters moving between scrapes
            return [s for s in query(prometheus, promql) if float(s["value"][1]) > 0]

        return probe

    # Recording rules over the gateway's real series yield values.
    wait_for("status:cards_batch_cards:rate5m", recorded('status:cards_batch_cards:rate5m{status="created"}'))
    wait_for(
        "status:cards_batch_cards:rate5m duplicates",
        recorded('status:cards_batch_cards:rate5m{status="duplicate"}'),
    )
    (batch_rate,) = wait_for(
        "route:cards_http_requests:rate5m",
        recorded('route:cards_http_requests:rate5m{route="/api/v1/cards/batch"}'),
    )
    assert batch_rate["metric"] == {
        "__name__": "route:cards_http_requests:rate5m",
        "route": "/api/v1/cards/batch",
    }
    wait_for(
        "the batch p95",
        recorded(
            'route_method:cards_http_request_duration_seconds:p95_5m{route="/api/v1/cards/batch",method="POST"}'
        ),
    )
    (available,) = wait_for(
        "cards:service_available:bool", lambda: query(prometheus, "cards:service_available:bool")
    )
    assert available["value"][1] == "1"

    # Every recording and alerting rule evaluates without an error against the real series.
    def all_evaluated() -> list[dict]:
        rules = [r for g in api(prometheus, "/api/v1/rules")["groups"] for r in g["rules"]]
        return rules if all(r["health"] != "unknown" for r in rules) else []

    rules = wait_for("every rule to be evaluated", all_evaluated)
    assert {r["name"] for r in rules if r["health"] != "ok"} == set(), [
        (r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"
    ]
    assert len(rules) == sum(
        len(g["rules"]) for path in RULE_FILES for g in yaml.safe_load(path.read_text())["groups"]
    )
    # A healthy stack fires nothing.
    firing = [
        a["labels"]["alertname"]
        for a in api(prometheus, "/api/v1/alerts")["alerts"]
        if a["state"] == "firing"
    ]
    assert firing == []

    # The gateway exports every metric deploy/metrics.yml promises, with its type, as
    # Prometheus read them from the scrape.
    metadata = api(prometheus, "/api/v1/targets/metadata", match_target=f'{{job="{JOB}"}}')
    exported = {m["metric"]: m["type"] for m in metadata}
    promised = {name: spec["type"] for name, spec in CONTRACT["metrics"].items()}
    assert {name: exported.get(name) for name in promised} == promised
