"""The API's handlers: each takes the raw inputs of its route and makes ONE SQL call, which validates
them; the route table (routes.py) says which scope each needs and runs `guard` first."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import asyncpg
from aiohttp import web

from .auth import Authenticator, Principal
from .config import Config
from .db import Database
from .errors import Problem
from .limits import Quota, RateLimiter
from .metrics import Metrics

CONFIG = web.AppKey("config", Config)
DB = web.AppKey("db", Database)
METRICS = web.AppKey("metrics", Metrics)
AUTH = web.AppKey("auth", Authenticator)
LIMITER = web.AppKey("limiter", RateLimiter)
CLIENT_ADDRESS = web.AppKey("client_address", Callable)

PRINCIPAL = web.RequestKey("principal", Principal)
QUOTA = web.RequestKey("quota", Quota)
JSON = "application/json"

Handler = Callable[[web.Request, uuid.UUID], Awaitable[web.StreamResponse]]


async def guard(request: web.Request, scope: str) -> uuid.UUID:
    """Authenticates the request, checks its credential's scope, takes one request from the tenant's
    rate limit, and answers the tenant. 401 and 403 are answered before the rate limit is touched."""
    app = request.app
    address = app[CLIENT_ADDRESS](request.remote or "", request.headers.getall("X-Forwarded-For", []))
    principal = await app[AUTH].authenticate(request.headers.getall("Authorization", []), address)
    request[PRINCIPAL] = principal
    if scope not in principal.scopes:
        granted = ", ".join(sorted(principal.scopes)) or "none"
        detail = f"this route needs the scope {scope}; the credential grants {granted}"
        raise Problem("insufficient-scope", detail)
    if LIMITER in app:
        request[QUOTA] = await app[LIMITER].acquire(principal.tenant)
    return principal.tenant


async def call(request: web.Request, sql: str, tenant: uuid.UUID, *args: object) -> asyncpg.Record:
    """`sql(tenant, *args)` on a pooled connection, within the tenant's share of the pool."""
    return await request.app[DB].call(sql, tenant, *args)


# --- the SQL each route calls: the tenant first, then the raw inputs ---

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


# --- handlers: take the raw inputs, make the call, send its JSON back ---


async def create_batch(request: web.Request, tenant: uuid.UUID) -> web.Response:
    key = _idempotency_key(request)
    body = await _json_body(request)
    metrics = request.app[METRICS]
    try:
        row = await call(request, BATCH, tenant, body, key)
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


async def retrieve(request: web.Request, tenant: uuid.UUID) -> web.Response:
    row = await call(request, RETRIEVE, tenant, await _json_body(request))
    return _json(row["response"], 200)


async def track_usage(request: web.Request, tenant: uuid.UUID) -> web.Response:
    row = await call(request, USAGE, tenant, _card_id(request), await _json_body(request))
    request.app[METRICS].usage_reports.labels("deduplicated" if row["deduplicated"] else "recorded").inc()
    return _json(row["response"], 200)


async def _on_one_card(request: web.Request, tenant: uuid.UUID, sql: str) -> asyncpg.Record:
    """`sql(tenant, card id)` for a route on one card that takes nothing else: it defines no query
    parameter, so any is a 422."""
    card_id = _card_id(request)
    _query(request)
    return await call(request, sql, tenant, card_id)


async def get_card(request: web.Request, tenant: uuid.UUID) -> web.Response:
    return _card(await _on_one_card(request, tenant, GET_CARD))


async def list_cards(request: web.Request, tenant: uuid.UUID) -> web.Response:
    filters = _query(request, "kind", "tag", "contains", "q", "limit", "cursor", repeatable="tag")
    row = await call(request, LIST_CARDS, tenant, *filters)
    return _json(row["response"], 200)


async def update_card(request: web.Request, tenant: uuid.UUID) -> web.Response:
    card_id = _card_id(request)
    _query(request)  # the route defines none: any query parameter is a 422
    row = await call(request, UPDATE_CARD, tenant, card_id, _if_match(request), await _json_body(request))
    return _card(row)


async def delete_card(request: web.Request, tenant: uuid.UUID) -> web.Response:
    await _on_one_card(request, tenant, DELETE_CARD)
    return web.Response(status=204)


async def restore_card(request: web.Request, tenant: uuid.UUID) -> web.Response:
    return _card(await _on_one_card(request, tenant, RESTORE_CARD))


async def usage_history(request: web.Request, tenant: uuid.UUID) -> web.Response:
    card_id = _card_id(request)
    page = _query(request, "limit", "cursor")
    row = await call(request, USAGE_HISTORY, tenant, card_id, *page)
    return _json(row["response"], 200)


async def usage_summary(request: web.Request, tenant: uuid.UUID) -> web.Response:
    window = _query(request, "from", "to", "bucket")
    row = await call(request, USAGE_SUMMARY, tenant, *window)
    return _json(row["response"], 200)


# --- raw inputs: as sent, or a problem when SQL text could not carry them ---


def _card_id(request: web.Request) -> str:
    """The {id} of the path as sent; SQL decides whether it names a card (a malformed one does not)."""
    card_id = request.match_info["id"]
    if not _sendable(card_id):  # no card has such an id, and SQL text cannot carry it
        raise Problem("not-found", "no such card")
    return card_id


def _query(request: web.Request, *names: str, repeatable: str | None = None) -> list:
    """The route's query parameters in the order named: the raw text, None when absent, a list for the
    repeatable one. SQL validates the values; a parameter the route does not define, one given twice,
    or one SQL text cannot carry is a 422 naming it here (at most 100 of them, names cut to 64)."""
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
        errors.append({"field": name.encode(errors="replace").decode()[:64], "message": message})
    if errors:
        raise Problem(
            "validation-error",
            f'The request is invalid: {len(errors)} error(s), listed in "errors".',
            errors=errors[:100],
            errors_total=len(errors) if len(errors) > 100 else None,
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
    if request.content_type != JSON or (request.charset or "utf-8").lower() != "utf-8":
        raise Problem("unsupported-media-type", f"send the body as {JSON} (UTF-8)")
    if declared_over_limit(request):
        raise Problem(
            "payload-too-large", f"the request body is over {request.app[CONFIG].max_body_bytes} bytes"
        )
    if request.content.is_eof():  # the whole body has arrived already: nothing to wait for
        return await request.read()
    seconds = request.app[CONFIG].body_timeout_s
    try:
        async with asyncio.timeout(seconds):  # a slow client does not keep its request open for ever
            return await request.read()  # stops with 413 as soon as a chunked body passes the limit
    except TimeoutError:
        raise Problem("request-timeout", f"the request body did not arrive within {seconds:g} s") from None


def declared_over_limit(request: web.Request) -> bool:
    """Whether the request's Content-Length is over the body limit (checked before reading)."""
    return request.content_length is not None and request.content_length > request.app[CONFIG].max_body_bytes


def _sendable(text: str) -> bool:
    """PostgreSQL text cannot hold NUL, and UTF-8 cannot encode a lone surrogate."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def _json(body: bytes, status: int, headers: dict | None = None) -> web.Response:
    """SQL's JSON as it arrived (db.py hands `json` over as bytes)."""
    return web.Response(body=body, status=status, content_type=JSON, headers=headers)


def _card(row: asyncpg.Record) -> web.Response:
    """One card and its ETag (SQL quotes it: `"3"`)."""
    return _json(row["card"], 200, {"ETag": row["etag"]})
