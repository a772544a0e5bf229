"""RFC 9457 problems: the one table from SQLSTATE and slug to HTTP status, and their rendering."""

from __future__ import annotations

import asyncpg
import orjson
from aiohttp import web

# slug: (HTTP status, title, SQLSTATEs raised for it — see sql/CONVENTIONS.md)
PROBLEMS: dict[str, tuple[int, str, tuple[str, ...]]] = {
    "malformed-json": (400, "Malformed JSON", ("CKJSN",)),
    "invalid-idempotency-key": (400, "Invalid Idempotency-Key", ("CKIKI",)),
    "unauthorized": (401, "Unauthorized", ()),
    "forbidden": (403, "Forbidden", ("CKFBD",)),
    "insufficient-scope": (403, "Insufficient Scope", ()),
    "quota-exceeded": (403, "Quota Exceeded", ("CKQTA",)),
    "not-found": (404, "Not Found", ("CKNFD",)),
    "method-not-allowed": (405, "Method Not Allowed", ()),
    "request-timeout": (408, "Request Timeout", ()),
    "idempotency-key-in-use": (409, "Idempotency-Key In Use", ("CKIKU",)),
    "duplicate-card": (409, "Duplicate Card", ("CKDUP",)),
    "precondition-failed": (412, "Precondition Failed", ("CKPFL",)),
    "payload-too-large": (413, "Payload Too Large", ()),
    "unsupported-media-type": (415, "Unsupported Media Type", ()),
    "validation-error": (422, "Validation Error", ("CKVAL",)),
    "idempotency-key-reused": (422, "Idempotency-Key Reused", ("CKIKR",)),
    "precondition-required": (428, "Precondition Required", ("CKPRQ",)),
    "rate-limited": (429, "Too Many Requests", ()),
    "internal-error": (500, "Internal Server Error", ()),
    "service-unavailable": (503, "Service Unavailable", ("40001", "40P01")),
    "gateway-timeout": (504, "Gateway Timeout", ("57014",)),
}
# Worth retrying after a second: sent with `Retry-After: 1` (unless the problem names another wait).
RETRYABLE = frozenset({"idempotency-key-in-use", "rate-limited", "service-unavailable", "gateway-timeout"})

BY_SQLSTATE = {state: slug for slug, (_, _, states) in PROBLEMS.items() for state in states}
_BY_STATUS = {status: slug for slug, (status, _, _) in reversed(PROBLEMS.items())}
# Connection exceptions (08), insufficient resources (53), operator intervention (57P):
# the database is not there for us right now, and a retry may well succeed.
_UNAVAILABLE_CLASSES = ("08", "53", "57P")
# Data exception (22), program limit exceeded (54): a value of the request the database cannot
# process (a number too long, JSON too deep). The SQL functions bound their input so that these
# do not happen; any that still does is the request's fault, answered 422 without the database's
# message (docs/SECURITY.md, "Hostile input").
_INPUT_CLASSES = ("22", "54")


class DatabaseUnavailable(Exception):
    """No database connection could be had: refused, broken, or none free in time."""


class DatabaseTimeout(Exception):
    """The database did not answer a statement at all, long after its statement_timeout."""


class Problem(Exception):
    """An error answered as `application/problem+json`."""

    def __init__(
        self,
        slug: str,
        detail: str,
        *,
        errors: list | None = None,
        errors_total: int | None = None,
        headers: dict | None = None,
    ):
        super().__init__(detail)
        self.slug, self.detail, self.errors, self.errors_total = slug, detail, errors, errors_total
        self.status, self.title, _ = PROBLEMS[slug]
        self.headers = dict(headers or {})
        if self.status == 401:
            self.headers["WWW-Authenticate"] = "Bearer"
        if slug in RETRYABLE:
            self.headers.setdefault("Retry-After", "1")

    def response(self, trace_id: str) -> web.Response:
        body = {"type": f"/problems/{self.slug}", "title": self.title, "status": self.status}
        body |= {"detail": self.detail, "trace_id": trace_id}
        if self.errors is not None:
            body["errors"] = self.errors
        if self.errors_total is not None:
            body["errors_total"] = self.errors_total
        response = web.Response(
            status=self.status,
            body=orjson.dumps(body),
            content_type="application/problem+json",
            headers=self.headers,
        )
        if self.status == 408:  # the rest of a late body is not worth waiting for
            response.force_close()
        return response


def from_http(exc: web.HTTPException) -> Problem:
    """aiohttp's own errors: no route (404), wrong method (405), body over the limit (413)."""
    slug = _BY_STATUS.get(exc.status, "internal-error")
    headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
    detail = {
        "not-found": "no such resource",
        "method-not-allowed": f"allowed: {headers['Allow'] if headers else 'none'}",
        "payload-too-large": "the request body is over the size limit",
    }.get(slug, exc.reason)
    return Problem(slug, detail, headers=headers)


def from_database(exc: BaseException) -> Problem | None:
    """The problem for an error from the database or the pool; None when it is unexpected (a 500)."""
    if isinstance(exc, asyncpg.PostgresError):
        state = exc.sqlstate or ""
        slug = BY_SQLSTATE.get(state)
        if slug == "validation-error":
            return Problem(slug, exc.message, errors=_errors(exc), errors_total=_errors_total(exc))
        if slug is not None and state.startswith("CK"):
            return Problem(slug, exc.message)
        if slug == "gateway-timeout":
            return Problem(slug, "the database did not answer in time")
        if state.startswith(_INPUT_CLASSES):
            detail = f"the request holds a value the database cannot process (SQLSTATE {state})"
            return Problem("validation-error", detail)
        if slug is not None or state.startswith(_UNAVAILABLE_CLASSES):
            return Problem("service-unavailable", "the database cannot serve this request now; retry")
        return None
    if isinstance(exc, DatabaseUnavailable):
        return Problem("service-unavailable", "the database is unavailable; retry")
    if isinstance(exc, DatabaseTimeout):
        return Problem("gateway-timeout", "the database did not answer in time")
    return None


def _errors(exc: asyncpg.PostgresError) -> list | None:
    try:
        errors = orjson.loads(exc.detail or "null")
    except orjson.JSONDecodeError:
        return None
    return errors if isinstance(errors, list) else None


def _errors_total(exc: asyncpg.PostgresError) -> int | None:
    """How many errors there were, when more than the listed 100 (CKVAL's HINT, see _raise_invalid)."""
    try:
        total = orjson.loads(exc.hint or "null")
    except orjson.JSONDecodeError:
        return None
    return total.get("errors_total") if isinstance(total, dict) else None
