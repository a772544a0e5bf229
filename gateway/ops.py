"""The operations routes: liveness, readiness, metrics and the API's own description. None takes
credentials or counts against a tenant."""

from __future__ import annotations

import asyncpg
import orjson
from aiohttp import web

from .api import DB, METRICS
from .errors import DatabaseTimeout, DatabaseUnavailable, Problem
from .metrics import CONTENT_TYPE

SCHEMA_VERSION = web.AppKey("schema_version", int)
SPEC_JSON = web.AppKey("spec_json", bytes)
SCHEMA_VERSION_SQL = "SELECT cards.schema_version() AS version"


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"}, dumps=_dumps)


async def ready(request: web.Request) -> web.Response:
    app = request.app
    app[METRICS].ready.set(0)
    try:
        row = await app[DB].fetchrow(SCHEMA_VERSION_SQL)
    except (DatabaseTimeout, asyncpg.QueryCanceledError) as exc:  # no answer in time: not ready
        raise DatabaseUnavailable(repr(exc)) from exc
    # Migrations stay compatible with the previous gateway for one version (sql/CONVENTIONS.md),
    # so a deploy migrates first and the running gateways stay ready until they are replaced.
    expected = app[SCHEMA_VERSION]
    if row["version"] not in (expected, expected + 1):
        raise Problem(
            "service-unavailable",
            f"the database schema is version {row['version']}, this gateway expects {expected}"
            f" (or {expected + 1}, the next one)",
        )
    app[METRICS].ready.set(1)
    return web.json_response({"status": "ready", "schema_version": row["version"]}, dumps=_dumps)


async def metrics(request: web.Request) -> web.Response:
    return web.Response(body=request.app[METRICS].render(), headers={"Content-Type": CONTENT_TYPE})


async def openapi_json(request: web.Request) -> web.Response:
    return web.Response(body=request.app[SPEC_JSON], content_type="application/json")


def _dumps(value: object) -> str:
    return orjson.dumps(value).decode()
