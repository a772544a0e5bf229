"""An HTTP/1.1 proxy for fault tests: it forwards each request whole to the gateway and reads the
gateway's whole answer; for a request it was told to lose, it then closes the client's connection
instead of passing the answer on. The server has done the work; the client never hears of it."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    lost: bool


def _read_message(reader) -> tuple[bytes, dict[str, str], bytes] | None:
    """A request or answer: its head, its header fields (lower-case names), its body."""
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        line = reader.readline()
        if not line:
            return None
        head += line
    fields = {}
    for line in head.decode("latin-1").split("\r\n")[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
    body = reader.read(int(fields.get("content-length", "0")))
    return head, fields, body


class LossyProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.seen: list[Seen] = []
        self._to_lose: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def lose_next(self, method: str, path_prefix: str) -> None:
        """Lose the answer to the next request of `method` whose path starts with `path_prefix`."""
        with self._lock:
            self._to_lose.append((method, path_prefix))

    def sent(self, method: str, path_prefix: str = "/") -> list[Seen]:
        return [s for s in self.seen if s.method == method and s.path.startswith(path_prefix)]

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _lose(self, method: str, path: str) -> bool:
        with self._lock:
            for rule in self._to_lose:
                if method == rule[0] and path.startswith(rule[1]):
                    self._to_lose.remove(rule)
                    return True
        return False

    def _serve(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as reader:
            while (request := _read_message(reader)) is not None:
                head, fields, body = request
                method, path = head.split(b" ", 2)[:2]
                lost = self._lose(method.decode(), path.decode())
                self.seen.append(Seen(method.decode(), path.decode(), fields, lost))
                with socket.create_connection(("127.0.0.1", self.upstream_port)) as upstream:
                    upstream.sendall(head + body)
                    with upstream.makefile("rb") as answers:
                        answer = _read_message(answers)
                if answer is None or lost:
                    conn.shutdown(socket.SHUT_RDWR)
                    return
                conn.sendall(answer[0] + answer[2])
