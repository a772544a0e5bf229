"""Bearer credentials to a principal (a tenant and what it may do): API keys, looked up in SQL and
cached briefly, and JWTs (HS256 secrets chosen by `kid`, or RS256/ES256 public keys from a JWKS file).

Failed attempts are counted per client address prefix and, past a limit, refused with 429; a valid
credential is never refused because of others' failures."""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import math
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import jwt
from prometheus_client import Counter

from .errors import DatabaseTimeout, DatabaseUnavailable, Problem

API_KEY = re.compile(r"ck_[0-9a-f]{32}_[A-Za-z0-9_-]{43}")
JWT_LEEWAY_S = 10
# What a credential may do (API.md, "Credentials"); a route names the one it needs.
SCOPES = frozenset({"cards:read", "cards:write", "usage:write"})
# How many API-key lookups may run at once for addresses that are being throttled: their
# failures cannot occupy the pool, and a valid key from such an address is still looked up.
THROTTLED_LOOKUPS = 2


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request speaks for: the tenant, and the scopes its credential grants."""

    tenant: uuid.UUID
    scopes: frozenset[str]


# (tenant named by the key, SHA-256 of the key) -> (scopes, expires_at) of a live key, or None
KeyGrant = Callable[[uuid.UUID, bytes], Awaitable[tuple[list[str], datetime | None] | None]]


class Throttle:
    """Failed authentications per client address prefix, in fixed windows. A prefix with `limit`
    failures in its window has its further FAILED attempts answered 429 until the window ends; its
    successful ones are served as ever. Bounded: at most `size` prefixes are kept (when full, the one
    whose last failure is oldest is forgotten). A `limit` of 0 turns it off."""

    def __init__(self, limit: int, window: float, size: int) -> None:
        self._limit, self._window, self._size = limit, window, size
        self._failures: dict[str, tuple[float, int]] = {}  # prefix -> (window start, failures)

    def __len__(self) -> int:
        return len(self._failures)

    def retry_after(self, prefix: str) -> int | None:
        """Seconds until the prefix's window ends, if it is over its limit now."""
        entry = self._failures.get(prefix)
        if entry is None or not self._limit:
            return None
        wait = entry[0] + self._window - time.monotonic()
        if wait <= 0:
            del self._failures[prefix]
            return None
        return math.ceil(wait) if entry[1] >= self._limit else None

    def failed(self, prefix: str) -> None:
        if not self._limit:
            return
        now = time.monotonic()
        start, failures = self._failures.pop(prefix, (now, 0))  # re-inserted last: oldest first
        if now - start >= self._window:
            start, failures = now, 0
        while len(self._failures) >= self._size:
            del self._failures[next(iter(self._failures))]
        self._failures[prefix] = (start, failures + 1)


def address_prefix(address: str, v4_bits: int = 32, v6_bits: int = 64) -> str:
    """The network a failure is counted against: an IPv6 client rotates addresses freely within its
    /64, so one address is not a unit there."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    bits = v4_bits if ip.version == 4 else v6_bits
    return str(ipaddress.ip_network(f"{ip}/{bits}", strict=False))


class ClientAddress:
    """The client's address: the peer's, or, when the peer is a trusted proxy, the right-most
    address in X-Forwarded-For that is not a trusted proxy (the left part is the client's to forge)."""

    def __init__(self, trusted: Iterable[str]) -> None:
        self._trusted = [ipaddress.ip_network(net, strict=False) for net in trusted]

    def _is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.strip())
        except ValueError:
            return False
        return any(ip in net for net in self._trusted)

    def __call__(self, peer: str, forwarded_for: list[str]) -> str:
        if not self._trusted or not self._is_trusted(peer):
            return peer
        hops = [hop.strip() for line in forwarded_for for hop in line.split(",")]
        for hop in reversed(hops):
            if hop and not self._is_trusted(hop):
                return hop
        return peer


@dataclass(frozen=True)
class JwtPolicy:
    """How tokens are verified: HS256 secrets (`None` is the key of a token without `kid`), public
    keys from a JWKS file (each with its own algorithm), the longest lifetime accepted, and the
    audience and issuer required when set."""

    secrets: dict[str | None, str]
    public_keys: dict[str, jwt.PyJWK]
    max_lifetime_s: float
    audience: str | None = None
    issuer: str | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.secrets or self.public_keys)


class Authenticator:
    """Answers the principal a bearer token speaks for, or raises a 401 problem (429 for a failed
    attempt from an address prefix that failed too often).

    Keys and tokens are never logged, nor sent to the database (only the key's tenant and SHA-256
    are); the cache is keyed by that SHA-256 and holds only live keys, for at most `ttl` seconds (so a
    revocation shows within it) and never past the key's expiry.
    """

    def __init__(
        self,
        grant: KeyGrant,
        policy: JwtPolicy,
        ttl: float,
        size: int,
        failures: Counter,
        throttle: Throttle,
        prefix: Callable[[str], str] = address_prefix,
    ):
        self._grant, self._policy, self._ttl, self._size = grant, policy, ttl, size
        self._failures, self._throttle, self._prefix = failures, throttle, prefix
        self._cache: dict[bytes, tuple[float, Principal]] = {}
        self._throttled_lookups = asyncio.Semaphore(THROTTLED_LOOKUPS)

    async def authenticate(self, authorization: list[str], address: str) -> Principal:
        """The principal of the request's Authorization field lines, sent from `address`."""
        prefix = self._prefix(address)
        throttled = self._throttle.retry_after(prefix)
        try:
            return await self._authenticate(authorization, throttled is not None)
        except Problem:
            self._throttle.failed(prefix)
            if throttled is not None:
                raise Problem(
                    "rate-limited",
                    f"too many failed authentications from this address; retry in {throttled} s",
                    headers={"Retry-After": str(throttled)},
                ) from None
            raise
        except (DatabaseUnavailable, DatabaseTimeout, asyncpg.PostgresError, OSError):
            self._throttle.failed(prefix)  # a flood that breaks the lookup is still a flood
            raise

    async def _authenticate(self, authorization: list[str], throttled: bool) -> Principal:
        if not authorization:
            raise self._refuse("missing", "an Authorization: Bearer header is required")
        scheme, _, token = authorization[0].partition(" ")
        token = token.strip()
        if len(authorization) > 1 or scheme.lower() != "bearer" or not token or not token.isascii():
            raise self._refuse("malformed", "expected one header 'Authorization: Bearer <token>'")
        if token.startswith("ck_"):
            return await self._api_key(token, throttled)
        return self._jwt(token)

    async def _api_key(self, key: str, throttled: bool) -> Principal:
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
        if throttled:
            async with self._throttled_lookups:
                grant = await self._grant(tenant, digest)
        else:
            grant = await self._grant(tenant, digest)
        if grant is None:
            raise self._refuse("revoked_or_unknown", "the API key is unknown or revoked")
        scopes, expires_at = grant
        left = math.inf if expires_at is None else (expires_at - datetime.now(UTC)).total_seconds()
        if left <= 0:
            raise self._refuse("expired", "the API key has expired")
        principal = Principal(tenant, frozenset(scopes))
        if self._ttl > 0:
            if len(self._cache) >= self._size:
                self._evict(now)
            self._cache[digest] = (now + min(self._ttl, left), principal)
        return principal

    def _evict(self, now: float) -> None:
        for digest in [d for d, (expires, _) in self._cache.items() if expires <= now]:
            del self._cache[digest]
        while len(self._cache) >= self._size:  # all still fresh: drop the oldest
            del self._cache[next(iter(self._cache))]

    def _jwt(self, token: str) -> Principal:
        policy = self._policy
        if not policy.enabled:
            raise self._refuse("invalid", "JWTs are not accepted here (no verification key is configured)")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError:
            raise self._refuse("malformed", "the token is neither an API key nor a JWT") from None
        kid = header.get("kid")
        # Each key verifies with its own algorithm only: a public key is never taken as an HMAC secret.
        if kid in policy.public_keys:
            jwk = policy.public_keys[kid]
            key, algorithms = jwk.key, [jwk.algorithm_name]
        elif isinstance(kid, str | None) and kid in policy.secrets:
            key, algorithms = policy.secrets[kid], ["HS256"]
        else:
            raise self._refuse("invalid", "the token's kid names no configured key")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                leeway=JWT_LEEWAY_S,
                audience=policy.audience,
                issuer=policy.issuer,
                options={"require": ["exp"], "verify_aud": policy.audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise self._refuse("expired", "the token has expired") from None
        except jwt.InvalidSignatureError:
            raise self._refuse("invalid", "the token's signature does not verify") from None
        except jwt.DecodeError:
            raise self._refuse("malformed", "the token is neither an API key nor a JWT") from None
        except jwt.InvalidTokenError as exc:
            raise self._refuse("invalid", f"the token is invalid: {exc}") from None
        start = claims.get("iat", time.time())
        if not isinstance(start, int | float) or claims["exp"] - start > policy.max_lifetime_s + JWT_LEEWAY_S:
            raise self._refuse(
                "invalid", f"the token's lifetime is over the {policy.max_lifetime_s:g} s this API accepts"
            )
        try:
            tenant = uuid.UUID(claims["tenant_id"])
        except (KeyError, TypeError, ValueError, AttributeError):
            raise self._refuse("invalid", "the token's tenant_id claim is not a UUID") from None
        scope = claims.get("scope")
        if scope is None:
            return Principal(tenant, SCOPES)
        if not isinstance(scope, str):
            raise self._refuse("invalid", "the token's scope claim is not a space-separated string")
        return Principal(tenant, SCOPES & set(scope.split()))

    def _refuse(self, reason: str, detail: str) -> Problem:
        self._failures.labels(reason).inc()
        return Problem("unauthorized", detail)
