"""The exceptions: one class per problem slug of the API, grouped under a class per HTTP status
family, all subclasses of `CardsError`."""

from __future__ import annotations

import builtins
from typing import Any


class CardsError(Exception):
    """Any failure of a Cards API call. For an answer from the API (a problem document), the fields
    hold what it said; for a network failure (`ConnectionError`) `status` and `slug` are None."""

    status: int | None = None
    slug: str | None = None

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        slug: str | None = None,
        title: str | None = None,
        errors: builtins.list[dict[str, Any]] | None = None,
        errors_total: int | None = None,
        trace_id: str | None = None,
        retry_after: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if status is not None:
            self.status = status
        if slug is not None:
            self.slug = slug
        self.title = title
        # Validation items: {"index"?, "field", "message"}; `index` is the position in the request's array.
        self.errors: builtins.list[dict[str, Any]] = errors or []
        # How many validation items the API found (it lists at most 100 of them).
        self.errors_total = errors_total if errors_total is not None else len(self.errors)
        self.trace_id = trace_id
        self.retry_after = retry_after  # seconds, from the Retry-After header
        self.headers = headers or {}

    def __str__(self) -> str:
        head = f"{self.status} {self.slug}: " if self.status is not None else ""
        text = head + self.detail
        if self.errors:
            shown = "; ".join(_describe(item) for item in self.errors[:3])
            more = self.errors_total - min(3, len(self.errors))
            text += f" [{shown}{f'; and {more} more' if more > 0 else ''}]"
        if self.trace_id:
            text += f" (trace id {self.trace_id})"
        return text


def _describe(item: dict[str, Any]) -> str:
    where = f"item {item['index']} " if "index" in item else ""
    return f"{where}{item.get('field', '')}: {item.get('message', '')}".strip()


class ConnectionError(CardsError):  # noqa: A001 - the contract's name; `builtins.ConnectionError` stays reachable
    """The API could not be reached, or the connection failed, and retrying did not help."""


class ConnectionTimeout(ConnectionError):
    """No answer within the client's timeout, and retrying did not help."""


class ClientError(CardsError):
    """A 4xx answer: the request is wrong as sent (or not allowed); sending it again will not help."""


class ServerError(CardsError):
    """A 5xx answer."""


# --- 4xx ---


class BadRequest(ClientError):
    status = 400


class MalformedJson(BadRequest):
    slug = "malformed-json"


class InvalidIdempotencyKey(BadRequest):
    slug = "invalid-idempotency-key"


class Unauthorized(ClientError):
    status, slug = 401, "unauthorized"


class Forbidden(ClientError):
    """403: the tenant is unknown or suspended (slug `forbidden`), or one of the subclasses."""

    status, slug = 403, "forbidden"


class QuotaExceeded(Forbidden):
    """The batch would take the tenant over its maximum number of live cards; nothing was written."""

    slug = "quota-exceeded"


class InsufficientScope(Forbidden):
    """The credential's scopes do not cover this call."""

    slug = "insufficient-scope"


class NotFound(ClientError):
    status, slug = 404, "not-found"


class MethodNotAllowed(ClientError):
    status, slug = 405, "method-not-allowed"


class RequestTimeout(ClientError):
    status, slug = 408, "request-timeout"


class Conflict(ClientError):
    status = 409


class IdempotencyKeyInUse(Conflict):
    slug = "idempotency-key-in-use"


class DuplicateCard(Conflict):
    slug = "duplicate-card"


class PreconditionFailed(ClientError):
    status, slug = 412, "precondition-failed"


class PayloadTooLarge(ClientError):
    status, slug = 413, "payload-too-large"


class UnsupportedMediaType(ClientError):
    status, slug = 415, "unsupported-media-type"


class UnprocessableContent(ClientError):
    status = 422


class ValidationError(UnprocessableContent):
    slug = "validation-error"


class IdempotencyKeyReused(UnprocessableContent):
    slug = "idempotency-key-reused"


class PreconditionRequired(ClientError):
    status, slug = 428, "precondition-required"


class RateLimited(ClientError):
    status, slug = 429, "rate-limited"


# --- 5xx ---


class InternalError(ServerError):
    status, slug = 500, "internal-error"


class ServiceUnavailable(ServerError):
    status, slug = 503, "service-unavailable"


class GatewayTimeout(ServerError):
    status, slug = 504, "gateway-timeout"


def _leaves(cls: type[CardsError]) -> builtins.list[type[CardsError]]:
    out = []
    for sub in cls.__subclasses__():
        if "slug" in vars(sub):
            out.append(sub)
        out += _leaves(sub)
    return out


# slug -> class, for every problem type the API documents (and the ones it is adding).
BY_SLUG: dict[str, type[CardsError]] = {cls.slug: cls for cls in _leaves(CardsError) if cls.slug}
# status -> class, for a slug this client does not know yet: the most general class of that status.
BY_STATUS: dict[int, type[CardsError]] = {
    cls.status: cls
    for cls in (
        BadRequest, Unauthorized, Forbidden, NotFound, MethodNotAllowed, RequestTimeout, Conflict,
        PreconditionFailed, PayloadTooLarge, UnsupportedMediaType, UnprocessableContent,
        PreconditionRequired, RateLimited, InternalError, ServiceUnavailable, GatewayTimeout,
    )
    if cls.status is not None
}  # fmt: skip


def error_class(status: int, slug: str | None) -> type[CardsError]:
    """The class for a problem: by its slug when known, else by its status, else by the status family."""
    if slug in BY_SLUG and BY_SLUG[slug].status == status:
        return BY_SLUG[slug]
    if status in BY_STATUS:
        return BY_STATUS[status]
    return ServerError if status >= 500 else ClientError
