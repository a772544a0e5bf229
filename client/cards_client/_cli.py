"""The `cards` command: import a file of cards, export cards as JSON lines, read one card, report
a use. `cards --help` and `cards COMMAND --help` say how.

Exit status: 0 success (for `import`: every row stored); 1 a failure (for `import`: a row was
refused, by this command while parsing the file or by the API); 2 a usage error (bad arguments,
no API key, a file that cannot be read or whose format is unknown)."""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NoReturn

from . import _types
from ._errors import CardsError
from ._sync import CardsClient
from ._version import __version__

CSV_COLUMNS = ("title", "kind", "content", "tags", "metadata")
# What `export` writes besides the card input: dropped again by `import`, so that an export can be
# imported into another tenant as it is.
COMPUTED_FIELDS = frozenset(_types.COMPUTED_FIELDS)


class UsageError(Exception):
    """Exit 2."""


@dataclass(frozen=True, slots=True)
class Refused:
    where: str  # "line 7", "row 3", "item 2"
    message: str


# --- reading files: (where, card input or Refused), one row at a time ---


class _CountingReader(io.RawIOBase):
    """A binary file that counts the bytes read from it, for the progress bar."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw, self.count = raw, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.raw.read(len(buffer))
        buffer[: len(data)] = data
        self.count += len(data)
        return len(data)


def _card_object(where: str, value: Any) -> dict[str, Any] | Refused:
    if not isinstance(value, dict):
        return Refused(where, f"not a JSON object but {type(value).__name__}")
    return {k: v for k, v in value.items() if k not in COMPUTED_FIELDS}


def read_jsonl(text: IO[str]) -> Iterator[tuple[str, dict[str, Any] | Refused]]:
    for number, line in enumerate(text, start=1):
        if not line.strip():
            continue
        where = f"line {number}"
        try:
            value = json.loads(line)
        except ValueError as exc:
            yield where, Refused(where, f"not JSON: {exc}")
            continue
        yield where, _card_object(where, value)


_SPACE = re.compile(r"[ \t\n\r]*")
MAX_ITEM_CHARS = 64 << 20


def read_json_array(text: IO[str], block: int = 1 << 16) -> Iterator[tuple[str, dict[str, Any] | Refused]]:
    """The items of a JSON array, decoded one at a time as the file is read (never the whole file:
    the buffer holds about one block, or one item if an item is larger)."""
    decoder = json.JSONDecoder()
    buffer, pos, eof = "", 0, False

    def more() -> bool:
        """Read on (dropping what was decoded); False at the end of the file."""
        nonlocal buffer, pos, eof
        if eof:
            return False
        data = text.read(max(block, len(buffer) - pos))
        eof = not data
        buffer, pos = buffer[pos:] + data, 0
        return bool(data)

    def next_char() -> str:
        """The next character that is not white space ('' at the end of the file), not consumed."""
        nonlocal pos
        while True:
            pos = _SPACE.match(buffer, pos).end()  # type: ignore[union-attr]
            if pos < len(buffer) or not more():
                return buffer[pos : pos + 1]

    def decode() -> Any:
        """The JSON value at pos, reading on while it may be incomplete."""
        nonlocal pos
        while True:
            try:
                value, end = decoder.raw_decode(buffer, pos)
            except ValueError as exc:
                if more():
                    continue
                raise UsageError(f"item {number + 1}: not JSON: {exc}") from None
            after = _SPACE.match(buffer, end).end()  # type: ignore[union-attr]
            # An item ends at ',' or ']'. Anything else may be the item going on in the next block
            # ("1" of "1e5"); read on (up to a bound), and let the caller name the error at the end.
            if buffer[after : after + 1] not in (",", "]") and len(buffer) - pos < MAX_ITEM_CHARS and more():
                continue
            pos = end
            return value

    if next_char() != "[":
        raise UsageError("a .json file must hold one JSON array of cards")
    pos += 1
    number = 0
    while True:
        char = next_char()
        if char == "]":
            pos += 1
            if next_char():
                raise UsageError("the JSON array is followed by more text")
            return
        if not char:
            raise UsageError("the JSON array is not closed")
        if number:
            if char != ",":
                raise UsageError(f"after item {number}: expected ',' or ']'")
            pos += 1
            if not next_char():
                raise UsageError("the JSON array is not closed")
        value = decode()
        number += 1
        yield f"item {number}", _card_object(f"item {number}", value)


def read_csv(text: IO[str]) -> Iterator[tuple[str, dict[str, Any] | Refused]]:
    reader = csv.DictReader(text)
    columns = reader.fieldnames or []
    unknown = [c for c in columns if c not in CSV_COLUMNS]
    if unknown or "title" not in columns or "content" not in columns:
        raise UsageError(
            f"CSV columns must be among {', '.join(CSV_COLUMNS)} (title and content required); "
            f"got {', '.join(columns) or 'none'}"
        )
    for number, row in enumerate(reader, start=2):  # the header is row 1
        where = f"row {number}"
        if None in row:
            yield where, Refused(where, "more cells than columns")
            continue
        card: dict[str, Any] = {"title": row["title"] or ""}
        content = row.get("content") or ""
        if content:  # an empty cell gives no content: the API names the row
            try:
                card["content"] = json.loads(content)
            except ValueError:
                card["content"] = content  # plain text: the content is that string
        if row.get("kind"):
            card["kind"] = row["kind"]
        if row.get("tags"):
            card["tags"] = [t.strip() for t in row["tags"].split(",") if t.strip()]
        if row.get("metadata"):
            try:
                card["metadata"] = json.loads(row["metadata"])
            except ValueError as exc:
                yield where, Refused(where, f"metadata: not JSON: {exc}")
                continue
        yield where, card


READERS = {".jsonl": read_jsonl, ".ndjson": read_jsonl, ".json": read_json_array, ".csv": read_csv}


# --- the progress bar ---


class ProgressBar:
    """One line on a terminal, redrawn at most ten times a second: rows, share of the file, rate."""

    def __init__(self, stream: IO[str], counter: _CountingReader, size: int) -> None:
        self.stream, self.counter, self.size = stream, counter, size
        self.started = time.monotonic()
        self.drawn = float("-inf")
        self.last: _types.ImportReport | None = None

    def __call__(self, report: _types.ImportReport, *, force: bool = False) -> None:
        self.last = report
        now = time.monotonic()
        if now - self.drawn < 0.1 and not force:
            return
        self.drawn = now
        share = min(1.0, self.counter.count / self.size) if self.size else 0.0
        bar = "#" * int(share * 30)
        rate = report.rows / max(now - self.started, 1e-6)
        self.stream.write(f"\r[{bar:<30}] {share:4.0%} {report.rows:,} rows {rate:,.0f}/s")
        self.stream.flush()

    def close(self) -> None:
        """The final state stays on screen."""
        if self.last is not None:
            self(self.last, force=True)
            self.stream.write("\n")
            self.stream.flush()


# --- commands ---


def cmd_import(client: CardsClient, args: argparse.Namespace) -> int:
    path = Path(args.file)
    reader = READERS.get((args.format and f".{args.format}") or path.suffix.lower())
    if reader is None:
        raise UsageError(f"{path}: unknown file type (use .jsonl, .json or .csv, or --format)")
    try:
        raw = open(path, "rb")
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror}") from None
    with raw:
        counter = _CountingReader(raw)
        text = io.TextIOWrapper(io.BufferedReader(counter), encoding="utf-8-sig", newline="")
        refused: list[Refused] = []
        where_of: list[str] = []  # input position -> where in the file

        def rows() -> Iterator[dict[str, Any]]:
            try:
                for where, row in reader(text):
                    if isinstance(row, Refused):
                        refused.append(row)
                    else:
                        where_of.append(where)
                        yield row
            except UnicodeDecodeError as exc:
                raise UsageError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
            except csv.Error as exc:
                raise UsageError(f"{path}: {exc}") from None

        bar = ProgressBar(sys.stderr, counter, path.stat().st_size) if sys.stderr.isatty() else None
        try:
            report = client.import_cards(
                rows(),
                chunk_size=args.chunk_size,
                key_prefix=args.key_prefix,
                progress=bar,
                skip_invalid=True,
            )
        except CardsError as exc:
            print(f"cards: {exc}", file=sys.stderr)
            print(
                "cards: the chunks stored before this are kept; run the same import again (with the same"
                " --key-prefix, if one was given) and they are replayed, not created twice",
                file=sys.stderr,
            )
            return 1
        finally:
            if bar is not None:
                bar.close()
    for rejected in report.rejected:
        for item in rejected.errors or [{"message": "refused"}]:
            field = f"{item['field']}: " if item.get("field") else ""
            refused.append(Refused(where_of[rejected.index], f"{field}{item.get('message', '')}"))
    for row in sorted(refused, key=lambda r: int(r.where.split()[1])):
        print(f"{path}: {row.where}: {row.message}", file=sys.stderr)
    failed = len({r.where for r in refused})
    stored = report.rows - len(report.rejected)
    print(
        f"created {report.created}, duplicates {report.duplicates}, stored {stored}, refused {failed} "
        f"({report.chunks} chunks, {report.replayed_chunks} replayed)"
    )
    return 1 if failed else 0


def cmd_export(client: CardsClient, args: argparse.Namespace) -> int:
    contains = _json_arg(args.contains, "--contains") if args.contains else None
    for card in client.list(kind=args.kind, tags=args.tag or (), contains=contains, q=args.q, page_size=200):
        sys.stdout.write(json.dumps(card.to_dict(), ensure_ascii=False) + "\n")
    return 0


def cmd_get(client: CardsClient, args: argparse.Namespace) -> int:
    print(json.dumps(client.get(args.id).to_dict(), ensure_ascii=False))
    return 0


def cmd_usage(client: CardsClient, args: argparse.Namespace) -> int:
    metadata = _json_arg(args.metadata, "--metadata") if args.metadata else None
    result = client.track_usage(args.id, workflow_id=args.workflow_id, run_id=args.run_id, metadata=metadata)
    doc = {
        "card_id": result.card_id,
        "usage_count": result.usage_count,
        "deduplicated": result.deduplicated,
        "recorded_at": _types.format_time(result.recorded_at),
    }
    print(json.dumps(doc))
    return 0


def _chunk_size(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError("must be 1 to 1000")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return value


def _json_arg(text: str, name: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{name}: not JSON: {exc}") from None


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        raise SystemExit(f"{self.prog}: error: {message}") from None


def parser() -> argparse.ArgumentParser:
    connection = _Parser(add_help=False)
    connection.add_argument(
        "--base-url", default=argparse.SUPPRESS, help="the API (default: $CARDS_BASE_URL)"
    )
    connection.add_argument(
        "--api-key", default=argparse.SUPPRESS, help="API key or JWT (default: $CARDS_API_KEY)"
    )
    connection.add_argument("--timeout", type=_seconds, default=argparse.SUPPRESS, help="seconds per request")
    top = _Parser(prog="cards", description=__doc__, parents=[connection])
    top.add_argument("--version", action="version", version=f"cards-client {__version__}")
    commands = top.add_subparsers(dest="command", required=True, parser_class=_Parser)

    imp = commands.add_parser(
        "import", parents=[connection], help="create the cards of a .jsonl, .json or .csv file"
    )
    imp.add_argument("file", help="a .jsonl, .json (one array) or .csv file of cards")
    imp.add_argument(
        "--format", choices=("jsonl", "json", "csv"), help="the file's format (default: its suffix)"
    )
    imp.add_argument(
        "--chunk-size", type=_chunk_size, default=1000, help="cards per request (1-1000, default 1000)"
    )
    imp.add_argument("--key-prefix", help="idempotency key prefix (default: derived from the file's content)")
    imp.set_defaults(run=cmd_import)

    exp = commands.add_parser("export", parents=[connection], help="every matching card as JSON lines")
    exp.add_argument("--tag", action="append", help="cards carrying this tag (repeat: all of them)")
    exp.add_argument("--kind")
    exp.add_argument("--q", help="full-text search over title and content")
    exp.add_argument("--contains", help="a JSON object the metadata must contain")
    exp.set_defaults(run=cmd_export)

    get = commands.add_parser("get", parents=[connection], help="one card as JSON")
    get.add_argument("id", help="the card's id")
    get.set_defaults(run=cmd_get)

    use = commands.add_parser("usage", parents=[connection], help="report that a workflow run used a card")
    use.add_argument("id", help="the card's id")
    use.add_argument("--workflow-id", required=True)
    use.add_argument("--run-id", required=True)
    use.add_argument("--metadata", help="a JSON object stored with the report")
    use.set_defaults(run=cmd_usage)
    return top


def main(argv: list[str] | None = None) -> int:
    try:
        args = parser().parse_args(argv)
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
            return 2
        return exc.code or 0  # --help, --version
    try:
        if not (getattr(args, "api_key", None) or os.environ.get("CARDS_API_KEY")):
            raise UsageError("no API key: give --api-key or set CARDS_API_KEY")
        options = {"timeout": args.timeout} if getattr(args, "timeout", None) else {}
        with CardsClient(
            getattr(args, "base_url", None), getattr(args, "api_key", None), **options
        ) as client:
            return int(args.run(client, args))
    except UsageError as exc:
        print(f"cards: error: {exc}", file=sys.stderr)
        return 2
    except CardsError as exc:
        print(f"cards: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `cards export | head`: the reader has what it wanted
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
