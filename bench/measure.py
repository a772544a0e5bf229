"""One measured run of one operation at one concurrency: pgbench against the database, or wrk
against the gateway. Both answer the same dict (req/s, latency percentiles in ms, errors, and
the CPU each party used), so the report can put them side by side."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
_TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Target:
    """Where the load goes: the bench cluster and the gateway in front of it."""

    pg_port: int
    database: str
    gw_port: int
    postmaster_pid: int
    gateway_pid: int
    work: Path


# --- CPU accounting: % of one core, from /proc (2 cores = 200 %) ---


def proc_ticks(pid: int, with_children: bool = False) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # gone
        return 0
    # After the ")" field 0 is state; utime, stime, cutime, cstime are fields 11..14.
    ticks = int(fields[11]) + int(fields[12])
    if with_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks


def _run_delay_ns(pid: int) -> int:
    """Nanoseconds the process's main thread spent runnable but waiting for a CPU."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1])
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return 0


def children(parent: int) -> list[int]:
    """The living child processes of `parent`."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone
            continue
        if int(stat[1]) == parent:
            found.append(int(entry.name))
    return found


def postgres_ticks(postmaster: int) -> int:
    """The postmaster, its living children, and (via cutime) every child it has reaped."""
    return proc_ticks(postmaster, with_children=True) + sum(proc_ticks(pid) for pid in children(postmaster))


def gateway_pids(gateway: int) -> list[int]:
    """The gateway's processes: one, or a supervisor and its workers (CARDS_WORKERS > 1)."""
    return [gateway, *children(gateway)]


def machine_ticks() -> tuple[int, int]:
    """(busy, all) CPU ticks of the whole machine since boot."""
    cpu = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in cpu]
    idle = values[3] + values[4]
    return sum(values[:8]) - idle, sum(values[:8])


def wait_for_quiet(max_wait: float, threshold: float = 30.0) -> dict:
    """Between runs nothing of ours is busy, so the machine's CPU use is other jobs'. Wait (at
    most `max_wait` seconds) until it stays under `threshold` % of one core for a second."""
    if max_wait <= 0:
        return {"waited_s": 0.0, "other_busy_before": None}
    started = time.monotonic()
    while True:
        b0, a0 = machine_ticks()
        time.sleep(1.0)
        b1, a1 = machine_ticks()
        busy = 100 * (os.cpu_count() or 1) * (b1 - b0) / max(1, a1 - a0)
        waited = time.monotonic() - started
        if busy < threshold or waited >= max_wait:
            return {"waited_s": round(waited, 1), "other_busy_before": round(busy, 1)}


class CpuMeter:
    """CPU used by PostgreSQL, the gateway, the load client (wrk/pgbench) and the machine."""

    def __init__(self, target: Target) -> None:
        self.target = target

    def __enter__(self) -> CpuMeter:
        self.t0 = time.monotonic()
        self.pg0 = postgres_ticks(self.target.postmaster_pid)
        self.gw_pids = gateway_pids(self.target.gateway_pid)
        self.gw0 = sum(proc_ticks(pid) for pid in self.gw_pids)
        self.gw_wait0 = sum(_run_delay_ns(pid) for pid in self.gw_pids)
        self.client0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.busy0, self.all0 = machine_ticks()
        return self

    def __exit__(self, *exc: object) -> None:
        seconds = time.monotonic() - self.t0
        client = resource.getrusage(resource.RUSAGE_CHILDREN)
        busy, total = machine_ticks()
        gw = sum(proc_ticks(pid) for pid in self.gw_pids)
        gw_wait = sum(_run_delay_ns(pid) for pid in self.gw_pids) - self.gw_wait0
        # pgbench's backends have just exited: their time reaches the postmaster's cutime
        # once it has reaped them, a few milliseconds later.
        time.sleep(0.25)
        pg = postgres_ticks(self.target.postmaster_pid)

        def pct(ticks: float) -> float:
            return round(100 * ticks / _TICK / seconds, 1)

        client_s = (client.ru_utime + client.ru_stime) - (self.client0.ru_utime + self.client0.ru_stime)
        self.result = {
            "postgres": pct(pg - self.pg0),
            "gateway": pct(gw - self.gw0),
            "client": round(100 * client_s / seconds, 1),
            "machine": round(100 * os.cpu_count() * (busy - self.busy0) / max(1, total - self.all0), 1),
        }
        # The gateway's event loops (one thread per worker): the share of the run they were ready
        # to run but waited for a core (busy with PostgreSQL, wrk or other jobs), summed over workers.
        self.result["gateway_cpu_wait"] = round(100 * gw_wait / 1e9 / seconds, 1)
        # Whatever else ran on the machine meanwhile (other jobs share these cores).
        ours = sum(v for k, v in self.result.items() if k in ("postgres", "gateway", "client") and v)
        self.result["other"] = round(max(0.0, self.result["machine"] - ours), 1)


# --- pgbench ---


def _percentile(sorted_values: list[int], p: float) -> int:
    if not sorted_values:
        return 0
    rank = max(0, min(len(sorted_values) - 1, round(p / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[rank]


def pgbench_defines(data: dict, batch_size: int = 100) -> dict[str, str]:
    content = (BENCH / "payloads" / "content-1k.json").read_text().strip()
    return {
        "tenants": str(data["tenants"]),
        "per_tenant": str(data["per_tenant"]),
        "repeat_pool": str(data["repeat_pool"]),
        "topics": str(data["topics"]),
        "batch_size": str(batch_size),
        "content": content,
    }


def pgbench(
    target: Target, op: str, clients: int, seconds: int, defines: dict[str, str], log: bool = True
) -> dict:
    """pgbench -M prepared running bench/pgbench/<op>.sql as role cards_gateway."""
    logdir = target.work / "pgbench-logs"
    logdir.mkdir(parents=True, exist_ok=True)
    for old in logdir.glob(f"{op}.*"):
        old.unlink()
    cmd = [
        "pgbench", "-h", "127.0.0.1", "-p", str(target.pg_port), "-U", "postgres",
        "-n", "-M", "prepared", "-c", str(clients), "-j", "1", "-T", str(seconds),
        "-f", str(BENCH / "pgbench" / f"{op}.sql"),
    ]  # fmt: skip
    for name, value in defines.items():
        cmd += ["-D", f"{name}={value}"]
    if log:
        cmd += ["--log", f"--log-prefix={logdir / op}"]
    cmd.append(target.database)
    # The gateway's connections run as cards_gateway; so do pgbench's.
    env = dict(os.environ, PGOPTIONS="-c role=cards_gateway", PGAPPNAME="bench-pgbench")
    with CpuMeter(target) as cpu:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 120)
    out = proc.stdout + proc.stderr
    result: dict = {"via": "pgbench", "op": op, "conns": clients, "seconds": seconds}
    if not log:
        return result
    latencies: list[int] = []
    failed = 0
    for path in logdir.glob(f"{op}.*"):
        for line in path.read_text().splitlines():
            fields = line.split()
            if len(fields) >= 3 and fields[2].isdigit():
                latencies.append(int(fields[2]))
            elif len(fields) >= 3:
                failed += 1
    latencies.sort()
    tps = _grab(out, "tps = ")
    result.update(
        requests=len(latencies),
        rps=round(tps, 1) if tps is not None else None,
        mean_ms=round(sum(latencies) / len(latencies) / 1000, 3) if latencies else None,
        p50_ms=_percentile(latencies, 50) / 1000 if latencies else None,
        p95_ms=_percentile(latencies, 95) / 1000 if latencies else None,
        p99_ms=_percentile(latencies, 99) / 1000 if latencies else None,
        max_ms=latencies[-1] / 1000 if latencies else None,
        errors=max(failed, int(_grab(out, "number of failed transactions: ") or 0)),
        cpu=cpu.result,
    )
    if proc.returncode != 0:
        result["failure"] = f"pgbench exited {proc.returncode}: {out.strip()[-600:]}"
        result["errors"] = max(1, failed)
    return result


def _grab(text: str, prefix: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(prefix):
            try:
                return float(line[len(prefix) :].split()[0])
            except (IndexError, ValueError):
                return None
    return None


# --- wrk ---


def wrk(target: Target, op: str, conns: int, seconds: int, token: str, arg: str | None = None) -> dict:
    """wrk with bench/lua/<op>.lua against the gateway on loopback."""
    cmd = [
        "wrk", "-t", "1", "-c", str(conns), "-d", f"{seconds}s", "--timeout", "10s",
        "-s", str(BENCH / "lua" / f"{op}.lua"), f"http://127.0.0.1:{target.gw_port}",
        "--", str(target.work), token,
    ]  # fmt: skip
    if arg is not None:
        cmd.append(arg)
    with CpuMeter(target) as cpu:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120)
    result: dict = {"via": "gateway", "op": op, "conns": conns, "seconds": seconds}
    line = next((x for x in proc.stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
    if proc.returncode != 0 or line is None:
        result["failure"] = f"wrk exited {proc.returncode}: {(proc.stdout + proc.stderr).strip()[-600:]}"
        result["errors"] = 1
        return result
    raw = json.loads(line.removeprefix("BENCH_JSON "))
    socket_errors = sum(raw[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts"))
    result.update(
        requests=raw["requests"],
        rps=round(raw["requests"] / (raw["duration_us"] / 1e6), 1),
        mean_ms=round(raw["mean_us"] / 1000, 3),
        p50_ms=raw["p50_us"] / 1000,
        p95_ms=raw["p95_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        non_2xx=raw["non_2xx"],
        socket_errors=socket_errors,
        errors=raw["non_2xx"] + socket_errors,
        cpu=cpu.result,
    )
    return result
