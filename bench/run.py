"""`make bench` and `make bench-smoke`: the whole benchmark, end to end.

    python -m bench.run [--size 100k|20k|1m|10m]   full run: bench/results/<timestamp>.{json,md,png}
                                                   and bench/REPORT.md
    python -m bench.run --smoke                     quick check that the harness works (< 1 min);
                                                   exits non-zero if any phase gave no numbers or
                                                   any request failed

It starts its own PostgreSQL cluster (scripts/pgcluster, durable `bench` settings) and gateway,
loads the data (bench/datagen.py), runs every operation through pgbench (the database alone)
and wrk (through the gateway) at each concurrency, profiles, writes the report, and stops the
cluster and the gateway at the end, on failure and on SIGINT/SIGTERM too.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from scripts import devstack

from . import center, client_import, datagen, profile, report, search_lag
from .measure import ROOT, Target, pgbench, pgbench_defines, wait_for_quiet, wrk

SIZES = {"smoke": 2_000, "20k": 20_000, "100k": 100_000, "1m": 1_000_000, "10m": 10_000_000}
# Cards the client import loads (and the direct SQL load beside it), whatever the data size.
CLIENT_IMPORT_CARDS = {"smoke": 2_500}
OPERATIONS = report.OPS


@dataclass
class Plan:
    mode: str  # "full" or "smoke"
    size: str
    cards: int
    tenants: int
    conns: list[int]
    seconds: int
    warmup: int
    batch_sizes: list[int]
    batch_size_seconds: int
    profile: bool
    pg_dir: Path
    pg_port: int
    gw_port: int
    work: Path
    results: Path | None
    keep: bool
    reuse: bool
    gateway_log_level: str
    quiet_wait: float
    retries: int
    failures: list[str] = field(default_factory=list)


def parse_args(argv: list[str] | None = None) -> Plan:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="quick mode: tiny data, 2 s runs, one concurrency")
    p.add_argument("--size", default=None, help=f"data size: {', '.join(SIZES)} (default 100k; smoke: smoke)")
    p.add_argument("--tenants", type=int, default=None, help="tenants (default 4; smoke: 2)")
    p.add_argument("--conns", default=None, help="comma-separated concurrencies (default 4,16,64; smoke: 4)")
    p.add_argument(
        "--seconds", type=int, default=None, help="measured seconds per run (default 10; smoke: 2)"
    )
    p.add_argument(
        "--warmup", type=int, default=None, help="warm-up seconds before each run (default 3; smoke 0)"
    )
    p.add_argument("--no-profile", action="store_true", help="skip EXPLAIN ANALYZE and py-spy")
    p.add_argument("--pg-port", type=int, default=None, help="bench cluster port (54360; smoke 54362)")
    p.add_argument("--gw-port", type=int, default=None, help="gateway port (18002; smoke 18004)")
    p.add_argument("--keep", action="store_true", help="keep the cluster's data folder at the end")
    p.add_argument("--reuse", action="store_true", help="reuse a kept cluster if it holds the same size")
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=None,
        help="before each run, wait up to this long for other jobs to leave the CPU (default 30; smoke 0)",
    )
    p.add_argument(
        "--retries",
        type=int,
        default=None,
        help="measure a disturbed run again up to this many times, keep the least disturbed (default 2)",
    )
    p.add_argument("--gateway-log-level", default="INFO", help="the gateway's CARDS_LOG_LEVEL (default INFO)")
    a = p.parse_args(argv)
    smoke = a.smoke
    size = a.size or ("smoke" if smoke else "100k")
    if size not in SIZES:
        p.error(f"--size must be one of {', '.join(SIZES)}")
    mode = "smoke" if smoke else "full"
    conns = [int(c) for c in (a.conns or ("4" if smoke else "4,16,64")).split(",")]
    return Plan(
        mode=mode,
        size=size,
        cards=SIZES[size],
        tenants=a.tenants or (2 if smoke else 4),
        conns=conns,
        seconds=a.seconds or (2 if smoke else 10),
        warmup=a.warmup if a.warmup is not None else (0 if smoke else 3),
        batch_sizes=[10, 100, 1000],
        batch_size_seconds=1 if smoke else 10,
        profile=not (a.no_profile or smoke),
        pg_dir=ROOT / ".data" / ("bench-smoke-pg" if smoke else "bench-pg"),
        pg_port=a.pg_port or (54362 if smoke else 54360),
        gw_port=a.gw_port or (18004 if smoke else 18002),
        work=ROOT / "bench" / "work" / mode,
        results=None if smoke else ROOT / "bench" / "results",
        keep=a.keep,
        reuse=a.reuse and not smoke,
        gateway_log_level=a.gateway_log_level,
        quiet_wait=a.quiet_wait if a.quiet_wait is not None else (0 if smoke else 30),
        retries=a.retries if a.retries is not None else (0 if smoke else 2),
    )


def say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


# --- the cluster and the gateway ---


pgcluster = devstack.pgcluster


def admin_dsn(plan: Plan, database: str = "cards_bench") -> str:
    return f"postgresql://postgres@127.0.0.1:{plan.pg_port}/{database}"


port_free = devstack.port_is_free


async def _database_state(plan: Plan) -> dict | None:
    """The data summary a kept cluster holds, or None."""
    try:
        conn = await asyncpg.connect(admin_dsn(plan))
    except (OSError, asyncpg.PostgresError):
        return None
    try:
        text = await conn.fetchval("SELECT obj_description('bench.ids'::regclass)")
        return json.loads(text) if text else None
    except asyncpg.PostgresError:
        return None
    finally:
        await conn.close()


def start_cluster(plan: Plan) -> dict | None:
    """Start the bench cluster, fresh unless --reuse finds the same data; the kept data or None."""
    if not port_free(plan.pg_port) and not plan.reuse:
        raise SystemExit(f"bench: port {plan.pg_port} is in use; stop whatever listens there first")
    if plan.reuse and plan.pg_dir.exists():
        pgcluster("start", str(plan.pg_dir), str(plan.pg_port), "bench")
        data = asyncio.run(_database_state(plan))
        if (
            data
            and data.get("cards") == plan.cards
            and data.get("tenants") == plan.tenants
            and data.get("topics") == datagen.TOPICS
        ):
            say(f"reusing the kept cluster in {plan.pg_dir} ({plan.cards} cards)")
            return data
        say("the kept cluster holds other data: starting afresh")
    pgcluster("destroy", str(plan.pg_dir))
    pgcluster("start", str(plan.pg_dir), str(plan.pg_port), "bench")
    devstack.psql(admin_dsn(plan, "postgres"), "CREATE DATABASE cards_bench")
    devstack.psql(admin_dsn(plan), "CREATE EXTENSION pg_stat_statements")
    return None


def stop_cluster(plan: Plan) -> None:
    pgcluster("stop" if plan.keep else "destroy", str(plan.pg_dir))


def migrate(plan: Plan) -> int:
    """Bring the database to this checkout's schema (a no-op when it is there already): sql/ may
    have changed since the cluster was made, and the gateway is ready only at its version."""
    devstack.migrate(admin_dsn(plan))
    out = subprocess.run(
        ["psql", "-X", "-At", admin_dsn(plan), "-c", "SELECT max(version) FROM cards_meta.schema_migrations"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(out.stdout.strip())


def postmaster_pid(plan: Plan) -> int:
    return int((plan.pg_dir / "postmaster.pid").read_text().split()[0])


def gateway_workers(settings: dict[str, str]) -> int:
    """The gateway's worker processes with these settings (CARDS_WORKERS, else one per core)."""
    return int(
        settings.get("CARDS_WORKERS") or os.environ.get("CARDS_WORKERS") or len(os.sched_getaffinity(0))
    )


# The gateway's own defaults (1000 requests/s, burst 2000 per tenant) would refuse the runs that
# drive one tenant faster than that (the hot card): every run but the rate limiter's own sets the
# limit out of reach. The limiter still takes its leases, about one per 5000 requests.
UNREACHED_RATE_LIMIT = {"CARDS_RATE_LIMIT_RPS": "100000", "CARDS_RATE_LIMIT_BURST": "200000"}
DEFAULT_RATE_LIMIT = {"CARDS_RATE_LIMIT_RPS": "1000", "CARDS_RATE_LIMIT_BURST": "2000"}


def start_gateway(plan: Plan, **settings: str) -> subprocess.Popen:
    if not port_free(plan.gw_port):
        raise SystemExit(f"bench: port {plan.gw_port} is in use; stop whatever listens there first")
    # As many connections in all as the largest concurrency: each worker has a pool of its own.
    pool = -(-max(plan.conns) // gateway_workers(settings))
    env = (
        dict(
            os.environ,
            DATABASE_URL=admin_dsn(plan),
            CARDS_DB_POOL_MIN=str(pool),
            CARDS_DB_POOL_MAX=str(pool),
            CARDS_LOG_LEVEL=plan.gateway_log_level,
            CARDS_SHUTDOWN_TIMEOUT_S="5",
        )
        | UNREACHED_RATE_LIMIT
        | settings
    )
    return devstack.start_gateway(plan.gw_port, env, plan.work / "gateway.log", append=True, new_session=True)


def stop_gateway(proc: subprocess.Popen | None) -> None:
    devstack.stop_gateway(proc, 15)


# --- the machine ---


def machine_facts() -> dict:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next(
        (ln.split(":", 1)[1].strip() for ln in cpuinfo.splitlines() if ln.startswith("model name")), ""
    )
    mem_kb = int(
        next(
            ln.split()[1]
            for ln in Path("/proc/meminfo").read_text().splitlines()
            if ln.startswith("MemTotal")
        )
    )

    def version(cmd: list[str]) -> str:
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            return (out.stdout or out.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "?"

    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--", "sql", "gateway"],
        capture_output=True,
        text=True,
    )
    return {
        "cores": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "load_average_at_start": os.getloadavg(),
        "python": platform.python_version(),
        "wrk": version(["wrk", "-v"]),
        "pgbench": version(["pgbench", "--version"]),
        "commit": commit.stdout.strip() + ("+changes in sql/ or gateway/" if dirty.stdout.strip() else ""),
    }


PG_SETTINGS = (
    "server_version", "shared_buffers", "effective_cache_size", "work_mem", "max_connections",
    "synchronous_commit", "fsync", "full_page_writes", "wal_level", "max_wal_size", "checkpoint_timeout",
    "jit", "huge_pages", "random_page_cost", "shared_preload_libraries", "pg_stat_statements.track",
)  # fmt: skip


async def pg_facts(dsn: str) -> dict:
    conn = await asyncpg.connect(dsn)
    try:
        return {name: await conn.fetchval("SELECT current_setting($1)", name) for name in PG_SETTINGS}
    finally:
        await conn.close()


# --- the phases ---


def least_disturbed(plan: Plan, warm: Callable[[], object], measure: Callable[[], dict]) -> dict:
    """Wait for a quiet machine, warm up, measure; while other jobs took more than NOISY_OTHER_PCT
    of a core during the run, measure again (up to plan.retries times) and keep the least
    disturbed attempt. Every attempt's disturbance is recorded."""
    attempts: list[dict] = []
    for attempt in range(plan.retries + 1):
        quiet = wait_for_quiet(plan.quiet_wait)
        warm()
        run = measure() | {"quiet": quiet}
        attempts.append(run)
        other = (run.get("cpu") or {}).get("other", 0)
        if "failure" in run or other <= report.NOISY_OTHER_PCT:
            break
        if attempt < plan.retries:
            say(f"  other jobs took {other:.0f} % of a core during the run: measuring again")
    best = min(attempts, key=lambda r: ("failure" in r, (r.get("cpu") or {}).get("other", 0)))
    best["attempts_other_cpu"] = [(r.get("cpu") or {}).get("other") for r in attempts]
    return best


def measure_operation(plan: Plan, target: Target, data: dict, op: str, token: str) -> list[dict]:
    """pgbench then wrk, each after a warm-up, at every concurrency; pg_stat_statements per op."""
    runs = []
    defines = pgbench_defines(data)
    wrk_arg = {
        "usage": str(data["repeat_pool"]),
        "batch": "100",
        "list_tag": str(data["topics"]),
        "list_contains": str(data["per_tenant"]),
    }.get(op)
    asyncio.run(profile.reset_statements(admin_dsn(plan)))
    for conns in plan.conns:
        say(f"{op} x{conns}: pgbench")
        runs.append(
            least_disturbed(
                plan,
                lambda c=conns: plan.warmup and pgbench(target, op, c, plan.warmup, defines, log=False),
                lambda c=conns: pgbench(target, op, c, plan.seconds, defines),
            )
        )
        say(f"{op} x{conns}: gateway")
        runs.append(
            least_disturbed(
                plan,
                lambda c=conns: (
                    plan.warmup
                    and wrk(target, op, c, plan.warmup, f"{token}w{op}{c}{time.time_ns()}", wrk_arg)
                ),
                lambda c=conns: wrk(target, op, c, plan.seconds, f"{token}m{op}{c}{time.time_ns()}", wrk_arg),
            )
        )
        for run in runs[-2:]:
            line = f"{run['via']:8} {op:8} x{conns:<3} "
            if "failure" in run:
                say(line + "FAILED: " + run["failure"])
            else:
                say(line + f"{run['rps']:>9.1f} req/s  p50 {run['p50_ms']:.2f}  p95 {run['p95_ms']:.2f} ms")
    return runs


def measure_batch_sizes(plan: Plan, target: Target, data: dict) -> list[dict]:
    """Batch cost per card at batch sizes 10, 100, 1000: pgbench, one client, no gateway running; then
    the search indexing of those cards (after the commit), measured apart."""
    out = []
    dsn = admin_dsn(plan)
    for size in plan.batch_sizes:
        asyncio.run(search_lag.index_all(dsn))  # nothing left over from before
        defines = pgbench_defines(data, batch_size=size)
        run = least_disturbed(
            plan,
            lambda d=defines: (
                plan.warmup and pgbench(target, "batch", 1, max(1, plan.warmup // 2), d, log=False)
            ),
            lambda d=defines: pgbench(target, "batch", 1, plan.batch_size_seconds, d),
        )
        run["batch_size"] = size
        if run.get("rps"):
            run["cards_per_s"] = round(run["rps"] * size, 1)
            run["us_per_card"] = round(run["mean_ms"] * 1000 / size, 1)
        run["indexing"] = asyncio.run(search_lag.index_all(dsn, target))
        say(
            f"batch size {size}: "
            + (run.get("failure") or f"{run.get('us_per_card')} us/card")
            + f"; indexing {run['indexing'].get('us_per_card')} us/card of PostgreSQL CPU"
        )
        out.append(run)
    return out


def measure_overhead(plan: Plan, target: Target, data: dict) -> list[dict]:
    """What the pgbench scripts cost besides the function call (picking ids, building bodies)."""
    out = []
    defines = pgbench_defines(data)
    for op in ("retrieve", "usage", "batch"):
        run = pgbench(target, f"{op}_overhead", 1, 1 if plan.mode == "smoke" else 5, defines)
        say(f"pgbench overhead of {op}: " + (run.get("failure") or f"{run['mean_ms']} ms mean"))
        out.append(run)
    return out


def measure_rate_limiter(plan: Plan, target: Target, data: dict, token: str, state: str) -> list[dict]:
    """Usage through the gateway at each concurrency, labelled with the state of the per-tenant rate
    limiter ("on": the defaults, "off": CARDS_RATE_LIMIT_RPS=0): run once each, what the shared limit
    costs."""
    runs = []
    pool = str(data["repeat_pool"])
    for conns in plan.conns:
        tag = f"{token}{state}{conns}"
        run = least_disturbed(
            plan,
            lambda c=conns, t=tag: plan.warmup and wrk(target, "usage", c, plan.warmup, f"{t}w", pool),
            lambda c=conns, t=tag: wrk(target, "usage", c, plan.seconds, f"{t}m{time.time_ns()}", pool),
        )
        run["rate_limiter"] = state
        runs.append(run)
        say(f"usage x{conns} rate limiter {state}: " + (run.get("failure") or f"{run['rps']:.1f} req/s"))
    return runs


def measure_client_import(plan: Plan, dsn: str) -> dict:
    """cards_client's import_cards through the gateway beside cards.batch_create over one connection."""
    cards = CLIENT_IMPORT_CARDS.get(plan.size, 100_000)
    say(f"client import: {cards} cards through cards_client, and through cards.batch_create")
    wait_for_quiet(plan.quiet_wait)
    run = client_import.measure(dsn, f"http://127.0.0.1:{plan.gw_port}", cards)
    say(
        f"client import: {run['client_cards_per_s']:,.0f} cards/s, "
        f"SQL {run['sql_cards_per_s']:,.0f} cards/s, "
        f"ratio {run['ratio']:.2f} (target >= {run['target_ratio']})"
        + (f"; FAILED: {run['failure']}" if "failure" in run else "")
    )
    return run


def measure_workers(plan: Plan, target: Target, data: dict, token: str, workers: int) -> list[dict]:
    """Retrieve and usage through a gateway of `workers` processes at each concurrency: how
    throughput scales with workers."""
    runs = measure_server(plan, target, data, token, ("retrieve", "usage"), f"k{workers}")
    for run in runs:
        run["workers"] = workers
        say(f"{run['op']} x{run['conns']} {workers} worker(s): " + _outcome(run))
    return runs


def measure_server(
    plan: Plan, target: Target, data: dict, token: str, ops: tuple[str, ...], tag: str
) -> list[dict]:
    """Each of `ops` at each concurrency through whatever serves the gateway's port, with the
    gateway's wrk scripts; `tag` keeps this phase's idempotency keys and run ids apart."""
    runs = []
    for op in ops:
        arg = {"usage": str(data["repeat_pool"]), "batch": "100"}.get(op)
        for conns in plan.conns:
            name = f"{token}{tag}{op}{conns}"
            runs.append(
                least_disturbed(
                    plan,
                    lambda o=op, c=conns, n=name, a=arg: (
                        plan.warmup and wrk(target, o, c, plan.warmup, f"{n}w", a)
                    ),
                    lambda o=op, c=conns, n=name, a=arg: wrk(
                        target, o, c, plan.seconds, f"{n}m{time.time_ns()}", a
                    ),
                )
            )
    return runs


def _outcome(run: dict) -> str:
    return run.get("failure") or f"{run['rps']:.1f} req/s p95 {run['p95_ms']} ms"


def start_floor(plan: Plan) -> subprocess.Popen:
    """bench/floor.py on the gateway's port: one process, a pool as large as the gateway's."""
    env = dict(os.environ, DATABASE_URL=admin_dsn(plan))
    pool = str(max(plan.conns))
    log = plan.work / "floor.log"
    command = [sys.executable, "-m", "bench.floor", str(plan.gw_port), pool]
    with open(log, "ab") as out:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    return answering(proc, f"http://127.0.0.1:{plan.gw_port}/health", 30, "the floor server", log)


def answering(proc: subprocess.Popen, url: str, seconds: float, name: str, log: Path) -> subprocess.Popen:
    """`proc` once `url` answers; stopped, and an error naming its log, if it exits or stays silent."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}; see {log}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return proc
        except OSError:
            time.sleep(0.2)
    stop_gateway(proc)
    raise RuntimeError(f"{name} did not answer within {seconds:g} s")


def measure_floor(plan: Plan, target: Target, data: dict, token: str) -> list[dict]:
    """Retrieve and usage through bench/floor.py: the same SQL call with nothing around it."""
    runs = measure_server(plan, target, data, token, ("retrieve", "usage"), "floor")
    for run in runs:
        run["via"] = "floor"
        say(f"floor {run['op']} x{run['conns']}: " + _outcome(run))
    return runs


def start_peer(plan: Plan, workers: int) -> subprocess.Popen:
    """The plain FastAPI peer (bench/peer/) on the gateway's port, on a copy of the same data."""
    subprocess.run(
        [
            "psql",
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            admin_dsn(plan),
            "-f",
            str(ROOT / "bench/peer/schema.sql"),
        ],
        check=True,
    )
    env = dict(os.environ, DATABASE_URL=admin_dsn(plan), PEER_POOL=str(-(-max(plan.conns) // workers)))
    log = open(plan.work / "peer.log", "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "bench.peer.app:app", "--host", "127.0.0.1",
         "--port", str(plan.gw_port), "--workers", str(workers), "--loop", "uvloop", "--http", "httptools",
         "--no-access-log", "--log-level", "warning"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    answering(proc, f"http://127.0.0.1:{plan.gw_port}/openapi.json", 60, "the peer", plan.work / "peer.log")
    time.sleep(1)  # every worker's pool
    return proc


def measure_peer(plan: Plan, target: Target, data: dict, token: str) -> list[dict]:
    """The plain FastAPI peer through the same wrk scripts: retrieve, usage, batch."""
    runs = measure_server(plan, target, data, token, ("retrieve", "usage", "batch"), "peer")
    for run in runs:
        run["via"] = "peer"
        say(f"peer {run['op']} x{run['conns']}: " + _outcome(run))
    return runs


def profile_gateway(plan: Plan, target: Target, data: dict, token: str) -> dict:
    """py-spy on the gateway while wrk drives retrieve and usage (not a measured run)."""
    out: dict = {}
    if profile.pyspy_available() is None:
        return {"skipped": "py-spy is not installed"}
    conns = max(c for c in plan.conns if c <= 16) if any(c <= 16 for c in plan.conns) else plan.conns[0]
    for op in ("retrieve", "usage"):
        raw = plan.work / f"pyspy-{op}.txt"
        spy = profile.pyspy_record(target.gateway_pid, 6, raw)
        time.sleep(0.5)
        wrk(target, op, conns, 7, f"{token}p{op}", str(data["repeat_pool"]) if op == "usage" else None)
        _, err = spy.communicate(timeout=60)
        if spy.returncode != 0 or not raw.exists():
            out[op] = {"error": (err or "").strip()[-400:]}
            continue
        out[op] = profile.summarize_pyspy(raw, 6) | {"conns": conns}
    return out


def smoke_check(result: dict) -> list[str]:
    """What proves the harness works: every phase produced numbers and nothing failed."""
    problems = list(result.get("failures", []))
    for run in result["runs"] + result["batch_sizes"] + result.get("overhead", []) + result.get("floor", []):
        name = f"{run['via']} {run['op']} x{run['conns']}" + (
            f" size {run['batch_size']}" if "batch_size" in run else ""
        )
        if "failure" in run:
            problems.append(f"{name}: {run['failure']}")
        elif not run.get("requests") or not run.get("rps") or run.get("p95_ms") is None:
            problems.append(f"{name}: produced no numbers")
        elif run.get("errors"):
            problems.append(
                f"{name}: {run['errors']} failed requests (non-2xx, socket errors or failed transactions)"
            )
    imported = result.get("client_import")
    if not imported:
        problems.append("client import: no run")
    elif "failure" in imported:
        problems.append(f"client import: {imported['failure']}")
    for op in OPERATIONS:
        for via in ("pgbench", "gateway"):
            if not any(r["op"] == op and r["via"] == via for r in result["runs"]):
                problems.append(f"{via} {op}: no run")
    lag = result.get("search_lag") or {"failure": "not measured"}
    if "failure" in lag or lag.get("missed"):
        problems.append(f"search index lag: {lag}")
    for run in result["batch_sizes"]:
        if not (run.get("indexing") or {}).get("indexed"):
            problems.append(f"batch size {run['batch_size']}: indexing not measured: {run.get('indexing')}")
    pages = result.get("center") or {"failure": "not measured"}
    for name in ("list", "card"):
        run = pages.get(name) or {"errors": pages.get("failure", "not measured")}
        if not run.get("requests") or run.get("errors"):
            problems.append(f"center {name} page: {run}")
    return problems


def preflight() -> None:
    missing = [tool for tool in ("wrk", "pgbench", "psql") if shutil.which(tool) is None]
    if missing:
        raise SystemExit(
            f"bench: missing {', '.join(missing)}: apt-get install wrk postgresql-15 postgresql-client"
        )


def run(plan: Plan) -> int:
    preflight()
    started = time.monotonic()
    stamp = datetime.now(UTC)
    run_id = stamp.strftime("%Y%m%dT%H%M%SZ")
    token = f"{run_id}-{os.getpid()}"
    plan.work.mkdir(parents=True, exist_ok=True)
    gateway = None
    result: dict = {
        "id": run_id,
        "mode": plan.mode,
        "size": plan.size,
        "started_at": stamp.isoformat(timespec="seconds"),
        "config": {
            "conns": plan.conns,
            "seconds": plan.seconds,
            "warmup_seconds": plan.warmup,
            "batch_size_seconds": plan.batch_size_seconds,
            "wrk_threads": 1,
            "pgbench_threads": 1,
            "gateway_pool": max(plan.conns),
            "gateway_workers": gateway_workers({}),
            "gateway_log_level": plan.gateway_log_level,
            "quiet_wait_seconds": plan.quiet_wait,
            "retries": plan.retries,
        },
        "runs": [],
        "batch_sizes": [],
        "overhead": [],
        "failures": plan.failures,
    }
    try:
        say(f"{plan.mode} run {run_id}: {plan.cards} cards over {plan.tenants} tenants, conns {plan.conns}")
        result["machine"] = machine_facts()
        kept = start_cluster(plan)
        result["schema_version"] = migrate(plan)
        dsn = admin_dsn(plan)
        if kept is None:
            data = asyncio.run(
                datagen.load(
                    dsn,
                    plan.cards,
                    plan.tenants,
                    plan.work,
                    show_progress=plan.mode == "full" or sys.stderr.isatty(),
                )
            )
            asyncio.run(_remember(dsn, data))
        else:
            data = kept
            asyncio.run(datagen.write_work_files(dsn, plan.work))
        result["data"] = data
        say(
            f"data: {data['cards']} cards loaded in {data['load_seconds']} s "
            f"({data['cards_per_second']} cards/s)"
        )
        # The load leaves its cards for the search indexer: index them now, as a gateway would
        # right after an import, so that no measured run shares the machine with that work.
        indexed = asyncio.run(search_lag.index_all(dsn, settle=True))
        say(f"search index: {indexed['indexed']} loaded cards indexed")
        asyncio.run(check_listings(dsn))
        result["postgres"] = asyncio.run(pg_facts(dsn))
        gateway = start_gateway(plan)
        target = Target(
            plan.pg_port, "cards_bench", plan.gw_port, postmaster_pid(plan), gateway.pid, plan.work
        )
        statements = {}
        for op in OPERATIONS:
            result["runs"] += measure_operation(plan, target, data, op, token)
            statements[op] = asyncio.run(profile.top_statements(dsn))
        result["statements"] = statements
        # The batch sizes without a gateway, so that its search indexer does not index the cards
        # while they are measured: the indexing is measured apart, after each size.
        stop_gateway(gateway)
        result["batch_sizes"] = measure_batch_sizes(plan, target, data)
        gateway = start_gateway(plan)
        target = dataclasses.replace(target, gateway_pid=gateway.pid)
        say("search index lag: batches of 100 through the gateway until q= finds them")
        lag_batches = 5 if plan.mode == "smoke" else 40
        result["search_lag"] = search_lag.measure_lag(plan.gw_port, plan.work, lag_batches)
        say(f"search index lag: {result['search_lag']}")
        result["client_import"] = measure_client_import(plan, dsn)
        result["overhead"] = measure_overhead(plan, target, data)
        say("Card Center: list and card pages")
        result["center"] = center.measure(plan.gw_port, plan.work, 20 if plan.mode == "smoke" else 300)
        for name, run in result["center"].items():
            say(f"center {name}: {run}")
        if plan.profile:
            say("profiling: EXPLAIN ANALYZE inside each call, py-spy on the gateway")
            result["explain"] = asyncio.run(profile.explain_calls(dsn))
            result["pyspy"] = profile_gateway(plan, target, data, token)
        stop_gateway(gateway)
        gateway = start_gateway(plan, **DEFAULT_RATE_LIMIT)
        target = dataclasses.replace(target, gateway_pid=gateway.pid)
        result["rate_limiter"] = measure_rate_limiter(plan, target, data, token, "on")
        stop_gateway(gateway)
        gateway = start_gateway(plan, CARDS_RATE_LIMIT_RPS="0")
        target = dataclasses.replace(target, gateway_pid=gateway.pid)
        result["rate_limiter"] += measure_rate_limiter(plan, target, data, token, "off")
        stop_gateway(gateway)
        result["workers"] = []
        for workers in (1, 2):
            gateway = start_gateway(plan, CARDS_WORKERS=str(workers))
            target = dataclasses.replace(target, gateway_pid=gateway.pid)
            result["workers"] += measure_workers(plan, target, data, token, workers)
            stop_gateway(gateway)
            gateway = None
        gateway = start_floor(plan)
        target = dataclasses.replace(target, gateway_pid=gateway.pid)
        result["floor"] = measure_floor(plan, target, data, token)
        stop_gateway(gateway)
        gateway = None
        if plan.mode == "full":
            workers = gateway_workers({})
            gateway = start_peer(plan, workers)
            target = dataclasses.replace(target, gateway_pid=gateway.pid)
            result["peer"] = {"workers": workers, "runs": measure_peer(plan, target, data, token)}
            stop_gateway(gateway)
            gateway = None
        result["cards_table_bytes_after"] = asyncio.run(_table_bytes(dsn))
    except KeyboardInterrupt:
        plan.failures.append("interrupted")
        raise
    except Exception as exc:  # the report still shows what was measured
        plan.failures.append(f"{type(exc).__name__}: {exc}")
        say(f"FAILED: {type(exc).__name__}: {exc}")
    finally:
        stop_gateway(gateway)
        stop_cluster(plan)
        result["duration_seconds"] = round(time.monotonic() - started, 1)
    if plan.mode == "smoke":
        problems = smoke_check(result)
        (plan.work / "smoke.json").write_text(json.dumps(result, indent=1))
        for problem in problems:
            say(f"SMOKE FAILED: {problem}")
        say(f"smoke {'failed' if problems else 'passed'} in {result['duration_seconds']} s")
        return 1 if problems else 0
    assert plan.results is not None
    paths = report.write(result, plan.results, ROOT / "bench" / "REPORT.md")
    say("wrote " + ", ".join(str(p.relative_to(ROOT)) for p in paths))
    return 1 if plan.failures or any("failure" in r for r in result["runs"]) else 0


async def check_listings(dsn: str) -> None:
    """The listing runs measure full pages: their queries must find cards in this data (a query
    that finds nothing would be fast and prove nothing)."""
    conn = await asyncpg.connect(dsn)
    try:
        tenant = await conn.fetchval("SELECT tenant_id FROM bench.tenants WHERE tenant_no = 1")
        for name, tags, contains in (
            ("list_tag", [datagen.topic(0)], None),
            ("list_contains", None, '{"n": 1}'),
        ):
            page = await conn.fetchval(
                "SELECT cards.list_cards($1, NULL, $2, $3, NULL, NULL, NULL)::text", tenant, tags, contains
            )
            if not json.loads(page)["cards"]:
                raise RuntimeError(f"{name}: the benchmark's query finds no cards in this data")
    finally:
        await conn.close()


async def _remember(dsn: str, data: dict) -> None:
    """Keep the data summary in the cluster, so that --reuse can tell what a kept cluster holds."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"COMMENT ON TABLE bench.ids IS {_literal(json.dumps(data))}")
    finally:
        await conn.close()


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


async def _table_bytes(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval("SELECT pg_total_relation_size('cards.cards')")
    finally:
        await conn.close()


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> None:
    plan = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    try:
        sys.exit(run(plan))
    except KeyboardInterrupt:
        say("interrupted: the cluster and the gateway were stopped")
        sys.exit(130)


if __name__ == "__main__":
    main()
