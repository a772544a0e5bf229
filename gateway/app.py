"""The aiohttp application: the routes of the route table, and the one middleware."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from functools import lru_cache, partial

from aiohttp import web

from . import __version__, apidocs, center, routes
from .api import (
    AUTH,
    CLIENT_ADDRESS,
    CONFIG,
    DB,
    LIMITER,
    METRICS,
    PRINCIPAL,
    QUOTA,
    declared_over_limit,
    guard,
)
from .auth import Authenticator, ClientAddress, JwtPolicy, Throttle, address_prefix
from .config import Config
from .db import Database
from .errors import Problem, from_database, from_http
from .limits import Grant, RateLimiter
from .metrics import Metrics
from .migrate import latest_version
from .ops import SCHEMA_VERSION, SPEC_JSON
from .search_index import SearchIndexer

log = logging.getLogger("cards.gateway")
access_log = logging.getLogger("cards.access")

LINGERING_S = 10.0  # aiohttp's default
# What the access log and the metrics say of a request whose client left before it was read
# (nginx's convention): not a 5xx, which would page someone for a client's hang-up.
CLIENT_CLOSED_REQUEST = 499
MAX_REQUEST_LINE_BYTES = 128 * 1024
_TRACE_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
__all__ = ["DB", "SCHEMA_VERSION", "init_app"]


# --- the one middleware: trace id, errors to problems, rate limit headers, metrics, access log ---


@web.middleware
async def observe(request: web.Request, handler) -> web.StreamResponse:
    started = time.perf_counter()
    trace_id = request.headers.get("X-Trace-ID", "")
    if not _TRACE_ID.fullmatch(trace_id):
        trace_id = _new_trace_id()
    try:
        response = await handler(request)
    except Problem as problem:
        response = problem.response(trace_id)
    except web.HTTPException as exc:  # the router's 404 and 405, request.read()'s 413
        response = from_http(exc).response(trace_id)
    except ConnectionResetError:  # the client hung up before its body arrived: nobody to answer
        response = web.Response(status=CLIENT_CLOSED_REQUEST)
    except asyncio.CancelledError:  # aiohttp cancels the handler of a client that hung up
        _account(request, CLIENT_CLOSED_REQUEST, started, trace_id)
        raise
    except Exception as exc:
        problem = from_database(exc)
        if problem is None:
            log.exception("unexpected error", extra={"trace_id": trace_id})
            problem = Problem(
                "internal-error", "an unexpected error occurred; quote the trace_id when reporting it"
            )
        elif problem.status >= 500:
            request.app[METRICS].db_errors.labels("timeout" if problem.status == 504 else "unavailable").inc()
            log.warning("database error: %r", exc, extra={"trace_id": trace_id})
        response = problem.response(trace_id)
    response.headers["X-Trace-ID"] = trace_id
    quota = request.get(QUOTA)
    if quota is None and LIMITER in request.app and request.path.startswith("/api/"):
        quota = request.app[LIMITER].unspent  # every /api/ answer carries the headers
    if quota is not None and "RateLimit" not in response.headers:
        response.headers.update(quota.headers())
    _account(request, response.status, started, trace_id)
    return response


def _account(request: web.Request, status: int, started: float, trace_id: str) -> None:
    """The request's metrics and its access log line."""
    seconds = time.perf_counter() - started
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    request.app[METRICS].observe(route, request.method, status, seconds)
    principal = request.get(PRINCIPAL)
    access_log.info(
        "request",
        extra={
            "trace_id": trace_id,
            "tenant": str(principal.tenant) if principal else None,
            "method": request.method,
            "route": route,
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
        },
    )


def _trace_ids() -> Iterator[str]:
    """32 hex digits like a UUID's, unique across processes and restarts: a random prefix per
    process and a counter (a uuid4 per request cost a system call and an object)."""
    prefix = os.urandom(8).hex()
    for n in itertools.count():
        yield f"{prefix}{n:016x}"


_new_trace_id = _trace_ids().__next__


def _guarded(route: routes.Route):
    """An /api/ route's handler behind its guard: credentials, scope, rate limit."""

    async def handle(request: web.Request) -> web.StreamResponse:
        return await route.handler(request, await guard(request, route.scope))

    return handle


async def _continue_if_within_limit(request: web.Request) -> None:
    """`Expect: 100-continue`: invite the body only when its declared size is within the limit;
    otherwise send nothing here, and the handler answers 413 without reading it."""
    if declared_over_limit(request):
        return
    if request.version >= (1, 1) and request.headers.get("Expect", "").lower() == "100-continue":
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0


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
    app[SPEC_JSON] = routes.SPEC_JSON
    app[DB] = database = Database(config)
    app[METRICS] = m = Metrics(__version__, app[SCHEMA_VERSION])
    app[AUTH] = Authenticator(
        partial(_key_grant, database),
        JwtPolicy(
            secrets=({None: config.jwt_secret} if config.jwt_secret else {}) | dict(config.jwt_secrets),
            public_keys=config.jwt_public_keys(),
            max_lifetime_s=config.jwt_max_lifetime_s,
            audience=config.jwt_audience,
            issuer=config.jwt_issuer,
        ),
        config.auth_cache_ttl_s,
        config.auth_cache_size,
        m.auth_failures,
        Throttle(config.auth_failure_limit, config.auth_failure_window_s, config.auth_throttle_size),
        # Parsing the address was a tenth of the guard's time; a client keeps its address.
        lru_cache(maxsize=4096)(
            partial(
                address_prefix, v4_bits=config.auth_throttle_v4_prefix, v6_bits=config.auth_throttle_v6_prefix
            )
        ),
    )
    app[CLIENT_ADDRESS] = ClientAddress(config.trusted_proxies)
    if config.rate_limit_rps > 0:
        app[LIMITER] = RateLimiter(
            partial(_take_request_tokens, database, config), config.rate_limit_rps, config.rate_limit_burst
        )
    m.watch_pool(
        size=lambda: database.pool.get_size() if database.pool else 0,
        idle=lambda: database.pool.get_idle_size() if database.pool else 0,
        limit=config.pool_max,
        waiters=lambda: database.waiters,
    )
    app.cleanup_ctx.append(_database_pool)
    if config.search_indexer:
        app.cleanup_ctx.append(SearchIndexer(config, m.registry).running)
    # Methods of one path are registered together, so they share one resource (one route label).
    for route in routes.ROUTES:
        handler = route.handler if route.scope is None else _guarded(route)
        extra = {"expect_handler": _continue_if_within_limit} if route.request else {}
        app.router.add_route(route.method, route.path, handler, **extra)
    app.router.add_get("/docs/static/{name}", apidocs.asset)  # Swagger UI's files, not an operation
    # The Card Center (gateway/center/): its pages share the API's credentials and rate limit.
    center.setup(app, database, app[AUTH], config, app.get(LIMITER))
    return app


async def _database_pool(app: web.Application) -> AsyncIterator[None]:
    await app[DB].open()
    publisher = asyncio.get_running_loop().create_task(app[METRICS].publish_pool())
    yield
    publisher.cancel()
    await app[DB].close()


async def _key_grant(
    database: Database, tenant: uuid.UUID, key_hash: bytes
) -> tuple[list[str], datetime | None] | None:
    row = await database.fetchrow(
        "SELECT scopes, expires_at FROM cards.api_key_grant($1::uuid, $2::bytea)", tenant, key_hash
    )
    return None if row is None else (row["scopes"], row["expires_at"])


async def _take_request_tokens(database: Database, config: Config, tenant: uuid.UUID, wanted: int) -> Grant:
    row = await database.fetchrow(
        "SELECT * FROM cards.take_request_tokens($1::uuid, $2::integer, $3::numeric, $4::integer)",
        tenant,
        wanted,
        config.rate_limit_rps,
        config.rate_limit_burst,
    )
    return Grant(
        row["granted"],
        row["remaining"],
        row["reset_s"],
        row["retry_after_s"],
        float(row["requests_per_second"]),
        row["burst"],
    )
