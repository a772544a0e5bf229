"""What bounds the numbers: pg_stat_statements per operation (nested statements included,
the cluster tracks `all`), EXPLAIN ANALYZE of every statement inside one call of each
endpoint function (auto_explain with nested statements), and py-spy on the gateway."""

from __future__ import annotations

import asyncio
import random
import re
import shutil
import subprocess
import uuid
from collections import Counter
from pathlib import Path

import asyncpg

from .datagen import TOPICS, topic
from .measure import BENCH

TOP_STATEMENTS = """
SELECT
    s.toplevel,
    s.calls,
    round(s.mean_exec_time::numeric, 3)::float8 AS mean_ms,
    round(s.total_exec_time::numeric, 1)::float8 AS total_ms,
    round((100 * s.total_exec_time
        / nullif(sum(s.total_exec_time) FILTER (WHERE s.toplevel) OVER (), 0))::numeric, 1)::float8
        AS pct_of_toplevel,
    regexp_replace(left(s.query, 500), '\\s+', ' ', 'g') AS query
FROM pg_stat_statements AS s
WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
    AND s.query NOT ILIKE '%pg_stat_statements%'
ORDER BY s.total_exec_time DESC
LIMIT $1
"""


async def reset_statements(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_stat_statements_reset()")
    finally:
        await conn.close()


async def top_statements(dsn: str, limit: int = 8) -> list[dict]:
    conn = await asyncpg.connect(dsn)
    try:
        return [dict(r) for r in await conn.fetch(TOP_STATEMENTS, limit)]
    finally:
        await conn.close()


# --- EXPLAIN ANALYZE of the statements inside one call ---

_CALLS = {
    "retrieve": "SELECT cards.retrieve_request($1::uuid, $2::bytea)",
    "usage": "SELECT * FROM cards.track_usage_request($1::uuid, $2::text, $3::bytea)",
    "batch": "SELECT * FROM cards.batch_create_request($1::uuid, $2::bytea, $3::text)",
    "list_tag": "SELECT cards.list_cards($1::uuid, NULL, ARRAY[$2::text], NULL, NULL, NULL, NULL)",
    "list_contains": "SELECT cards.list_cards($1::uuid, NULL, NULL, $2::text, NULL, NULL, NULL)",
}


async def _args(conn: asyncpg.Connection, op: str) -> tuple:
    tenant = await conn.fetchval("SELECT tenant_id FROM bench.tenants WHERE tenant_no = 1")
    if op == "retrieve":
        ids = await conn.fetchval(
            "SELECT json_agg(card_id)::text FROM (SELECT card_id FROM bench.ids WHERE tenant_no = 1"
            " ORDER BY random() LIMIT 50) AS s"
        )
        return tenant, ('{"ids": ' + ids + "}").encode()
    if op == "usage":
        card = await conn.fetchval(
            "SELECT card_id::text FROM bench.ids WHERE tenant_no = 1 ORDER BY random() LIMIT 1"
        )
        return tenant, card, f'{{"workflow_id": "explain", "run_id": "{uuid.uuid4()}"}}'.encode()
    if op == "list_tag":
        return tenant, topic(random.randrange(TOPICS))
    if op == "list_contains":
        per_tenant = await conn.fetchval("SELECT max(n) FROM bench.ids WHERE tenant_no = 1")
        return tenant, f'{{"n": {random.randint(1, per_tenant)}}}'
    content = (BENCH / "payloads" / "content-1k.json").read_text().strip()
    token = uuid.uuid4().hex
    cards = ", ".join(
        f'{{"title": "explain {token} {i}", "tags": ["bench", "batch", "{topic(i)}"], "content": {content}}}'
        for i in range(100)
    )
    return tenant, f'{{"cards": [{cards}]}}'.encode(), f"explain-{token}"


_DURATION = re.compile(r"duration: ([0-9.]+) ms")


async def explain_calls(dsn: str) -> dict[str, list[dict]]:
    """For each endpoint: every statement run inside one warm call, slowest first, with its plan."""
    conn = await asyncpg.connect(dsn)
    plans: dict[str, list[dict]] = {}
    try:
        await conn.execute(
            "LOAD 'auto_explain'; SET auto_explain.log_min_duration = 0; SET auto_explain.log_analyze = on;"
            " SET auto_explain.log_buffers = on; SET auto_explain.log_timing = on;"
            " SET auto_explain.log_nested_statements = on"
        )
        for op, sql in _CALLS.items():
            args = await _args(conn, op)
            await conn.fetch(sql, *args)  # warm the plan caches first
            args = await _args(conn, op)
            messages: list[str] = []

            def listener(_conn: object, message: object, sink: list[str] = messages) -> None:
                sink.append(str(getattr(message, "message", message)))

            conn.add_log_listener(listener)
            await conn.execute("SET client_min_messages = log")
            try:
                await conn.fetch(sql, *args)
            finally:
                await conn.execute("RESET client_min_messages")
                conn.remove_log_listener(listener)
            await asyncio.sleep(0)
            found = []
            for text in messages:
                match = _DURATION.search(text)
                if match and "Query Text:" in text:
                    found.append({"ms": float(match.group(1)), "plan": text.split("\n", 1)[-1].strip()})
            plans[op] = sorted(found, key=lambda p: -p["ms"])
    finally:
        await conn.close()
    return plans


# --- py-spy on the gateway ---


PYSPY_RATE = 200


def pyspy_available() -> str | None:
    venv = BENCH.parent / ".venv" / "bin" / "py-spy"
    return str(venv) if venv.exists() else shutil.which("py-spy")


def pyspy_record(pid: int, seconds: int, out: Path) -> subprocess.Popen:
    """py-spy recording the process; the caller has checked pyspy_available()."""
    exe = str(pyspy_available())
    return subprocess.Popen(
        [exe, "record", "--pid", str(pid), "--duration", str(seconds), "--rate", str(PYSPY_RATE),
         "--format", "raw", "--output", str(out), "--nonblocking", "--gil", "--subprocesses"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def summarize_pyspy(raw: Path, seconds: float, top: int = 12) -> dict:
    """Collapsed stacks (samples taken while the GIL is held, i.e. Python running) to: the share
    of the time Python ran, self time by function, and inclusive time by function."""
    own: Counter = Counter()
    inclusive: Counter = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        own[_frame(frames[-1])] += n
        for name in {_frame(f) for f in frames}:
            inclusive[name] += n
    if total == 0:
        return {"samples": 0}
    return {
        "samples": total,
        "python_busy_pct": round(100 * total / (PYSPY_RATE * seconds), 1),
        "self": [{"function": f, "pct": round(100 * n / total, 1)} for f, n in own.most_common(top)],
        "inclusive": [
            {"function": f, "pct": round(100 * n / total, 1)} for f, n in inclusive.most_common(top * 2)
        ],
    }


def _frame(frame: str) -> str:
    # "function (path/to/module.py:123)" -> "function (module.py)"
    match = re.match(r"(.*?) \((.*?)(?::\d+)?\)$", frame)
    if not match:
        return frame
    name, path = match.groups()
    return f"{name} ({Path(path).name})"
