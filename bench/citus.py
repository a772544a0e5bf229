"""`make bench` second part (`make bench-citus` alone): the gateway in front of one PostgreSQL
node and in front of a Citus coordinator with two workers, on the same machine, with the same
data and load: req/s and p95 for batch, retrieve and usage, and each database node's CPU per
call. One machine runs all three nodes, the gateway and wrk, so this measures what the
coordinator's hop costs and shows that delegation works; it cannot show a speed-up.

    python -m bench.citus [--cards 20000] [--seconds 10] [--conns 16] [--pg-port P] [--citus-port C]

Writes bench/results/citus-<timestamp>.json and bench/CITUS.md (docs/SCALING.md reads them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from . import datagen, run
from .measure import ROOT, Target, postgres_ticks, wrk

OPS = ("batch", "retrieve", "usage")
WRK_ARG = {"batch": "100"}
CITUS = ROOT / "scripts" / "citus-cluster"
# How many bench tenants each worker holds (a tenant's calls all go to its worker).
PLACEMENT = """
SELECT n.nodeport || ':' || count(*) FROM cards.tenants AS t
JOIN pg_dist_placement AS p ON p.shardid = get_shard_id_for_distribution_column('cards.cards', t.tenant_id)
JOIN pg_dist_node AS n USING (groupid) GROUP BY n.nodeport ORDER BY 1
"""


def say(message: str) -> None:
    print(f"bench-citus: {message}", file=sys.stderr, flush=True)


def pid_of(datadir: Path) -> int:
    return int((datadir / "postmaster.pid").read_text().split()[0])


def start_single(plan: run.Plan) -> tuple[str, list[int]]:
    run.pgcluster("destroy", str(plan.pg_dir))
    run.pgcluster("start", str(plan.pg_dir), str(plan.pg_port), "bench")
    subprocess.run(
        ["psql", "-X", "-q", run.admin_dsn(plan, "postgres"), "-c", "CREATE DATABASE cards_bench"], check=True
    )
    return run.admin_dsn(plan), [pid_of(plan.pg_dir)]


def start_citus(plan: run.Plan, folder: Path) -> tuple[str, list[int]]:
    subprocess.run([CITUS, "destroy", folder], check=True)
    server = subprocess.run(
        [CITUS, "start", folder, str(plan.pg_port)], check=True, capture_output=True, text=True
    ).stdout.strip()
    subprocess.run([CITUS, "createdb", server, "cards_bench"], check=True)
    return run.admin_dsn(plan), [pid_of(folder / f"n{i}") for i in range(3)]


def measure(
    plan: run.Plan, label: str, dsn: str, postmasters: list[int], args: argparse.Namespace
) -> list[dict]:
    subprocess.run([run.PY, "-m", "gateway.migrate", dsn], check=True, stdout=subprocess.DEVNULL)
    data = asyncio.run(datagen.load(dsn, args.cards, args.tenants, plan.work, show_progress=False))
    say(f"{label}: {data['cards']} cards loaded in {data['load_seconds']} s")
    placement = subprocess.run(["psql", "-X", "-At", dsn, "-c", PLACEMENT], capture_output=True, text=True)
    if label == "citus":
        say(f"tenants per worker port: {placement.stdout.split()}")
        args.placement = placement.stdout.split()
    gateway = run.start_gateway(plan)
    rows = []
    try:
        target = Target(plan.pg_port, "cards_bench", plan.gw_port, postmasters[0], gateway.pid, plan.work)
        for op in OPS:
            arg = WRK_ARG.get(op, str(data["repeat_pool"]) if op == "usage" else None)
            token = f"{label}{op}{time.time_ns()}"
            wrk(target, op, args.conns, 2, token + "w", arg)  # warm-up
            before = [postgres_ticks(pid) for pid in postmasters]
            result = wrk(target, op, args.conns, args.seconds, token, arg)
            spent = [postgres_ticks(pid) - b for pid, b in zip(postmasters, before, strict=True)]
            if "failure" in result:
                raise RuntimeError(f"{label} {op}: {result['failure']}")
            per_call = [
                round(1000 * ticks / os.sysconf("SC_CLK_TCK") / result["requests"], 3) for ticks in spent
            ]
            rows.append(
                {
                    "setup": label,
                    "op": op,
                    "conns": args.conns,
                    "rps": result["rps"],
                    "p50_ms": result["p50_ms"],
                    "p95_ms": result["p95_ms"],
                    "errors": result["errors"],
                    "node_cpu_ms_per_call": per_call,  # coordinator (or the single node) first
                    "gateway_cpu_pct": result["cpu"]["gateway"],
                    "machine_cpu_pct": result["cpu"]["machine"],
                }
            )
            say(
                f"{label:6} {op:8} {result['rps']:>8.1f} req/s  p95 {result['p95_ms']:.2f} ms"
                f"  node ms/call {per_call}"
            )
    finally:
        run.stop_gateway(gateway)
    return rows


def write_report(result: dict) -> Path:
    lines = [
        "# Citus beside one node, on one machine",
        "",
        f"Run `{result['id']}` (`make bench-citus`, {result['cards']} cards over "
        f"{result['tenants']} tenants, "
        f"{result['conns']} connections, {result['seconds']} s per operation after a 2 s warm-up; "
        f"{result['machine']['cores']} cores shared by every node, the gateway and wrk).",
        "",
        "The same gateway, data and load, in front of one PostgreSQL node and in front of a Citus",
        "coordinator with two workers on this same machine. Everything competes for the same cores,",
        "so this shows what the coordinator's hop costs and that each call is delegated (the",
        "coordinator's CPU per call stays small and the workers do the work); it cannot show the",
        "speed-up of adding machines.",
        "",
        "| operation | setup | req/s | p50 ms | p95 ms "
        "| coordinator (or node) CPU ms/call | workers CPU ms/call |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in result["rows"]:
        node, *workers = row["node_cpu_ms_per_call"]
        lines.append(
            f"| {row['op']} | {row['setup']} | {row['rps']:.1f} | {row['p50_ms']:.2f} | {row['p95_ms']:.2f} "
            f"| {node:.3f} | {' + '.join(f'{w:.3f}' for w in workers) or '–'} |"
        )
    lines += [
        "",
        "CPU per call is CPU time of each node's PostgreSQL processes during the measured run",
        "divided by the requests served (Citus's maintenance workers included). Bench tenants per",
        f"worker (port:tenants): {', '.join(result['tenants_per_worker_port'])}; wrk picks a random",
        "tenant per request.",
        "",
    ]
    path = ROOT / "bench" / "CITUS.md"
    path.write_text("\n".join(lines))
    return path


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cards", type=int, default=20_000)
    p.add_argument("--tenants", type=int, default=8)
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--conns", type=int, default=16)
    p.add_argument("--pg-port", type=int, default=54370, help="the single node's port")
    p.add_argument("--citus-port", type=int, default=54380, help="the coordinator's (workers: +1, +2)")
    p.add_argument("--gw-port", type=int, default=18006)
    args = p.parse_args(argv)
    if subprocess.run([CITUS, "available"]).returncode != 0:
        raise SystemExit("bench-citus: Citus is not installed (docs/SCALING.md says how to get it)")
    run.preflight()
    stamp = datetime.now(UTC)
    result = {
        "id": stamp.strftime("%Y%m%dT%H%M%SZ"),
        "cards": args.cards,
        "tenants": args.tenants,
        "conns": args.conns,
        "seconds": args.seconds,
        "machine": run.machine_facts(),
        "rows": [],
    }
    args.placement = []
    base = ["--conns", str(args.conns), "--gw-port", str(args.gw_port)]
    single = run.parse_args([*base, "--pg-port", str(args.pg_port)])
    single.pg_dir = ROOT / ".data" / "bench-citus-single"
    single.work = ROOT / "bench" / "work" / "citus-single"
    cluster = run.parse_args([*base, "--pg-port", str(args.citus_port)])
    cluster.work = ROOT / "bench" / "work" / "citus"
    folder = ROOT / ".data" / "bench-citus"
    for plan in (single, cluster):
        plan.work.mkdir(parents=True, exist_ok=True)
    try:
        result["rows"] += measure(single, "single", *start_single(single), args)
    finally:
        run.pgcluster("destroy", str(single.pg_dir))
    try:
        result["rows"] += measure(cluster, "citus", *start_citus(cluster, folder), args)
    finally:
        subprocess.run([CITUS, "destroy", folder], check=True)
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    result["tenants_per_worker_port"] = args.placement
    (results / f"citus-{result['id']}.json").write_text(json.dumps(result, indent=1))
    say(f"wrote {write_report(result).relative_to(ROOT)}")


if __name__ == "__main__":
    main()
