"""The client's import against the database's own: the same N cards loaded into two fresh tenants,
once by `SELECT cards.batch_create(...)` over one connection (chunks of 1000, as a trusted job
would) and once by `cards_client.CardsClient.import_cards` through the gateway (chunks of 1000, one
stream). Both are single streams and build their cards from the same generator inside the timed
part, so the ratio is the cost of the HTTP path: the client's JSON and hashing, the gateway, and
the round trip. The SQL load runs first, so the client's load meets the larger table.

    python -m bench.client_import DSN GATEWAY_URL --cards 100000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from collections.abc import Iterator

import asyncpg
import orjson
from cards_client import CardsClient

from . import datagen

CHUNK = 1000
TARGET_RATIO = 0.8


def generate(cards: int, seed: int = 7) -> Iterator[dict]:
    """The cards both loads create: ~1 KB each, none a duplicate of another."""
    rng = random.Random(seed)
    for n in range(1, cards + 1):
        yield datagen.card(rng, 0, n)


async def _tenant(conn: asyncpg.Connection, name: str) -> tuple[str, str]:
    tenant_id = await conn.fetchval("SELECT cards.create_tenant($1)", name)
    key = await conn.fetchval("SELECT api_key FROM cards.create_api_key($1, 'bench import')", tenant_id)
    return str(tenant_id), key


async def _sql_load(dsn: str, tenant_id: str, cards: int, run: str) -> tuple[float, int]:
    conn = await asyncpg.connect(dsn)
    try:
        created = 0
        started = time.perf_counter()
        chunk: list[dict] = []
        n = 0
        for card in generate(cards):
            chunk.append(card)
            if len(chunk) == CHUNK or n * CHUNK + len(chunk) == cards:
                doc = await conn.fetchval(
                    "SELECT response FROM cards.batch_create($1::uuid, $2::jsonb, $3)",
                    tenant_id,
                    orjson.dumps(chunk).decode(),
                    f"{run}-sql-{n}",
                )
                created += orjson.loads(doc)["created"]
                chunk, n = [], n + 1
        return time.perf_counter() - started, created
    finally:
        await conn.close()


def measure(dsn: str, gateway_url: str, cards: int) -> dict:
    """Both loads, timed; cards/s of each and their ratio (client / SQL)."""
    run = f"bench-{time.time_ns()}"

    async def tenants() -> tuple[tuple[str, str], tuple[str, str]]:
        conn = await asyncpg.connect(dsn)
        try:
            return await _tenant(conn, "bench import sql"), await _tenant(conn, "bench import client")
        finally:
            await conn.close()

    (sql_tenant, _), (_, client_key) = asyncio.run(tenants())
    sql_seconds, sql_created = asyncio.run(_sql_load(dsn, sql_tenant, cards, run))
    with CardsClient(gateway_url, client_key) as client:
        started = time.perf_counter()
        report = client.import_cards(generate(cards), chunk_size=CHUNK, key_prefix=f"{run}-client")
        client_seconds = time.perf_counter() - started
    out = {
        "cards": cards,
        "chunk": CHUNK,
        "sql_seconds": round(sql_seconds, 2),
        "client_seconds": round(client_seconds, 2),
        "sql_cards_per_s": round(cards / sql_seconds, 1),
        "client_cards_per_s": round(cards / client_seconds, 1),
        "ratio": round(sql_seconds / client_seconds, 3),
        "target_ratio": TARGET_RATIO,
    }
    if sql_created != cards or report.created != cards or report.rejected:
        out["failure"] = f"created {sql_created} by SQL and {report.created} by the client, of {cards}"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("dsn", help="a superuser's DSN of a migrated database")
    parser.add_argument("gateway_url")
    parser.add_argument("--cards", type=int, default=100_000)
    args = parser.parse_args()
    print(json.dumps(measure(args.dsn, args.gateway_url, args.cards)))


if __name__ == "__main__":
    main()
