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
"""


def versioned_migrations() -> list[tuple[int, Path]]:
    found = []
    for path in sorted((SQL_DIR / "schema").glob("*.sql")):
        match = _VERSIONED.match(path.name)
        if not match:
            raise SystemExit(f"migration file name must be NNNN_name.sql: {path.name}")
        found.append((int(match.group(1)), path))
    versions = [v for v, _ in found]
    if versions != list(range(1, len(versions) + 1)):
        raise SystemExit(f"migrations must be numbered 1..N without gaps: {versions}")
    return found


def latest_version() -> int:
    """The schema version this checkout expects (what /ready compares against)."""
    return len(versioned_migrations())


def repeatable_scripts() -> list[Path]:
    return sorted((SQL_DIR / "functions").glob("*.sql")) + sorted((SQL_DIR / "policies").glob("*.sql"))


async def migrate(dsn: str) -> list[str]:
    """Bring the database at `dsn` up to date; return the names of what was applied."""
    applied: list[str] = []
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
            await conn.execute(_BOOTSTRAP)
            done = {
                r["version"] for r in await conn.fetch("SELECT version FROM cards_meta.schema_migrations")
            }
            for version, path in versioned_migrations():
                if version in done:
                    continue
                await conn.execute(path.read_text())
                await conn.execute("RESET ROLE")
                await conn.execute(
                    "INSERT INTO cards_meta.schema_migrations (version, name) VALUES ($1, $2)",
                    version,
                    path.name,
                )
                applied.append(path.name)
            checksums = dict(await conn.fetch("SELECT name, checksum FROM cards_meta.repeatable_scripts"))
            for path in repeatable_scripts():
                text = path.read_text()
                name = f"{path.parent.name}/{path.name}"
                checksum = hashlib.sha256(text.encode()).hexdigest()
                # A changed function file may also change what a later policy file grants,
                # so every repeatable after the first changed one is applied again.
                if checksums.get(name) == checksum and not applied:
                    continue
                await conn.execute("SET LOCAL ROLE cards_owner")
                await conn.execute(text)
                await conn.execute("RESET ROLE")
                await conn.execute(
                    """INSERT INTO cards_meta.repeatable_scripts (name, checksum) VALUES ($1, $2)
                       ON CONFLICT (name) DO UPDATE SET checksum = excluded.checksum, applied_at = now()""",
                    name,
                    checksum,
                )
                applied.append(name)
    finally:
        await conn.close()
    return applied


def main() -> None:
    dsn = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("DATABASE_URL")
    if not dsn:
        raise SystemExit("usage: python -m gateway.migrate DSN (or set DATABASE_URL)")
    applied = asyncio.run(migrate(dsn))
    print(f"schema version {latest_version()}: " + (", ".join(applied) if applied else "up to date"))


if __name__ == "__main__":
    main()
