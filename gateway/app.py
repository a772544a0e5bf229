"""The aiohttp application: routes, the one middleware, and handlers that each make one SQL call."""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import orjson
from aiohttp import web

from . import __version__, apidocs, openapi
from .auth import Authenticator, Throttle
from .config import Config
from .db import Database
from .errors import DatabaseTimeout, DatabaseUnavailable, Problem, from_database, from_http
from .metrics import CONTENT_TYPE, Metrics
from .migrate import latest_version

log = logging.getLogger("cards.gateway")
access_log = logging.getLogger("cards.access")

CONFIG = web.AppKey("config", Config)
DB = web.AppKey("db", Database)
METRICS = web.AppKey("metrics", Metrics)
AUTH = web.AppKey("auth", Authenticator)
SCHEMA_VERSION = web.AppKey("schema_version", int)

TENANT = web.RequestKey("tenant", str)
LINGERING_S = 10.0  # aiohttp's default
MAX_REQUEST_LINE_BYTES = 128 * 1024
_TRACE_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
_JSON = "application/json"
# A card's path: {id} is any segment but the names of the POST routes beside it, so that
# `GET /api/v1/cards/batch` is still a 405 (Allow: POST), not a lookup of a card called "batch".
# Its route label is the template, `/api/v1/cards/{id}`.
CARD = "/api/v1/cards/{id:(?!(?:batch|retrieve)$)[^{}/]+}"

BATCH = (
    "SELECT response, replayed, created, duplicates"
    " FROM cards.batch_create_request($1::uuid, $2::bytea, $3::text)"
)
RETRIEVE = "SELECT cards.retrieve_request($1::uuid, $2::bytea) AS response"
USAGE = "SELECT response, deduplicated FROM cards.track_usage_request($1::uuid, $2::text, $3::bytea)"
# The lifecycle functions take ids and query values as text, bodies as bytes: SQL validates them all.
GET_CARD = "SELECT card, etag FROM cards.get_card($1::uuid, $2::text)"
LIST_CARDS = (
    "SELECT cards.list_cards($1::uuid, $2::text, $3::text[], $4::text, $5::text, $6::text, $7::text)"
    " AS response"
)
UPDATE_CARD = "SELECT card, etag FROM cards.update_card($1::uuid, $2::text, $3::text, $4::bytea)"
DELETE_CARD = "SELECT cards.delete_card($1::uuid, $2::text)"
RESTORE_CARD = "SELECT card, etag FROM cards.restore_card($1::uuid, $2::text)"
USAGE_HISTORY = "SELECT cards.card_usage_history($1::uuid, $2::text, $3::text, $4::text) AS response"
USAGE_SUMMARY = "SELECT cards.usage_summary($1::uuid, $2::text, $3::text, $4::text) AS response"


# --- the API: authenticate, take the raw body, call one function, send its JSON back ---


async def create_batch(request: web.Request) -> web.Response:
    tenant = await _tenant(request)
    key = _idempotency_key(request)
    body = await _json_body(request)
    metrics = request.app[METRICS]
    try:
        row = await request.app[DB].fetchrow(BATCH, tenant, body, key)
    except asyncpg.PostgresError as exc:
        outcome = {"CKIKU": "in_use", "CKIKR": "reused"}.get(exc.sqlstate)
        if outcome is not None:
            metrics.idempotency.labels(outcome).inc()
        raise
    if key is not None:
        metrics.idempotency.labels("replayed" if row["replayed"] else "stored").inc()
    headers = {}
    if row["replayed"]:
        headers["Idempotent-Replayed"] = "true"
    else:
        metrics.batch_cards.labels("created").inc(row["created"])
        metrics.batch_cards.labels("duplicate").inc(row["duplicates"])
    return _json(row["response"], 201, headers)


async def retrieve(request: web.Request) -> web.Response:
    tenant = await _tenant(request)
    row = await request.app[DB].fetchrow(RETRIEVE, tenant, await _json_body(request))
    return _json(row["response"], 200)


async def track_usage(request: web.Request) -> web.Response:
    tenant = await _tenant(request)
    row = await request.app[DB].fetchrow(USAGE, tenant, _card_id(request), await _json_body(request))
    request.app[METRICS].usage_reports.labels("deduplicated" if row["deduplicated"] else "recorded").inc()
    return _json(row["response"], 200)


async def _on_one_card(request: web.Request, sql: str) -> asyncpg.Record:
    """`sql(tenant, card id)` for a route on one card that takes nothing else: it defines no query
    parameter, so any is a 422."""
    tenant = await _tenant(request)
    card_id = _card_id(request)
    _query(request)
    return await request.app[DB].fetchrow(sql, tenant, card_id)


async def get_card(request: web.Request) -> web.Response:
    return _card(await _on_one_card(request, GET_CARD))


async def list_cards(request: web.Request) -> web.Response:
    tenant = await _tenant(request)
    filters = _query(request, "kind", "tag", "contains", "q", "limit", "cursor", repeatable="tag")
    row = await request.app[DB].fetchrow(LIST_CARDS, tenant, *filters)
    return _json(row["response"], 200)


async def update_card(request: web.Request) -> web.Response:
    tenant = await _tenant(request)
    card_id = _card_id(request)
    _query(request)  # the route defines none: any query parameter is a 422
    row = await request.app[DB].fetchrow(
        UPDATE_CARD, tenant, card_id, _if_match(request), await _json_body(request)
    )
    return _card(row)


async def delete_card(request: web.Request) -> web.Response:
    await _on_one_card(request, DELETE_CARD)
    return web.Response(status=204)


async def restore_card(request: web.Request) -> web.Response:
    return _card(await _on_one_card(request, RESTORE_CARD))


async def usage_history(request: web.Request) -> web.Response:
    tenant = await _tenant(request)
    card_id = _card_id(request)
    page = _query(request, "limit", "cursor")
    row = await request.app[DB].fetchrow(USAGE_HISTORY, tenant, card_id, *page)
    return _json(row["response"], 200)


async def usage_summary(request: web.Request) -> web.Response:
    tenant = await _tenant(request)
    window = _query(request, "from", "to", "bucket")
    row = await request.app[DB].fetchrow(USAGE_SUMMARY, tenant, *window)
    return _json(row["response"], 200)


async def _tenant(request: web.Request) -> uuid.UUID:
    tenant = await request.app[AUTH].tenant(request.headers.getall("Authorization", []), request.remote or "")
    request[TENANT] = str(tenant)
    return tenant


def _card_id(request: web.Request) -> str:
    """The {id} of the path as sent; SQL decides whether it names a card (a malformed one does not)."""
    card_id = request.match_info["id"]
    if not _sendable(card_id):  # no card has such an id, and SQL text cannot carry it
        raise Problem("not-found", "no such card")
    return card_id


def _query(request: web.Request, *names: str, repeatable: str | None = None) -> list:
    """The route's query parameters in the order named: the raw text, None when absent, a list for the
    repeatable one. SQL validates the values; a parameter the route does not define, one given twice,
    or one SQL text cannot carry is a 422 naming it here."""
    query, errors = request.query, []
    for name in dict.fromkeys(query):
        values = query.getall(name)
        if name not in names:
            message = "is not a parameter of this route"
        elif name != repeatable and len(values) > 1:
            message = "must be given at most once"
        elif not all(_sendable(value) for value in values):
            message = "must not contain NUL (%00)"
        else:
            continue
        errors.append({"field": name.encode(errors="replace").decode(), "message": message})
    if errors:
        raise Problem(
            "validation-error",
            f'The request is invalid: {len(errors)} error(s), listed in "errors".',
            errors=errors,
        )
    return [query.getall(name, None) if name == repeatable else query.get(name) for name in names]


def _if_match(request: web.Request) -> str | None:
    """If-Match as sent, several field lines joined into one list; SQL compares it with the card's ETag.
    A value SQL text cannot carry (NUL, bytes that are not UTF-8) matches no ETag: it is sent as `""`."""
    values = request.headers.getall("If-Match", [])
    if not values:
        return None
    value = ", ".join(values)
    return value if _sendable(value) else '""'


def _idempotency_key(request: web.Request) -> str | None:
    """The header's value, one pair of surrounding quotes removed; SQL checks the rest."""
    values = request.headers.getall("Idempotency-Key", [])
    if not values:
        return None
    key = values[0]
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    if len(values) > 1 or not _sendable(key):
        raise Problem(
            "invalid-idempotency-key", "send one Idempotency-Key of 1-255 printable ASCII characters"
        )
    return key


async def _json_body(request: web.Request) -> bytes:
    """The raw body, refused early when it is not JSON or is over the limit; SQL parses it."""
    if request.content_type != _JSON or (request.charset or "utf-8").lower() != "utf-8":
        raise Problem("unsupported-media-type", f"send the body as {_JSON} (UTF-8)")
    if _declared_over_limit(request):
        raise Problem(
            "payload-too-large", f"the request body is over {request.app[CONFIG].max_body_bytes} bytes"
        )
    seconds = request.app[CONFIG].body_timeout_s
    try:
        async with asyncio.timeout(seconds):  # a slow client does not keep its request open for ever
            return await request.read()  # stops with 413 as soon as a chunked body passes the limit
    except TimeoutError:
        raise Problem("request-timeout", f"the request body did not arrive within {seconds:g} s") from None


def _declared_over_limit(request: web.Request) -> bool:
    """Whether the request's Content-Length is over the body limit (checked before reading)."""
    return request.content_length is not None and request.content_length > request.app[CONFIG].max_body_bytes


async def _continue_if_within_limit(request: web.Request) -> None:
    """`Expect: 100-continue`: invite the body only when its declared size is within the limit;
    otherwise send nothing here, and the handler answers 413 without reading it."""
    if _declared_over_limit(request):
        return
    if request.version >= (1, 1) and request.headers.get("Expect", "").lower() == "100-continue":
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0


def _sendable(text: str) -> bool:
    """PostgreSQL text cannot hold NUL, and UTF-8 cannot encode a lone surrogate."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def _json(text: str, status: int, headers: dict | None = None) -> web.Response:
    return web.Response(body=text.encode(), status=status, content_type=_JSON, headers=headers)


def _card(row: asyncpg.Record) -> web.Response:
    """One card and its ETag (SQL quotes it: `"3"`)."""
    return _json(row["card"], 200, {"ETag": row["etag"]})


# --- operations ---


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"}, dumps=_dumps)


async def ready(request: web.Request) -> web.Response:
    app = request.app
    app[METRICS].ready.set(0)
    try:
        row = await app[DB].fetchrow("SELECT cards.schema_version() AS version")
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
    return web.Response(body=openapi.SPEC_JSON, content_type=_JSON)


def _dumps(value: object) -> str:
    return orjson.dumps(value).decode()


# --- the one middleware: trace id, errors to problems, metrics, access log ---


@web.middleware
async def observe(request: web.Request, handler) -> web.StreamResponse:
    started = time.perf_counter()
    trace_id = request.headers.get("X-Trace-ID", "")
    if not _TRACE_ID.fullmatch(trace_id):
        trace_id = uuid.uuid4().hex
    app_metrics = request.app[METRICS]
    try:
        response = await handler(request)
    except Problem as problem:
        response = problem.response(trace_id)
    except web.HTTPException as exc:  # the router's 404 and 405, request.read()'s 413
        response = from_http(exc).response(trace_id)
    except Exception as exc:
        problem = from_database(exc)
        if problem is None:
            log.exception("unexpected error", extra={"trace_id": trace_id})
            problem = Problem(
                "internal-error", "an unexpected error occurred; quote the trace_id when reporting it"
            )
        elif problem.status >= 500:
            app_metrics.db_errors.labels("timeout" if problem.status == 504 else "unavailable").inc()
            log.warning("database error: %r", exc, extra={"trace_id": trace_id})
        response = problem.response(trace_id)
    response.headers["X-Trace-ID"] = trace_id
    seconds = time.perf_counter() - started
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    app_metrics.observe(route, request.method, response.status, seconds)
    access_log.info(
        "request",
        extra={
            "trace_id": trace_id,
            "tenant": request.get(TENANT),
            "method": request.method,
            "route": route,
            "status": response.status,
            "duration_ms": round(seconds * 1000, 3),
        },
    )
    return response


# --- the application ---


def init_app(config: Config) -> web.Application:
    app = web.Application(
        middlewares=[observe],
        client_max_size=config.max_body_bytes,
        handler_args={
            # Also closes a connection that never completes its request head: aiohttp has no other timeout.
            "keepalive_timeout": config.keepalive_timeout_s,
            # After an answer sent before the body was read (401, 408, 413, …), the rest of the body is
            # read and dropped, so that the client sees the answer, for at most this long; then close.
            "lingering_time": min(LINGERING_S, config.body_timeout_s),
            # aiohttp answers a longer request line itself (plain text, before the middleware); the
            # longest the spec allows, every parameter at its bound in 4-byte characters
            # percent-encoded, is about 92 KiB (contains 48, tags 24, cursor 12, q 6).
            "max_line_size": MAX_REQUEST_LINE_BYTES,
        },
    )
    app[CONFIG] = config
    app[SCHEMA_VERSION] = latest_version()
    app[DB] = database = Database(config)
    app[METRICS] = m = Metrics(__version__, app[SCHEMA_VERSION])
    app[AUTH] = Authenticator(
        _api_key_lookup(database),
        config.jwt_secret,
        config.auth_cache_ttl_s,
        config.auth_cache_size,
        m.auth_failures,
        Throttle(config.auth_failure_limit, config.auth_failure_window_s, config.auth_throttle_size),
    )
    m.watch_pool(
        size=lambda: database.pool.get_size() if database.pool else 0,
        idle=lambda: database.pool.get_idle_size() if database.pool else 0,
        limit=config.pool_max,
        waiters=lambda: database.waiters,
    )
    app.cleanup_ctx.append(_database_pool)
    takes_body = {"expect_handler": _continue_if_within_limit}
    # Methods of one path are registered together, so they share one resource (one route label).
    app.router.add_routes(
        [
            web.post("/api/v1/cards/batch", create_batch, name="batch", **takes_body),
            web.post("/api/v1/cards/retrieve", retrieve, name="retrieve", **takes_body),
            web.get("/api/v1/cards", list_cards, name="cards"),
            web.get(CARD, get_card, name="card"),
            web.patch(CARD, update_card, name="card", **takes_body),
            web.delete(CARD, delete_card, name="card"),
            web.post("/api/v1/cards/{id}/restore", restore_card, name="restore"),
            web.post("/api/v1/cards/{id}/usage", track_usage, name="usage", **takes_body),
            web.get("/api/v1/cards/{id}/usage", usage_history, name="usage"),
            web.get("/api/v1/usage/summary", usage_summary, name="usage_summary"),
            web.get("/health", health, name="health"),
            web.get("/ready", ready, name="ready"),
            web.get("/metrics", metrics, name="metrics"),
            web.get("/openapi.json", openapi_json, name="openapi"),
            *apidocs.routes(),
        ]
    )
    # The Card Center's pages (gateway/center/); imported here, for they use this module's statements.
    from .center import setup as setup_center

    setup_center(app, database, app[AUTH], config)
    return app


async def _database_pool(app: web.Application) -> AsyncIterator[None]:
    await app[DB].open()
    yield
    await app[DB].close()


def _api_key_lookup(database: Database):
    async def lookup(tenant: uuid.UUID, key_hash: bytes) -> bool:
        row = await database.fetchrow(
            "SELECT cards.authenticate_api_key($1::uuid, $2::bytea) AS ok", tenant, key_hash
        )
        return row["ok"]

    return lookup
