"""The client's import against the database's own: the same N cards loaded into two fresh tenants,
by `SELECT cards.batch_create(...)` over one connection (chunks of 1000, as a trusted job would)
and by `cards_client.CardsClient.import_cards` through the gateway (chunks of 1000, one stream).
The two are interleaved chunk by chunk — each time the client asks its input for the next chunk,
one SQL chunk runs (timed on its own, and not counted in the client's time) — so both meet the
same machine, the same other load and tables of the same size. Both build their cards from the
same generator inside the timed part, so the ratio is the cost of the HTTP path: the client's
JSON and key hashing, the gateway, and the round trip.

    python -m bench.client_import DSN GATEWAY_URL --cards 100000
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
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


def measure(dsn: str, gateway_url: str, cards: int) -> dict:
    """Both loads, interleaved and timed apart; cards/s of each and their ratio (client / SQL)."""
    run = f"bench-{time.time_ns()}"
    loop = asyncio.new_event_loop()
    conn = loop.run_until_complete(asyncpg.connect(dsn))
    try:
        (sql_tenant, _) = loop.run_until_complete(_tenant(conn, "bench import sql"))
        (_, client_key) = loop.run_until_complete(_tenant(conn, "bench import client"))
        sql_rows = generate(cards)
        sql = {"seconds": 0.0, "created": 0, "chunks": 0}

        def sql_chunk() -> None:
            started = time.perf_counter()
            chunk = list(itertools.islice(sql_rows, CHUNK))
            doc = loop.run_until_complete(
                conn.fetchval(
                    "SELECT response FROM cards.batch_create($1::uuid, $2::jsonb, $3)",
                    sql_tenant,
                    orjson.dumps(chunk).decode(),
                    f"{run}-sql-{sql['chunks']}",
                )
            )
            sql["created"] += orjson.loads(doc)["created"]
            sql["chunks"] += 1
            sql["seconds"] += time.perf_counter() - started

        def client_rows() -> Iterator[dict]:
            for n, row in enumerate(generate(cards)):
                if n % CHUNK == 0:
                    sql_chunk()  # the client has sent every chunk before this one
                yield row

        with CardsClient(gateway_url, client_key) as client:
            started = time.perf_counter()
            report = client.import_cards(client_rows(), chunk_size=CHUNK, key_prefix=f"{run}-client")
            client_seconds = time.perf_counter() - started - sql["seconds"]
    finally:
        loop.run_until_complete(conn.close())
        loop.close()
    out = {
        "cards": cards,
        "chunk": CHUNK,
        "sql_seconds": round(sql["seconds"], 2),
        "client_seconds": round(client_seconds, 2),
        "sql_cards_per_s": round(cards / sql["seconds"], 1),
        "client_cards_per_s": round(cards / client_seconds, 1),
        "ratio": round(sql["seconds"] / client_seconds, 3),
        "target_ratio": TARGET_RATIO,
    }
    if sql["created"] != cards or report.created != cards or report.rejected:
        out["failure"] = f"created {sql['created']} by SQL and {report.created} by the client, of {cards}"
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
