"""Fixtures. Unit tests use httpx.MockTransport. The `gateway` fixture starts the project's real
gateway (`python -m gateway`, from the project's own venv: this package imports nothing from it)
on a fresh, migrated database of a real PostgreSQL server:

    CARDS_TEST_DSN        a superuser's DSN of a running PostgreSQL server (required)
    CARDS_PROJECT_ROOT    the Cards API checkout (default: the parent of client/)
    CARDS_GATEWAY_PYTHON  its venv's python (default: <root>/.venv/bin/python)

Without CARDS_TEST_DSN the gateway tests are skipped, unless CARDS_CLIENT_REQUIRE_GATEWAY=1
(as `make test-client` sets it) turns that into a failure."""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from cards_client import AsyncCardsClient, CardsClient

ROOT = Path(os.environ.get("CARDS_PROJECT_ROOT") or Path(__file__).resolve().parents[2])
GATEWAY_PYTHON = os.environ.get("CARDS_GATEWAY_PYTHON") or str(ROOT / ".venv" / "bin" / "python")
BASE = "http://cards.test"


# --- unit tests: a mock transport and a recorded sleep ---


@dataclasses.dataclass
class Mock:
    """A scripted API: `answers` are returned (or raised) in order, the last one repeated; every
    request is kept in `requests`, every sleep the client asked for in `sleeps`."""

    answers: list
    requests: list[httpx.Request] = dataclasses.field(default_factory=list)
    sleeps: list[float] = dataclasses.field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers[min(len(self.requests), len(self.answers)) - 1]
        if callable(answer):
            answer = answer(request)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def ahandle(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        return self.handle(request)

    def client(self, **options) -> CardsClient:
        http = httpx.Client(transport=httpx.MockTransport(self.handle))
        client = CardsClient(BASE, "ck_test", http_client=http, **options)
        client._sleep = self.sleeps.append
        return client

    def async_client(self, **options) -> AsyncCardsClient:
        http = httpx.AsyncClient(transport=httpx.MockTransport(self.ahandle))
        client = AsyncCardsClient(BASE, "ck_test", http_client=http, **options)

        async def sleep(seconds: float) -> None:
            self.sleeps.append(seconds)

        client._sleep = sleep
        return client


def problem(status: int, slug: str, headers: dict | None = None, **fields) -> httpx.Response:
    body = {"type": f"/problems/{slug}", "title": slug, "status": status, "detail": f"a {slug}"}
    return httpx.Response(
        status,
        json=body | {"trace_id": "t-1"} | fields,
        headers={"Content-Type": "application/problem+json", **(headers or {})},
    )


def card_doc(card_id: str | None = None, **fields) -> dict:
    return {
        "id": card_id or str(uuid.uuid4()),
        "kind": "note",
        "title": "A card",
        "content": {"text": "x"},
        "tags": [],
        "metadata": {},
        "content_hash": "0" * 64,
        "usage_count": 0,
        "created_at": "2026-11-26T10:00:00Z",
        "updated_at": "2026-11-26T10:00:00Z",
        "last_used_at": None,
    } | fields


def batch_answer(request: httpx.Request, *, replayed: bool = False) -> httpx.Response:
    """A 201 for the cards the request sends, each created."""
    import json

    cards = json.loads(request.content)["cards"]
    body = {
        "cards": [
            {"index": i, "id": str(uuid.uuid4()), "status": "created", "content_hash": "0" * 64}
            for i in range(len(cards))
        ],
        "created": len(cards),
        "duplicates": 0,
    }
    return httpx.Response(201, json=body, headers={"Idempotent-Replayed": "true"} if replayed else {})


@pytest.fixture
def mock() -> Callable[..., Mock]:
    return lambda *answers: Mock(list(answers))


# --- the real gateway ---


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclasses.dataclass
class Gateway:
    url: str
    dsn: str  # a superuser's, of the gateway's database

    def psql(self, query: str) -> str:
        return subprocess.run(
            ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", self.dsn, "-c", query],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    def tenant(self, name: str = "tenant") -> Tenant:
        tenant_id, key = self.psql(
            f"SELECT t.id, k.api_key FROM (SELECT cards.create_tenant('{name}') AS id) AS t,"
            " LATERAL cards.create_api_key(t.id, 'client tests') AS k"
        ).split("|")
        return Tenant(self, tenant_id, key)


@dataclasses.dataclass
class Tenant:
    gateway: Gateway
    id: str
    api_key: str

    def client(self, **options) -> CardsClient:
        return CardsClient(self.gateway.url, self.api_key, **options)

    def async_client(self, **options) -> AsyncCardsClient:
        return AsyncCardsClient(self.gateway.url, self.api_key, **options)

    def card_count(self) -> int:
        """Live cards, counted in the database (as a superuser, past row-level security)."""
        return int(
            self.gateway.psql(
                f"SELECT count(*) FROM cards.cards WHERE tenant_id = '{self.id}' AND deleted_at IS NULL"
            )
        )


@pytest.fixture(scope="session")
def gateway() -> Iterator[Gateway]:
    server = os.environ.get("CARDS_TEST_DSN")
    if not server:
        message = "CARDS_TEST_DSN is not set: no PostgreSQL server for the gateway tests"
        if os.environ.get("CARDS_CLIENT_REQUIRE_GATEWAY") == "1":
            pytest.fail(message)
        pytest.skip(message)
    name = f"cards_client_{uuid.uuid4().hex[:8]}"
    subprocess.run(["psql", "-X", "-q", server, "-c", f"CREATE DATABASE {name}"], check=True)
    dsn = urlsplit(server)._replace(path=f"/{name}").geturl()
    process = None
    try:
        subprocess.run(
            [GATEWAY_PYTHON, "-m", "gateway.migrate", dsn], check=True, cwd=ROOT, capture_output=True
        )
        gateway = Gateway("", dsn)
        # A request meeting a busy Idempotency-Key waits this long before its 409 (default 5 s).
        gateway.psql(f"ALTER DATABASE {name} SET cards.idempotency_wait = '1s'")
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CARDS_")}
        env |= {"DATABASE_URL": dsn, "PORT": str(port), "HOST": "127.0.0.1", "CARDS_LOG_LEVEL": "WARNING"}
        process = subprocess.Popen([GATEWAY_PYTHON, "-m", "gateway"], cwd=ROOT, env=env)
        gateway.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, "the gateway exited"
            try:
                if httpx.get(f"{gateway.url}/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the gateway did not become ready"
            time.sleep(0.1)
        yield gateway
    finally:
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        subprocess.run(["psql", "-X", "-q", server, "-c", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"])


@pytest.fixture
def tenant(gateway: Gateway) -> Tenant:
    return gateway.tenant("tenant A")


@pytest.fixture
def other_tenant(gateway: Gateway) -> Tenant:
    return gateway.tenant("tenant B")


@pytest.fixture
def client(tenant: Tenant) -> Iterator[CardsClient]:
    with tenant.client() as client:
        yield client


def cards(*titles: str, **fields) -> list[dict]:
    """One card input per title."""
    return [{"title": t, "content": {"text": f"about {t}"}, **fields} for t in titles]


def found_by_q(client: CardsClient, q: str, seconds: float = 2.0) -> list[str]:
    """The titles `q` finds once the gateway's search indexer has indexed new cards (the API
    promises within a second); none if it finds nothing within `seconds`."""
    deadline = time.monotonic() + seconds
    while not (titles := [c.title for c in client.list(q=q)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return titles
