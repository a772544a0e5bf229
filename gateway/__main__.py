"""`python -m gateway`: serve on $PORT with uvloop until SIGINT/SIGTERM, then drain and exit."""

from __future__ import annotations

import asyncio
import logging
import sys

import asyncpg
import uvloop
from aiohttp import web

from .app import init_app
from .config import Config, ConfigError
from .logs import configure


def main() -> None:
    try:
        config = Config.from_env()
    except ConfigError as exc:
        sys.exit(f"cards gateway: {exc}")
    configure(config.log_level)
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    log = logging.getLogger("cards.gateway")
    try:
        web.run_app(
            init_app(config),
            host=config.host,
            port=config.port,
            loop=loop,
            access_log=None,  # the middleware writes one JSON line per request instead
            shutdown_timeout=config.shutdown_timeout_s,
            # once the pool is open
            print=lambda _: log.info("serving", extra={"host": config.host or "*", "port": config.port}),
        )
    except (OSError, asyncpg.PostgresError) as exc:
        sys.exit(f"cards gateway: cannot start: {exc}")


if __name__ == "__main__":
    main()
