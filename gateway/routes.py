"""The route table: every route declared once — method, path, handler, the scope it needs, the SQL it
calls and its OpenAPI operation. The router (app.py), the OpenAPI document (SPEC, below), the metrics'
route labels and the tests of grants and docs are all built from, or checked against, this table.

Adding an endpoint: a SQL function (sql/functions/), a handler (api.py), one row here, its tests."""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from . import api, apidocs, ops
from . import bounds as b
from . import openapi as spec
from .openapi import H, ok

# A card's path: {id} is any segment but the names of the POST routes beside it, so that
# `GET /api/v1/cards/batch` is still a 405 (Allow: POST), not a lookup of a card called "batch".
# Its route label is the template, `/api/v1/cards/{id}`.
CARD = "/api/v1/cards/{id:(?!(?:batch|retrieve)$)[^{}/]+}"


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # as aiohttp matches it: a {name:regex} segment is labelled by its template
    handler: object  # api.Handler for an /api/ route (called after api.guard), else an aiohttp handler
    operation_id: str
    summary: str
    description: str
    responses: dict
    scope: str | None = None  # None: an operations route, which takes no credentials
    sql: str | None = None  # the statement the handler makes
    request: str | None = None  # the schema of its JSON body
    params: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()  # the problems it answers besides the ones every route of its kind does
    extra: dict = field(default_factory=dict)

    @property
    def template(self) -> str:
        """The path as documented and labelled in metrics: `{id:regex}` written `{id}`."""
        return spec.template(self.path)

    @property
    def sql_function(self) -> str | None:
        """The schema-qualified function the statement calls (`cards.batch_create_request`)."""
        return None if self.sql is None else spec.called_function(self.sql)


ROUTES = [
    Route(
        "POST",
        "/api/v1/cards/batch",
        api.create_batch,
        "createCards",
        "Create cards in bulk, atomically, with content deduplication",
        "Every item is valid and the whole batch commits, or nothing is written and the answer is 422 "
        "listing every invalid item by `index`. An item whose content_hash matches a live card of the "
        "tenant, or an earlier item of the batch, is not inserted again: its status is `duplicate`. A "
        "tenant with a card quota gets 403 quota-exceeded, and nothing is written, when the batch would "
        "make more live cards than the quota (duplicates do not count).",
        {
            "201": ok(
                "The batch committed, or its stored answer is replayed.",
                "BatchResponse",
                links=spec.BATCH_LINKS,
                **{"Idempotent-Replayed": H("Idempotent-Replayed")},
            )
        },
        scope="cards:write",
        sql=api.BATCH,
        request="BatchRequest",
        params=("IdempotencyKey",),
        errors=(
            *("invalid-idempotency-key", "idempotency-key-in-use", "idempotency-key-reused"),
            "quota-exceeded",
        ),
    ),
    Route(
        "POST",
        "/api/v1/cards/retrieve",
        api.retrieve,
        "retrieveCards",
        "Fetch cards by id",
        "Cards come in the order of their first appearance in `ids`, each once. An id that does not "
        "exist, is deleted or belongs to another tenant is listed in `missing`. A malformed UUID is a 422 "
        "with its index.",
        {
            "200": ok(
                "The cards found, and the ids not found.",
                "RetrieveResponse",
                links=spec.card_links(spec.FIRST_CARD),
            )
        },
        scope="cards:read",
        sql=api.RETRIEVE,
        request="RetrieveRequest",
    ),
    Route(
        "GET",
        "/api/v1/cards",
        api.list_cards,
        "listCards",
        "List and search live cards, newest first",
        "The tenant's live cards, newest first (by creation time, then id), one page at a time with an "
        "opaque keyset cursor. Filters combine (all must hold): `kind` equal, every `tag` carried, "
        "`metadata` containing `contains`, `q` matching the full text. Each filter is served by an index. "
        f"A bad value (limit {b.PAGE_LIMIT.lo - 1} or {b.PAGE_LIMIT.hi + 1}, contains that is not a JSON "
        "object, a forged cursor or one issued "
        "for other filters) or a parameter this route does not define is a 422 naming it.",
        {"200": ok("One page of cards.", "CardPage", links=spec.LIST_LINKS)},
        scope="cards:read",
        sql=api.LIST_CARDS,
        params=("Kind", "Tag", "Contains", "Q", "Limit", "Cursor"),
        errors=("validation-error",),
    ),
    Route(
        "GET",
        CARD,
        api.get_card,
        "getCard",
        "Read one card",
        "The live card with this id and its `ETag`. Unknown, deleted and foreign ids are 404 alike.",
        {"200": ok("The card.", "Card", links=spec.THIS_CARD, ETag=H("ETag"))},
        scope="cards:read",
        sql=api.GET_CARD,
        params=("CardId",),
        errors=("not-found", "validation-error"),
    ),
    Route(
        "PATCH",
        CARD,
        api.update_card,
        "updateCard",
        "Change a card's fields, guarded by its ETag",
        "Replaces the top-level fields the body names (see CardPatch). `If-Match` must carry the ETag the "
        "card was read with: without it 428, stale 412. A change of kind, title or content re-hashes the "
        "card: 409 duplicate-card if another live card has that content. A body that changes nothing "
        "answers the card as it is, with the same ETag. The body is `application/json`; "
        "`application/merge-patch+json` is refused (415), for this is not RFC 7396 merge patch.",
        {"200": ok("The card as changed, and its new ETag.", "Card", links=spec.THIS_CARD, ETag=H("ETag"))},
        scope="cards:write",
        sql=api.UPDATE_CARD,
        request="CardPatch",
        params=("CardId", "IfMatch"),
        errors=("not-found", "duplicate-card", "precondition-failed", "precondition-required"),
    ),
    Route(
        "DELETE",
        CARD,
        api.delete_card,
        "deleteCard",
        "Soft-delete a card",
        "The card leaves retrieve, listings, usage reports and content deduplication (a batch with the same "
        "content creates a new card). Its usage history is kept; `POST …/restore` brings it back.",
        {
            "204": {
                "description": "Deleted. No body.",
                "headers": spec.ANSWER_HEADERS,
                "links": spec.DELETED_LINKS,
            }
        },
        scope="cards:write",
        sql=api.DELETE_CARD,
        params=("CardId",),
        errors=("not-found", "validation-error"),
    ),
    Route(
        "POST",
        "/api/v1/cards/{id}/restore",
        api.restore_card,
        "restoreCard",
        "Undo a soft delete",
        "Brings a deleted card back, with a new ETag; a live card is answered as it is. 409 duplicate-card "
        "when a live card with the same content exists now (the card stays deleted); 403 quota-exceeded "
        "when the tenant's card quota is full. No body is needed; one sent is ignored.",
        {"200": ok("The card, live, and its ETag.", "Card", links=spec.THIS_CARD, ETag=H("ETag"))},
        scope="cards:write",
        sql=api.RESTORE_CARD,
        params=("CardId",),
        errors=("not-found", "duplicate-card", "validation-error", "quota-exceeded"),
    ),
    Route(
        "POST",
        "/api/v1/cards/{id}/usage",
        api.track_usage,
        "trackUsage",
        "Record that a workflow run used a card",
        "The first report for a (card, workflow_id, run_id) adds one to `usage_count`; a repeat answers "
        "`deduplicated: true` and changes nothing.",
        {"200": ok("The usage is recorded (or was already).", "UsageResponse", links=spec.USAGE_LINKS)},
        scope="usage:write",
        sql=api.USAGE,
        request="UsageRequest",
        params=("CardId",),
        errors=("not-found",),
    ),
    Route(
        "GET",
        "/api/v1/cards/{id}/usage",
        api.usage_history,
        "cardUsageHistory",
        "The runs that used a card",
        "The usage events of a live card, newest first, one page at a time. Events older than the "
        "retention window (90 days unless configured) are gone; `usage_count` still counts them.",
        {"200": ok("One page of usage events.", "UsagePage", links=spec.USAGE_PAGE_LINKS)},
        scope="cards:read",
        sql=api.USAGE_HISTORY,
        params=("CardId", "Limit", "Cursor"),
        errors=("not-found", "validation-error"),
    ),
    Route(
        "GET",
        "/api/v1/usage/summary",
        api.usage_summary,
        "usageSummary",
        "Usage events per hour or day, and the most used cards",
        "The tenant's usage events in [from, to) counted per UTC hour or day (at most "
        f"{b.SUMMARY_BUCKETS} buckets), and the {b.TOP_CARDS} cards used most in that window.",
        {"200": ok("The summary.", "UsageSummary")},
        scope="cards:read",
        sql=api.USAGE_SUMMARY,
        params=("From", "To", "Bucket"),
        errors=("validation-error",),
    ),
    Route(
        "GET",
        "/health",
        ops.health,
        "health",
        "Liveness",
        "The process is up. Touches no database.",
        {"200": ok("Up.", None) | {"content": {"application/json": {"schema": {"const": {"status": "ok"}}}}}},
    ),
    Route(
        "GET",
        "/ready",
        ops.ready,
        "ready",
        "Readiness",
        "The database answers and its schema is the version this gateway expects.",
        {"200": ok("Ready.", None) | {"content": {"application/json": {"schema": spec.READY_SCHEMA}}}},
        sql=ops.SCHEMA_VERSION_SQL,
        errors=("service-unavailable",),
    ),
    Route(
        "GET",
        "/metrics",
        ops.metrics,
        "metrics",
        "Prometheus metrics",
        "Text exposition: `cards_http_requests_total`, `cards_http_request_duration_seconds`, "
        "`cards_idempotency_requests_total`, `cards_batch_cards_total`, `cards_usage_reports_total`, "
        "`cards_db_pool_*`, `cards_auth_failures_total`, `cards_db_errors_total`, `cards_ready`, "
        "`cards_build_info`.",
        {"200": ok("Prometheus text format 0.0.4.", None) | spec.content("text/plain", spec.TEXT)},
    ),
    Route(
        "GET",
        "/openapi.json",
        ops.openapi_json,
        "openapi",
        "This document",
        "The OpenAPI 3.1 description of the API.",
        {"200": ok("OpenAPI 3.1.", None) | {"content": {"application/json": {"schema": {"type": "object"}}}}},
    ),
    Route(
        "GET",
        "/docs",
        apidocs.page,
        "docs",
        "Interactive API reference",
        "Swagger UI, served by the gateway, built in the browser from this document.",
        {"200": ok("HTML.", None) | {"content": {"text/html": {"schema": {"type": "string"}}}}},
    ),
]

SPEC = spec.document(ROUTES)
PATHS = SPEC["paths"]
SPEC_JSON = orjson.dumps(SPEC)
