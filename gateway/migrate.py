"""Apply the SQL in `sql/` to a database: versioned migrations once, repeatables on change.

Usage: python -m gateway.migrate [DSN]   (default: $DATABASE_URL)

See sql/CONVENTIONS.md for the rules this runner enforces.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import sys
from pathlib import Path

import asyncpg

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
_VERSIONED = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
# On Citus these lines are left out of every file (see _execute).
_ROLE_SWITCH = re.compile(
    r"^[ \t]*(?:SET[ \t]+LOCAL[ \t]+ROLE[ \t]+cards_owner|RESET[ \t]+ROLE)[ \t]*;[ \t]*$", re.I | re.M
)
# Any constant would do; this one spells "cards" so it is recognisable in pg_locks.
_LOCK_KEY = 0x6361726473

_BOOTSTRAP = """
CREATE SCHEMA IF NOT EXISTS cards_meta;
CREATE TABLE IF NOT EXISTS cards_meta.schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS cards_meta.repeatable_scripts (
    name text PRIMARY KEY,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
-- Recorded from the runner that brought this column; NULL for a version applied before it.
ALTER TABLE cards_meta.schema_migrations ADD COLUMN IF NOT EXISTS checksum text;
"""

_CITUS_PRESENT = "SELECT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'citus')"

# The functions in schema `cards` that no repeatable script (re)created in this transaction,
# leaving out what belongs to the schema rather than to sql/functions: extension members,
# and functions a table, index or constraint is built on (a generated column's, a CHECK's).
# `age(xmin) <= 0` is "written by this transaction or one of its subtransactions": the
# runner takes its transaction id first, so every row it writes is at least that new.
_STALE_FUNCTIONS = """
SELECT p.oid::regprocedure::text
FROM pg_catalog.pg_proc AS p
WHERE p.pronamespace = 'cards'::regnamespace
  AND pg_catalog.age(p.xmin) > 0
  AND NOT EXISTS (
      SELECT FROM pg_catalog.pg_depend AS d
      WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
  )
  AND NOT EXISTS (
      SELECT FROM pg_catalog.pg_depend AS d
      WHERE d.refclassid = 'pg_catalog.pg_proc'::regclass AND d.refobjid = p.oid
        AND d.classid IN ('pg_catalog.pg_class'::regclass, 'pg_catalog.pg_attrdef'::regclass,
                          'pg_catalog.pg_constraint'::regclass)
  )
ORDER BY 1
"""


def migration_checksum(text: str) -> str:
    """SHA-256 of a versioned file without its whole-line `--` comments and trailing white
    space: a comment may be corrected after the file is applied, a statement may not."""
    lines = (line.rstrip() for line in text.splitlines())
    kept = [line for line in lines if line and not line.lstrip().startswith("--")]
    return hashlib.sha256("\n".join(kept).encode()).hexdigest()


def versioned_migrations(sql_dir: Path = SQL_DIR) -> list[tuple[int, Path]]:
    found = []
    for path in sorted((sql_dir / "schema").glob("*.sql")):
        match = _VERSIONED.match(path.name)
        if not match:
            raise SystemExit(f"migration file name must be NNNN_name.sql: {path.name}")
        found.append((int(match.group(1)), path))
    versions = [v for v, _ in found]
    if versions != list(range(1, len(versions) + 1)):
        raise SystemExit(f"migrations must be numbered 1..N without gaps: {versions}")
    return found


def latest_version(sql_dir: Path = SQL_DIR) -> int:
    """The schema version this checkout expects (what /ready compares against)."""
    return len(versioned_migrations(sql_dir))


def repeatable_scripts(sql_dir: Path = SQL_DIR) -> list[Path]:
    return sorted((sql_dir / "functions").glob("*.sql")) + sorted((sql_dir / "policies").glob("*.sql"))


class AppliedMigrationChanged(SystemExit):
    """A versioned file differs from the one applied: the database and sql/ disagree."""


_TOKEN = re.compile(
    r"""--[^\n]*|/\*.*?\*/|[Ee]'(?:[^'\\]|\\.|'')*'|'(?:[^']|'')*'|"(?:[^"]|"")*"|(\$[A-Za-z_0-9]*\$).*?\1|;|[^-/'"$;Ee]+|.""",
    re.S,
)


def split_statements(text: str) -> list[str]:
    """The statements of a file, each with its comments, split at the semicolons that are
    not inside a quoted string, identifier, dollar-quoted body or comment."""
    statements, current = [], []
    for match in _TOKEN.finditer(text):
        current.append(match.group(0))
        if match.group(0) == ";":
            statements.append("".join(current).strip())
            current = []
    rest = "".join(current).strip()
    if rest and any(not line.strip().startswith("--") for line in rest.splitlines() if line.strip()):
        statements.append(rest)
    return statements


async def _execute(conn: asyncpg.Connection, text: str, citus: bool) -> None:
    """Runs a file. On a Citus coordinator, differently in two ways:
    - without its role switches: Citus opens one connection per node for each role that
      issues DDL, and a connection as cards_owner cannot see what the runner's connection
      created in the same, still open transaction (the schema, a table). Everything runs as
      the connecting superuser, and sql/citus/10_distribute.sql gives it all to cards_owner;
    - one statement at a time: Citus sends some DDL to the workers as the text it was given
      (CREATE TRIGGER), which must then be that one statement, not the whole file."""
    if not citus:
        await conn.execute(text)
        return
    for statement in split_statements(_ROLE_SWITCH.sub("", text)):
        await conn.execute(statement)


async def _apply_versioned(conn: asyncpg.Connection, sql_dir: Path, citus: bool) -> list[str]:
    recorded = {r["version"]: r for r in await conn.fetch("SELECT * FROM cards_meta.schema_migrations")}
    applied = []
    for version, path in versioned_migrations(sql_dir):
        text = path.read_text()
        checksum = migration_checksum(text)
        row = recorded.get(version)
        if row is None:
            await _execute(conn, text, citus)
            await conn.execute("RESET ROLE")
            await conn.execute(
                "INSERT INTO cards_meta.schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                version,
                path.name,
                checksum,
            )
            applied.append(path.name)
        elif row["checksum"] is None:
            # Applied before checksums were kept: the file as it is now is taken as applied.
            await conn.execute(
                "UPDATE cards_meta.schema_migrations SET checksum = $2 WHERE version = $1", version, checksum
            )
        elif row["checksum"] != checksum:
            raise AppliedMigrationChanged(
                f"sql/schema/{path.name} differs from the version {version} applied to this database "
                f"({row['name']}, {row['applied_at']:%Y-%m-%d %H:%M}): an applied migration must not "
                "change (comments and trailing white space aside); put the change in a new migration"
            )
    return applied


async def migrate(dsn: str, sql_dir: Path = SQL_DIR) -> list[str]:
    """Bring the database at `dsn` up to date; return the names of what was applied (and of
    the functions dropped, as `drop <signature>`)."""
    conn = await asyncpg.connect(dsn)
    try:
        citus = await conn.fetchval(_CITUS_PRESENT)
        if citus:
            await conn.execute((sql_dir / "citus" / "00_roles.sql").read_text())
        async with conn.transaction():
            # Taken first, so that everything this run writes is newer (see _STALE_FUNCTIONS).
            await conn.execute("SELECT pg_catalog.txid_current()")
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
            if citus:
                # The one trigger of the schema (sql/functions/15_card_tags.sql) touches only
                # its own card's co-located rows, which is what Citus cannot check itself.
                await conn.execute("SET LOCAL citus.enable_unsafe_triggers = on")
            await conn.execute(_BOOTSTRAP)
            applied = await _apply_versioned(conn, sql_dir, citus)
            checksums = dict(await conn.fetch("SELECT name, checksum FROM cards_meta.repeatable_scripts"))
            scripts = [(path, path.read_text()) for path in repeatable_scripts(sql_dir)]
            # All of them or none: a changed function file may change what a policy file
            # grants, and only a run that re-created every function knows which are stale.
            if applied or any(
                checksums.get(f"{path.parent.name}/{path.name}") != hashlib.sha256(text.encode()).hexdigest()
                for path, text in scripts
            ):
                applied += await _apply_repeatables(conn, scripts, citus)
            if citus:
                # Every run, catalog-driven: whatever a migration or function file added is
                # distributed without this runner or that file naming it.
                await conn.execute((sql_dir / "citus" / "10_distribute.sql").read_text())
        if citus:
            # What Citus does not propagate, on every worker; after the commit, because
            # run_command_on_workers commits on each worker on its own.
            await conn.execute((sql_dir / "citus" / "20_every_node.sql").read_text())
    finally:
        await conn.close()
    return applied


async def _apply_repeatables(
    conn: asyncpg.Connection, scripts: list[tuple[Path, str]], citus: bool
) -> list[str]:
    """Functions first, then the stale ones dropped, then the policies (which grant)."""
    applied = []
    functions = [(path, text) for path, text in scripts if path.parent.name == "functions"]
    policies = [(path, text) for path, text in scripts if path.parent.name != "functions"]
    for path, text in functions:
        applied.append(await _apply_repeatable(conn, path, text, citus))
    applied += await _drop_stale_functions(conn)
    for path, text in policies:
        applied.append(await _apply_repeatable(conn, path, text, citus))
    return applied


async def _apply_repeatable(conn: asyncpg.Connection, path: Path, text: str, citus: bool) -> str:
    name = f"{path.parent.name}/{path.name}"
    if not citus:
        await conn.execute("SET LOCAL ROLE cards_owner")
    await _execute(conn, text, citus)
    await conn.execute("RESET ROLE")
    await conn.execute(
        """INSERT INTO cards_meta.repeatable_scripts (name, checksum) VALUES ($1, $2)
           ON CONFLICT (name) DO UPDATE SET checksum = excluded.checksum, applied_at = now()""",
        name,
        hashlib.sha256(text.encode()).hexdigest(),
    )
    return name


async def _drop_stale_functions(conn: asyncpg.Connection) -> list[str]:
    """Drops the `cards` functions sql/functions no longer defines (an old overload of a
    changed signature keeps no grant alive). Without CASCADE: a stale function something
    still uses stops the run, naming it."""
    dropped = []
    for (signature,) in await conn.fetch(_STALE_FUNCTIONS):
        await conn.execute(f"DROP FUNCTION {signature}")
        dropped.append(f"drop {signature}")
    return dropped


def main() -> None:
    dsn = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("DATABASE_URL")
    if not dsn:
        raise SystemExit("usage: python -m gateway.migrate DSN (or set DATABASE_URL)")
    applied = asyncio.run(migrate(dsn))
    print(f"schema version {latest_version()}: " + (", ".join(applied) if applied else "up to date"))


if __name__ == "__main__":
    main()
