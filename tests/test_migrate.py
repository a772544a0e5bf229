"""The migration runner's guards: an applied versioned file may not change (comments aside),
and a `cards` function that sql/functions no longer defines is dropped, grants and all.
Each test migrates a database of its own from a copy of sql/ that it edits."""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
from pathlib import Path

import psycopg
import pytest

from gateway.migrate import SQL_DIR, AppliedMigrationChanged, migrate, split_statements

PROBE = """-- A probe function of the tests.
CREATE OR REPLACE FUNCTION cards.probe({args})
RETURNS integer
LANGUAGE sql
IMMUTABLE
AS $$ SELECT 1 $$;
GRANT EXECUTE ON FUNCTION cards.probe({args}) TO cards_admin;
"""


@pytest.fixture
def sql_dir(tmp_path: Path) -> Path:
    copy = tmp_path / "sql"
    shutil.copytree(SQL_DIR, copy)
    return copy


@pytest.fixture
async def migrated(make_database, sql_dir: Path) -> str:
    dsn = make_database("cards_migrate")
    await migrate(dsn, sql_dir)
    return dsn


def value(dsn: str, query: str, *args):
    with psycopg.connect(dsn) as conn:
        return conn.execute(query, args).fetchone()[0]


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def probe_signatures(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT oid::regprocedure::text FROM pg_proc WHERE proname = 'probe' ORDER BY 1"
        ).fetchall()
    return [r[0] for r in rows]


async def test_a_second_run_applies_nothing(migrated: str, sql_dir: Path):
    assert await migrate(migrated, sql_dir) == []


async def test_an_applied_migration_may_have_its_comments_and_trailing_space_edited(
    migrated: str, sql_dir: Path
):
    path = sql_dir / "schema" / "0002_tables.sql"
    path.write_text(
        "-- a corrected comment\n" + path.read_text().replace(";\n", ";   \n", 3) + "\n  -- more\n"
    )
    assert await migrate(migrated, sql_dir) == []


async def test_an_applied_migration_whose_statement_changed_is_refused(migrated: str, sql_dir: Path):
    edit(sql_dir / "schema" / "0005_card_tags.sql", "CREATE TABLE", "CREATE UNLOGGED TABLE")
    with pytest.raises(AppliedMigrationChanged, match=r"sql/schema/0005_card_tags\.sql differs"):
        await migrate(migrated, sql_dir)


async def test_a_refused_run_applies_nothing_else(migrated: str, sql_dir: Path):
    applied = value(migrated, "SELECT max(version) FROM cards_meta.schema_migrations")
    (sql_dir / "schema" / f"{applied + 1:04d}_more.sql").write_text(
        "CREATE TABLE cards.more (tenant_id uuid PRIMARY KEY);\n"
    )
    edit(sql_dir / "schema" / "0001_roles_and_schemas.sql", "REVOKE ALL", "GRANT ALL")
    with pytest.raises(AppliedMigrationChanged):
        await migrate(migrated, sql_dir)
    assert value(migrated, "SELECT max(version) FROM cards_meta.schema_migrations") == applied
    assert value(migrated, "SELECT to_regclass('cards.more')") is None


async def test_a_database_migrated_before_checksums_records_them_on_its_next_run(
    migrated: str, sql_dir: Path
):
    with psycopg.connect(migrated, autocommit=True) as conn:
        conn.execute("UPDATE cards_meta.schema_migrations SET checksum = NULL")
    assert await migrate(migrated, sql_dir) == []
    assert value(migrated, "SELECT count(*) FROM cards_meta.schema_migrations WHERE checksum IS NULL") == 0
    edit(sql_dir / "schema" / "0003_card_lifecycle.sql", "CREATE", "CREATE  ")
    with pytest.raises(AppliedMigrationChanged, match="0003_card_lifecycle"):
        await migrate(migrated, sql_dir)


async def test_a_changed_signature_leaves_no_old_overload(migrated: str, sql_dir: Path):
    probe = sql_dir / "functions" / "95_probe.sql"
    probe.write_text(PROBE.format(args="uuid, text"))
    await migrate(migrated, sql_dir)
    probe.write_text(PROBE.format(args="uuid, text, integer, boolean"))
    applied = await migrate(migrated, sql_dir)
    assert "drop cards.probe(uuid,text)" in applied
    assert probe_signatures(migrated) == ["cards.probe(uuid,text,integer,boolean)"]
    assert value(
        migrated,
        "SELECT has_function_privilege('cards_admin', 'cards.probe(uuid,text,integer,boolean)', 'EXECUTE')",
    )


async def test_a_function_no_file_defines_is_dropped(migrated: str, sql_dir: Path):
    probe = sql_dir / "functions" / "95_probe.sql"
    probe.write_text(PROBE.format(args="uuid"))
    await migrate(migrated, sql_dir)
    probe.unlink()
    (sql_dir / "functions" / "96_other.sql").write_text(
        "-- a file of its own, so the run happens\nSELECT 1;\n"
    )
    assert "drop cards.probe(uuid)" in await migrate(migrated, sql_dir)
    assert probe_signatures(migrated) == []


async def test_the_drop_spares_what_the_schema_is_built_on(migrated: str, sql_dir: Path):
    applied = value(migrated, "SELECT max(version) FROM cards_meta.schema_migrations")
    (sql_dir / "schema" / f"{applied + 1:04d}_built_on.sql").write_text(
        "SET LOCAL ROLE cards_owner;\n"
        "CREATE FUNCTION cards.probe_name_ok(p_name text) RETURNS boolean LANGUAGE sql IMMUTABLE"
        " AS 'SELECT true';\n"
        "ALTER TABLE cards.tenants ADD CONSTRAINT probe_name CHECK (cards.probe_name_ok(name));\n"
    )
    applied = await migrate(migrated, sql_dir)
    assert [name for name in applied if name.startswith("drop ")] == []
    assert value(migrated, "SELECT to_regprocedure('cards.probe_name_ok(text)') IS NOT NULL")


BATCH = "SELECT cards.batch_create(%s, %s::jsonb)"


def _sql_before(migration: str, into: Path) -> Path:
    """sql/ as it was just before `migration` was added: its functions are that schema's (from the
    git history; a clone without it skips the test)."""
    root = SQL_DIR.parent
    try:
        log = ["git", "-C", str(root), "log", "--diff-filter=A", "--format=%H", "--"]
        added = subprocess.run(
            [*log, f"sql/schema/{migration}"], capture_output=True, text=True, check=True
        ).stdout.split()
        archive = subprocess.run(
            ["git", "-C", str(root), "archive", f"{added[-1]}^", "sql"], capture_output=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError, IndexError):
        pytest.skip(f"needs the git history that added {migration}")
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "sql"


async def test_0009_keeps_every_card_s_search_and_0010_renders_the_cards_there_were(
    make_database, sql_dir: Path, tmp_path: Path
):
    dsn = make_database("cards_migrate")
    await migrate(dsn, _sql_before("0009_search_indexed_after_commit.sql", tmp_path / "v8"))
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert conn.execute("SELECT cards.schema_version()").fetchone()[0] == 8
        tenant = conn.execute("SELECT cards.create_tenant('t')").fetchone()[0]
        conn.execute(BATCH, (tenant, '[{"title": "Walrus", "content": "tusks"}]'))
        before = conn.execute("SELECT card_id, search::text FROM cards.cards").fetchall()
    await migrate(dsn, sql_dir)
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert conn.execute("SELECT card_id, search::text FROM cards.card_search").fetchall() == before
        assert "walrus" in before[0][1]
        answer = conn.execute("SELECT cards.retrieve(%s, ARRAY[%s::uuid])", (tenant, before[0][0])).fetchone()
        [card] = answer[0]["cards"]
        assert card["title"] == "Walrus" and card["usage_count"] == 0
        conn.execute(BATCH, (tenant, '[{"title": "Seal", "content": "x"}]'))
        assert conn.execute(SEARCH_OF, ("Seal",)).fetchone()[0] is None


SEARCH_OF = (
    "SELECT s.search::text FROM cards.card_search AS s JOIN cards.cards AS c USING (tenant_id, card_id) "
    "WHERE c.title = %s"
)
LIST_Q = "SELECT cards.list_cards(%s, p_q => %s)"


async def test_0011_moves_every_card_s_search_indexed_or_pending_deleted_or_live_to_card_search(
    make_database, sql_dir: Path, tmp_path: Path
):
    dsn = make_database("cards_migrate")
    await migrate(dsn, _sql_before("0011_search_in_its_own_table.sql", tmp_path / "v10"))
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert conn.execute("SELECT cards.schema_version()").fetchone()[0] == 10
        tenant = conn.execute("SELECT cards.create_tenant('t')").fetchone()[0]
        conn.execute(
            BATCH, (tenant, '[{"title": "Walrus", "content": "tusks"}, {"title": "Gone", "content": 1}]')
        )
        conn.execute("SELECT cards.index_pending_search(%s, 10)", (tenant,))
        gone = conn.execute("SELECT card_id FROM cards.cards WHERE title = 'Gone'").fetchone()[0]
        conn.execute("SELECT cards.delete_card(%s, %s)", (tenant, str(gone)))
        conn.execute(BATCH, (tenant, '[{"title": "Narwhal", "content": "horn"}]'))  # left pending
        before = conn.execute(
            "SELECT card_id, created_at, search::text FROM cards.cards ORDER BY 1"
        ).fetchall()
    await migrate(dsn, sql_dir)
    with psycopg.connect(dsn, autocommit=True) as conn:
        after = conn.execute(
            "SELECT card_id, created_at, search::text FROM cards.card_search ORDER BY 1"
        ).fetchall()
        assert after == before and len(after) == 3
        assert [c["title"] for c in conn.execute(LIST_Q, (tenant, "walrus")).fetchone()[0]["cards"]] == [
            "Walrus"
        ]
        assert conn.execute(SEARCH_OF, ("Narwhal",)).fetchone()[0] is None
        assert conn.execute("SELECT cards.index_pending_search(%s, 10)", (tenant,)).fetchone()[0] == 1
        assert [c["title"] for c in conn.execute(LIST_Q, (tenant, "narwhal")).fetchone()[0]["cards"]] == [
            "Narwhal"
        ]
        conn.execute("SELECT cards.restore_card(%s, %s)", (tenant, str(gone)))
        assert [c["title"] for c in conn.execute(LIST_Q, (tenant, "gone")).fetchone()[0]["cards"]] == ["Gone"]
        assert conn.execute("SELECT to_regclass('cards.cards_live_search')").fetchone()[0] is None


def test_a_file_splits_into_statements_only_at_semicolons_outside_quotes_bodies_and_comments():
    text = (
        "SELECT 'a;b', \"c;d\";\n"
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $body$ SELECT 1; $body$; -- after;\n"
        "/* a; comment */ SELECT E'it\\'s; here';\n"
        "-- only a comment; at the end\n"
    )
    assert split_statements(text) == [
        "SELECT 'a;b', \"c;d\";",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $body$ SELECT 1; $body$;",
        "-- after;\n/* a; comment */ SELECT E'it\\'s; here';",
    ]
