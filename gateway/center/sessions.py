"""Card Center sessions: a cookie value that names its tenant, stored in PostgreSQL only as a
SHA-256, looked up through `cards.session_principal` and cached here at most a few seconds
(so a revoked key or a suspended tenant ends its sessions within 5 s, as for API keys)."""

from __future__ import annotations

import base64
import dataclasses
import datetime
import hashlib
import hmac
import re
import secrets
import time
import uuid

from ..db import Database

COOKIE = "cards_center"
# cs_<tenant hex>_<43 base64url characters: 256 random bits>, like an API key (ck_…).
_VALUE = re.compile(r"cs_([0-9a-f]{32})_[A-Za-z0-9_-]{43}")

START = "SELECT cards.start_session($1::uuid, $2::bytea, $3::bytea, $4::text[], $5::interval) AS expires_at"
PRINCIPAL = "SELECT key_id, scopes, expires_at FROM cards.session_principal($1::uuid, $2::bytea)"
END = "SELECT cards.end_session($1::uuid, $2::bytea) AS ended"


@dataclasses.dataclass(frozen=True)
class Session:
    tenant: uuid.UUID
    digest: bytes  # SHA-256 of the cookie value: all the database ever sees of it
    scopes: frozenset[str]
    form_token: str  # proves a form came from a page of this session (see form_token)


def form_token(cookie: str) -> str:
    """An HMAC of the session's secret: a page of the session can show it, another site cannot know
    it (the cookie is HttpOnly), and nothing needs storing to check it."""
    mac = hmac.new(cookie.encode(), b"card-center form token", hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


class Sessions:
    """Begins, finds (cached at most `ttl` seconds, at most `size` entries) and ends sessions."""

    def __init__(self, database: Database, lifetime_s: float, ttl: float, size: int = 10_000) -> None:
        self._db, self.lifetime_s, self._ttl, self._size = database, lifetime_s, ttl, size
        self._cache: dict[bytes, tuple[float, Session]] = {}

    async def begin(
        self, tenant: uuid.UUID, key_hash: bytes | None, scopes: tuple[str, ...], not_after: float | None
    ) -> tuple[str, float] | None:
        """A new session for a verified credential: its cookie value and lifetime in seconds; None if
        the key was revoked meanwhile or the credential expires before the session could start."""
        lifetime = self.lifetime_s if not_after is None else min(self.lifetime_s, not_after - time.time())
        if lifetime <= 0:
            return None
        cookie = f"cs_{tenant.hex}_{secrets.token_urlsafe(32)}"
        row = await self._db.fetchrow(
            START, tenant, _digest(cookie), key_hash, list(scopes), datetime.timedelta(seconds=lifetime)
        )
        return None if row["expires_at"] is None else (cookie, lifetime)

    async def find(self, cookie: str | None) -> Session | None:
        match = _VALUE.fullmatch(cookie or "")
        if match is None:
            return None
        digest, now = _digest(cookie), time.monotonic()
        cached = self._cache.pop(digest, None)
        if cached is not None and cached[0] > now:
            self._cache[digest] = cached  # back in as the newest
            return cached[1]
        tenant = uuid.UUID(hex=match[1])
        row = await self._db.fetchrow(PRINCIPAL, tenant, digest)
        if row is None:
            return None
        session = Session(tenant, digest, frozenset(row["scopes"]), form_token(cookie))
        if self._ttl > 0:
            while len(self._cache) >= self._size:
                del self._cache[next(iter(self._cache))]
            self._cache[digest] = (now + self._ttl, session)
        return session

    async def end(self, session: Session) -> None:
        self._cache.pop(session.digest, None)
        await self._db.fetchrow(END, session.tenant, session.digest)


def _digest(cookie: str) -> bytes:
    return hashlib.sha256(cookie.encode()).digest()
