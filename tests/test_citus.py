"""On a Citus cluster (`make test-citus`): the schema is distributed by tenant on every node as
docs/SCALING.md says, each gateway call is delegated whole to the worker holding its tenant, a
tenant moved to another worker keeps answering, and a stopped worker fails only its own
tenants, with a 503. Skipped on plain PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from urllib.parse import urlsplit

import asyncpg
import psycopg
import pytest

from gateway import api as gateway
from gateway.migrate import migrate

from .conftest import CITUS, ROOT, Admin, Tenant, cards, create
from .test_migrate import _sql_before

if not CITUS:
    pytest.skip("needs a Citus coordinator (make test-citus)", allow_module_level=True)

# What the migration must have applied on each node, compared across them.
TENANT_TABLES = """
SELECT c.oid::regclass::text FROM pg_class AS c
JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
WHERE c.relnamespace = 'cards'::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
ORDER BY 1
"""
TENANT_FUNCTIONS = """
SELECT p.oid::regprocedure::text FROM pg_proc AS p
WHERE p.pronamespace = 'cards'::regnamespace AND p.pronargs >= 1
  AND p.proargtypes[0] = 'uuid'::regtype AND p.proargnames[1] = 'p_tenant_id'
ORDER BY 1
"""
FUNCTION_ACLS = """
SELECT p.oid::regprocedure::text, p.proowner::regrole::text, p.proacl::text, p.prosecdef,
       p.proconfig::text
FROM pg_proc AS p
-- schema_version() reads the coordinator's own bookkeeping and stays there
WHERE p.pronamespace = 'cards'::regnamespace AND p.prosrc !~ 'cards_meta\\.'
ORDER BY 1
"""
PUBLIC_EXECUTE = """
SELECT p.oid::regprocedure::text FROM pg_proc AS p
WHERE p.pronamespace = 'cards'::regnamespace
  AND EXISTS (
      SELECT FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) AS a
      WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE'
  )
"""
LEAKPROOF = """
SELECT p.oid::regprocedure::text, p.proleakproof FROM pg_proc AS p
WHERE p.oid IN ('pg_catalog.arraycontains(anyarray, anyarray)'::regprocedure,
                'pg_catalog.jsonb_contains(jsonb, jsonb)'::regprocedure,
                'pg_catalog.ts_match_vq(tsvector, tsquery)'::regprocedure)
ORDER BY 1
"""
ROLES = """
SELECT r.rolname, r.rolcanlogin, r.rolsuper, r.rolbypassrls FROM pg_roles AS r
WHERE r.rolname IN ('cards_owner', 'cards_gateway', 'cards_admin') ORDER BY 1
"""
PLACEMENT = """
SELECT p.shardid, n.nodename, n.nodeport
FROM pg_dist_placement AS p JOIN pg_dist_node AS n USING (groupid)
WHERE p.shardid = get_shard_id_for_distribution_column('cards.cards', %s::uuid)
"""


def rows(dsn: str, query: str, *args) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query, args).fetchall()


@pytest.fixture(scope="session")
def workers(database: str) -> list[str]:
    """The DSN of each worker's copy of the test database."""
    nodes = rows(database, "SELECT nodename, nodeport FROM pg_dist_node WHERE groupid > 0 ORDER BY nodeport")
    assert len(nodes) == 2
    return [urlsplit(database)._replace(netloc=f"postgres@{host}:{port}").geturl() for host, port in nodes]


def placement(database: str, tenant: Tenant) -> tuple[int, str, int]:
    return rows(database, PLACEMENT, tenant.id)[0]


def tenant_on_each_worker(admin: Admin, database: str) -> dict[int, Tenant]:
    """A tenant per worker port: tenants are made until both workers hold one."""
    found: dict[int, Tenant] = {}
    while len(found) < 2:
        tenant = admin.tenant("placed")
        found.setdefault(placement(database, tenant)[2], tenant)
    return found


def test_every_tenant_table_is_distributed_on_tenant_id_with_cards(database: str):
    distributed = rows(
        database,
        """SELECT logicalrelid::text, partmethod, column_to_column_name(logicalrelid, partkey),
                  colocationid = (SELECT colocationid FROM pg_dist_partition
                                  WHERE logicalrelid = 'cards.cards'::regclass)
           FROM pg_dist_partition ORDER BY 1""",
    )
    tables = [name for (name,) in rows(database, TENANT_TABLES)]
    assert len(tables) >= 7
    assert [(name, "h", "tenant_id", True) for name in tables] == [
        row for row in distributed if row[0].startswith("cards.")
    ]


def test_every_function_taking_the_tenant_first_is_delegated_on_it(database: str):
    delegated = rows(
        database,
        """SELECT objid::regprocedure::text FROM pg_dist_object
           WHERE classid = 'pg_proc'::regclass AND distribution_argument_index = 0
             AND colocationid = (SELECT colocationid FROM pg_dist_partition
                                 WHERE logicalrelid = 'cards.cards'::regclass)
           ORDER BY 1""",
    )
    functions = rows(database, TENANT_FUNCTIONS)
    assert len(functions) >= 15
    assert delegated == functions


def test_every_node_has_the_same_functions_owners_grants_and_settings(database: str, workers: list[str]):
    expected = rows(database, FUNCTION_ACLS)
    for worker in workers:
        assert rows(worker, FUNCTION_ACLS) == expected, worker


def test_no_node_lets_public_execute_a_cards_function(database: str, workers: list[str]):
    for dsn in [database, *workers]:
        assert rows(dsn, PUBLIC_EXECUTE) == [], dsn


def test_every_node_has_the_leakproof_marks_of_the_listing_filters(database: str, workers: list[str]):
    for dsn in [database, *workers]:
        assert [leakproof for _, leakproof in rows(dsn, LEAKPROOF)] == [True, True, True], dsn


def test_every_node_has_the_roles_citus_logs_in_as(database: str, workers: list[str]):
    expected = [(name, True, False, False) for name in ("cards_admin", "cards_gateway", "cards_owner")]
    for dsn in [database, *workers]:
        assert rows(dsn, ROLES) == expected, dsn


def test_a_second_migration_run_changes_nothing(database: str):
    partitions = "SELECT * FROM pg_dist_partition ORDER BY 1"
    before = rows(database, FUNCTION_ACLS), rows(database, partitions)
    result = subprocess.run(
        [sys.executable, "-m", "gateway.migrate", database], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("up to date")
    assert (rows(database, FUNCTION_ACLS), rows(database, partitions)) == before


async def remote_commands(database: str, query: str, *args) -> list[tuple[str, str]]:
    """Runs one gateway statement as the gateway does (role cards_gateway, autocommit) and
    returns what the coordinator sent to the workers for it: (command, server)."""
    conn = await asyncpg.connect(database, server_settings={"role": "cards_gateway"})
    sent: list[tuple[str, str]] = []
    conn.add_log_listener(
        lambda _, message: (
            sent.append((message.message, message.detail or ""))
            if message.message.startswith("issuing ")
            else None
        )
    )
    try:
        await conn.execute("SET citus.log_remote_commands = on")
        try:
            await conn.fetch(query, *args)
        except asyncpg.PostgresError:
            pass  # a refused call is delegated too; the answer does not matter here
    finally:
        await conn.close()
    return sent


async def test_each_gateway_call_is_sent_whole_to_the_worker_holding_its_tenant(
    database: str, client, tenant: Tenant
):
    (card_id,) = await create(client, tenant, "Delegated")
    _, host, port = placement(database, tenant)
    tenant_id = uuid.UUID(tenant.id)
    body = json.dumps({"ids": [card_id]}).encode()
    calls = {
        "BATCH": (tenant_id, json.dumps(cards("Another")).encode(), "key-1"),
        "RETRIEVE": (tenant_id, body),
        "USAGE": (tenant_id, card_id, b'{"workflow_id": "w", "run_id": "r"}'),
        "GET_CARD": (tenant_id, card_id),
        "LIST_CARDS": (tenant_id, None, None, None, None, None, None),
        "UPDATE_CARD": (tenant_id, card_id, "*", b'{"title": "Renamed"}'),
        "DELETE_CARD": (tenant_id, card_id),
        "RESTORE_CARD": (tenant_id, card_id),
        "USAGE_HISTORY": (tenant_id, card_id, None, None),
        "USAGE_SUMMARY": (tenant_id, None, None, None),
    }
    assert set(calls) <= {name for name in dir(gateway) if name.isupper()}
    for name, args in calls.items():
        query = getattr(gateway, name)
        sent = await remote_commands(database, query, *args)
        function = query.split("cards.")[1].split("(")[0]
        assert len(sent) == 1, (name, sent)
        command, server = sent[0]
        assert f"cards.{function}(" in command, (name, command)
        assert f"@{host}:{port} " in server, (name, server)


async def test_authentication_is_sent_whole_to_the_worker_holding_the_tenant(database: str, tenant: Tenant):
    _, host, port = placement(database, tenant)
    sent = await remote_commands(
        database,
        "SELECT cards.authenticate_api_key($1::uuid, $2::bytea) AS ok",
        uuid.UUID(tenant.id),
        bytes(32),
    )
    assert [(command.split("(")[0], f"@{host}:{port} " in server) for command, server in sent] == [
        ("issuing SELECT cards.authenticate_api_key", True)
    ]


async def test_a_tenant_moved_to_the_other_worker_keeps_answering(
    database: str, workers: list[str], client, tenant: Tenant
):
    ids = await create(client, tenant, "Moving", "Along", tags=["moved"])
    shard, host, port = placement(database, tenant)
    target = next(urlsplit(w) for w in workers if urlsplit(w).port != port)
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(
            "SELECT citus_move_shard_placement(%s, %s, %s, %s, %s)",
            (shard, host, port, target.hostname, target.port),
        )
    assert placement(database, tenant)[2] == target.port
    response = await client.post("/api/v1/cards/retrieve", json={"ids": ids}, headers=tenant.auth)
    assert response.status == 200
    assert [card["title"] for card in (await response.json())["cards"]] == ["Moving", "Along"]
    listed = await client.get("/api/v1/cards", params={"tag": "moved"}, headers=tenant.auth)
    assert sorted(card["id"] for card in (await listed.json())["cards"]) == sorted(ids)
    sent = await remote_commands(database, gateway.GET_CARD, uuid.UUID(tenant.id), ids[0])
    assert [f"@{target.hostname}:{target.port} " in server for _, server in sent] == [True]


@pytest.fixture
def stopped_worker(database: str, admin: Admin):
    """Stops one worker for the test (tenants on each worker made first); starts it again after."""
    on = tenant_on_each_worker(admin, database)
    ports = sorted(on)
    cluster = os.environ["CARDS_TEST_CITUS_DIR"]
    subprocess.run([ROOT / "scripts" / "citus-cluster", "stop-node", cluster, "2"], check=True)
    try:
        yield on[ports[0]], on[ports[1]]  # (alive, stopped): node 2 has the higher port
    finally:
        subprocess.run([ROOT / "scripts" / "citus-cluster", "start-node", cluster, "2"], check=True)


async def test_a_stopped_worker_fails_only_its_own_tenants_with_a_503(client, stopped_worker):
    alive, stopped = stopped_worker
    ok = await client.post("/api/v1/cards/batch", json=cards("Still here"), headers=alive.auth)
    assert ok.status == 201, await ok.text()
    failed = await client.post("/api/v1/cards/batch", json=cards("Gone"), headers=stopped.auth)
    assert failed.status == 503, await failed.text()
    assert failed.content_type == "application/problem+json"
    assert (await failed.json())["type"].endswith("service-unavailable")


@pytest.mark.parametrize(
    ("statement", "args"),
    [
        ("SELECT scopes, expires_at FROM cards.api_key_grant($1::uuid, $2::bytea)", (bytes(32),)),
        (
            "SELECT * FROM cards.take_request_tokens($1::uuid, $2::integer, $3::numeric, $4::integer)",
            (1, 1000, 2000),
        ),
    ],
)
async def test_the_guards_calls_are_sent_whole_to_the_worker_holding_the_tenant(
    database: str, tenant: Tenant, statement: str, args: tuple
):
    """The key lookup and the rate limit lease the gateway makes before each request stay on one node."""
    _, host, port = placement(database, tenant)
    sent = await remote_commands(database, statement, uuid.UUID(tenant.id), *args)
    function = statement.split("cards.")[1].split("(")[0]
    assert len(sent) == 1 and f"cards.{function}(" in sent[0][0] and f"@{host}:{port} " in sent[0][1], sent


def _join_as_cluster(databases: list[str], workers: list[str]) -> None:
    """Citus in each node's copy of a database; the first is the coordinator, the workers join it."""
    for dsn in databases:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION citus")
    with psycopg.connect(databases[0], autocommit=True) as conn:
        host, port = urlsplit(databases[0]).hostname, urlsplit(databases[0]).port
        conn.execute("SELECT citus_set_coordinator_host(%s, %s)", (host, port))
        for worker in workers:
            conn.execute("SELECT citus_add_node(%s, %s)", (urlsplit(worker).hostname, urlsplit(worker).port))


def test_a_database_migrated_on_one_node_is_distributed_with_its_rows_once_citus_is_added(
    database: str, workers: list[str]
):
    """The move docs/SCALING.md describes: a database migrated without Citus (a restore of
    a single node's), then given Citus and the workers, is distributed by the next run."""
    name = f"cards_moved_{uuid.uuid4().hex[:8]}"
    nodes = [database, *workers]
    for dsn in nodes:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
    moved = [urlsplit(dsn)._replace(path=f"/{name}").geturl() for dsn in nodes]
    migrate = [sys.executable, "-m", "gateway.migrate", moved[0]]
    try:
        subprocess.run(migrate, cwd=ROOT, check=True, capture_output=True)
        tenant = rows(moved[0], "SELECT cards.create_tenant('before')")[0][0]
        rows(moved[0], 'SELECT 1 FROM cards.batch_create(%s, \'[{"title": "Kept", "content": 1}]\')', tenant)
        _join_as_cluster(moved, workers)
        subprocess.run(migrate, cwd=ROOT, check=True, capture_output=True)
        assert len(rows(moved[0], "SELECT * FROM pg_dist_partition")) == len(rows(moved[0], TENANT_TABLES))
        listed = rows(moved[0], "SELECT cards.list_cards(%s, NULL, NULL, NULL, NULL, NULL, NULL)", tenant)[0][
            0
        ]
        assert [card["title"] for card in listed["cards"]] == ["Kept"]
    finally:
        for dsn in nodes:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


async def test_a_cluster_distributed_before_0011_gets_card_search_co_located_with_every_card_s_search(
    database: str, workers: list[str], tmp_path
):
    """Migration 0011 on a cluster whose cards.cards is already distributed: the new table is
    distributed with cards.cards before it is filled, and every card's search moves into it."""
    name = f"cards_upgraded_{uuid.uuid4().hex[:8]}"
    nodes = [database, *workers]
    for dsn in nodes:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
    upgraded = [urlsplit(dsn)._replace(path=f"/{name}").geturl() for dsn in nodes]
    try:
        _join_as_cluster(upgraded, workers)
        await migrate(upgraded[0], _sql_before("0011_search_in_its_own_table.sql", tmp_path / "v10"))
        coordinator = upgraded[0]
        tenant = rows(coordinator, "SELECT cards.create_tenant('before')")[0][0]
        batch = "SELECT 1 FROM cards.batch_create(%s, %s::jsonb)"
        two = '[{"title": "Walrus", "content": 1}, {"title": "Seal", "content": 2}]'
        rows(coordinator, batch, tenant, two)
        rows(coordinator, "SELECT cards.index_pending_search(%s, 10)", tenant)
        rows(coordinator, batch, tenant, '[{"title": "Narwhal", "content": 3}]')  # left pending
        before = rows(coordinator, "SELECT card_id, search::text FROM cards.cards ORDER BY 1")
        await migrate(coordinator)
        assert rows(coordinator, "SELECT card_id, search::text FROM cards.card_search ORDER BY 1") == before
        assert rows(
            coordinator,
            """SELECT count(*), count(DISTINCT colocationid) FROM pg_dist_partition
               WHERE logicalrelid IN ('cards.cards'::regclass, 'cards.card_search'::regclass)""",
        ) == [(2, 1)]
        assert rows(coordinator, "SELECT cards.index_pending_search(%s, 10)", tenant) == [(1,)]
        listed = rows(coordinator, "SELECT cards.list_cards(%s, p_q => 'narwhal')", tenant)[0][0]
        assert [card["title"] for card in listed["cards"]] == ["Narwhal"]
    finally:
        for dsn in nodes:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_no_table_of_the_schema_is_left_on_the_coordinator_alone(database: str):
    """A table without tenant_id would stay a local table of the coordinator, where no
    delegated function could reach it: one added must lead with tenant_id (sql/CONVENTIONS.md)."""
    assert (
        rows(
            database,
            """SELECT c.oid::regclass::text FROM pg_class AS c
               WHERE c.relnamespace = 'cards'::regnamespace AND c.relkind IN ('r', 'p')
                 AND NOT c.relispartition
                 AND NOT EXISTS (SELECT FROM pg_dist_partition AS p WHERE p.logicalrelid = c.oid)""",
        )
        == []
    )
