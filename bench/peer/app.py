"""The plain peer the benchmark compares with: the same three hot routes written the usual way —
FastAPI, pydantic models, asyncpg, and one repository call per statement inside a transaction,
on the seed's schema (bench/peer/schema.sql). Not part of the product; `bench/run.py` serves it
with uvicorn and drives it with the same wrk scripts as the gateway.

    DATABASE_URL=… uvicorn bench.peer.app:app --workers 2 --loop uvloop --http httptools
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated

import asyncpg
from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field


@asynccontextmanager
async def lifespan(app: FastAPI):
    size = int(os.environ.get("PEER_POOL", "32"))
    app.state.pool = await asyncpg.create_pool(os.environ["DATABASE_URL"], min_size=size, max_size=size)
    for conn in [await app.state.pool.acquire() for _ in range(size)]:
        await app.state.pool.release(conn)
    yield
    await app.state.pool.close()


app = FastAPI(lifespan=lifespan)


# --- models ---


class CardIn(BaseModel):
    kind: str = "note"
    title: str = Field(min_length=1, max_length=200)
    content: object
    tags: list[str] = Field(default_factory=list, max_length=20)
    metadata: dict = Field(default_factory=dict)


class BatchIn(BaseModel):
    cards: list[CardIn] = Field(min_length=1, max_length=1000)


class RetrieveIn(BaseModel):
    ids: list[uuid.UUID] = Field(min_length=1, max_length=1000)


class UsageIn(BaseModel):
    workflow_id: str = Field(min_length=1, max_length=255)
    run_id: str = Field(min_length=1, max_length=255)
    metadata: dict = Field(default_factory=dict)


# --- repository: one statement each ---


class Repository:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def tenant_of_key(self, key_hash: bytes) -> uuid.UUID | None:
        return await self.conn.fetchval("SELECT tenant_id FROM peer.api_keys WHERE key_hash = $1", key_hash)

    async def cards_by_ids(self, tenant: uuid.UUID, ids: list[uuid.UUID]) -> list[asyncpg.Record]:
        return await self.conn.fetch(
            "SELECT * FROM peer.cards WHERE tenant_id = $1 AND id = ANY($2::uuid[])", tenant, ids
        )

    async def card_exists(self, tenant: uuid.UUID, card_id: uuid.UUID) -> bool:
        return await self.conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM peer.cards WHERE tenant_id = $1 AND id = $2)", tenant, card_id
        )

    async def add_usage(self, tenant: uuid.UUID, card_id: uuid.UUID, body: UsageIn) -> datetime | None:
        return await self.conn.fetchval(
            "INSERT INTO peer.card_usage (tenant_id, card_id, workflow_id, run_id, metadata)"
            " VALUES ($1, $2, $3, $4, $5::jsonb) ON CONFLICT DO NOTHING RETURNING recorded_at",
            tenant,
            card_id,
            body.workflow_id,
            body.run_id,
            json.dumps(body.metadata),
        )

    async def usage_recorded_at(self, tenant: uuid.UUID, card_id: uuid.UUID, body: UsageIn) -> datetime:
        return await self.conn.fetchval(
            "SELECT recorded_at FROM peer.card_usage"
            " WHERE tenant_id = $1 AND card_id = $2 AND workflow_id = $3 AND run_id = $4",
            tenant,
            card_id,
            body.workflow_id,
            body.run_id,
        )

    async def count_usage(self, tenant: uuid.UUID, card_id: uuid.UUID, at: datetime) -> int:
        return await self.conn.fetchval(
            "UPDATE peer.cards SET usage_count = usage_count + 1, last_used_at = $3"
            " WHERE tenant_id = $1 AND id = $2 RETURNING usage_count",
            tenant,
            card_id,
            at,
        )

    async def usage_count(self, tenant: uuid.UUID, card_id: uuid.UUID) -> int:
        return await self.conn.fetchval(
            "SELECT usage_count FROM peer.cards WHERE tenant_id = $1 AND id = $2", tenant, card_id
        )

    async def stored_answer(self, tenant: uuid.UUID, key: str) -> asyncpg.Record | None:
        return await self.conn.fetchrow(
            "SELECT request_hash, response FROM peer.idempotency_keys WHERE tenant_id = $1 AND key = $2",
            tenant,
            key,
        )

    async def insert_cards(self, tenant: uuid.UUID, cards: list[CardIn], hashes: list[str]) -> dict[str, str]:
        rows = await self.conn.fetch(
            "INSERT INTO peer.cards (tenant_id, kind, title, content, tags, metadata, content_hash)"
            " SELECT $1, k, t, c::jsonb, ARRAY(SELECT jsonb_array_elements_text(g::jsonb)), m::jsonb, h"
            " FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])"
            " AS x (k, t, c, g, m, h)"
            " ON CONFLICT (tenant_id, content_hash) DO NOTHING RETURNING id, content_hash",
            tenant,
            [c.kind for c in cards],
            [c.title for c in cards],
            [json.dumps(c.content) for c in cards],
            [json.dumps(c.tags) for c in cards],
            [json.dumps(c.metadata) for c in cards],
            hashes,
        )
        return {r["content_hash"]: str(r["id"]) for r in rows}

    async def ids_of_hashes(self, tenant: uuid.UUID, hashes: list[str]) -> dict[str, str]:
        rows = await self.conn.fetch(
            "SELECT id, content_hash FROM peer.cards WHERE tenant_id = $1 AND content_hash = ANY($2::text[])",
            tenant,
            hashes,
        )
        return {r["content_hash"]: str(r["id"]) for r in rows}

    async def store_answer(self, tenant: uuid.UUID, key: str, request_hash: str, response: dict) -> None:
        await self.conn.execute(
            "INSERT INTO peer.idempotency_keys (tenant_id, key, request_hash, response)"
            " VALUES ($1, $2, $3, $4::jsonb)",
            tenant,
            key,
            request_hash,
            json.dumps(response),
        )


# --- dependencies ---


async def connection(request: Request):
    async with request.app.state.pool.acquire() as conn:
        yield conn


Conn = Annotated[asyncpg.Connection, Depends(connection)]  # one per request, shared by its dependencies


async def tenant_of(conn: Conn, authorization: Annotated[str, Header()] = "") -> uuid.UUID:
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(401, "unauthorized")
    tenant = await Repository(conn).tenant_of_key(hashlib.sha256(token.encode()).digest())
    if tenant is None:
        raise HTTPException(401, "unauthorized")
    return tenant


Tenant = Annotated[uuid.UUID, Depends(tenant_of)]

# --- routes ---


def _card(row: asyncpg.Record) -> dict:
    return {
        "id": str(row["id"]),
        "kind": row["kind"],
        "title": row["title"],
        "content": json.loads(row["content"]),
        "tags": row["tags"],
        "metadata": json.loads(row["metadata"]),
        "content_hash": row["content_hash"],
        "usage_count": row["usage_count"],
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
        "last_used_at": row["last_used_at"].isoformat() if row["last_used_at"] else None,
    }


@app.post("/api/v1/cards/retrieve")
async def retrieve(body: RetrieveIn, tenant: Tenant, conn: Conn):
    ids = list(dict.fromkeys(body.ids))
    found = {row["id"]: row for row in await Repository(conn).cards_by_ids(tenant, ids)}
    return {
        "cards": [_card(found[i]) for i in ids if i in found],
        "missing": [str(i) for i in ids if i not in found],
    }


@app.post("/api/v1/cards/{card_id}/usage")
async def track_usage(card_id: uuid.UUID, body: UsageIn, tenant: Tenant, conn: Conn):
    repo = Repository(conn)
    async with conn.transaction():
        if not await repo.card_exists(tenant, card_id):
            raise HTTPException(404, "no such card")
        recorded_at = await repo.add_usage(tenant, card_id, body)
        if recorded_at is not None:
            count, deduplicated = await repo.count_usage(tenant, card_id, recorded_at), False
        else:
            recorded_at = await repo.usage_recorded_at(tenant, card_id, body)
            count, deduplicated = await repo.usage_count(tenant, card_id), True
    return {
        "card_id": str(card_id),
        "usage_count": count,
        "deduplicated": deduplicated,
        "recorded_at": recorded_at.isoformat(),
    }


@app.post("/api/v1/cards/batch", status_code=201)
async def create_batch(
    body: BatchIn, tenant: Tenant, conn: Conn, idempotency_key: Annotated[str | None, Header()] = None
):
    repo = Repository(conn)
    request_hash = hashlib.sha256(body.model_dump_json().encode()).hexdigest()
    hashes = [
        hashlib.sha256(json.dumps([c.kind, c.title, c.content], sort_keys=True).encode()).hexdigest()
        for c in body.cards
    ]
    async with conn.transaction():
        if idempotency_key is not None:
            stored = await repo.stored_answer(tenant, idempotency_key)
            if stored is not None:
                if stored["request_hash"] != request_hash:
                    raise HTTPException(422, "idempotency key reused")
                return JSONResponse(json.loads(stored["response"]), 201, {"Idempotent-Replayed": "true"})
        created = await repo.insert_cards(tenant, body.cards, hashes)
        existing = await repo.ids_of_hashes(tenant, [h for h in hashes if h not in created])
        seen: set[str] = set()
        items = []
        for index, h in enumerate(hashes):
            new = h in created and h not in seen
            seen.add(h)
            items.append(
                {
                    "index": index,
                    "id": created.get(h) or existing.get(h),
                    "status": "created" if new else "duplicate",
                    "content_hash": h,
                }
            )
        response = {"cards": items, "created": len(created), "duplicates": len(items) - len(created)}
        if idempotency_key is not None:
            await repo.store_answer(tenant, idempotency_key, request_hash, response)
    return response
