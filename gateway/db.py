"""The asyncpg pool: every connection acts as `cards_gateway`, and a call is one round trip."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from .config import Config
from .errors import DatabaseTimeout, DatabaseUnavailable
from .limits import TenantSlots

GATEWAY_ROLE = "cards_gateway"
# The server's statement_timeout ends a slow statement with an answer (57014). A server that does
# not answer at all (a frozen host, a network that drops packets) is given up on this much later.
COMMAND_GRACE_S = 1.0


def session_settings(config: Config, application_name: str) -> dict:
    """What every connection of the gateway's is opened with (the pool's and the search
    indexer's): the gateway's role, even when DATABASE_URL is an owner's or a superuser's DSN
    (least privilege), and the statement timeout, with a later client-side one for a server
    that does not answer at all."""
    return {
        "command_timeout": config.statement_timeout_ms / 1000 + COMMAND_GRACE_S,
        "server_settings": {
            "role": GATEWAY_ROLE,
            "statement_timeout": str(config.statement_timeout_ms),
            "application_name": application_name,
        },
    }


async def json_as_bytes(conn: asyncpg.Connection) -> None:
    """`json` values arrive as the bytes PostgreSQL sent, which the gateway sends on as they are:
    decoding them to str and encoding them again cost two copies of every answer."""
    await conn.set_type_codec("json", schema="pg_catalog", encoder=bytes, decoder=bytes, format="binary")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release a connection as it is. asyncpg's default reset (RESET ALL, UNLISTEN *, …) costs a
    round trip per request; ours leave no session state behind: each call is one autocommit
    statement, and the role comes from the startup packet, which RESET ALL would not undo anyway."""


class Database:
    """The pool, the count of requests waiting for one of its connections, and each tenant's share
    of it (`slots`: a tenant's calls hold one while they run)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.waiters = 0
        self.pool: asyncpg.Pool | None = None
        self.slots = TenantSlots(config.tenant_pool_cap, config.pool_timeout_s)

    async def open(self) -> None:
        c = self.config
        self.pool = await asyncpg.create_pool(
            c.database_url,
            min_size=c.pool_min,
            max_size=c.pool_max,
            reset=_keep_session,
            init=json_as_bytes,
            **session_settings(c, "cards-gateway"),
        )

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()

    async def call(self, query: str, tenant: uuid.UUID, *args: object) -> asyncpg.Record:
        """`query(tenant, *args)` within the tenant's share of the pool (`slots`): what every request
        made for a tenant runs through, the API's and the Card Center's alike."""
        await self.slots.take(tenant)
        try:
            return await self.fetchrow(query, tenant, *args)
        finally:
            self.slots.give(tenant)

    async def fetchrow(self, query: str, *args: object) -> asyncpg.Record:
        """Runs one statement on a pooled connection: one round trip once the statement is prepared.
        Connecting, waiting for a free connection and the statement itself are each bounded: no
        connection in time or a lost one is `DatabaseUnavailable` (503), no answer `DatabaseTimeout`."""
        assert self.pool is not None, "the pool opens in the app's cleanup context"
        self.waiters += 1
        try:
            # asyncio.timeout, not acquire(timeout=): asyncpg's wait_for makes a task per call.
            async with asyncio.timeout(self.config.pool_timeout_s):
                conn = await self.pool.acquire()
        except (OSError, TimeoutError) as exc:
            raise DatabaseUnavailable(repr(exc)) from exc
        finally:
            self.waiters -= 1
        try:
            return await conn.fetchrow(query, *args)
        except TimeoutError as exc:
            conn.terminate()  # it did not answer: never hand it out again
            raise DatabaseTimeout(repr(exc)) from exc
        except OSError as exc:
            raise DatabaseUnavailable(repr(exc)) from exc
        except asyncpg.InterfaceError as exc:
            if not conn.is_closed():
                raise  # a misuse of the connection, not an outage
            raise DatabaseUnavailable(repr(exc)) from exc
        finally:
            await self.pool.release(conn)
