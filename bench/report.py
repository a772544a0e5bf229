"""The report of a run: bench/results/<id>.json, <id>.md and <id>.png, and bench/REPORT.md.

    python -m bench.report bench/results/<id>.json   re-render a run's Markdown, plot and REPORT.md

Targets are reported (met / missed), never asserted: these machines are noisy.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from . import center

# In the order they run: the listings before the batches, so that they read the loaded data
# (and not the autovacuum the batches set off).
OPS = ("retrieve", "usage", "hot", "list_tag", "list_contains", "batch")
OP_NAMES = {
    "retrieve": "retrieve 50 ids",
    "usage": "usage (½ repeats)",
    "hot": "usage, one hot card",
    "batch": "batch of 100 new cards",
    "list_tag": "list by a topic tag",
    "list_contains": "list by metadata containment",
}
SEED_P95_MS = {"batch": 100, "retrieve": 50, "usage": 25, "hot": 25}
ISSUE_P95_AT_4_MS = {"batch": 10, "retrieve": 2, "usage": 1.5}
# The listing targets hold at 1M cards: a run of another size shows its numbers beside the
# latest 1M run's.
LIST_P95_AT_4_AT_1M_MS = {"list_tag": 10, "list_contains": 10}
NOISY_OTHER_PCT = 30
ANALYSIS = Path(__file__).resolve().parent / "ANALYSIS.md"


# --- finding numbers ---


def find(result: dict, op: str, via: str, conns: int) -> dict | None:
    for run in result.get("runs", []):
        if run["op"] == op and run["via"] == via and run["conns"] == conns and "failure" not in run:
            return run
    return None


def ratio(result: dict, op: str, conns: int) -> float | None:
    gw, pg = find(result, op, "gateway", conns), find(result, op, "pgbench", conns)
    if gw and pg and pg.get("rps"):
        return gw["rps"] / pg["rps"]
    return None


def history(results_dir: Path) -> dict[str, dict]:
    """The latest full run of each size among the saved results."""
    latest: dict[str, dict] = {}
    for path in sorted(results_dir.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if data.get("mode") == "full" and data.get("runs"):
            latest[data["size"]] = data
    return latest


def _status(ok: bool | None) -> str:
    return "n/a" if ok is None else ("**met**" if ok else "**missed**")


def targets(result: dict, latest: dict[str, dict]) -> list[dict]:
    out = []
    for op, limit in ISSUE_P95_AT_4_MS.items():
        run = find(result, op, "gateway", 4)
        out.append(
            {
                "target": f"p95 {OP_NAMES[op]} at 4 connections ≤ {limit} ms (gateway)",
                "measured": f"{run['p95_ms']:.2f} ms (pgbench alone: {_p95(result, op, 'pgbench', 4)})"
                if run
                else "not run",
                "status": _status(run["p95_ms"] <= limit if run else None),
            }
        )
    big = result if result["mode"] == "full" and result["size"] == "1m" else latest.get("1m")
    for op, limit in LIST_P95_AT_4_AT_1M_MS.items():
        run = find(big, op, "gateway", 4) if big else None
        here = find(result, op, "gateway", 4) if big is not result else None
        measured = (
            f"{run['p95_ms']:.2f} ms (pgbench alone: {_p95(big, op, 'pgbench', 4)}; run {big['id']})"
            if run
            else "needs a full run at SIZE=1m"
        )
        if here:
            measured += f"; this {result['size']} run: {here['p95_ms']:.2f} ms"
        out.append(
            {
                "target": f"p95 {OP_NAMES[op]} at 1M cards, 4 connections ≤ {limit} ms (gateway)",
                "measured": measured,
                "status": _status(run["p95_ms"] <= limit if run else None),
            }
        )
    top = max(result["config"]["conns"])
    for op in ("retrieve", "usage"):
        for conns in (4, 64):
            r = ratio(result, op, conns)
            out.append(
                {
                    "target": f"{OP_NAMES[op]} at {conns} connections: gateway req/s ≥ 0.8 × pgbench tps",
                    "measured": f"{r:.2f} ×" if r is not None else "not run",
                    "status": _status(r >= 0.8 if r is not None else None),
                }
            )
    for op, party, limit in (
        ("retrieve", "postgres", 0.5),
        ("usage", "postgres", 0.3),
        ("retrieve", "gateway", 0.2),
        ("usage", "gateway", 0.2),
    ):
        run = find(result, op, "gateway", 4)
        cost = run["cpu"][party] * 10 / run["rps"] if run and run.get("cpu") and run.get("rps") else None
        out.append(
            {
                "target": f"{OP_NAMES[op]}: {party} CPU ≤ {limit} ms per request (gateway run, 4 conns)",
                "measured": f"{cost:.2f} ms" if cost is not None else "not run",
                "status": _status(cost <= limit if cost is not None else None),
            }
        )
    thousand = next(
        (r for r in result.get("batch_sizes", []) if r.get("batch_size") == 1000 and r.get("rps")), None
    )
    per_card = (
        thousand["cpu"]["postgres"] * 10 / thousand["rps"] / 1000 * 1000
        if thousand and thousand.get("cpu")
        else None
    )
    indexing = ((thousand or {}).get("indexing") or {}).get("us_per_card")
    out.append(
        {
            "target": "batch of 1000: PostgreSQL CPU ≤ 60 µs per card (pgbench, one client)",
            "measured": (f"{per_card:.0f} µs" if per_card is not None else "not run")
            + (f", and {indexing:.0f} µs of search indexing after the commit" if indexing else ""),
            "status": _status(per_card <= 60 if per_card is not None else None),
        }
    )
    lag = result.get("search_lag") or {}
    out.append(
        {
            "target": "q= finds a new card within 1 s of its batch's answer (gateway, one client)",
            "measured": (
                f"p50 {lag['p50_ms']:.0f} ms, p95 {lag['p95_ms']:.0f} ms, max {lag['max_ms']:.0f} ms "
                f"over {lag['batches']} batches"
                + (f", {lag['missed']} not found in 10 s" if lag["missed"] else "")
            )
            if "p50_ms" in lag
            else lag.get("failure", "not run"),
            "status": _status(lag["max_ms"] <= 1000 and not lag["missed"] if "max_ms" in lag else None),
        }
    )
    for via in ("gateway", "pgbench"):
        hot, spread = find(result, "hot", via, top), find(result, "usage", via, top)
        share = hot["rps"] / spread["rps"] if hot and spread and spread["rps"] else None
        out.append(
            {
                "target": f"hot card ≥ 50 % of spread usage throughput ({via}, {top} connections)",
                "measured": f"{100 * share:.0f} %" if share is not None else "not run",
                "status": _status(share >= 0.5 if share is not None else None),
            }
        )
    small, big = latest.get("100k"), latest.get("1m")
    if result["mode"] == "full" and result["size"] in ("100k", "1m"):
        if result["size"] == "100k":
            small = result
        else:
            big = result
    for op in ("retrieve", "usage"):
        a = find(small, op, "gateway", 4) if small else None
        b = find(big, op, "gateway", 4) if big else None
        growth = b["p95_ms"] / a["p95_ms"] if a and b else None
        out.append(
            {
                "target": f"{OP_NAMES[op]} p95 at 1M cards ≤ 1.5 × at 100k (gateway, 4 connections)",
                "measured": (
                    f"{a['p95_ms']:.2f} → {b['p95_ms']:.2f} ms = {growth:.2f} ×"
                    f" (runs {small['id']}, {big['id']})"
                    if growth is not None
                    else "needs a full run at SIZE=100k and at SIZE=1m"
                ),
                "status": _status(growth <= 1.5 if growth is not None else None),
            }
        )
    imported = result.get("client_import")
    if imported is not None:
        ok = None if "failure" in imported else imported["ratio"] >= imported["target_ratio"]
        out.append(
            {
                "target": f"client import ≥ {imported['target_ratio']}× direct SQL (cards/s, "
                f"{imported['cards']:,} cards, chunks of {imported['chunk']})",
                "measured": imported.get("failure")
                or f"{imported['ratio']:.2f}× ({imported['client_cards_per_s']:,.0f} vs "
                f"{imported['sql_cards_per_s']:,.0f} cards/s)",
                "status": _status(ok),
            }
        )
    seed_misses = [
        f"{r['via']} {r['op']} x{r['conns']}"
        for r in result.get("runs", [])
        if "failure" not in r
        and r.get("p95_ms") is not None
        and r["op"] in SEED_P95_MS
        and r["p95_ms"] > SEED_P95_MS[r["op"]]
    ]
    out.append(
        {
            "target": "seed p95 targets (batch ≤ 100, retrieve ≤ 50, usage ≤ 25 ms) at every concurrency",
            "measured": "all within" if not seed_misses else "over: " + ", ".join(seed_misses),
            "status": _status(not seed_misses if result.get("runs") else None),
        }
    )
    return out


def _p95(result: dict, op: str, via: str, conns: int) -> str:
    run = find(result, op, via, conns)
    return f"{run['p95_ms']:.2f} ms" if run else "—"


# --- Markdown ---


def _ms(value: float | None) -> str:
    return "—" if value is None else (f"{value:.2f}" if value < 100 else f"{value:.0f}")


def _cpu(run: dict) -> str:
    cpu = run.get("cpu")
    if not cpu:
        return "—"
    gw = f" / {cpu['gateway']:.0f}" if cpu.get("gateway") is not None else " / —"
    return (
        f"{cpu['postgres']:.0f}{gw} / {cpu['client']:.0f} / {cpu.get('other', 0):.0f} / {cpu['machine']:.0f}"
    )


def _cost(run: dict) -> str:
    """CPU milliseconds per request: postgres / gateway / load client (from the CPU columns)."""
    cpu, rps = run.get("cpu"), run.get("rps")
    if not cpu or not rps:
        return "—"
    parts = [cpu["postgres"], cpu.get("gateway"), cpu["client"]]
    wait = cpu.get("gateway_cpu_wait") if run["via"] == "gateway" else None
    return (
        (f"{wait:.0f}" if wait is not None else "—")
        + " | "
        + " / ".join(
            "—" if v is None or (i == 1 and run["via"] == "pgbench") else f"{v * 10 / rps:.2f}"
            for i, v in enumerate(parts)
        )
    )


def render(result: dict, latest: dict[str, dict], image: str | None) -> str:
    m, pg, cfg, data = (
        result.get("machine", {}),
        result.get("postgres", {}),
        result["config"],
        result.get("data", {}),
    )
    lines = [
        f"# Cards API benchmark — run {result['id']}",
        "",
        f"Size **{result['size']}** ({data.get('cards', 0):,} cards over {data.get('tenants', '?')} "
        "tenants), "
        f"concurrencies {', '.join(map(str, cfg['conns']))}, {cfg['seconds']} s per measured run after a "
        f"{cfg['warmup_seconds']} s warm-up; commit `{m.get('commit', '?')}`, schema version "
        f"{result.get('schema_version', '?')}; the whole run took "
        f"{result.get('duration_seconds', '?')} s. Generated by `make bench` (`python -m bench.run`); "
        "targets are reported, never asserted.",
        "",
    ]
    if result.get("failures"):
        lines += ["**The run did not complete:** " + "; ".join(result["failures"]), ""]
    lines += ["## Targets", "", "| target | measured | status |", "|---|---|---|"]
    lines += [f"| {t['target']} | {t['measured']} | {t['status']} |" for t in targets(result, latest)]
    lines += [
        "",
        "## Machine",
        "",
        f"- {m.get('cores')} cores ({m.get('cpu_model')}), {m.get('memory_gib')} GiB, "
        f"Linux {m.get('kernel')}, "
        f"Python {m.get('python')}, {str(m.get('wrk')).split(' [')[0]}, {m.get('pgbench')}.",
        "- **wrk, the gateway and PostgreSQL share these 2 cores** (loopback only, 127.0.0.1): every "
        "gateway number includes the CPU the load generator and the gateway take from PostgreSQL, and "
        "the pgbench numbers include pgbench's. The CPU column shows who used what (% of one core; the "
        "machine has 200 %).",
        f"- Gateway: `python -m gateway` (aiohttp + uvloop), {cfg.get('gateway_workers', 1)} worker "
        f"process(es) (`CARDS_WORKERS`), {cfg['gateway_pool']} pool connections in all opened up front, "
        f"log level {cfg['gateway_log_level']} (one JSON access-log line per request, to a file), "
        "the per-tenant rate limit set out of reach (100,000 requests/s) except in the rate limiter's "
        "own runs. wrk: 1 thread. pgbench: 1 thread, `-M prepared`, connections run as role "
        "`cards_gateway` (`PGOPTIONS=-c role=cards_gateway`), over TCP to 127.0.0.1 like the gateway's.",
        f"- Data: {data.get('cards', 0):,} cards of ~1 KB content through `cards.batch_create` in batches of "
        f"1000, loaded at {data.get('cards_per_second', '?')} cards/s; `cards.cards` is "
        f"{data.get('cards_table_bytes', 0) / 2**20:.0f} MiB after the load and "
        f"{result.get('cards_table_bytes_after', 0) / 2**20:.0f} MiB at the end (the batch runs add cards).",
        "",
        "PostgreSQL (`scripts/pgcluster start DIR PORT bench`):",
        "",
        "| setting | value |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in pg.items()]
    lines += [
        "",
        "## Results",
        "",
        "Latencies in ms, measured by the client (wrk or pgbench). *gw / pg* is the gateway's req/s over "
        "pgbench's tps at the same concurrency in this run. *errors*: non-2xx answers and socket errors "
        "(wrk) or failed transactions (pgbench). *CPU* is postgres / gateway / load client / other "
        "jobs / whole machine, in % of one core (200 % = both cores). Before each run the harness "
        f"waits up to {cfg.get('quiet_wait_seconds', 0):g} s for other jobs to leave the CPU; a run during "
        f"which they still took more than {NOISY_OTHER_PCT} % of a core is measured again, up to "
        f"{cfg.get('retries', 0)} times, and the least disturbed attempt is kept; *other* is what they "
        "took during the kept attempt. *CPU ms / req* divides the CPU by the requests: milliseconds of "
        "one core that postgres / the gateway / the load client spent per request, which other jobs "
        "disturb much less than req/s and latency. *gw waits %*: the share of the run the gateway's "
        "event loop (one thread) was ready to run but waited for a core.",
        "",
    ]
    if image:
        lines += [f"![throughput and p95 by concurrency]({image})", ""]
    lines += [
        "| operation | conns | via | req/s | p50 | p95 | p99 | max | errors | gw / pg | seed p95 target "
        "| CPU % | gw waits % | CPU ms / req |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---|",
    ]
    for op in OPS:
        for conns in cfg["conns"]:
            for via in ("pgbench", "gateway"):
                run = next(
                    (
                        r
                        for r in result.get("runs", [])
                        if r["op"] == op and r["via"] == via and r["conns"] == conns
                    ),
                    None,
                )
                if run is None:
                    continue
                if "failure" in run:
                    lines.append(
                        f"| {OP_NAMES[op]} | {conns} | {via} | failed: {run['failure'][:120]} |||||||||||"
                    )
                    continue
                r = ratio(result, op, conns) if via == "gateway" else None
                seed = SEED_P95_MS.get(op)
                seed_cell = "—" if seed is None else f"≤ {seed} {'✓' if run['p95_ms'] <= seed else '✗'}"
                lines.append(
                    f"| {OP_NAMES[op]} | {conns} | {via} | {run['rps']:,.0f} | {_ms(run['p50_ms'])} | "
                    f"{_ms(run['p95_ms'])} | {_ms(run['p99_ms'])} | {_ms(run['max_ms'])} | "
                    f"{run.get('errors', 0)} | "
                    f"{f'{r:.2f}' if r is not None else ''} | {seed_cell} | {_cpu(run)} | {_cost(run)} |"
                )
    overhead = {r["op"].removesuffix("_overhead"): r for r in result.get("overhead", []) if r.get("mean_ms")}
    if overhead:
        lines += [
            "",
            "pgbench's statements do a little more than the gateway's call: they pick the ids from "
            "`bench.ids` and build the JSON body in SQL (the gateway gets both from wrk). The same "
            "statements without the function call (`pgbench/*_overhead.sql`, one client) take "
            + ", ".join(f"{op} {r['mean_ms']:.3f} ms" for op, r in overhead.items())
            + " on average, so pgbench's tps slightly understates the database alone and the "
            "gw / pg ratio slightly flatters the gateway.",
        ]
    limiter = {(r["rate_limiter"], r["conns"]): r for r in result.get("rate_limiter", []) if r.get("rps")}
    if limiter:
        lines += [
            "",
            "### The per-tenant rate limiter",
            "",
            "Usage through the gateway with the shared rate limiter at its defaults (1000 requests/s and a "
            "burst of 2000 per tenant, leased from PostgreSQL 1/20 at a time) and turned off "
            "(`CARDS_RATE_LIMIT_RPS=0`), one after the other. Target: it costs under 5 % of usage "
            "throughput.",
            "",
            "| conns | on req/s | off req/s | cost | on p95 | off p95 |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for conns in sorted({c for _, c in limiter}):
            on, off = limiter.get(("on", conns)), limiter.get(("off", conns))
            if on and off:
                cost = 1 - on["rps"] / off["rps"]
                lines.append(
                    f"| {conns} | {on['rps']:,.0f} | {off['rps']:,.0f} | {cost:+.1%} "
                    f"{'✓' if cost < 0.05 else '✗'} | {_ms(on['p95_ms'])} | {_ms(off['p95_ms'])} |"
                )
    lines += _workers(result) + _floor(result) + _peer(result)
    noisy = [
        f"{r['via']} {r['op']} x{r['conns']} ({r['cpu']['other']:.0f} %)"
        for r in result.get("runs", [])
        if (r.get("cpu") or {}).get("other", 0) > NOISY_OTHER_PCT
    ]
    if noisy:
        lines += [
            "",
            f"**Disturbed runs**: other jobs on the machine took more than {NOISY_OTHER_PCT} % of a core "
            "during " + ", ".join(noisy) + ". Their numbers understate what the code can do.",
        ]
    lines += [
        "",
        "## Batch cost per card (pgbench, one client)",
        "",
        "The body is built inside the measured statement (string_agg of the fixed 1 KB content), as "
        "`bench/pgbench/batch.sql` shows.",
        "",
        "Search indexing is not in the batch (`sql/functions/23_search_index.sql`): after each size's "
        "run, `cards.index_pending_search` indexed its cards; *indexing* is PostgreSQL's CPU for that "
        "per card.",
        "",
        "| batch size | batches/s | cards/s | mean ms | p95 ms | µs per card | indexing µs CPU per card |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in result.get("batch_sizes", []):
        if "failure" in run:
            lines.append(f"| {run['batch_size']} | failed: {run['failure'][:120]} ||||||")
            continue
        lines.append(
            f"| {run['batch_size']} | {run['rps']:,.1f} | {run.get('cards_per_s', 0):,.0f} | "
            f"{_ms(run['mean_ms'])} | "
            f"{_ms(run['p95_ms'])} | {run.get('us_per_card', '—')} | "
            f"{(run.get('indexing') or {}).get('us_per_card', '—')} |"
        )
    lines += _client_import(result)
    lines += center.lines(result.get("center"))
    lines += _growth(result, latest)
    if ANALYSIS.exists():
        lines += ["", ANALYSIS.read_text().strip()]
    lines += _profiles(result)
    return "\n".join(lines) + "\n"


def _client_import(result: dict) -> list[str]:
    imported = result.get("client_import")
    if not imported:
        return []
    lines = [
        "",
        "## Import through the client (bench/client_import.py)",
        "",
        f"{imported['cards']:,} new cards into a fresh tenant, chunks of {imported['chunk']}, "
        "one stream each: "
        "`cards_client.CardsClient.import_cards` through the gateway, and `SELECT cards.batch_create(...)` "
        "over one connection, interleaved chunk by chunk and timed apart.",
        "",
    ]
    if "failure" in imported:
        return [*lines, f"Failed: {imported['failure']}"]
    return [
        *lines,
        "| path | seconds | cards/s |",
        "|---|---:|---:|",
        f"| direct SQL | {imported['sql_seconds']} | {imported['sql_cards_per_s']:,.0f} |",
        f"| client → gateway | {imported['client_seconds']} | {imported['client_cards_per_s']:,.0f} |",
        "",
        f"Ratio (client / SQL): **{imported['ratio']:.2f}** (target ≥ {imported['target_ratio']}).",
    ]


def _per_request(run: dict, party: str) -> str:
    """CPU milliseconds per request that `party` (postgres, gateway) spent in the run."""
    cpu, rps = run.get("cpu"), run.get("rps")
    if not cpu or not rps or cpu.get(party) is None:
        return "—"
    return f"{cpu[party] * 10 / rps:.2f}"


def _workers(result: dict) -> list[str]:
    runs = {(r["op"], r["conns"], r["workers"]): r for r in result.get("workers", []) if r.get("rps")}
    if not runs:
        return []
    lines = [
        "",
        "### Gateway workers",
        "",
        "Retrieve and usage through the gateway with `CARDS_WORKERS=1` and `=2` (one process, or two "
        "worker processes on one port), one after the other, the pool split between the workers. *CPU ms / "
        "req*: the gateway's processes' and PostgreSQL's.",
        "",
        "| operation | conns | 1 worker req/s | 2 workers req/s | 2 / 1 | 1 worker p95 | 2 workers p95 "
        "| gateway CPU ms / req (1 / 2) | postgres CPU ms / req (1 / 2) |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for op, conns in sorted({(o, c) for o, c, _ in runs}, key=lambda k: (OPS.index(k[0]), k[1])):
        one, two = runs.get((op, conns, 1)), runs.get((op, conns, 2))
        if not (one and two):
            continue
        lines.append(
            f"| {OP_NAMES[op]} | {conns} | {one['rps']:,.0f} | {two['rps']:,.0f} "
            f"| {two['rps'] / one['rps']:.2f} "
            f"| {_ms(one['p95_ms'])} | {_ms(two['p95_ms'])} "
            f"| {_per_request(one, 'gateway')} / {_per_request(two, 'gateway')} "
            f"| {_per_request(one, 'postgres')} / {_per_request(two, 'postgres')} |"
        )
    return lines


def _floor(result: dict) -> list[str]:
    floor = {(r["op"], r["conns"]): r for r in result.get("floor", []) if r.get("rps")}
    one = {(r["op"], r["conns"]): r for r in result.get("workers", []) if r.get("workers") == 1}
    if not floor:
        return []
    lines = [
        "",
        "### The gateway against the floor under it",
        "",
        "`bench/floor.py`: aiohttp + uvloop + asyncpg making the gateway's own SQL call for the same "
        "requests and nothing else (no key lookup, scope, rate limit, pool share, metrics or log line), "
        "one process, against the gateway with one worker (`CARDS_WORKERS=1`). The floor's CPU is what "
        "the framework, the driver and the sockets cost on this machine; the gateway's CPU over it is "
        "what the gateway's own work costs.",
        "",
        "| operation | conns | gateway req/s | floor req/s | gateway / floor | gateway CPU ms / req "
        "| floor CPU ms / req | the gateway's own ms / req |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (op, conns), low in sorted(floor.items(), key=lambda item: (OPS.index(item[0][0]), item[0][1])):
        ours = one.get((op, conns))
        if not (ours and ours.get("rps")):
            continue
        cpu = [r.get("cpu", {}).get("gateway") for r in (ours, low)]
        own = f"{cpu[0] * 10 / ours['rps'] - cpu[1] * 10 / low['rps']:.2f}" if None not in cpu else "—"
        lines.append(
            f"| {OP_NAMES[op]} | {conns} | {ours['rps']:,.0f} | {low['rps']:,.0f} "
            f"| {ours['rps'] / low['rps']:.2f} | {_per_request(ours, 'gateway')} "
            f"| {_per_request(low, 'gateway')} | {own} |"
        )
    return lines


def _peer(result: dict) -> list[str]:
    peer = result.get("peer") or {}
    runs = [r for r in peer.get("runs", []) if r.get("rps")]
    if not runs:
        return []
    lines = [
        "",
        "### Against a plain FastAPI service",
        "",
        f"The same wrk scripts against `bench/peer/app.py`: FastAPI with pydantic models on uvicorn "
        f"(uvloop, httptools, {peer.get('workers')} worker processes like the gateway's default), asyncpg, "
        "one repository call per statement in a transaction (usage: check the card, insert the event, "
        "update the count; retrieve: one SELECT and the JSON built in Python), on the seed's schema with "
        "its unique content-hash index and the usage count on the card (`bench/peer/schema.sql`, a copy "
        "of this run's cards), no row-level security, no rate limit, no per-tenant pool share. "
        "*CPU ms / req*: the serving processes' and PostgreSQL's.",
        "",
        "| operation | conns | gateway req/s | peer req/s | gateway / peer | gateway p95 | peer p95 "
        "| server CPU ms / req (gateway / peer) | postgres CPU ms / req (gateway / peer) |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for run in sorted(runs, key=lambda r: (OPS.index(r["op"]), r["conns"])):
        ours = find(result, run["op"], "gateway", run["conns"])
        if ours is None:
            continue
        lines.append(
            f"| {OP_NAMES[run['op']]} | {run['conns']} | {ours['rps']:,.0f} | {run['rps']:,.0f} "
            f"| {ours['rps'] / run['rps']:.2f} | {_ms(ours['p95_ms'])} | {_ms(run['p95_ms'])} "
            f"| {_per_request(ours, 'gateway')} / {_per_request(run, 'gateway')} "
            f"| {_per_request(ours, 'postgres')} / {_per_request(run, 'postgres')} |"
        )
    return lines


def _growth(result: dict, latest: dict[str, dict]) -> list[str]:
    runs = dict(latest)
    if result["mode"] == "full":
        runs[result["size"]] = result
    lines = [
        "",
        "## Growth",
        "",
        "p95 in ms at 4 connections, from the latest full run of each size in `bench/results/`.",
        "",
        "| size | cards | run | retrieve pgbench | retrieve gateway | usage pgbench | usage gateway "
        "| list by tag gateway | list by containment gateway |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for size, r in sorted(runs.items(), key=lambda item: item[1].get("data", {}).get("cards", 0)):
        cells = [_p95(r, op, via, 4) for op in ("retrieve", "usage") for via in ("pgbench", "gateway")]
        cells += [_p95(r, op, "gateway", 4) for op in ("list_tag", "list_contains")]
        lines.append(
            f"| {size} | {r.get('data', {}).get('cards', 0):,} | {r['id']} | " + " | ".join(cells) + " |"
        )
    if not ({"100k", "1m"} <= set(runs)):
        lines += ["", "The 100k-vs-1M comparison needs `make bench SIZE=100k` and `make bench SIZE=1m`."]
    return lines


def _profiles(result: dict) -> list[str]:
    lines = ["", "## Profiles of this run", ""]
    statements = result.get("statements") or {}
    if statements:
        lines += [
            "### pg_stat_statements, per operation",
            "",
            "Reset before each operation's runs (pgbench and gateway together); `track = all`, so the "
            "statements inside the functions appear beside the top-level call (*top*). *% top* is the "
            "share of the top-level time.",
            "",
        ]
        for op, rows in statements.items():
            lines += [
                f"**{OP_NAMES.get(op, op)}**",
                "",
                "| top | calls | mean ms | total ms | % top | statement |",
            ]
            lines += ["|---|---:|---:|---:|---:|---|"]
            for s in rows[:8]:
                query = s["query"].replace("|", "\\|")[:220]
                lines.append(
                    f"| {'✓' if s['toplevel'] else ''} | {s['calls']:,} | {s['mean_ms']} | "
                    f"{s['total_ms']:,.0f} | "
                    f"{s['pct_of_toplevel'] if s['pct_of_toplevel'] is not None else ''} | `{query}` |"
                )
            lines.append("")
    explain = result.get("explain") or {}
    if explain:
        lines += [
            "### EXPLAIN ANALYZE inside one warm call",
            "",
            "auto_explain with nested statements on one call of each endpoint function (timing on, so "
            "slower than unprofiled); the slowest statements inside it.",
            "",
        ]
        for op, plans in explain.items():
            lines.append(f"**{op}**: {len(plans)} statements ran inside one call.")
            lines.append("")
            for p in plans[:4]:
                head = p["plan"].splitlines()[0].replace("Query Text:", "").strip()[:100]
                lines += [
                    f"<details><summary>{p['ms']:.3f} ms — <code>{_html(head)}</code></summary>",
                    "",
                    "```",
                    p["plan"][:4000],
                    "```",
                    "</details>",
                    "",
                ]
    spy = result.get("pyspy") or {}
    if spy:
        lines += ["### py-spy on the gateway", ""]
        for op, s in spy.items():
            if not isinstance(s, dict) or not s.get("samples"):
                lines += [f"- {op}: {s}", ""]
                continue
            lines += [
                f"**{op}** at {s['conns']} connections: {s['samples']:,} samples taken while the gateway "
                f"held the GIL, i.e. Python was busy {s.get('python_busy_pct', '?')} % of the time. "
                "Self time (C code such as asyncpg's protocol and socket writes counts to the Python "
                "frame that called it):",
                "",
                "| function | % |",
                "|---|---:|",
            ]
            lines += [f"| `{x['function']}` | {x['pct']} |" for x in s["self"]]
            lines += ["", "Inclusive:", "", "| function | % |", "|---|---:|"]
            lines += [f"| `{x['function']}` | {x['pct']} |" for x in s["inclusive"]]
            lines.append("")
    return lines


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# --- the plot ---


def plot(result: dict, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    conns = result["config"]["conns"]
    fig, (left, mid, right) = plt.subplots(1, 3, figsize=(16, 4.8))
    colors = {
        "retrieve": "tab:blue",
        "usage": "tab:green",
        "hot": "tab:red",
        "batch": "tab:purple",
        "list_tag": "tab:orange",
        "list_contains": "tab:brown",
    }
    for op in OPS:
        for via, style in (("gateway", "-"), ("pgbench", "--")):
            pts = [(c, find(result, op, via, c)) for c in conns]
            pts = [(c, r) for c, r in pts if r]
            if not pts:
                continue
            xs = [c for c, _ in pts]
            label = f"{op} ({via})"
            left.plot(xs, [r["rps"] for _, r in pts], style, marker="o", color=colors[op], label=label)
            mid.plot(xs, [r["p95_ms"] for _, r in pts], style, marker="o", color=colors[op], label=label)
    for ax, title, unit in ((left, "throughput", "req/s"), (mid, "p95 latency", "ms")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(conns, [str(c) for c in conns])
        ax.set_xlabel("connections")
        ax.set_ylabel(unit)
        ax.set_title(f"{title} (solid: gateway, dashed: pgbench)")
        ax.grid(True, which="both", alpha=0.3)
    for op, limit in (ISSUE_P95_AT_4_MS | LIST_P95_AT_4_AT_1M_MS).items():
        mid.plot([4], [limit], marker="_", markersize=18, color=colors[op])
    left.legend(fontsize=7, ncol=2)
    sizes = [r for r in result.get("batch_sizes", []) if "us_per_card" in r]
    if sizes:
        right.bar(
            [str(r["batch_size"]) for r in sizes], [r["us_per_card"] for r in sizes], color="tab:purple"
        )
        right.set_xlabel("batch size (pgbench, 1 client)")
        right.set_ylabel("µs per card")
        right.set_title("batch cost per card")
    fig.suptitle(f"Cards API benchmark {result['id']} — {result['size']}, 2 shared cores")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write(result: dict, results_dir: Path, report_path: Path) -> list[Path]:
    """Save the run's JSON, Markdown and plot, and make REPORT.md this run's report."""
    results_dir.mkdir(parents=True, exist_ok=True)
    run_id = result["id"]
    json_path = results_dir / f"{run_id}.json"
    json_path.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    latest = history(results_dir)
    png = results_dir / f"{run_id}.png"
    has_png = plot(result, png)
    md = results_dir / f"{run_id}.md"
    md.write_text(render(result, latest, png.name if has_png else None))
    rel = f"results/{png.name}" if has_png else None
    report_path.write_text(render(result, latest, rel))
    return [json_path, md] + ([png] if has_png else []) + [report_path]


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    path = Path(sys.argv[1])
    result = json.loads(path.read_text())
    for written in write(result, path.parent, path.parent.parent / "REPORT.md"):
        print(written)


if __name__ == "__main__":
    main()
