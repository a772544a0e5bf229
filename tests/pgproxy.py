"""A TCP proxy between the gateway and PostgreSQL, for tests: it counts the protocol messages
the gateway sends (a `Sync` or a simple `Query` ends one round trip) and can cut the
database off, as an outage would."""

from __future__ import annotations

import asyncio
import collections
import struct
from urllib.parse import urlsplit

_SSL_OR_GSS_REQUEST = (80877103, 80877104)


class PgProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.sent: collections.Counter[str] = collections.Counter()  # frontend message type -> count
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    async def start(self) -> PgProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def route(self, dsn: str) -> str:
        """`dsn`, but through this proxy (without TLS, so that the messages can be read)."""
        url = urlsplit(dsn)
        netloc = f"{url.netloc.rpartition('@')[0]}@127.0.0.1:{self.port}".lstrip("@")
        return url._replace(netloc=netloc, query="sslmode=disable").geturl()

    @property
    def round_trips(self) -> int:
        return self.sent["S"] + self.sent["Q"]

    async def cut(self) -> None:
        """Refuse new connections and drop the open ones."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.transport.abort()
            return
        self._writers |= {client_w, server_w}
        await asyncio.gather(
            self._pipe(client_r, server_w, count=True), self._pipe(server_r, client_w, count=False)
        )
        self._writers -= {client_w, server_w}

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, count: bool) -> None:
        startup = True
        try:
            while True:
                if count:  # frontend messages: read whole ones, so that each can be counted
                    if startup:
                        head = await reader.readexactly(8)
                        length, code = struct.unpack("!ii", head)
                        startup = code in _SSL_OR_GSS_REQUEST
                        data = head + await reader.readexactly(length - 8)
                    else:
                        head = await reader.readexactly(5)
                        self.sent[chr(head[0])] += 1
                        data = head + await reader.readexactly(struct.unpack("!i", head[1:])[0] - 4)
                else:
                    data = await reader.read(65536)
                    if not data:
                        break
                writer.write(data)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            writer.transport.abort()
