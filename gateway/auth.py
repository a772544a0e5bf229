"""Bearer credentials to a tenant id: API keys (looked up in SQL, cached briefly) and HS256 JWTs."""

from __future__ import annotations

import hashlib
import math
import re
import time
import uuid
from collections.abc import Awaitable, Callable

import jwt
from prometheus_client import Counter

from .errors import Problem

API_KEY = re.compile(r"ck_[0-9a-f]{32}_[A-Za-z0-9_-]{43}")
JWT_LEEWAY_S = 10

# (tenant named by the key, SHA-256 of the key) -> whether it is a live key of that tenant
Lookup = Callable[[uuid.UUID, bytes], Awaitable[bool]]


class Throttle:
    """Failed authentications per client address, in fixed windows: an address with `limit` failures
    in its window is refused (429) until the window ends. Bounded: at most `size` addresses are kept;
    when full, the one whose last failure is oldest is forgotten. A `limit` of 0 turns it off."""

    def __init__(self, limit: int, window: float, size: int) -> None:
        self._limit, self._window, self._size = limit, window, size
        self._failures: dict[str, tuple[float, int]] = {}  # address -> (window start, failures)

    def __len__(self) -> int:
        return len(self._failures)

    def check(self, address: str) -> None:
        entry = self._failures.get(address)
        if entry is None:
            return
        wait = entry[0] + self._window - time.monotonic()
        if wait <= 0:
            del self._failures[address]
        elif entry[1] >= self._limit:
            retry = str(math.ceil(wait))
            raise Problem(
                "rate-limited",
                f"too many failed authentications from this address; retry in {retry} s",
                headers={"Retry-After": retry},
            )

    def failed(self, address: str) -> None:
        if not self._limit:
            return
        now = time.monotonic()
        start, failures = self._failures.pop(address, (now, 0))  # re-inserted last: oldest first
        if now - start >= self._window:
            start, failures = now, 0
        while len(self._failures) >= self._size:
            del self._failures[next(iter(self._failures))]
        self._failures[address] = (start, failures + 1)


class Authenticator:
    """Answers the tenant a bearer token speaks for, or raises a 401 problem (429 while the client's
    address is throttled for its failures).

    Keys and tokens are never logged, nor sent to the database (only the key's tenant and SHA-256
    are); the cache is keyed by that SHA-256, and only
    successful lookups are cached, for at most `ttl` seconds (so a revocation shows within it).
    """

    def __init__(
        self,
        lookup: Lookup,
        jwt_secret: str | None,
        ttl: float,
        size: int,
        failures: Counter,
        throttle: Throttle,
    ):
        self._lookup, self._secret, self._ttl, self._size = lookup, jwt_secret, ttl, size
        self._failures, self._throttle = failures, throttle
        self._cache: dict[bytes, tuple[float, uuid.UUID]] = {}

    async def tenant(self, authorization: list[str], address: str) -> uuid.UUID:
        """The tenant of the request's Authorization field lines, sent from `address`."""
        self._throttle.check(address)
        try:
            return await self._tenant(authorization)
        except Problem:
            self._throttle.failed(address)
            raise

    async def _tenant(self, authorization: list[str]) -> uuid.UUID:
        if not authorization:
            raise self._refuse("missing", "an Authorization: Bearer header is required")
        scheme, _, token = authorization[0].partition(" ")
        token = token.strip()
        if len(authorization) > 1 or scheme.lower() != "bearer" or not token or not token.isascii():
            raise self._refuse("malformed", "expected one header 'Authorization: Bearer <token>'")
        if token.startswith("ck_"):
            return await self._api_key(token)
        return self._jwt(token)

    async def _api_key(self, key: str) -> uuid.UUID:
        if not API_KEY.fullmatch(key):
            raise self._refuse("malformed", "the API key is malformed")
        digest = hashlib.sha256(key.encode()).digest()
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        # An expired entry goes now: a refreshed one is put back as the newest, so _evict's
        # oldest-first never drops a key just looked up.
        self._cache.pop(digest, None)
        # Only the tenant (which the key names) and the hash go to the database: the key itself
        # never appears in a statement, so no server log can show it.
        tenant = uuid.UUID(hex=key[3:35])
        if not await self._lookup(tenant, digest):
            raise self._refuse("revoked_or_unknown", "the API key is unknown or revoked")
        if self._ttl > 0:
            if len(self._cache) >= self._size:
                self._evict(now)
            self._cache[digest] = (now + self._ttl, tenant)
        return tenant

    def _evict(self, now: float) -> None:
        for digest in [d for d, (expires, _) in self._cache.items() if expires <= now]:
            del self._cache[digest]
        while len(self._cache) >= self._size:  # all still fresh: drop the oldest
            del self._cache[next(iter(self._cache))]

    def _jwt(self, token: str) -> uuid.UUID:
        if self._secret is None:
            raise self._refuse("invalid", "JWTs are not accepted here (no CARDS_JWT_SECRET)")
        try:
            claims = jwt.decode(
                token, self._secret, algorithms=["HS256"], leeway=JWT_LEEWAY_S, options={"require": ["exp"]}
            )
        except jwt.ExpiredSignatureError:
            raise self._refuse("expired", "the token has expired") from None
        except jwt.InvalidSignatureError:
            raise self._refuse("invalid", "the token's signature does not verify") from None
        except jwt.DecodeError:
            raise self._refuse("malformed", "the token is neither an API key nor a JWT") from None
        except jwt.InvalidTokenError as exc:
            raise self._refuse("invalid", f"the token is invalid: {exc}") from None
        try:
            return uuid.UUID(claims["tenant_id"])
        except (KeyError, TypeError, ValueError, AttributeError):
            raise self._refuse("invalid", "the token's tenant_id claim is not a UUID") from None

    def _refuse(self, reason: str, detail: str) -> Problem:
        self._failures.labels(reason).inc()
        return Problem("unauthorized", detail)
