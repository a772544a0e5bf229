"""The floor under the gateway: the least an aiohttp + asyncpg server can do to answer the same
requests. It makes the gateway's own SQL call for retrieve and usage and nothing else: no key
lookup (the tenant is read from the API key's own text), no scope, rate limit or pool share, no
metrics, no log line, no problem mapping. The gateway's CPU per request over this server's, at the
same concurrency in the same run, is what the gateway's own work costs; what this server spends is
what the framework, the driver and the kernel's sockets cost on this machine.

Not part of the product; `bench/run.py` serves it (one process, like CARDS_WORKERS=1) and drives it
with the gateway's wrk scripts.

    DATABASE_URL=… python -m bench.floor PORT POOL
"""

from __future__ import annotations

import os
import sys
import uuid

import asyncpg
import uvloop
from aiohttp import web

from gateway.api import RETRIEVE, USAGE
from gateway.db import GATEWAY_ROLE, json_as_bytes

POOL = web.AppKey("pool", asyncpg.Pool)


def _tenant(request: web.Request) -> uuid.UUID:
    """`Bearer ck_<tenant hex>_<secret>`: the tenant the key names, unchecked."""
    return uuid.UUID(request.headers["Authorization"][10:42])


async def _answer(request: web.Request, sql: str, *args: object) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        row = await conn.fetchrow(sql, _tenant(request), *args)
    return web.Response(body=row["response"], content_type="application/json")


async def retrieve(request: web.Request) -> web.Response:
    return await _answer(request, RETRIEVE, await request.read())


async def usage(request: web.Request) -> web.Response:
    return await _answer(request, USAGE, request.match_info["id"], await request.read())


async def health(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def app(dsn: str, pool_size: int) -> web.Application:
    async def pool(application: web.Application):
        application[POOL] = await asyncpg.create_pool(
            dsn,
            min_size=pool_size,
            max_size=pool_size,
            server_settings={"role": GATEWAY_ROLE},
            init=json_as_bytes,  # as the gateway's pool does
        )
        yield
        await application[POOL].close()

    application = web.Application()
    application.cleanup_ctx.append(pool)
    application.router.add_post("/api/v1/cards/retrieve", retrieve)
    application.router.add_post("/api/v1/cards/{id}/usage", usage)
    application.router.add_get("/health", health)
    return application


if __name__ == "__main__":
    port, pool_size = int(sys.argv[1]), int(sys.argv[2])
    web.run_app(
        app(os.environ["DATABASE_URL"], pool_size),
        host="127.0.0.1",
        port=port,
        access_log=None,
        print=None,
        loop=uvloop.new_event_loop(),
    )
