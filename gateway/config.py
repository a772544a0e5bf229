"""Settings from the environment, checked once at start-up with a clear error for a bad value."""

from __future__ import annotations

import ipaddress
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import jwt
import orjson

_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# Secrets that have been published (examples, this repository's tests and compose file, common
# placeholders): anyone can sign a token with them, so only a development run may use one.
KNOWN_JWT_SECRETS = frozenset(
    {
        "dev-only-jwt-secret-change-me-0123456789",
        "tests-only-hs256-secret-0123456789abcdef",
        "your-256-bit-secret",
        "change-me-change-me-change-me-change-me",
        "secret",
        "changeme",
    }
)


class ConfigError(ValueError):
    """A setting is missing or has a value the gateway cannot use."""


@dataclass(frozen=True)
class Config:
    database_url: str
    port: int = 8002
    host: str | None = None  # every interface
    # A development run (CARDS_DEV=1, as `make run` sets): published or short JWT secrets allowed.
    dev: bool = False
    # HS256: the secret of tokens without `kid`, and secrets by `kid` (rotation: add the new one,
    # then retire the old); RS256/ES256: public keys by `kid` from a JWKS file.
    jwt_secret: str | None = None
    jwt_secrets: dict[str, str] = field(default_factory=dict)
    jwt_jwks_file: str | None = None
    jwt_max_lifetime_s: float = 86_400.0
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    pool_min: int = 2
    pool_max: int = 10
    max_body_bytes: int = 8 * 1024 * 1024
    log_level: str = "INFO"
    # Above the SQL's bounded wait for a busy idempotency key (5 s), so that wait can finish.
    statement_timeout_ms: int = 15_000
    pool_timeout_s: float = 5.0
    # A revoked key must stop working within 5 s (API.md): positive lookups are kept at most 4 s.
    auth_cache_ttl_s: float = 4.0
    auth_cache_size: int = 10_000
    shutdown_timeout_s: float = 30.0
    # A slow client: its body must arrive within this (408), and an idle or unfinished connection
    # is closed after the keep-alive timeout. Neither ever holds a database connection.
    body_timeout_s: float = 30.0
    keepalive_timeout_s: float = 75.0
    # Failed authentications per client address: at the limit within the window, the address gets
    # 429 until the window ends (0 turns the throttle off). At most auth_throttle_size addresses.
    auth_failure_limit: int = 30
    auth_failure_window_s: float = 60.0
    auth_throttle_size: int = 10_000
    # Failures are counted per network: one IPv4 address, or an IPv6 /64 (one client's block).
    auth_throttle_v4_prefix: int = 32
    auth_throttle_v6_prefix: int = 64
    # Peers whose X-Forwarded-For is believed (a reverse proxy's addresses or networks).
    trusted_proxies: tuple[str, ...] = ()
    # Per-tenant rate limit, shared by every gateway (0 turns it off); a tenant's own limits
    # (cards.set_tenant_limits) override these.
    rate_limit_rps: float = 1000.0
    rate_limit_burst: int = 2000
    # The share of the pool one tenant may hold at once (at least one connection).
    tenant_pool_share: float = 0.5
    # Card Center (gateway/center/): how long a sign-in lasts at most.
    session_ttl_s: float = 12 * 3600.0
    # Gateway processes serving the port (SO_REUSEPORT), each with its own pool: one per core.
    workers: int = field(default_factory=lambda: len(os.sched_getaffinity(0)))
    # The search indexer (gateway/search_index.py): on, and how often it looks for new cards.
    search_indexer: bool = True
    search_index_interval_s: float = 0.25

    def __post_init__(self) -> None:
        if self.pool_min > self.pool_max:
            raise ConfigError(
                f"CARDS_DB_POOL_MIN ({self.pool_min}) exceeds CARDS_DB_POOL_MAX ({self.pool_max})"
            )
        for name, secret in [("CARDS_JWT_SECRET", self.jwt_secret), *self.jwt_secrets.items()]:
            if secret is None or self.dev:
                continue
            if len(secret.encode()) < 32:
                raise ConfigError(f"{name}: a JWT secret must be at least 32 bytes (HS256: a 256-bit key)")
            if secret in KNOWN_JWT_SECRETS:
                raise ConfigError(f"{name}: this JWT secret is published; set a secret of your own")
        if self.jwt_jwks_file is not None:
            self.jwt_public_keys()  # a bad file stops the start, not the first request
        for net in self.trusted_proxies:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                raise ConfigError(f"CARDS_TRUSTED_PROXIES: {net!r} is not an address or network") from None

    @property
    def tenant_pool_cap(self) -> int:
        return max(1, int(self.pool_max * self.tenant_pool_share))

    def jwt_public_keys(self) -> dict[str, jwt.PyJWK]:
        """The RS256/ES256 keys of the JWKS file, by kid."""
        if self.jwt_jwks_file is None:
            return {}
        try:
            with open(self.jwt_jwks_file, "rb") as f:
                keys = jwt.PyJWKSet.from_json(f.read().decode()).keys
        except (OSError, ValueError, jwt.PyJWKError, jwt.PyJWKSetError) as exc:
            raise ConfigError(f"CARDS_JWT_JWKS_FILE: no JWKS in {self.jwt_jwks_file}: {exc}") from None
        found = {}
        for key in keys:
            if key.algorithm_name not in ("RS256", "ES256") or not key.key_id:
                raise ConfigError("CARDS_JWT_JWKS_FILE: every key needs a kid and alg RS256 or ES256")
            found[key.key_id] = key
        return found

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Config:
        env = os.environ if env is None else env
        if not env.get("DATABASE_URL"):
            raise ConfigError("DATABASE_URL is not set (e.g. postgresql://user@host:5432/dbname)")
        level = env.get("CARDS_LOG_LEVEL", "").upper() or "INFO"
        if level not in _LOG_LEVELS:
            raise ConfigError(f"CARDS_LOG_LEVEL must be one of {', '.join(_LOG_LEVELS)}, got {level!r}")
        numbers = {}
        for name, attribute, kind, low, high in _NUMBERS:
            raw = env.get(name, "").strip()
            if not raw:
                continue
            try:
                value = kind(raw)
            except ValueError:
                value = math.nan
            if not (math.isfinite(value) and low <= value and (high is None or value <= high)):
                want = ("an integer" if kind is int else "a number") + f" >= {low}"
                want += f" and <= {high}" if high is not None else ""
                raise ConfigError(f"{name} must be {want}, got {raw!r}")
            numbers[attribute] = value
        try:
            secrets = orjson.loads(env.get("CARDS_JWT_SECRETS") or "{}")
        except orjson.JSONDecodeError:
            secrets = None
        if not isinstance(secrets, dict) or not all(isinstance(v, str) for v in secrets.values()):
            raise ConfigError('CARDS_JWT_SECRETS must be a JSON object of kid to secret: {"2026-12": "…"}')
        return cls(
            database_url=env["DATABASE_URL"],
            host=env.get("HOST", "").strip() or None,
            dev=env.get("CARDS_DEV", "") in ("1", "true", "yes"),
            search_indexer=env.get("CARDS_SEARCH_INDEXER", "1").strip() not in ("0", "false", "no"),
            jwt_secret=env.get("CARDS_JWT_SECRET") or None,
            jwt_secrets=secrets,
            jwt_jwks_file=env.get("CARDS_JWT_JWKS_FILE") or None,
            jwt_audience=env.get("CARDS_JWT_AUDIENCE") or None,
            jwt_issuer=env.get("CARDS_JWT_ISSUER") or None,
            trusted_proxies=tuple(
                p.strip() for p in env.get("CARDS_TRUSTED_PROXIES", "").split(",") if p.strip()
            ),
            log_level=level,
            **numbers,
        )


_NUMBERS = (
    # environment variable, Config field, type, smallest, largest
    ("PORT", "port", int, 1, 65535),
    ("CARDS_DB_POOL_MIN", "pool_min", int, 0, None),
    ("CARDS_DB_POOL_MAX", "pool_max", int, 1, None),
    ("CARDS_MAX_BODY_BYTES", "max_body_bytes", int, 1024, None),
    ("CARDS_STATEMENT_TIMEOUT_MS", "statement_timeout_ms", int, 1, None),
    ("CARDS_POOL_TIMEOUT_S", "pool_timeout_s", float, 0.001, None),
    ("CARDS_AUTH_CACHE_TTL_S", "auth_cache_ttl_s", float, 0, 4),
    ("CARDS_SHUTDOWN_TIMEOUT_S", "shutdown_timeout_s", float, 0, None),
    ("CARDS_BODY_TIMEOUT_S", "body_timeout_s", float, 0.001, None),
    ("CARDS_KEEPALIVE_TIMEOUT_S", "keepalive_timeout_s", float, 0.001, None),
    ("CARDS_AUTH_FAILURE_LIMIT", "auth_failure_limit", int, 0, None),
    ("CARDS_AUTH_FAILURE_WINDOW_S", "auth_failure_window_s", float, 0.001, 86400),
    ("CARDS_AUTH_THROTTLE_V4_PREFIX", "auth_throttle_v4_prefix", int, 8, 32),
    ("CARDS_AUTH_THROTTLE_V6_PREFIX", "auth_throttle_v6_prefix", int, 32, 128),
    ("CARDS_JWT_MAX_LIFETIME_S", "jwt_max_lifetime_s", float, 1, None),
    ("CARDS_RATE_LIMIT_RPS", "rate_limit_rps", float, 0, None),
    ("CARDS_RATE_LIMIT_BURST", "rate_limit_burst", int, 1, None),
    ("CARDS_TENANT_POOL_SHARE", "tenant_pool_share", float, 0.01, 1),
    ("CARDS_SESSION_TTL_S", "session_ttl_s", float, 1, 30 * 86400),
    ("CARDS_WORKERS", "workers", int, 1, 256),
    ("CARDS_SEARCH_INDEX_INTERVAL_S", "search_index_interval_s", float, 0.01, 60),
)
