"""The OpenAPI 3.1 vocabulary of the API (schemas, parameters, headers, problems, links) and the
document built from the route table (gateway/routes.py), served at /openapi.json and rendered at /docs
by Swagger UI (gateway/apidocs/)."""

from __future__ import annotations

import re

from . import __version__
from . import bounds as b
from .errors import PROBLEMS, Problem


def ref(kind: str, name: str) -> dict:
    return {"$ref": f"#/components/{kind}/{name}"}


def _string(length: b.Range, **more) -> dict:
    return {"type": "string", "minLength": length.lo, "maxLength": length.hi, **more}


KIND = _string(b.KIND, pattern=f"^[{b.KIND_CHARSET}]+$")
TAGS = {"type": "array", "maxItems": b.TAGS_PER_CARD, "uniqueItems": True, "items": _string(b.TAG)}
CONTENT = {
    "not": {"type": "null"},
    "description": f"Any JSON value but null, at most {b.kib(b.CONTENT_BYTES)}.",
}


UUID = {"type": "string", "format": "uuid"}
TIME = {"type": "string", "format": "date-time", "description": "RFC 3339, UTC"}
METADATA = {
    "type": "object",
    "description": f"A JSON object of at most {b.kib(b.METADATA_BYTES)}, nested at most 64 levels, with "
    "numbers as in content.",
}
# A point in time given in a query: RFC 3339 as far as PostgreSQL's timestamptz reaches (years
# 0001-9999, offsets within ±15:59, microseconds).
_RFC3339_IN_RANGE = (
    "RFC 3339 with a time zone (a year from 0001 to 9999, at most 6 fractional digits, "
    "an offset within ±15:59)"
)
TIME_PARAMETER = {
    "type": "string",
    "format": "date-time",
    "pattern": r"^(?:000[1-9]|00[1-9]\d|0[1-9]\d\d|[1-9]\d{3})-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(?:\.\d{1,6})?"
    r"(?:[Zz]|[+-](?:0\d|1[0-5]):[0-5]\d)$",
}

SCHEMAS = {
    "CardInput": {
        "type": "object",
        "additionalProperties": False,
        "required": ["title", "content"],
        "properties": {
            "kind": KIND | {"default": b.KIND_DEFAULT},
            "title": _string(b.TITLE),
            "content": CONTENT,
            "tags": TAGS | {"default": []},
            "metadata": METADATA | {"default": {}},
        },
        "description": "Strings must not contain NUL (\\u0000). Unknown fields are a validation error. "
        "In content and metadata, JSON nests at most 64 levels, and a number is 0 or of magnitude 1e-20 "
        "to 1e20 with at most 20 digits after the point (docs/SECURITY.md, Hostile input).",
    },
    "Card": {
        "type": "object",
        "required": [
            *("id", "kind", "title", "content", "tags", "metadata", "content_hash", "usage_count"),
            *("created_at", "updated_at", "last_used_at"),
        ],
        "properties": {
            "id": UUID,
            "kind": {"type": "string"},
            "title": {"type": "string"},
            "content": {"not": {"type": "null"}},
            "tags": {"type": "array", "items": {"type": "string"}},
            "metadata": {"type": "object"},
            "content_hash": {
                "type": "string",
                "pattern": "^[0-9a-f]{64}$",
                "description": "SHA-256 of the canonical (kind, title, content): equal hashes are one card.",
            },
            "usage_count": {"type": "integer", "minimum": 0},
            "created_at": TIME,
            "updated_at": TIME,
            "last_used_at": {"type": ["string", "null"], "format": "date-time"},
        },
    },
    "CardPatch": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "kind": KIND,
            "title": _string(b.TITLE),
            "content": CONTENT,
            "tags": TAGS,
            "metadata": METADATA,
        },
        "description": "The top-level fields to replace; the others keep their values, and the merged card "
        "must satisfy the input rules of CardInput. A field is replaced whole (`metadata` is not merged "
        "key by key) and `null` is invalid, so this is not RFC 7396 merge patch. Unknown fields are a "
        "validation error. Changing kind, title or content re-hashes the card.",
    },
    "CardPage": {
        "type": "object",
        "required": ["cards", "next_cursor"],
        "properties": {
            "cards": {"type": "array", "items": ref("schemas", "Card")},
            "next_cursor": {
                "type": ["string", "null"],
                "description": "The `cursor` of the next page (with the same filters); null on the last.",
            },
        },
    },
    "UsagePage": {
        "type": "object",
        "required": ["usage", "next_cursor"],
        "properties": {
            "usage": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["workflow_id", "run_id", "metadata", "recorded_at"],
                    "properties": {
                        "workflow_id": {"type": "string"},
                        "run_id": {"type": "string"},
                        "metadata": {"type": "object"},
                        "recorded_at": TIME,
                    },
                },
            },
            "next_cursor": {
                "type": ["string", "null"],
                "description": "Pass it as `cursor` for the next page; null on the last.",
            },
        },
    },
    "UsageSummary": {
        "type": "object",
        "required": ["from", "to", "bucket", "buckets", "top_cards"],
        "properties": {
            "from": TIME,
            "to": TIME,
            "bucket": {"enum": ["hour", "day"]},
            "buckets": {
                "type": "array",
                "description": "Each UTC hour or day overlapping [from, to), oldest first, empty ones too.",
                "items": {
                    "type": "object",
                    "required": ["start", "events"],
                    "properties": {"start": TIME, "events": {"type": "integer", "minimum": 0}},
                },
            },
            "top_cards": {
                "type": "array",
                "maxItems": b.TOP_CARDS,
                "description": f"The {b.TOP_CARDS} cards with the most usage events in the window, most "
                "used first.",
                "items": {
                    "type": "object",
                    "required": ["card_id", "title", "events"],
                    "properties": {
                        "card_id": UUID,
                        "title": {"type": "string"},
                        "events": {"type": "integer", "minimum": 1},
                    },
                },
            },
        },
    },
    "BatchRequest": {
        "type": "object",
        "additionalProperties": False,
        "required": ["cards"],
        "properties": {
            "cards": {
                "type": "array",
                "minItems": b.CARDS_PER_BATCH.lo,
                "maxItems": b.CARDS_PER_BATCH.hi,
                "items": ref("schemas", "CardInput"),
            }
        },
    },
    "BatchResponse": {
        "type": "object",
        "required": ["cards", "created", "duplicates"],
        "properties": {
            "cards": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["index", "id", "status", "content_hash"],
                    "properties": {
                        "index": {"type": "integer", "minimum": 0},
                        "id": UUID,
                        "status": {"enum": ["created", "duplicate"]},
                        "content_hash": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                    },
                },
            },
            "created": {"type": "integer", "minimum": 0},
            "duplicates": {"type": "integer", "minimum": 0},
        },
    },
    "RetrieveRequest": {
        "type": "object",
        "additionalProperties": False,
        "required": ["ids"],
        "properties": {
            "ids": {
                "type": "array",
                "minItems": b.IDS_PER_RETRIEVE.lo,
                "maxItems": b.IDS_PER_RETRIEVE.hi,
                "items": UUID,
            }
        },
    },
    "RetrieveResponse": {
        "type": "object",
        "required": ["cards", "missing"],
        "properties": {
            "cards": {"type": "array", "items": ref("schemas", "Card")},
            "missing": {"type": "array", "items": UUID},
        },
    },
    "UsageRequest": {
        "type": "object",
        "additionalProperties": False,
        "required": ["workflow_id", "run_id"],
        "properties": {"workflow_id": _string(b.RUN_ID), "run_id": _string(b.RUN_ID), "metadata": METADATA},
    },
    "UsageResponse": {
        "type": "object",
        "required": ["card_id", "usage_count", "deduplicated", "recorded_at"],
        "properties": {
            "card_id": UUID,
            "usage_count": {"type": "integer", "minimum": 1},
            "deduplicated": {"type": "boolean"},
            "recorded_at": TIME,
        },
    },
    "Problem": {
        "type": "object",
        "description": "RFC 9457 problem details.",
        "required": ["type", "title", "status", "detail", "trace_id"],
        "properties": {
            "type": {"type": "string", "enum": [f"/problems/{slug}" for slug in PROBLEMS]},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "trace_id": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,128}$"},
            "errors": {
                "type": "array",
                "maxItems": 100,
                "description": "validation-error only: every broken rule (the first 100).",
                "items": {
                    "type": "object",
                    "required": ["field", "message"],
                    "properties": {
                        "index": {
                            "type": "integer",
                            "minimum": 0,
                            "description": "Position in the request's array.",
                        },
                        "field": {"type": "string", "description": "A body field or a query parameter."},
                        "message": {"type": "string"},
                    },
                },
            },
            "errors_total": {
                "type": "integer",
                "minimum": 101,
                "description": "validation-error only, when more than 100 rules were broken: how many.",
            },
        },
    },
}

HEADERS = {
    "X-Trace-ID": {
        "description": "The request's X-Trace-ID if it matched [A-Za-z0-9._-]{1,128}, else a generated one.",
        "schema": {"type": "string"},
    },
    "Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}},
    "WWW-Authenticate": {"description": "Always `Bearer`.", "schema": {"type": "string"}},
    "Allow": {"description": "The methods the route accepts.", "schema": {"type": "string"}},
    "ETag": {
        "description": 'The card\'s version as a strong entity tag, e.g. `"3"`; send it back in `If-Match`.',
        "schema": {"type": "string"},
    },
    "RateLimit-Policy": {
        "description": "The tenant's rate limit (IETF httpapi draft): "
        '`"tenant";q=<burst>;w=<seconds to refill it>`.',
        "schema": {"type": "string"},
    },
    "RateLimit": {
        "description": "What is left of it: "
        '`"tenant";r=<requests left>;t=<seconds until the burst is whole>`.',
        "schema": {"type": "string"},
    },
    "Idempotent-Replayed": {
        "description": "`true` when the answer stored for an earlier request with this key is replayed.",
        "schema": {"type": "string", "enum": ["true"]},
    },
}

PARAMETERS = {
    "TraceId": {
        "name": "X-Trace-ID",
        "in": "header",
        "description": "Honoured if it matches [A-Za-z0-9._-]{1,128}; echoed on the response and in errors.",
        "schema": {"type": "string"},
    },
    "IdempotencyKey": {
        "name": "Idempotency-Key",
        "in": "header",
        "description": f"{b.IDEMPOTENCY_KEY.lo}-{b.IDEMPOTENCY_KEY.hi} printable ASCII characters, bare or "
        "as a quoted string; given at most once. Scope: tenant + key, kept at least 24 hours. The same key "
        "with a JSON-equal body replays the stored "
        "answer byte for byte (with `Idempotent-Replayed: true`); with a different body it is a 422 "
        "idempotency-key-reused; while the first request runs, the second waits a bounded time, then replays "
        "or gets 409 idempotency-key-in-use. Only committed successes are stored.",
        # Printable ASCII, bare (no leading or trailing space: HTTP trims those, and `""` is empty once
        # unquoted) or within one pair of quotes.
        "schema": {
            "type": "string",
            "pattern": f'^(?:[!-~]|[!#-~][!-~]|"[!#-~]|[!-~][ -~]{{1,{b.IDEMPOTENCY_KEY.hi - 2}}}[!-~]'
            f'|"[ -~]{{1,{b.IDEMPOTENCY_KEY.hi}}}")$',
        },
    },
    "CardId": {
        "name": "id",
        "in": "path",
        "required": True,
        "description": "A card id. One that is unknown, deleted, another tenant's or malformed is a 404.",
        "schema": UUID,
    },
    "IfMatch": {
        "name": "If-Match",
        "in": "header",
        "required": True,
        "description": 'The ETag the card was read with (`"3"`), a list of them, or `*` (any live version). '
        "Missing: 428 precondition-required; naming a version that is not the current one (or a weak "
        "tag): 412 precondition-failed.",
        "schema": {"type": "string"},
    },
    "Kind": {"name": "kind", "in": "query", "schema": KIND},
    "Tag": {
        "name": "tag",
        "in": "query",
        "description": "Repeat it for several tags: a card must carry all of them.",
        "style": "form",
        "explode": True,
        "schema": {"type": "array", "maxItems": b.TAGS_PER_CARD, "items": _string(b.TAG)},
    },
    "Contains": {
        "name": "contains",
        "in": "query",
        "description": f"A JSON object (URL-encoded), at most {b.kib(b.CONTAINS_BYTES)} of text (as a "
        "card's metadata), nested at most 64 levels, holding at most 8 array elements in all (at most 2 "
        "of them arrays or objects) and numbers within a card's bounds: cards whose metadata contains "
        "it (`@>`).",
        "content": {"application/json": {"schema": {"type": "object"}}},
    },
    "Q": {
        "name": "q",
        "in": "query",
        "description": "Full-text search over the title and the string values of the content, with the "
        '`english` configuration (stemming, stop words) and web-search syntax: `"a phrase"`, `or`, `-word`. '
        "A new card is found once it is indexed, normally within a second of its batch's answer; an edited "
        "card at once.",
        "schema": _string(b.QUERY_TEXT),
    },
    "Limit": {
        "name": "limit",
        "in": "query",
        "description": "Page size.",
        "schema": {
            "type": "integer",
            "minimum": b.PAGE_LIMIT.lo,
            "maximum": b.PAGE_LIMIT.hi,
            "default": b.PAGE_LIMIT_DEFAULT,
        },
    },
    "Cursor": {
        "name": "cursor",
        "in": "query",
        "description": "The `next_cursor` of the previous page, opaque. A listing cursor is valid only with "
        "the filters it was issued for; anything else is a 422.",
        "schema": {"type": "string", "maxLength": b.CURSOR_CHARS},
    },
    "From": {
        "name": "from",
        "in": "query",
        "description": f"{_RFC3339_IN_RANGE}; default: `to` minus 24 hours (hour) or 30 days (day).",
        "schema": TIME_PARAMETER,
    },
    "To": {
        "name": "to",
        "in": "query",
        "description": f"{_RFC3339_IN_RANGE}, exclusive; default: now. At most {b.SUMMARY_BUCKETS} buckets.",
        "schema": TIME_PARAMETER,
    },
    "Bucket": {
        "name": "bucket",
        "in": "query",
        "description": "UTC hours or days.",
        "schema": {"enum": ["hour", "day"], "default": "hour"},
    },
}

_WHEN = {
    "malformed-json": "The body is not UTF-8 JSON.",
    "invalid-idempotency-key": f"The key is empty, over {b.IDEMPOTENCY_KEY.hi} characters, not printable "
    "ASCII, or sent twice.",
    "unauthorized": "Missing, malformed, expired or revoked credentials.",
    "forbidden": "The tenant is unknown or suspended.",
    "not-found": "No such card for this tenant (unknown, deleted, foreign or malformed id), or route.",
    "method-not-allowed": "The route does not accept this method; `Allow` lists the ones it does.",
    "request-timeout": "The body did not arrive within the body timeout (30 s unless configured); the "
    "connection is closed.",
    "idempotency-key-in-use": "A request with the same key is still running after the bounded wait.",
    "duplicate-card": "The change would duplicate another live card.",
    "precondition-failed": "`If-Match` names a stale version.",
    "payload-too-large": "The body is over the limit (8 MiB unless configured); refused before it is read.",
    "unsupported-media-type": "The body is not sent as `application/json` (UTF-8).",
    "validation-error": "An input rule is broken, in the body or a query parameter; `errors` lists every "
    "one (`field`: the body field or the parameter), with `index` for an item of the request's array: "
    "the first 100, with `errors_total` when there were more.",
    "idempotency-key-reused": "The key was used before with a different body.",
    "precondition-required": "`If-Match` is missing.",
    "rate-limited": "The tenant's rate limit is spent (RateLimit headers say how it stands), the tenant "
    "already has its share of the database connections busy, or too many authentications failed from "
    "this client's network (30 a minute unless configured; only failing attempts are refused). Retry "
    "after `Retry-After` seconds.",
    "insufficient-scope": "The credential does not grant the scope this route needs (`cards:read`, "
    "`cards:write` or `usage:write`).",
    "quota-exceeded": "The tenant's card quota would be exceeded; nothing was written. Not worth retrying.",
    "internal-error": "An unexpected error; it is logged under the trace_id.",
    "service-unavailable": "The database is unreachable, busy or on another schema version; retry.",
    "gateway-timeout": "The database did not answer in time (the statement timeout); retry.",
}


def _problems(*slugs: str) -> dict:
    """Responses for the given problem slugs, grouped by status (several slugs may share one)."""
    by_status: dict[str, dict] = {}
    for slug in slugs:
        status, title, _ = PROBLEMS[slug]
        response = by_status.setdefault(
            str(status),
            {
                "description": "",
                "headers": {"X-Trace-ID": ref("headers", "X-Trace-ID")},
                "content": {
                    "application/problem+json": {"schema": ref("schemas", "Problem"), "examples": {}}
                },
            },
        )
        response["description"] += f"`{slug}`: {_WHEN[slug]} "
        for header in Problem(slug, "").headers:  # what errors.Problem sends with this slug
            response["headers"][header] = ref("headers", header)
        example = {"type": f"/problems/{slug}", "title": title, "status": status, "detail": _WHEN[slug]}
        example["trace_id"] = "4bf92f3577b34da6a3ce929d0e0e4736"
        if slug == "validation-error":
            example["errors"] = [{"index": 0, "field": "title", "message": "must be 1 to 500 characters"}]
        response["content"]["application/problem+json"]["examples"][slug] = {"value": example}
    for response in by_status.values():
        response["description"] = response["description"].strip()
    return by_status


def ok(
    description: str,
    schema: str | None,
    links: dict | None = None,
    **headers,
) -> dict:
    response = {
        "description": description,
        "headers": {"X-Trace-ID": ref("headers", "X-Trace-ID"), **headers},
    }
    if schema is not None:
        response["content"] = {"application/json": {"schema": ref("schemas", schema)}}
    if links:
        response["links"] = links
    return response


# --- links: what a client can do next with the answer it holds (they drive stateful tests too) ---


def _link(op_id: str, description: str, parameters: dict | None = None, body: object = None) -> dict:
    link: dict = {"operationId": op_id, "description": description}
    if parameters:
        link["parameters"] = parameters
    if body is not None:
        link["requestBody"] = body
    return link


def card_links(card_id: str, etag: str = "*") -> dict:
    """The operations on one card, given the runtime expression of its id (and of its ETag)."""
    card = {"path.id": card_id}
    return {
        "GetCard": _link("getCard", "Read the card.", card),
        "UpdateCard": _link(
            "updateCard", "Change the card, guarded by its ETag.", card | {"header.If-Match": etag}
        ),
        "DeleteCard": _link("deleteCard", "Delete the card.", card),
        "RestoreCard": _link("restoreCard", "Restore the card (a live one is answered as it is).", card),
        "TrackUsage": _link("trackUsage", "Report that a run used the card.", card),
        "CardUsageHistory": _link("cardUsageHistory", "The runs that used the card.", card),
        "RetrieveCards": _link("retrieveCards", "Fetch the card by id.", body={"ids": [card_id]}),
    }


FIRST_CARD = "$response.body#/cards/0/id"
THIS_CARD = card_links("$response.body#/id", "$response.header.ETag")
BATCH_LINKS = card_links(FIRST_CARD) | {
    "ReplayBatch": _link(
        "createCards",
        "The same request with the same Idempotency-Key: its stored answer, replayed.",
        {"header.Idempotency-Key": "$request.header.Idempotency-Key"},
        "$request.body",
    )
}
DELETED_LINKS = {
    "GetDeletedCard": _link("getCard", "A deleted card is not found.", {"path.id": "$request.path.id"}),
    "RestoreCard": _link("restoreCard", "Bring the card back.", {"path.id": "$request.path.id"}),
}
USAGE_LINKS = card_links("$response.body#/card_id") | {
    "RepeatUsage": _link(
        "trackUsage",
        "The same report again: deduplicated.",
        {"path.id": "$request.path.id"},
        {"workflow_id": "$request.body#/workflow_id", "run_id": "$request.body#/run_id"},
    )
}
LIST_LINKS = {
    "GetCard": _link("getCard", "Read the first card of the page.", {"path.id": FIRST_CARD}),
    # A link cannot copy the filters only when they were given; a cursor is valid only with its
    # filters (else 422), so this is the next page of an unfiltered listing.
    "NextPage": _link(
        "listCards",
        "The next page (of a listing without filters).",
        {"query.cursor": "$response.body#/next_cursor"},
    ),
}
USAGE_PAGE_LINKS = {
    "NextPage": _link(
        "cardUsageHistory",
        "The next page.",
        {"path.id": "$request.path.id", "query.cursor": "$response.body#/next_cursor"},
    )
}


_API_ERRORS = ("unauthorized", "forbidden", "insufficient-scope", "rate-limited", "internal-error")
_API_ERRORS += ("service-unavailable", "gateway-timeout")
_BODY_ERRORS = ("malformed-json", "request-timeout", "payload-too-large", "unsupported-media-type")
_BODY_ERRORS += ("validation-error",)


def H(name: str) -> dict:
    """A reference to a response header of components/headers."""
    return ref("headers", name)


# Every /api/ answer carries the rate limit headers: the tenant's, or the default policy whole when
# the request spent nothing (a 401 names no tenant).
ANSWER_HEADERS = {"X-Trace-ID": H("X-Trace-ID")}
TEXT = {"type": "string"}


def content(media_type: str, schema: dict) -> dict:
    return {"content": {media_type: {"schema": schema}}}


READY_SCHEMA = {
    "type": "object",
    "required": ["status", "schema_version"],
    "properties": {"status": {"const": "ready"}, "schema_version": {"type": "integer"}},
}
_SEGMENT = re.compile(r"\{(\w+):")
_CALLED = re.compile(r"\b(cards\.\w+)\(")


def template(path: str) -> str:
    """An aiohttp path with its regex segments written as templates: `{id:…}` → `{id}` (the regex
    may hold braces of its own)."""
    out, start = [], 0
    for match in _SEGMENT.finditer(path):
        if match.start() < start:
            continue
        depth, end = 1, match.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(path[end], 0)
            end += 1
        out += [path[start : match.start()], "{", match.group(1), "}"]
        start = end
    return "".join([*out, path[start:]])


def called_function(sql: str) -> str:
    """The function a route's statement calls."""
    return _CALLED.search(sql).group(1)


def _operation(route) -> dict:
    if route.scope is None:  # an operations route: no credentials, no rate limit
        return {
            "operationId": route.operation_id,
            "tags": ["operations"],
            "summary": route.summary,
            "description": route.description,
            "security": [],
            "parameters": [ref("parameters", "TraceId")],
            "responses": route.responses | _problems(*route.errors),
        }
    op = {
        "operationId": route.operation_id,
        "tags": ["cards"],
        "summary": route.summary,
        "description": f"{route.description} Needs the scope `{route.scope}`.",
        "security": [{"bearer": [route.scope]}],
        "parameters": [ref("parameters", p) for p in ("TraceId", *route.params)],
    }
    errors = route.errors
    if route.request is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": ref("schemas", route.request)}},
        }
        errors = (*_BODY_ERRORS, *errors)
    responses = route.responses | _problems(*errors, *_API_ERRORS)
    limits = {"RateLimit-Policy": H("RateLimit-Policy"), "RateLimit": H("RateLimit")}
    op["responses"] = {
        status: response | {"headers": response["headers"] | limits}
        for status, response in sorted(responses.items())
    }
    return op


def document(routes) -> dict:
    """The OpenAPI 3.1 document of the route table."""
    paths: dict[str, dict] = {}
    for route in routes:
        paths.setdefault(route.template, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Cards API",
            "version": __version__,
            "description": "Reusable content cards for workflow runs, per tenant. Every `/api/` route "
            "needs `Authorization: Bearer <API key or JWT>` granting the route's scope, and answers with "
            "the tenant's `RateLimit-Policy` and `RateLimit` headers. Every response carries `X-Trace-ID`. "
            "Errors are RFC 9457 `application/problem+json`; any route answers 404 `not-found` when it "
            "does not exist and 405 `method-not-allowed` (with `Allow`) for a method it does not accept. "
            "The card lifecycle routes (`GET`/`PATCH`/`DELETE /api/v1/cards/{id}`, `…/restore`, the "
            "listing, usage history and summary) answer 422 validation-error naming any query parameter "
            "they do not define, one given twice, or one holding NUL (`%00`). The HTTP layer refuses a "
            "request line over 128 KiB or a header field over 8 KiB with a plain-text 400 before the API "
            "sees it; parameters within their bounds never reach either.",
        },
        "servers": [{"url": "/"}],
        "tags": [{"name": "cards"}, {"name": "operations"}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "parameters": PARAMETERS,
            "headers": HEADERS,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key from `cards.create_api_key` (`ck_…`), or a JWT carrying "
                    "`tenant_id` (UUID) and `exp` (HS256 with a configured secret, chosen by `kid`; or "
                    "RS256/ES256 with a public key of the configured JWKS file). Scopes: `cards:read`, "
                    "`cards:write`, `usage:write` (a key's own; a JWT's `scope` claim, all three when it "
                    "has none). A revoked or expired key stops working within 5 s; a suspended or unknown "
                    "tenant gets 403.",
                }
            },
        },
    }
