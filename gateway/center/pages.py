"""The Card Center's pages: each reads the session, makes the same SQL call as the API route that
does the same thing (the statements are the API's own), and renders a template or redirects."""

from __future__ import annotations

import datetime
import functools
import hashlib
import hmac
import uuid
from collections.abc import Awaitable, Callable
from urllib.parse import urlencode

import aiohttp_jinja2
import asyncpg
import jwt
import orjson
from aiohttp import web

from ..api import (
    BATCH,
    DELETE_CARD,
    GET_CARD,
    LIST_CARDS,
    RESTORE_CARD,
    UPDATE_CARD,
    USAGE_HISTORY,
    USAGE_SUMMARY,
)
from ..auth import Authenticator
from ..db import Database
from ..errors import Problem, from_database
from ..limits import RateLimiter
from .sessions import COOKIE, Session, Sessions

DB = web.AppKey("center_db", Database)
AUTH = web.AppKey("center_auth", Authenticator)
SESSIONS = web.AppKey("center_sessions", Sessions)
LIMITER = web.AppKey("center_limiter", RateLimiter)
SESSION = web.RequestKey("center_session", Session)

PAGE_SIZE = 50
RECENT_USAGE = 20
USAGE_WINDOWS = (7, 30, 90)  # days the usage page offers
EDIT_FIELDS = ("title", "kind", "tags", "content", "metadata")
_JSON = "application/json"
# What a save can meet that the edit page itself explains.
_EDIT_PROBLEMS = ("precondition-failed", "validation-error", "duplicate-card")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def signed_in(scope: str) -> Callable[[Handler], Handler]:
    """The handler runs for a live session holding `scope`; a POST must also carry the session's form
    token. Without a session a page redirects to the sign-in page (the import endpoint answers 401)."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def guarded(request: web.Request) -> web.StreamResponse:
            session = await request.app[SESSIONS].find(request.cookies.get(COOKIE))
            if session is None:
                if request.headers.get("Accept") == _JSON:
                    raise Problem("unauthorized", "sign in again: the session has ended")
                return redirect("/center/sign-in")
            if request.method == "POST":
                sent = request.headers.get("X-Form-Token") or (await request.post()).get("_token")
                if not isinstance(sent, str) or not hmac.compare_digest(sent, session.form_token):
                    raise Problem("forbidden", "the form is out of date or came from another site; reload it")
            if scope not in session.scopes:
                raise Problem("forbidden", f"this needs the {scope} scope, which your sign-in does not have")
            request[SESSION] = session
            if LIMITER in request.app:  # a page spends the tenant's rate limit as an API call does
                await request.app[LIMITER].acquire(session.tenant)
            return await handler(request)

        return guarded

    return wrap


def redirect(location: str) -> web.Response:
    """303 See Other: after a POST the browser fetches the next page with GET."""
    return web.Response(status=303, headers={"Location": location})


def render(request: web.Request, template: str, status: int = 200, **context) -> web.Response:
    context |= {"session": request.get(SESSION)}
    return aiohttp_jinja2.render_template(template, request, context, status=status)


def _db(request: web.Request) -> Database:
    return request.app[DB]


def _tenant(request: web.Request) -> uuid.UUID:
    return request[SESSION].tenant


def _text(value: object) -> str:
    """A form or query value as text PostgreSQL can carry (no NUL); a file field is ignored."""
    return value.replace("\x00", "").strip() if isinstance(value, str) else ""


# --- signing in and out ---


async def sign_in_page(request: web.Request) -> web.Response:
    if await request.app[SESSIONS].find(request.cookies.get(COOKIE)) is not None:
        return redirect("/center/")
    return render(request, "sign_in.html")


async def sign_in(request: web.Request) -> web.Response:
    credential = _text((await request.post()).get("api_key"))
    try:
        tenant, scopes = await _authenticate(request, credential)
    except Problem as problem:
        message = problem.detail if problem.status == 429 else "That API key (or token) was not accepted."
        return render(request, "sign_in.html", problem.status, error=message)
    key_hash = hashlib.sha256(credential.encode()).digest() if credential.startswith("ck_") else None
    not_after = None if key_hash else jwt.decode(credential, options={"verify_signature": False})["exp"]
    started = await request.app[SESSIONS].begin(tenant, key_hash, scopes, not_after)
    if started is None:
        return render(request, "sign_in.html", 401, error="That API key (or token) was not accepted.")
    cookie, lifetime = started
    response = redirect("/center/")
    # Secure over https, also behind a proxy that ends TLS and says so (a client claiming https
    # over plain http only makes its own cookie stricter).
    secure = request.secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https"
    response.set_cookie(
        COOKIE, cookie, path="/center", httponly=True, samesite="Strict", secure=secure, max_age=int(lifetime)
    )
    return response


async def _authenticate(request: web.Request, credential: str) -> tuple[uuid.UUID, tuple[str, ...]]:
    """The tenant and scopes of an API key or JWT, checked as the API checks a bearer token (same
    cache, same failure throttle): a session may do what its credential may."""
    principal = await request.app[AUTH].authenticate([f"Bearer {credential}"], request.remote or "")
    return principal.tenant, tuple(sorted(principal.scopes))


@signed_in("cards:read")
async def sign_out(request: web.Request) -> web.Response:
    await request.app[SESSIONS].end(request[SESSION])
    response = redirect("/center/sign-in")
    response.del_cookie(COOKIE, path="/center")
    return response


# --- the card list ---


@signed_in("cards:read")
async def card_list(request: web.Request) -> web.Response:
    filters = {name: _text(request.query.get(name)) for name in ("q", "kind", "tag")}
    cursor = _text(request.query.get("cursor")) or None
    error, page = None, {"cards": [], "next_cursor": None}
    try:
        tags = [filters["tag"]] if filters["tag"] else None
        row = await _db(request).call(
            LIST_CARDS,
            _tenant(request),
            filters["kind"] or None,
            tags,
            None,
            filters["q"] or None,
            str(PAGE_SIZE),
            cursor,
        )
        page = orjson.loads(row["response"])
    except asyncpg.PostgresError as exc:
        problem = from_database(exc)
        if problem is None or problem.status != 422:
            raise
        error = "; ".join(f"{e['field']} {e['message']}" for e in problem.errors or []) or problem.detail
    kept = {name: value for name, value in filters.items() if value}
    return render(
        request,
        "list.html",
        422 if error else 200,
        section="cards",
        filters=filters,
        cards=page["cards"],
        next_query={**kept, "cursor": page["next_cursor"]} if page["next_cursor"] else None,
        first_query=kept if cursor else None,
        error=error,
    )


# --- one card: read, edit, delete, restore ---


@signed_in("cards:read")
async def card_page(request: web.Request) -> web.Response:
    card_id = request.match_info["id"]
    row = await _db(request).call(GET_CARD, _tenant(request), card_id)
    history = await _db(request).call(USAGE_HISTORY, _tenant(request), card_id, str(RECENT_USAGE), None)
    usage = orjson.loads(history["response"])
    return render(
        request,
        "card.html",
        section="cards",
        card=orjson.loads(row["card"]),
        usage=usage["usage"],
        more_usage=usage["next_cursor"] is not None,
    )


@signed_in("cards:read")
async def edit_page(request: web.Request) -> web.Response:
    row = await _db(request).call(GET_CARD, _tenant(request), request.match_info["id"])
    card = orjson.loads(row["card"])
    values = _form_values(card)
    return render(
        request, "edit.html", section="cards", card=card, etag=row["etag"], values=values, errors={}
    )


@signed_in("cards:write")
async def save_card(request: web.Request) -> web.Response:
    """PATCH with If-Match: the ETag of the version the form was opened on. A stale one is a
    conflict: nothing is written, and the page shows the current card beside the person's edit."""
    card_id = request.match_info["id"]
    form = await request.post()
    values = {
        name: _text(form.get(name)) if name in ("title", "kind") else _raw(form.get(name))
        for name in EDIT_FIELDS
    }
    errors = _json_errors(values)
    etag = _text(form.get("etag")) or None
    if not errors:
        try:
            await _db(request).call(UPDATE_CARD, _tenant(request), card_id, etag, _patch(values))
            return redirect(f"/center/cards/{card_id}")
        except asyncpg.PostgresError as exc:
            problem = from_database(exc)
            if problem is None or problem.slug not in _EDIT_PROBLEMS:
                raise
            if problem.slug == "precondition-failed":
                return await _conflict(request, card_id, values)
            errors = _field_errors(problem)
    current = await _db(request).call(GET_CARD, _tenant(request), card_id)
    return render(
        request,
        "edit.html",
        422,
        section="cards",
        card=orjson.loads(current["card"]),
        etag=etag,
        values=values,
        errors=errors,
    )


async def _conflict(request: web.Request, card_id: str, values: dict[str, str]) -> web.Response:
    row = await _db(request).call(GET_CARD, _tenant(request), card_id)
    current = orjson.loads(row["card"])
    return render(
        request,
        "edit.html",
        409,
        section="cards",
        card=current,
        etag=row["etag"],
        values=values,
        errors={},
        conflict=_form_values(current),
    )


def _raw(value: object) -> str:
    return value.replace("\x00", "") if isinstance(value, str) else ""


def _form_values(card: dict) -> dict[str, str]:
    return {
        "title": card["title"],
        "kind": card["kind"],
        "tags": ", ".join(card["tags"]),
        "content": _pretty(card["content"]),
        "metadata": _pretty(card["metadata"]),
    }


def _json_errors(values: dict[str, str]) -> dict[str, str]:
    """Content and Metadata must be JSON before anything is sent (SQL checks everything else)."""
    errors = {}
    for name in ("content", "metadata"):
        try:
            orjson.loads(values[name])
        except orjson.JSONDecodeError as exc:
            errors[name] = f"{name.capitalize()} is not valid JSON ({exc.msg} at character {exc.pos + 1})."
    return errors


def _patch(values: dict[str, str]) -> bytes:
    """The PATCH body: the fields as typed; Content and Metadata go as the JSON text the person wrote."""
    tags = [tag.strip() for tag in values["tags"].split(",") if tag.strip()]
    return orjson.dumps(
        {
            "title": values["title"],
            "kind": values["kind"],
            "tags": tags,
            "content": orjson.Fragment(values["content"].encode()),
            "metadata": orjson.Fragment(values["metadata"].encode()),
        }
    )


def _field_errors(problem: Problem) -> dict[str, str]:
    """SQL's errors by form field (`tags[2]` is Tags'); any other under "form"."""
    errors: dict[str, str] = {}
    for error in problem.errors or [{"field": "form", "message": problem.detail}]:
        field = str(error.get("field", "form")).split("[")[0].split(".")[0]
        field = field if field in EDIT_FIELDS else "form"
        message = error.get("message", "")
        errors[field] = f"{errors[field]} {message}" if field in errors else message
    return errors


@signed_in("cards:write")
async def delete_card(request: web.Request) -> web.Response:
    card_id = request.match_info["id"]
    title = _text((await request.post()).get("title"))
    await _db(request).call(DELETE_CARD, _tenant(request), card_id)
    # The title rides along only to name the card on the next page: a deleted card cannot be read.
    return redirect(f"/center/cards/{card_id}/deleted?" + urlencode({"title": title[:500]}))


@signed_in("cards:read")
async def deleted_page(request: web.Request) -> web.Response:
    card_id = request.match_info["id"]
    try:
        await _db(request).call(GET_CARD, _tenant(request), card_id)
    except asyncpg.PostgresError as exc:
        if exc.sqlstate != "CKNFD":
            raise
        title = _text(request.query.get("title"))
        return render(request, "deleted.html", section="cards", card_id=card_id, title=title)
    return redirect(f"/center/cards/{card_id}")  # it is live (restored meanwhile)


@signed_in("cards:write")
async def restore_card(request: web.Request) -> web.Response:
    card_id = request.match_info["id"]
    await _db(request).call(RESTORE_CARD, _tenant(request), card_id)
    return redirect(f"/center/cards/{card_id}")


# --- import ---


@signed_in("cards:write")
async def import_page(request: web.Request) -> web.Response:
    return render(request, "import.html", section="import")


@signed_in("cards:write")
async def import_chunk(request: web.Request) -> web.Response:
    """One chunk of an import (import.js): a batch whose Idempotency-Key is the SHA-256 of the chunk,
    so sending it again — a reload, a retry, the same file another day — creates nothing twice."""
    if request.content_type != _JSON:
        raise Problem("unsupported-media-type", f"send the chunk as {_JSON}")
    body = await request.read()
    key = "center-import-" + hashlib.sha256(body).hexdigest()
    row = await _db(request).call(BATCH, _tenant(request), body, key)
    headers = {"Idempotent-Replayed": "true"} if row["replayed"] else None
    return web.Response(body=row["response"], status=201, content_type=_JSON, headers=headers)


# --- usage ---


@signed_in("cards:read")
async def usage_page(request: web.Request) -> web.Response:
    days = _text(request.query.get("days"))
    days = int(days) if days.isdigit() and int(days) in USAGE_WINDOWS else 30
    today = datetime.datetime.now(datetime.UTC).date()
    start = f"{today - datetime.timedelta(days=days - 1)}T00:00:00Z"
    row = await _db(request).call(USAGE_SUMMARY, _tenant(request), start, None, "day")
    summary = orjson.loads(row["response"])
    buckets = summary["buckets"]
    return render(
        request,
        "usage.html",
        section="usage",
        days=days,
        windows=USAGE_WINDOWS,
        buckets=buckets,
        total=sum(b["events"] for b in buckets),
        peak=max([b["events"] for b in buckets] + [1]),
        top_cards=summary["top_cards"],
    )


def _pretty(value: object) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()


def pretty(value: object) -> str:
    """Template filter: a JSON value, indented."""
    return _pretty(value)


def when(value: str | None) -> str:
    """Template filter: an RFC 3339 time as `2026-11-26 14:09 UTC`."""
    if not value:
        return "never"
    return datetime.datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M UTC")
