"""Give the gateway a login role of its own, after the migrations have run.

The migrations create `cards_gateway` (execute the endpoint functions, nothing else) but
no role that can log in with a password. This one-shot creates or updates the login
role named by CARDS_GATEWAY_DB_USER with the password CARDS_GATEWAY_DB_PASSWORD and
makes it a member of `cards_gateway`, so the gateway never connects as a superuser.

    DATABASE_URL=postgresql://postgres:...@postgres/cards \
    CARDS_GATEWAY_DB_USER=cards_app CARDS_GATEWAY_DB_PASSWORD=... \
    python deploy/ensure_login_role.py

docker-compose.yml runs it in the `migrate` service right after `python -m gateway.migrate`.
"""

from __future__ import annotations

import asyncio
import os
import sys

import asyncpg


async def ensure(dsn: str, user: str, password: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            exists = await conn.fetchval("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1", user)
            # format(%I, %L) quotes the name and the password; nothing is spliced by hand.
            statement = await conn.fetchval(
                "SELECT format('%s ROLE %I WITH LOGIN INHERIT NOSUPERUSER NOCREATEDB "
                "NOCREATEROLE NOBYPASSRLS PASSWORD %L', $1::text, $2::text, $3::text)",
                "ALTER" if exists else "CREATE",
                user,
                password,
            )
            await conn.execute(statement)
            await conn.execute(
                await conn.fetchval("SELECT format('GRANT cards_gateway TO %I', $1::text)", user)
            )
    finally:
        await conn.close()
    return "updated" if exists else "created"


def main() -> None:
    dsn = os.environ.get("DATABASE_URL")
    user = os.environ.get("CARDS_GATEWAY_DB_USER", "cards_app")
    password = os.environ.get("CARDS_GATEWAY_DB_PASSWORD")
    if not dsn or not password:
        sys.exit("set DATABASE_URL (an administrator's DSN) and CARDS_GATEWAY_DB_PASSWORD")
    outcome = asyncio.run(ensure(dsn, user, password))
    print(f"login role {user}: {outcome}, member of cards_gateway")


if __name__ == "__main__":
    main()
