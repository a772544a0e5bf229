"""Settings from the environment, checked once at start-up with a clear error for a bad value."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class ConfigError(ValueError):
    """A setting is missing or has a value the gateway cannot use."""


@dataclass(frozen=True)
class Config:
    database_url: str
    port: int = 8002
    host: str | None = None  # every interface
    jwt_secret: str | None = None
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
    # Card Center (gateway/center/): how long a sign-in lasts at most.
    session_ttl_s: float = 12 * 3600.0

    def __post_init__(self) -> None:
        if self.pool_min > self.pool_max:
            raise ConfigError(
                f"CARDS_DB_POOL_MIN ({self.pool_min}) exceeds CARDS_DB_POOL_MAX ({self.pool_max})"
            )
        if self.jwt_secret is not None and len(self.jwt_secret.encode()) < 32:
            raise ConfigError("CARDS_JWT_SECRET must be at least 32 bytes (HS256 wants a 256-bit key)")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Config:
        env = os.environ if env is None else env
        if not env.get("DATABASE_URL"):
            raise ConfigError("DATABASE_URL is not set (e.g. postgresql://user@host:5432/dbname)")
        level = env.get("CARDS_LOG_LEVEL", "").upper() or "INFO"
        if level not in _LOG_LEVELS:
            raise ConfigError(f"CARDS_LOG_LEVEL must be one of {', '.join(_LOG_LEVELS)}, got {level!r}")
        numbers = {}
        for name, field, kind, low, high in _NUMBERS:
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
            numbers[field] = value
        return cls(
            database_url=env["DATABASE_URL"],
            host=env.get("HOST", "").strip() or None,
            jwt_secret=env.get("CARDS_JWT_SECRET") or None,
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
    ("CARDS_SESSION_TTL_S", "session_ttl_s", float, 1, 30 * 86400),
)
