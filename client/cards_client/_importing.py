"""`import_cards` without I/O: chunking, the idempotency key of each chunk, rows the API refuses,
and the report. Both clients drive `ImportRun.chunk` the same way: send each Call it yields, pass
back the result (or throw in the ValidationError), until it returns."""

from __future__ import annotations

import builtins
import hashlib
import itertools
from collections.abc import AsyncIterable, AsyncIterator, Callable, Generator, Iterable, Iterator, Mapping
from typing import Any

from ._core import Call, Core, card_input, dumps
from ._errors import ValidationError
from ._types import BatchResult, Card, ImportReport, RejectedRow

MAX_CHUNK = 1000  # the API's batch limit
Row = Mapping[str, Any] | Card
Progress = Callable[[ImportReport], None]


def chunks(rows: Iterable[Row], size: int) -> Iterator[builtins.list[Row]]:
    iterator = iter(rows)
    while chunk := builtins.list(itertools.islice(iterator, size)):
        yield chunk


async def achunks(rows: Iterable[Row] | AsyncIterable[Row], size: int) -> AsyncIterator[builtins.list[Row]]:
    if not isinstance(rows, AsyncIterable):
        for chunk in chunks(rows, size):
            yield chunk
        return
    pending: builtins.list[Row] = []
    async for row in rows:
        pending.append(row)
        if len(pending) == size:
            yield pending
            pending = []
    if pending:
        yield pending


class ImportRun:
    """One `import_cards` call. Chunk n (from 0) is sent with the key `f"{key_prefix}-{n}"`; without
    a key_prefix, with `f"import-{chain_n}-{n}"`, where chain_n is a SHA-256 over the bodies of
    chunks 0..n (each chunk's hash folded into the previous one). So the key of a chunk depends on
    the content of everything read up to and including it — never on what has not been read yet,
    which keeps the import streaming — and running the same input again gives every chunk the key
    it had, so the API replays each chunk done before and creates nothing twice."""

    def __init__(
        self,
        core: Core,
        *,
        chunk_size: int,
        key_prefix: str | None,
        progress: Progress | None,
        skip_invalid: bool,
    ) -> None:
        if not 1 <= chunk_size <= MAX_CHUNK:
            raise ValueError(f"chunk_size must be 1 to {MAX_CHUNK} (the API's batch limit)")
        self.core = core
        self.chunk_size = chunk_size
        self.key_prefix = key_prefix
        self.progress = progress
        self.skip_invalid = skip_invalid
        self.report = ImportReport()
        self._chain = hashlib.sha256(b"cards-client import v1").digest()

    def _key(self, body: bytes) -> str:
        n = self.report.chunks
        if self.key_prefix is not None:
            return f"{self.key_prefix}-{n}"
        self._chain = hashlib.sha256(self._chain + hashlib.sha256(body).digest()).digest()
        return f"import-{self._chain.hex()[:40]}-{n}"

    def chunk(self, rows: builtins.list[Row]) -> Generator[Call[BatchResult], BatchResult, None]:
        """The calls that store one chunk; updates the report."""
        offset = self.report.rows
        items = [card_input(row) for row in rows]
        body = dumps({"cards": items})
        key = self._key(body)
        sending = builtins.list(range(len(items)))  # positions in the chunk still sent
        refused: dict[int, builtins.list[dict[str, Any]]] = {}
        while True:
            try:
                result = yield self.core.batch_call(body, key if not refused else _reduced_key(key, refused))
            except ValidationError as exc:
                rows_named = exc.errors and all(
                    isinstance(e.get("index"), int) and 0 <= e["index"] < len(sending) for e in exc.errors
                )
                if not self.skip_invalid or not rows_named:
                    for item in exc.errors:  # name input rows, not positions in the chunk
                        if isinstance(item.get("index"), int) and item["index"] < len(sending):
                            item["index"] = offset + sending[item["index"]]
                    exc.import_report = self.report  # type: ignore[attr-defined]
                    raise
                for item in exc.errors:
                    refused.setdefault(sending[item["index"]], []).append(item)
                sending = [i for i in sending if i not in refused]
                if not sending:
                    result = None
                    break
                body = dumps({"cards": [items[i] for i in sending]})
                continue
            break
        ids: builtins.list[str | None] = [None] * len(items)
        if result is not None:
            for created in result.cards:
                ids[sending[created.index]] = created.id
            if result.replayed:
                self.report.replayed_chunks += 1
            else:
                self.report.created += result.created
                self.report.duplicates += result.duplicates
        for position in sorted(refused):
            errors = [{k: v for k, v in e.items() if k != "index"} for e in refused[position]]
            self.report.rejected.append(RejectedRow(offset + position, errors))
        self.report.card_ids += ids
        self.report.chunks += 1
        if self.progress is not None:
            self.progress(self.report)


def _reduced_key(key: str, refused: Mapping[int, Any]) -> str:
    """The key of a chunk sent again without the rows the API refused: derived from the chunk's key
    and which rows were left out, so a second run that meets the same refusals sends the same
    reduced chunk with the same key, and the API replays it."""
    left_out = ",".join(str(i) for i in sorted(refused)).encode()
    return f"{key}.{hashlib.sha256(left_out).hexdigest()[:16]}"
