"""Bench data: T tenants, an API key each, and N cards of ~1 KB content loaded through
`cards.batch_create` in batches of 1000, the way an onboarding job would.

Besides the cards it writes what the load scripts need to pick existing cards:
- schema `bench` (created here as superuser, never in schema `cards`): `bench.tenants`
  (tenant_no, tenant_id, api_key) and `bench.ids` (tenant_no, n, card_id) with n = 1..N/T,
  read by the pgbench scripts; `cards_gateway` may read them, so pgbench can run as that role;
- in the work folder: `tenants.tsv` and `ids-<tenant_no>.txt`, read by the wrk Lua scripts.

Every card has two of eight common tags and one topic tag `topic-NNN` (TOPICS of them), and
metadata {"source": "bench", "n": n}, so the listing runs can ask for a topic or an n.

It also seeds the usage repeats: the first REPEAT_POOL cards of each tenant get one report
from (workflow "bench-repeat", run "seed"), so that every later report of that pair is a repeat.

    python -m bench.datagen DSN --cards 20000 --tenants 4 --work bench/work/manual
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import orjson
from tqdm import tqdm

BATCH = 1000
REPEAT_POOL = 1000
REPEAT_WORKFLOW, REPEAT_RUN = "bench-repeat", "seed"

_WORDS = (
    "brand voice tone customer product launch feature pricing onboarding workflow prompt fragment note fact "
    "policy support escalation refund shipping warranty release summary guideline audience concise friendly "
    "formal example avoid prefer always never when because therefore segment region partner contract renewal "
    "discount trial upgrade invoice compliance privacy security uptime latency integration webhook export"
).split()
_TAGS = ("brand", "product", "support", "legal", "pricing", "tone", "faq", "internal")
# Besides two of the common tags (each on a quarter of the cards) every card has one topic tag
# of TOPICS (each on 1 card in TOPICS), so that a tag query can be selective: the listing
# benchmark asks for one topic, which the GIN index serves.
TOPICS = 500

_SCHEMA = """
DROP SCHEMA IF EXISTS bench CASCADE;
CREATE SCHEMA bench;
COMMENT ON SCHEMA bench IS 'Benchmark harness only: the tenants and card ids the load scripts pick from.';
CREATE TABLE bench.tenants (tenant_no integer PRIMARY KEY, tenant_id uuid NOT NULL, api_key text NOT NULL);
CREATE TABLE bench.ids (
    tenant_no integer NOT NULL, n integer NOT NULL, card_id uuid NOT NULL, PRIMARY KEY (tenant_no, n)
);
GRANT USAGE ON SCHEMA bench TO cards_gateway;
GRANT SELECT ON bench.tenants, bench.ids TO cards_gateway;
"""


@dataclass(frozen=True)
class Tenant:
    no: int
    tenant_id: str
    api_key: str


def card(rng: random.Random, tenant_no: int, n: int) -> dict:
    """One card input with ~1 KB of content, unique per (tenant, n) so nothing deduplicates."""
    words = rng.choices(_WORDS, k=140)
    text = " ".join(words)[:900]
    return {
        "kind": "note",
        "title": f"Card {tenant_no}-{n}: {' '.join(words[:5])}",
        "content": {"text": text, "section": n % 97, "audience": rng.choice(("smb", "enterprise"))},
        "tags": [*rng.sample(_TAGS, k=2), topic(n)],
        "metadata": {"source": "bench", "n": n},
    }


def topic(n: int) -> str:
    return f"topic-{n % TOPICS:03d}"


async def _create_tenants(conn: asyncpg.Connection, count: int) -> list[Tenant]:
    tenants = []
    for no in range(1, count + 1):
        tenant_id = await conn.fetchval("SELECT cards.create_tenant($1)", f"bench tenant {no}")
        api_key = await conn.fetchval("SELECT api_key FROM cards.create_api_key($1, 'bench')", tenant_id)
        tenants.append(Tenant(no, str(tenant_id), api_key))
    await conn.executemany(
        "INSERT INTO bench.tenants VALUES ($1, $2, $3)", [(t.no, t.tenant_id, t.api_key) for t in tenants]
    )
    return tenants


async def _loader(
    dsn: str, jobs: asyncio.Queue, tenants: dict[int, Tenant], seed: int, progress: tqdm
) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        while True:
            try:
                tenant_no, first, count = jobs.get_nowait()
            except asyncio.QueueEmpty:
                return
            rng = random.Random(f"{seed}:{tenant_no}:{first}")
            batch = [card(rng, tenant_no, n) for n in range(first, first + count)]
            response = await conn.fetchval(
                "SELECT response FROM cards.batch_create($1::uuid, $2::jsonb, $3)",
                tenants[tenant_no].tenant_id,
                orjson.dumps(batch).decode(),
                f"bench-load-{tenant_no}-{first}",
            )
            doc = orjson.loads(response)
            if doc["created"] != count:
                raise RuntimeError(f"batch {tenant_no}/{first}: {doc['created']} of {count} created")
            await conn.copy_records_to_table(
                "ids",
                schema_name="bench",
                records=[(tenant_no, first + item["index"], item["id"]) for item in doc["cards"]],
            )
            progress.update(count)
    finally:
        await conn.close()


async def load(
    dsn: str,
    cards: int,
    tenants: int,
    work: Path,
    *,
    seed: int = 1,
    workers: int = 2,
    show_progress: bool = True,
) -> dict:
    """Create the tenants and cards, seed the usage repeats, write the id files; return a summary."""
    started = time.perf_counter()
    per_tenant = cards // tenants
    if per_tenant < 50:
        raise SystemExit(f"need at least 50 cards per tenant, got {cards} cards over {tenants} tenants")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(_SCHEMA)
        created = await _create_tenants(conn, tenants)
        by_no = {t.no: t for t in created}
        jobs: asyncio.Queue = asyncio.Queue()
        # Interleave tenants so that every tenant's cards spread over the whole load.
        for first in range(1, per_tenant + 1, BATCH):
            for t in created:
                jobs.put_nowait((t.no, first, min(BATCH, per_tenant - first + 1)))
        with tqdm(
            total=per_tenant * tenants,
            unit="card",
            unit_scale=True,
            desc="loading cards",
            disable=not show_progress,
            mininterval=1.0,
        ) as progress:
            await asyncio.gather(*(_loader(dsn, jobs, by_no, seed, progress) for _ in range(workers)))
        loaded = time.perf_counter() - started
        pool = min(REPEAT_POOL, per_tenant)
        # In a transaction block: on a Citus coordinator a call nested in a query is not
        # delegated, and only in a block does its tenant reach the workers (docs/SCALING.md).
        async with conn.transaction():
            await conn.execute(
                """SELECT count(cards.track_usage(t.tenant_id, i.card_id, $2, $3))
                   FROM bench.tenants AS t JOIN bench.ids AS i USING (tenant_no) WHERE i.n <= $1""",
                pool,
                REPEAT_WORKFLOW,
                REPEAT_RUN,
            )
        await conn.execute("VACUUM ANALYZE")
        await conn.execute("CHECKPOINT")
        await _write_work_files(conn, work)
        table_bytes = await conn.fetchval("SELECT pg_total_relation_size('cards.cards')")
        return {
            "cards": per_tenant * tenants,
            "tenants": tenants,
            "per_tenant": per_tenant,
            "repeat_pool": pool,
            "topics": TOPICS,
            "load_seconds": round(loaded, 2),
            "cards_per_second": round(per_tenant * tenants / loaded, 1),
            "setup_seconds": round(time.perf_counter() - started, 2),
            "cards_table_bytes": table_bytes,
        }
    finally:
        await conn.close()


async def _write_work_files(conn: asyncpg.Connection, work: Path) -> None:
    work.mkdir(parents=True, exist_ok=True)
    for old in work.glob("ids-*.txt"):
        old.unlink()
    tenants = await conn.fetch("SELECT tenant_no, tenant_id, api_key FROM bench.tenants ORDER BY tenant_no")
    with open(work / "tenants.tsv", "w") as out:
        for t in tenants:
            out.write(f"{t['tenant_no']}\t{t['tenant_id']}\t{t['api_key']}\n")
    for t in tenants:
        rows = await conn.fetch(
            "SELECT card_id FROM bench.ids WHERE tenant_no = $1 ORDER BY n", t["tenant_no"]
        )
        (work / f"ids-{t['tenant_no']}.txt").write_text("".join(f"{r['card_id']}\n" for r in rows))


async def write_work_files(dsn: str, work: Path) -> None:
    """The files the wrk scripts read, from the bench schema of a loaded database."""
    conn = await asyncpg.connect(dsn)
    try:
        await _write_work_files(conn, work)
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("dsn", help="a superuser's DSN of a migrated database")
    parser.add_argument("--cards", type=int, default=20_000)
    parser.add_argument("--tenants", type=int, default=4)
    parser.add_argument("--work", type=Path, default=Path("bench/work/manual"))
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    print(
        orjson.dumps(
            asyncio.run(load(args.dsn, args.cards, args.tenants, args.work, workers=args.workers))
        ).decode()
    )


if __name__ == "__main__":
    main()
