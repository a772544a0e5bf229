"""The OpenAPI 3.1 description of the contract (../shared/API.md), served at /openapi.json, and
the /docs page generated from it (plain HTML: no scripts, no CDN)."""

from __future__ import annotations

import html

import orjson

from . import __version__
from .errors import PROBLEMS, Problem


def _ref(kind: str, name: str) -> dict:
    return {"$ref": f"#/components/{kind}/{name}"}


def _string(lo: int, hi: int, **more) -> dict:
    return {"type": "string", "minLength": lo, "maxLength": hi, **more}


UUID = {"type": "string", "format": "uuid"}
TIME = {"type": "string", "format": "date-time", "description": "RFC 3339, UTC"}
METADATA = {
    "type": "object",
    "description": "A JSON object of at most 16 KiB, nested at most 64 levels, with numbers as in content.",
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
            "kind": _string(1, 64, pattern="^[a-z0-9_.-]+$", default="note"),
            "title": _string(1, 500),
            "content": {"not": {"type": "null"}, "description": "Any JSON value but null, at most 256 KiB."},
            "tags": {
                "type": "array",
                "maxItems": 32,
                "uniqueItems": True,
                "items": _string(1, 64),
                "default": [],
            },
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
            "kind": _string(1, 64, pattern="^[a-z0-9_.-]+$"),
            "title": _string(1, 500),
            "content": {"not": {"type": "null"}, "description": "Any JSON value but null, at most 256 KiB."},
            "tags": {"type": "array", "maxItems": 32, "uniqueItems": True, "items": _string(1, 64)},
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
            "cards": {"type": "array", "items": _ref("schemas", "Card")},
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
                "maxItems": 10,
                "description": "The ten cards with the most usage events in the window, most used first.",
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
            "cards": {"type": "array", "minItems": 1, "maxItems": 1000, "items": _ref("schemas", "CardInput")}
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
        "properties": {"ids": {"type": "array", "minItems": 1, "maxItems": 1000, "items": UUID}},
    },
    "RetrieveResponse": {
        "type": "object",
        "required": ["cards", "missing"],
        "properties": {
            "cards": {"type": "array", "items": _ref("schemas", "Card")},
            "missing": {"type": "array", "items": UUID},
        },
    },
    "UsageRequest": {
        "type": "object",
        "additionalProperties": False,
        "required": ["workflow_id", "run_id"],
        "properties": {"workflow_id": _string(1, 255), "run_id": _string(1, 255), "metadata": METADATA},
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
        "description": "1-255 printable ASCII characters, bare or as a quoted string; given at most once. "
        "Scope: tenant + key, kept at least 24 hours. The same key with a JSON-equal body replays the stored "
        "answer byte for byte (with `Idempotent-Replayed: true`); with a different body it is a 422 "
        "idempotency-key-reused; while the first request runs, the second waits a bounded time, then replays "
        "or gets 409 idempotency-key-in-use. Only committed successes are stored.",
        # 1-255 printable ASCII, bare (no leading or trailing space: HTTP trims those, and `""` is
        # empty once unquoted) or within one pair of quotes.
        "schema": {
            "type": "string",
            "pattern": '^(?:[!-~]|[!#-~][!-~]|"[!#-~]|[!-~][ -~]{1,253}[!-~]|"[ -~]{1,255}")$',
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
    "Kind": {"name": "kind", "in": "query", "schema": _string(1, 64, pattern="^[a-z0-9_.-]+$")},
    "Tag": {
        "name": "tag",
        "in": "query",
        "description": "Repeat it for several tags: a card must carry all of them.",
        "style": "form",
        "explode": True,
        "schema": {"type": "array", "maxItems": 32, "items": _string(1, 64)},
    },
    "Contains": {
        "name": "contains",
        "in": "query",
        "description": "A JSON object (URL-encoded), at most 16 KiB of text (as a card's metadata), nested "
        "at most 64 levels, holding at most 8 array elements in all (at most 2 of them arrays or "
        "objects) and numbers within a card's bounds: cards whose metadata contains it (`@>`).",
        "content": {"application/json": {"schema": {"type": "object"}}},
    },
    "Q": {
        "name": "q",
        "in": "query",
        "description": "Full-text search over the title and the string values of the content, with the "
        '`english` configuration (stemming, stop words) and web-search syntax: `"a phrase"`, `or`, `-word`.',
        "schema": _string(1, 500),
    },
    "Limit": {
        "name": "limit",
        "in": "query",
        "description": "Page size.",
        "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
    },
    "Cursor": {
        "name": "cursor",
        "in": "query",
        "description": "The `next_cursor` of the previous page, opaque. A listing cursor is valid only with "
        "the filters it was issued for; anything else is a 422.",
        "schema": {"type": "string", "maxLength": 1000},
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
        "description": f"{_RFC3339_IN_RANGE}, exclusive; default: now. At most 1000 buckets.",
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
    "invalid-idempotency-key": "The key is empty, over 255 characters, not printable ASCII, or sent twice.",
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
    "rate-limited": "Too many failed authentications from this client address (30 a minute unless "
    "configured): every API request from it is refused until `Retry-After` seconds have passed.",
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
                "headers": {"X-Trace-ID": _ref("headers", "X-Trace-ID")},
                "content": {
                    "application/problem+json": {"schema": _ref("schemas", "Problem"), "examples": {}}
                },
            },
        )
        response["description"] += f"`{slug}`: {_WHEN[slug]} "
        for header in Problem(slug, "").headers:  # what errors.Problem sends with this slug
            response["headers"][header] = _ref("headers", header)
        example = {"type": f"/problems/{slug}", "title": title, "status": status, "detail": _WHEN[slug]}
        example["trace_id"] = "4bf92f3577b34da6a3ce929d0e0e4736"
        if slug == "validation-error":
            example["errors"] = [{"index": 0, "field": "title", "message": "must be 1-500 characters"}]
        response["content"]["application/problem+json"]["examples"][slug] = {"value": example}
    for response in by_status.values():
        response["description"] = response["description"].strip()
    return by_status


def _ok(
    description: str,
    schema: str | None,
    links: dict | None = None,
    **headers,
) -> dict:
    response = {
        "description": description,
        "headers": {"X-Trace-ID": _ref("headers", "X-Trace-ID"), **headers},
    }
    if schema is not None:
        response["content"] = {"application/json": {"schema": _ref("schemas", schema)}}
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


def _card_links(card_id: str, etag: str = "*") -> dict:
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


_FIRST_CARD = "$response.body#/cards/0/id"
_THIS_CARD = _card_links("$response.body#/id", "$response.header.ETag")
_BATCH_LINKS = _card_links(_FIRST_CARD) | {
    "ReplayBatch": _link(
        "createCards",
        "The same request with the same Idempotency-Key: its stored answer, replayed.",
        {"header.Idempotency-Key": "$request.header.Idempotency-Key"},
        "$request.body",
    )
}
_DELETED_LINKS = {
    "GetDeletedCard": _link("getCard", "A deleted card is not found.", {"path.id": "$request.path.id"}),
    "RestoreCard": _link("restoreCard", "Bring the card back.", {"path.id": "$request.path.id"}),
}
_USAGE_LINKS = _card_links("$response.body#/card_id") | {
    "RepeatUsage": _link(
        "trackUsage",
        "The same report again: deduplicated.",
        {"path.id": "$request.path.id"},
        {"workflow_id": "$request.body#/workflow_id", "run_id": "$request.body#/run_id"},
    )
}
_LIST_LINKS = {
    "GetCard": _link("getCard", "Read the first card of the page.", {"path.id": _FIRST_CARD}),
    # A link cannot copy the filters only when they were given; a cursor is valid only with its
    # filters (else 422), so this is the next page of an unfiltered listing.
    "NextPage": _link(
        "listCards",
        "The next page (of a listing without filters).",
        {"query.cursor": "$response.body#/next_cursor"},
    ),
}
_USAGE_PAGE_LINKS = {
    "NextPage": _link(
        "cardUsageHistory",
        "The next page.",
        {"path.id": "$request.path.id", "query.cursor": "$response.body#/next_cursor"},
    )
}


_API_ERRORS = ("unauthorized", "forbidden", "rate-limited", "internal-error")
_API_ERRORS += ("service-unavailable", "gateway-timeout")
_BODY_ERRORS = ("malformed-json", "request-timeout", "payload-too-large", "unsupported-media-type")
_BODY_ERRORS += ("validation-error",)


def _api(
    method: str, op_id: str, summary: str, description: str, ok: dict, *, request=None, params=(), errors=()
) -> dict:
    """An /api/ operation; `request` names the schema of its JSON body, if it takes one."""
    op = {
        "operationId": op_id,
        "tags": ["cards"],
        "summary": summary,
        "description": description,
        "security": [{"bearer": []}],
        "parameters": [_ref("parameters", p) for p in ("TraceId", *params)],
    }
    if request is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref("schemas", request)}},
        }
        errors = (*_BODY_ERRORS, *errors)
    responses = ok | _problems(*errors, *_API_ERRORS)
    op["responses"] = dict(sorted(responses.items()))
    return {method: op}


def _ops(op_id: str, summary: str, description: str, ok: dict, *errors: str) -> dict:
    return {
        "get": {
            "operationId": op_id,
            "tags": ["operations"],
            "summary": summary,
            "description": description,
            "security": [],
            "parameters": [_ref("parameters", "TraceId")],
            "responses": ok | _problems(*errors),
        }
    }


PATHS = {
    "/api/v1/cards/batch": _api(
        "post",
        "createCards",
        "Create cards in bulk, atomically, with content deduplication",
        "Every item is valid and the whole batch commits, or nothing is written and the answer is 422 "
        "listing every invalid item by `index`. An item whose content_hash matches a live card of the "
        "tenant, or an earlier item of the batch, is not inserted again: its status is `duplicate`.",
        {
            "201": _ok(
                "The batch committed, or its stored answer is replayed.",
                "BatchResponse",
                links=_BATCH_LINKS,
                **{"Idempotent-Replayed": _ref("headers", "Idempotent-Replayed")},
            )
        },
        request="BatchRequest",
        params=("IdempotencyKey",),
        errors=("invalid-idempotency-key", "idempotency-key-in-use", "idempotency-key-reused"),
    ),
    "/api/v1/cards/retrieve": _api(
        "post",
        "retrieveCards",
        "Fetch cards by id",
        "Cards come in the order of their first appearance in `ids`, each once. An id that does not "
        "exist, is deleted or belongs to another tenant is listed in `missing`. A malformed UUID is a 422 "
        "with its index.",
        {
            "200": _ok(
                "The cards found, and the ids not found.", "RetrieveResponse", links=_card_links(_FIRST_CARD)
            )
        },
        request="RetrieveRequest",
    ),
    "/api/v1/cards": _api(
        "get",
        "listCards",
        "List and search live cards, newest first",
        "The tenant's live cards, newest first (by creation time, then id), one page at a time with an "
        "opaque keyset cursor. Filters combine (all must hold): `kind` equal, every `tag` carried, "
        "`metadata` containing `contains`, `q` matching the full text. Each filter is served by an index. "
        "A bad value (limit 0 or 201, contains that is not a JSON object, a forged cursor or one issued "
        "for other filters) or a parameter this route does not define is a 422 naming it.",
        {"200": _ok("One page of cards.", "CardPage", links=_LIST_LINKS)},
        params=("Kind", "Tag", "Contains", "Q", "Limit", "Cursor"),
        errors=("validation-error",),
    ),
    "/api/v1/cards/{id}": _api(
        "get",
        "getCard",
        "Read one card",
        "The live card with this id and its `ETag`. Unknown, deleted and foreign ids are 404 alike.",
        {"200": _ok("The card.", "Card", links=_THIS_CARD, ETag=_ref("headers", "ETag"))},
        params=("CardId",),
        errors=("not-found", "validation-error"),
    )
    | _api(
        "patch",
        "updateCard",
        "Change a card's fields, guarded by its ETag",
        "Replaces the top-level fields the body names (see CardPatch). `If-Match` must carry the ETag the "
        "card was read with: without it 428, stale 412. A change of kind, title or content re-hashes the "
        "card: 409 duplicate-card if another live card has that content. A body that changes nothing "
        "answers the card as it is, with the same ETag. The body is `application/json`; "
        "`application/merge-patch+json` is refused (415), for this is not RFC 7396 merge patch.",
        {
            "200": _ok(
                "The card as changed, and its new ETag.",
                "Card",
                links=_THIS_CARD,
                ETag=_ref("headers", "ETag"),
            )
        },
        request="CardPatch",
        params=("CardId", "IfMatch"),
        errors=("not-found", "duplicate-card", "precondition-failed", "precondition-required"),
    )
    | _api(
        "delete",
        "deleteCard",
        "Soft-delete a card",
        "The card leaves retrieve, listings, usage reports and content deduplication (a batch with the same "
        "content creates a new card). Its usage history is kept; `POST …/restore` brings it back.",
        {
            "204": {
                "description": "Deleted. No body.",
                "headers": {"X-Trace-ID": _ref("headers", "X-Trace-ID")},
                "links": _DELETED_LINKS,
            }
        },
        params=("CardId",),
        errors=("not-found", "validation-error"),
    ),
    "/api/v1/cards/{id}/restore": _api(
        "post",
        "restoreCard",
        "Undo a soft delete",
        "Brings a deleted card back, with a new ETag; a live card is answered as it is. 409 duplicate-card "
        "when a live card with the same content exists now (the card stays deleted). No body is needed; "
        "one sent is ignored.",
        {"200": _ok("The card, live, and its ETag.", "Card", links=_THIS_CARD, ETag=_ref("headers", "ETag"))},
        params=("CardId",),
        errors=("not-found", "duplicate-card", "validation-error"),
    ),
    "/api/v1/cards/{id}/usage": _api(
        "post",
        "trackUsage",
        "Record that a workflow run used a card",
        "The first report for a (card, workflow_id, run_id) adds one to `usage_count`; a repeat answers "
        "`deduplicated: true` and changes nothing.",
        {"200": _ok("The usage is recorded (or was already).", "UsageResponse", links=_USAGE_LINKS)},
        request="UsageRequest",
        params=("CardId",),
        errors=("not-found",),
    )
    | _api(
        "get",
        "cardUsageHistory",
        "The runs that used a card",
        "The usage events of a live card, newest first, one page at a time. Events older than the "
        "retention window (90 days unless configured) are gone; `usage_count` still counts them.",
        {"200": _ok("One page of usage events.", "UsagePage", links=_USAGE_PAGE_LINKS)},
        params=("CardId", "Limit", "Cursor"),
        errors=("not-found", "validation-error"),
    ),
    "/api/v1/usage/summary": _api(
        "get",
        "usageSummary",
        "Usage events per hour or day, and the most used cards",
        "The tenant's usage events in [from, to) counted per UTC hour or day (at most 1000 buckets), and "
        "the ten cards used most in that window.",
        {"200": _ok("The summary.", "UsageSummary")},
        params=("From", "To", "Bucket"),
        errors=("validation-error",),
    ),
    "/health": _ops(
        "health",
        "Liveness",
        "The process is up. Touches no database.",
        {
            "200": _ok("Up.", None)
            | {"content": {"application/json": {"schema": {"const": {"status": "ok"}}}}}
        },
    ),
    "/ready": _ops(
        "ready",
        "Readiness",
        "The database answers and its schema is the version this gateway expects.",
        {
            "200": _ok("Ready.", None)
            | {
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["status", "schema_version"],
                            "properties": {
                                "status": {"const": "ready"},
                                "schema_version": {"type": "integer"},
                            },
                        }
                    }
                }
            }
        },
        "service-unavailable",
    ),
    "/metrics": _ops(
        "metrics",
        "Prometheus metrics",
        "Text exposition: `cards_http_requests_total`, `cards_http_request_duration_seconds`, "
        "`cards_idempotency_requests_total`, `cards_batch_cards_total`, `cards_usage_reports_total`, "
        "`cards_db_pool_*`, `cards_auth_failures_total`, `cards_db_errors_total`, `cards_ready`, "
        "`cards_build_info`.",
        {
            "200": _ok("Prometheus text format 0.0.4.", None)
            | {"content": {"text/plain": {"schema": {"type": "string"}}}}
        },
    ),
    "/openapi.json": _ops(
        "openapi",
        "This document",
        "The OpenAPI 3.1 description of the API.",
        {
            "200": _ok("OpenAPI 3.1.", None)
            | {"content": {"application/json": {"schema": {"type": "object"}}}}
        },
    ),
    "/docs": _ops(
        "docs",
        "Human-readable docs",
        "A static HTML page generated from this document.",
        {"200": _ok("HTML.", None) | {"content": {"text/html": {"schema": {"type": "string"}}}}},
    ),
}

SPEC = {
    "openapi": "3.1.0",
    "info": {
        "title": "Cards API",
        "version": __version__,
        "description": "Reusable content cards for workflow runs, per tenant. Every `/api/` route needs "
        "`Authorization: Bearer <API key or JWT>`. Every response carries `X-Trace-ID`. Errors are RFC 9457 "
        "`application/problem+json`; any route answers 404 `not-found` when it does not exist and 405 "
        "`method-not-allowed` (with `Allow`) for a method it does not accept. The card lifecycle routes "
        "(`GET`/`PATCH`/`DELETE /api/v1/cards/{id}`, `…/restore`, the listing, usage history and summary) "
        "answer 422 validation-error naming any query parameter they do not define, one given twice, or one "
        "holding NUL (`%00`). The HTTP layer refuses a request line over 128 KiB or a header field over "
        "8 KiB with a plain-text 400 before the API sees it; parameters within their bounds never reach "
        "either.",
    },
    "servers": [{"url": "/"}],
    "tags": [{"name": "cards"}, {"name": "operations"}],
    "paths": PATHS,
    "components": {
        "schemas": SCHEMAS,
        "parameters": PARAMETERS,
        "headers": HEADERS,
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "An API key from `cards.create_api_key` (`ck_…`), or an HS256 JWT signed with "
                "CARDS_JWT_SECRET carrying `tenant_id` (UUID) and `exp`. A revoked key stops working "
                "within 5 s; a suspended or unknown tenant gets 403.",
            }
        },
    },
}

SPEC_JSON = orjson.dumps(SPEC)


def _docs_html() -> str:
    e = html.escape
    out = [
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>Cards API</title>",
        "<style>body{font:15px/1.45 system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
        "code{background:#f3f3f3;padding:0 .2em}h2{border-top:1px solid #ddd;padding-top:.8em}"
        "td{vertical-align:top;padding:.2em .6em}</style></head><body>",
        f"<h1>Cards API {e(SPEC['info']['version'])}</h1><p>{e(SPEC['info']['description'])}</p>",
        '<p>Machine-readable: <a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1).</p>',
    ]
    for path, item in PATHS.items():
        for method, op in item.items():
            out.append(f"<h2><code>{method.upper()} {e(path)}</code></h2><p><b>{e(op['summary'])}</b></p>")
            out.append(f"<p>{e(op['description'])}</p>")
            params = [PARAMETERS[ref["$ref"].rsplit("/", 1)[1]] for ref in op["parameters"][1:]]
            if params:
                named = ", ".join(f"<code>{e(p['name'])}</code> ({p['in']})" for p in params)
                out.append(f"<p>Parameters: {named}</p>")
            if "requestBody" in op:
                schema = op["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
                fields = ", ".join(f"<code>{e(f)}</code>" for f in SCHEMAS[schema]["properties"])
                out.append(f"<p>Body (<code>application/json</code>): {fields}</p>")
            out.append("<table>")
            for status, response in op["responses"].items():
                out.append(f"<tr><td><b>{status}</b></td><td>{e(response['description'])}</td></tr>")
            out.append("</table>")
    out.append("</body></html>")
    return "\n".join(out)


DOCS_HTML = _docs_html()
