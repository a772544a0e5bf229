"""Fairness between tenants: a rate limit shared by every gateway, and a cap on the database
connections one tenant may hold at once in this process.

The rate limit's count lives in PostgreSQL (`cards.take_request_tokens`, a GCRA row per tenant), so
every gateway instance draws from the same budget. Asking it on every request would cost a round
trip each; instead a gateway takes a small lease of requests (1/20 of the tenant's rate, at least
one, at most its burst) and spends it locally for at most a second. All gateways together can
therefore run ahead of the limit by at most one lease each."""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from .errors import Problem

LEASE_SHARE = 1 / 20  # of the tenant's rate per second: a lease lasts ~50 ms at full speed
LEASE_TTL_S = 1.0  # what is left of a lease is dropped after this (it was counted already)
MAX_TENANTS = 100_000  # tenants remembered per process; the least recently seen goes first


@dataclass
class Grant:
    """What `cards.take_request_tokens` answered."""

    granted: int
    remaining: int
    reset_s: float
    retry_after_s: float | None
    requests_per_second: float
    burst: int


Take = Callable[[uuid.UUID, int], Awaitable[Grant]]


@dataclass
class _Lease:
    left: int = 0
    expires: float = 0.0
    shared_remaining: int = 0  # what the shared budget had left when the lease was taken
    reset_at: float = 0.0
    rps: float = 0.0
    burst: int = 0
    denied_until: float = 0.0  # spent: refused here, without asking the database, until then
    refill: asyncio.Lock = field(default_factory=asyncio.Lock)  # one refill at a time per tenant


@dataclass(frozen=True)
class Quota:
    """The headers of one answer: RateLimit-Policy and RateLimit (IETF httpapi draft)."""

    burst: int
    window_s: int
    remaining: int
    reset_s: int

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Policy": f'"tenant";q={self.burst};w={self.window_s}',
            "RateLimit": f'"tenant";r={self.remaining};t={self.reset_s}',
        }


class RateLimiter:
    def __init__(self, take: Take, default_rps: float, default_burst: int) -> None:
        self._take, self._rps, self._burst = take, default_rps, default_burst
        self._leases: dict[uuid.UUID, _Lease] = {}
        # What an answer that spent nothing says (a 401 names no tenant; a 403 is refused first):
        # the default policy, whole.
        self.unspent = Quota(default_burst, max(1, math.ceil(default_burst / default_rps)), default_burst, 0)

    async def acquire(self, tenant: uuid.UUID) -> Quota:
        """One request of the tenant's budget, or a 429 problem (with Retry-After and the headers)."""
        now = time.monotonic()
        lease = self._lease(tenant, now)
        if lease.left <= 0 or lease.expires <= now:
            async with lease.refill:  # the requests waiting here spend what the refill brings
                now = time.monotonic()
                if lease.left <= 0 or lease.expires <= now:
                    if now >= lease.denied_until:
                        await self._refill(tenant, lease, now)
                    if lease.left <= 0:
                        raise self._spent(lease, now)
        lease.left -= 1
        return self._quota(lease, now)

    async def _refill(self, tenant: uuid.UUID, lease: _Lease, now: float) -> None:
        rps, burst = lease.rps or self._rps, lease.burst or self._burst  # the defaults until it is known
        wanted = max(1, min(burst, math.ceil(rps * LEASE_SHARE)))
        grant = await self._take(tenant, wanted)
        lease.rps, lease.burst = grant.requests_per_second, grant.burst
        lease.left, lease.expires = grant.granted, now + LEASE_TTL_S
        lease.shared_remaining, lease.reset_at = grant.remaining, now + grant.reset_s
        if grant.granted <= 0:
            lease.denied_until = now + (grant.retry_after_s or 0)

    def _spent(self, lease: _Lease, now: float) -> Problem:
        retry = max(1, math.ceil(lease.denied_until - now))
        return Problem(
            "rate-limited",
            f"this tenant's rate limit ({lease.rps:g} requests per second, burst {lease.burst}) is spent; "
            f"retry in {retry} s",
            headers={"Retry-After": str(retry)} | self._quota(lease, now).headers(),
        )

    def _lease(self, tenant: uuid.UUID, now: float) -> _Lease:
        lease = self._leases.pop(tenant, None)  # re-inserted last: least recently seen first
        if lease is None:
            lease = _Lease()
            while len(self._leases) >= MAX_TENANTS:
                del self._leases[next(iter(self._leases))]
        self._leases[tenant] = lease
        return lease

    @staticmethod
    def _quota(lease: _Lease, now: float) -> Quota:
        return Quota(
            burst=lease.burst,
            window_s=max(1, math.ceil(lease.burst / lease.rps)) if lease.rps else 1,
            remaining=max(0, lease.shared_remaining + max(lease.left, 0)),
            reset_s=max(0, math.ceil(lease.reset_at - now)),
        )


class TenantSlots:
    """At most `cap` database calls of one tenant at once in this process, so that one tenant
    cannot hold the whole pool: its excess waits for its own slots (at most `timeout` seconds, the
    pool's own wait, then 503 like a pool that has no connection free), and other tenants' requests
    still find a connection."""

    def __init__(self, cap: int, timeout: float) -> None:
        self.cap, self._timeout = cap, timeout
        self._slots: dict[uuid.UUID, asyncio.Semaphore] = {}
        self._users: dict[uuid.UUID, int] = {}

    async def take(self, tenant: uuid.UUID) -> None:
        """One of the tenant's slots; `give` it back when the call is done. A free slot is taken at
        once (no timer: that is every request but those of a tenant at its cap)."""
        slots = self._slots.get(tenant)
        if slots is None:
            slots = self._slots[tenant] = asyncio.Semaphore(self.cap)
        self._users[tenant] = self._users.get(tenant, 0) + 1
        try:
            if slots.locked():
                async with asyncio.timeout(self._timeout):
                    await slots.acquire()
            else:
                await slots.acquire()  # does not suspend: a slot is free
        except TimeoutError:
            self._left(tenant)
            raise Problem(
                "service-unavailable",
                f"this tenant's {self.cap} connections (its share of the pool) stayed busy; retry",
            ) from None
        except BaseException:  # cancelled while waiting
            self._left(tenant)
            raise

    def give(self, tenant: uuid.UUID) -> None:
        self._slots[tenant].release()
        self._left(tenant)

    def _left(self, tenant: uuid.UUID) -> None:
        self._users[tenant] -= 1
        if not self._users[tenant]:  # nobody holds or waits: forget it
            del self._users[tenant], self._slots[tenant]
