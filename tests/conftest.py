"""Fixtures: a real PostgreSQL (CARDS_TEST_DSN, or a throwaway cluster started here), one fresh
migrated database for the session, tenants made through the admin functions, and the real
gateway served over HTTP on a free port."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import logging
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import jwt
import psycopg
import pytest
from pytest_postgresql.janitor import DatabaseJanitor

from gateway.app import init_app
from gateway.config import Config
from gateway.logs import JsonFormatter
from scripts import devstack

from .pgproxy import PgProxy

ROOT = Path(__file__).resolve().parent.parent
JWT_SECRET = "tests-only-hs256-secret-0123456789abcdef"
OWN_CLUSTER = (ROOT / ".data" / "pytest-pg", 54332)
# The random part of every API key and JWT the fixtures issue: none may be in any log line.
ISSUED: set[str] = set()


def _issued(credential: str) -> str:
    ISSUED.add(credential[36:] if credential.startswith("ck_") else credential.rpartition(".")[2])
    return credential


@pytest.fixture(scope="session", autouse=True)
def no_credential_in_any_log_line() -> Iterator[None]:
    """Every log record of the whole run, at DEBUG, formatted as `python -m gateway` writes them; at
    the end, none may hold an API key's secret or a JWT's signature that a test used."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    runs = set(re.findall(r"[A-Za-z0-9_-]{43,}", out.getvalue()))  # where a secret or signature would be
    leaked = sum(1 for secret in ISSUED if any(secret in run for run in runs))
    assert leaked == 0, f"{leaked} of the {len(ISSUED)} credentials the tests used are in the logs"


@pytest.fixture(scope="session")
def server_dsn() -> Iterator[str]:
    """A superuser's DSN: the Makefile's test cluster, or one this session starts and stops."""
    if os.environ.get("CARDS_TEST_DSN"):
        yield os.environ["CARDS_TEST_DSN"]
        return
    datadir, port = OWN_CLUSTER
    devstack.pgcluster("start", datadir, port, "test")
    try:
        yield devstack.superuser_dsn(port)
    finally:
        devstack.pgcluster("stop", datadir)


def _with_dbname(dsn: str, dbname: str) -> str:
    return urlsplit(dsn)._replace(path=f"/{dbname}").geturl()


# `make test-citus`: CARDS_TEST_DSN is a Citus coordinator (docs/SCALING.md).
CITUS = os.environ.get("CARDS_TEST_CITUS") == "1"


@dataclasses.dataclass
class CitusDatabase:
    server_dsn: str
    name: str

    def drop(self) -> None:
        subprocess.run([ROOT / "scripts" / "citus-cluster", "dropdb", self.server_dsn, self.name], check=True)


@pytest.fixture(scope="session")
def make_database(server_dsn: str):
    """Creates empty databases (dropped at the end of the session); returns their DSNs."""
    url = urlsplit(server_dsn)
    janitors = []

    def make(prefix: str = "cards_test") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:8]}"
        if CITUS:  # the database on every node of the cluster, Citus in it, workers added
            subprocess.run([ROOT / "scripts" / "citus-cluster", "createdb", server_dsn, name], check=True)
            janitors.append(CitusDatabase(server_dsn, name))
            return _with_dbname(server_dsn, name)
        janitor = DatabaseJanitor(
            user=url.username or "postgres",
            password=url.password,
            host=url.hostname or "127.0.0.1",
            port=url.port or 5432,
            dbname=name,
        )
        janitor.init()
        janitors.append(janitor)
        return _with_dbname(server_dsn, name)

    yield make
    for janitor in janitors:
        janitor.drop()


@pytest.fixture(scope="session")
def database(make_database) -> str:
    """The session's database, migrated with `python -m gateway.migrate`, as a superuser's DSN."""
    dsn = make_database()
    devstack.migrate(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        # A request meeting a busy Idempotency-Key waits this long before its 409 (default 5 s).
        conn.execute(f"ALTER DATABASE {urlsplit(dsn).path[1:]} SET cards.idempotency_wait = '1s'")
    return dsn


@pytest.fixture
async def proxy(database: str):
    """A proxy in front of the database server: counts round trips, can cut the database off."""
    url = urlsplit(database)
    proxy = await PgProxy(url.hostname or "127.0.0.1", url.port or 5432).start()
    yield proxy
    await proxy.cut()


@dataclasses.dataclass
class Tenant:
    id: str
    key: str
    key_id: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def jwt(self, **claims) -> dict[str, str]:
        return {"Authorization": f"Bearer {make_jwt(self.id, **claims)}"}


def make_jwt(
    tenant_id: object,
    *,
    secret: str = JWT_SECRET,
    expires_in: float = 300,
    headers: dict | None = None,
    **claims,
) -> str:
    claims = {"tenant_id": tenant_id, "exp": int(time.time() + expires_in)} | claims
    claims = {k: v for k, v in claims.items() if v is not None}
    return _issued(jwt.encode(claims, secret, algorithm="HS256", headers=headers))


class Admin:
    """The admin functions, called as the superuser the way trusted jobs would."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.conn = psycopg.connect(dsn, autocommit=True)

    def value(self, query: str, *args):
        return self.conn.execute(query, args).fetchone()[0]

    def tenant(self, name: str = "tenant") -> Tenant:
        tenant_id = self.value("SELECT cards.create_tenant(%s)", name)
        key_id, key = self.conn.execute("SELECT * FROM cards.create_api_key(%s)", (tenant_id,)).fetchone()
        return Tenant(str(tenant_id), _issued(key), str(key_id))

    def new_key(self, tenant: Tenant, scopes: list[str] | None = None, expires_at=None) -> Tenant:
        key_id, key = self.conn.execute(
            "SELECT * FROM cards.create_api_key(%s::uuid, NULL,"
            " coalesce(%s::text[], '{cards:read,cards:write,usage:write}'), %s::timestamptz)",
            (tenant.id, scopes, expires_at),
        ).fetchone()
        return Tenant(tenant.id, _issued(key), str(key_id))

    def revoke(self, tenant: Tenant) -> bool:
        return self.value("SELECT cards.revoke_api_key(%s)", tenant.key_id)

    def set_active(self, tenant: Tenant, active: bool) -> bool:
        return self.value("SELECT cards.set_tenant_active(%s, %s)", tenant.id, active)

    def index_search(self, tenant: Tenant) -> int:
        """Indexes the tenant's new cards for q= as the gateway's indexer would (a trusted job's SQL)."""
        return self.value("SELECT cards.index_pending_search(%s, 100000)", tenant.id)

    def card_count(self, tenant: Tenant) -> int:
        """The tenant's live cards (a superuser is not held by row-level security)."""
        return self.value(
            "SELECT count(*) FROM cards.cards WHERE tenant_id = %s AND deleted_at IS NULL", tenant.id
        )


@pytest.fixture(scope="session")
def admin(database: str) -> Iterator[Admin]:
    admin = Admin(database)
    yield admin
    admin.conn.close()


@pytest.fixture
def tenant(admin: Admin) -> Tenant:
    return admin.tenant("tenant A")


@pytest.fixture
def other_tenant(admin: Admin) -> Tenant:
    return admin.tenant("tenant B")


@pytest.fixture
def config(database: str) -> Config:
    """The in-process gateway's settings. Its search indexer is off, so that a test sees only its own
    requests' database work; tests/test_search_index.py turns it on, and a test that searches what it
    created indexes it first (`index_search`)."""
    return Config(
        database_url=database, jwt_secret=JWT_SECRET, pool_min=1, pool_max=10, dev=True, search_indexer=False
    )


@pytest.fixture
def make_client(aiohttp_client, config: Config):
    """Serves a fresh app (settings overridden as given) on a free port; returns its HTTP client."""

    async def make(app=None, **overrides):
        return await aiohttp_client(app or init_app(dataclasses.replace(config, **overrides)))

    return make


@pytest.fixture
async def client(make_client):
    return await make_client()


def cards(*titles: str, **fields) -> dict:
    """A batch request body with one card per title."""
    return {"cards": [{"title": title, "content": {"text": f"about {title}"}, **fields} for title in titles]}


async def create(client, tenant: Tenant, *titles: str, **fields) -> list[str]:
    """Creates one card per title in one batch (`cards(...)`); returns their ids in order."""
    response = await client.post("/api/v1/cards/batch", json=cards(*titles, **fields), headers=tenant.auth)
    assert response.status == 201, await response.text()
    return [card["id"] for card in (await response.json())["cards"]]


async def expect_problem(response, status: int, slug: str) -> dict:
    """The problem+json body of `response`, which must have this status and slug."""
    assert response.status == status, await response.text()
    assert response.content_type == "application/problem+json"
    body = await response.json()
    assert body["type"] == f"/problems/{slug}"
    return body


async def raw_request(client, head: str | bytes, *parts: bytes) -> tuple[int, bytes]:
    """Sends a request head and then only `parts` of the body; reads the answer that comes back."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(head if isinstance(head, bytes) else head.encode())
    for part in parts:
        writer.write(part)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(65536), timeout=5)
    writer.close()
    status = int(answer.split(b" ", 2)[1])
    return status, answer.partition(b"\r\n\r\n")[2]


# --- gateway processes and held keys, shared by the process and fault tests ---


free_port, gateway_env = devstack.free_port, devstack.gateway_env


def process_env(database: str, port: int, **settings: str) -> dict[str, str]:
    """The environment of a `python -m gateway` process of the tests: the database, the port, the
    tests' JWT secret in a development run, one worker (its pid is the process's: memory and signals
    are read from it; tests/test_workers.py sets its own), and `settings`."""
    return gateway_env(
        DATABASE_URL=database,
        PORT=str(port),
        CARDS_JWT_SECRET=JWT_SECRET,
        CARDS_DEV="1",
        CARDS_WORKERS="1",
        **settings,
    )


async def wait_until_up(port: int, process, seconds: float = 30) -> None:
    """Until `process` (or its child) answers /health on `port` (scripts/devstack.py, `wait_ready`)."""
    await asyncio.to_thread(devstack.wait_ready, port, process.pid, "/health", seconds)


async def start_gateway_process(env: dict[str, str], log: Path | None = None, mode: str = "wb"):
    """`python -m gateway` with `env` on its PORT, which must be free, its output in `log` (else ours);
    the asyncio process once it is ready (killed if it does not become ready)."""
    port = int(env["PORT"])
    assert devstack.port_is_free(port), f"port {port} is in use"
    out = log.open(mode) if log else None
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", env=env, cwd=ROOT, stdout=out, stderr=out
        )
    finally:
        if out:
            out.close()
    try:
        await wait_until_up(port, process)
    except BaseException:
        process.kill()
        await process.wait()
        raise
    return process


def explain_nested_statements(conn: psycopg.Connection, *, analyze: bool = False) -> list[str]:
    """Loads auto_explain into this superuser session: from now on the plan of every statement, nested
    ones too, is a NOTICE (`… plan: {json}`) appended to the list returned."""
    notices: list[str] = []
    conn.add_notice_handler(lambda diag: notices.append(diag.message_primary or ""))
    conn.execute("LOAD 'auto_explain'")
    for setting, value in [
        ("log_min_duration", "0"),
        ("log_nested_statements", "on"),
        ("log_analyze", "on" if analyze else "off"),
        ("log_format", "json"),
        ("log_level", "notice"),
    ]:
        conn.execute(f"SET auto_explain.{setting} = {value}")
    return notices


def hold_key(admin, tenant, key: str) -> psycopg.Connection:
    """A trusted job that claimed `key` and has not committed yet: requests with it must wait."""
    job = psycopg.connect(admin.dsn)
    job.execute(
        "SELECT * FROM cards.batch_create(%s, %s, %s)", (tenant.id, json.dumps(cards("a")["cards"]), key)
    )
    return job
