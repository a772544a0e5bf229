"""Card Center: the gateway's web pages at /center/ (sign-in, cards, import, usage). A sub-application
with its own middleware (cross-site refusal, HTML errors) and security headers; every change goes
through the API's own SQL statements. `setup(app, …)` mounts it."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp_jinja2
import jinja2
from aiohttp import web

from ..auth import Authenticator
from ..config import Config
from ..db import Database
from ..errors import Problem, from_database, from_http
from ..limits import RateLimiter
from . import pages
from .sessions import Sessions

HERE = Path(__file__).parent
# No inline script or style, nothing from another origin, never in a frame.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def setup(
    app: web.Application,
    database: Database,
    auth: Authenticator,
    config: Config,
    limiter: RateLimiter | None = None,
) -> None:
    center = web.Application(middlewares=[guard])
    center[pages.DB], center[pages.AUTH] = database, auth
    if limiter is not None:
        center[pages.LIMITER] = limiter
    center[pages.SESSIONS] = Sessions(database, config.session_ttl_s, config.auth_cache_ttl_s)
    templates = jinja2.FileSystemLoader(HERE / "templates")
    env = aiohttp_jinja2.setup(center, loader=templates, autoescape=True)
    env.filters |= {"pretty": pages.pretty, "when": pages.when}
    center.on_response_prepare.append(_security_headers)
    center.router.add_routes(
        [
            web.get("/", pages.card_list, name="cards"),
            web.get("/sign-in", pages.sign_in_page, name="sign_in"),
            web.post("/sign-in", pages.sign_in),
            web.post("/sign-out", pages.sign_out, name="sign_out"),
            web.get("/cards/{id}", pages.card_page, name="card"),
            web.get("/cards/{id}/edit", pages.edit_page, name="edit"),
            web.post("/cards/{id}/edit", pages.save_card),
            web.post("/cards/{id}/delete", pages.delete_card, name="delete"),
            web.get("/cards/{id}/deleted", pages.deleted_page, name="deleted"),
            web.post("/cards/{id}/restore", pages.restore_card, name="restore"),
            web.get("/import", pages.import_page, name="import_page"),
            web.post("/import/chunk", pages.import_chunk, name="import_chunk"),
            web.get("/usage", pages.usage_page, name="usage"),
            web.static("/static", HERE / "static"),
        ]
    )
    app.router.add_get("/center", _to_center)
    app.add_subapp("/center/", center)


@web.middleware
async def guard(request: web.Request, handler) -> web.StreamResponse:
    """Refuses a cross-site change before anything runs, shows errors as pages (the import endpoint,
    which a script calls, keeps the API's problem documents), and tells the server time of the page
    (`Server-Timing`, read by bench/center.py)."""
    started = time.perf_counter()
    try:
        if request.method in _UNSAFE:
            _same_origin(request)
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = _error_page(request, from_http(exc))
    except Exception as exc:
        problem = exc if isinstance(exc, Problem) else from_database(exc)
        if problem is None:
            raise
        response = _error_page(request, problem)
    response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.2f}"
    return response


def _error_page(request: web.Request, problem: Problem) -> web.StreamResponse:
    if request.match_info.route.name == "import_chunk":
        raise problem
    response = pages.render(request, "error.html", problem.status, problem=problem)
    response.headers.update(problem.headers)  # Retry-After of a 429, for one
    return response


def _same_origin(request: web.Request) -> None:
    """Sec-Fetch-Site where the browser sends it, else Origin; the form token (pages.signed_in)
    is the second wall."""
    site = request.headers.get("Sec-Fetch-Site")
    origin = request.headers.get("Origin")
    if site is not None:
        allowed = site in ("same-origin", "none")
    elif origin is not None:
        allowed = origin != "null" and urlsplit(origin).netloc == request.host
    else:
        allowed = True  # neither header: not a browser that could be tricked by another site
    if not allowed:
        raise Problem("forbidden", "a change from another site is refused")


async def _to_center(request: web.Request) -> web.Response:
    return pages.redirect("/center/")


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(SECURITY_HEADERS)
    if response.content_type == "text/html":
        response.headers["Cache-Control"] = "no-store"
