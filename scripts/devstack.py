"""The development stack, written once: a throwaway PostgreSQL cluster (scripts/pgcluster), migrated, a
tenant with an API key, and the real gateway (`python -m gateway`) as a subprocess with one readiness
check. `make run` (scripts/run-dev), `make fuzz` and `make soak` (Stack), `make bench` (bench/run.py) and
the tests that run the gateway as a process (tests/conftest.py) all use it.

The readiness check (`wait_ready`) insists on three things, so that a test or a measurement never talks
to somebody else's server by mistake: the port was free before the gateway started (`start_gateway`),
the path answers 200, and the socket listening on the port belongs to the started process (or one of its
children: `make run`'s gateway is the child of scripts/run-dev).

    with Stack(Path(".data/fuzz-pg"), 54395, "test", gateway_port=18395, work=Path(".data/fuzz")) as s:
        s.url, s.api_key, s.dsn, s.gateway.pid

    python -m scripts.devstack dev-key FILE    (scripts/run-dev) reuse FILE's key if DATABASE_URL still
                                               accepts it, else make a tenant and key and write them there
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PGCLUSTER = str(ROOT / "scripts" / "pgcluster")


# --- the cluster ---


def pgcluster(*args: str | Path) -> None:
    """scripts/pgcluster start DIR PORT MODE | stop DIR | kill DIR | destroy DIR."""
    subprocess.run([PGCLUSTER, *map(str, args)], check=True)


def superuser_dsn(port: int, database: str = "postgres") -> str:
    return f"postgresql://postgres@127.0.0.1:{port}/{database}"


def migrate(dsn: str) -> None:
    """`python -m gateway.migrate`: bring the database to this checkout's schema, quietly; its output
    is in the error when it fails."""
    command = [sys.executable, "-m", "gateway.migrate", dsn]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"migrating failed ({done.returncode}): {done.stdout}{done.stderr}")


def psql(dsn: str, query: str) -> str:
    """One query as the superuser; its result unaligned (`a|b` per row)."""
    return subprocess.run(
        ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", dsn, "-c", query],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def create_tenant_and_key(dsn: str, name: str, label: str) -> tuple[str, str]:
    """A new tenant and an API key for it (all scopes, no expiry): (tenant id, key)."""
    tenant_id, api_key = psql(
        dsn,
        "SELECT k.tenant, k.api_key FROM (SELECT cards.create_tenant(" + _literal(name) + ") AS tenant) AS t,"
        " LATERAL (SELECT t.tenant, api_key FROM cards.create_api_key(t.tenant, "
        + _literal(label)
        + ")) AS k",
    ).split("|")
    return tenant_id, api_key


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def dev_key(dsn: str, path: Path) -> tuple[str, str]:
    """The dev tenant and key kept in `path` while the database still accepts the key; otherwise a new
    tenant and key, written there (mode 0600). (tenant id, key)."""
    saved = dict(line.split("=", 1) for line in path.read_text().split()) if path.exists() else {}
    key = saved.get("API_KEY", "")
    if re.fullmatch(r"ck_[0-9a-f]{32}_\S+", key) and "TENANT_ID" in saved:
        query = (
            f"SELECT cards.authenticate_api_key('{key[3:35]}', sha256(convert_to({_literal(key)}, 'UTF8')))"
        )
        if psql(dsn, query) == "t":
            return saved["TENANT_ID"], key
    tenant_id, key = create_tenant_and_key(dsn, "dev", "make run")
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
        out.write(f"TENANT_ID={tenant_id}\nAPI_KEY={key}\n")
    return tenant_id, key


# --- ports and processes ---


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    """Nothing accepts connections on the loopback port."""
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat after the command name: [state, ppid, …], or None once the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None


def is_running(pid: int) -> bool:
    """The process exists and has not exited (a zombie has), without reaping it: its parent's
    subprocess or asyncio handle still gets its exit status."""
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def _family(pid: int) -> set[int]:
    """The process and all its descendants."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))):
            parents[int(entry.name)] = int(stat[1])
    family, grew = {pid}, True
    while grew:
        grew = False
        for child, parent in parents.items():
            if parent in family and child not in family:
                family.add(child)
                grew = True
    return family


def listening_pids(port: int) -> set[int]:
    """The processes holding a TCP socket that listens on `port` (any address), as far as this user
    may look (/proc/net/tcp and tcp6, then each process's descriptors)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] == "0A" and int(fields[1].rpartition(":")[2], 16) == port:  # 0A: LISTEN
                inodes.add(f"socket:[{fields[9]}]")
    owners = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if any(os.readlink(fd) in inodes for fd in (entry / "fd").iterdir()):
                owners.add(int(entry.name))
        except OSError:
            continue
    return owners


def wait_ready(
    port: int, pid: int, path: str = "/ready", seconds: float = 30, log: Path | None = None
) -> None:
    """Until http://127.0.0.1:<port><path> answers 200, served by process `pid` (or a child of it).
    Raises RuntimeError when the process exits, someone else answers, or `seconds` pass."""
    deadline, last = time.monotonic() + seconds, ""
    see = f"; see {log}" if log else ""
    while True:
        if not is_running(pid):
            raise RuntimeError(f"the gateway (pid {pid}) exited before it was ready{see}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
                if response.status == 200:
                    break
        except urllib.error.HTTPError as exc:
            last = f"{exc.code} {exc.read().decode(errors='replace')[:300]}"
        except OSError as exc:
            last = str(exc)
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"the gateway did not answer 200 on {path} within {seconds:.0f} s: {last}{see}"
            )
        time.sleep(0.1)
    owners = listening_pids(port)
    if not owners & _family(pid):
        raise RuntimeError(f"port {port} answers, but from process {sorted(owners)}, not the gateway ({pid})")


def gateway_env(**values: str) -> dict[str, str]:
    """This environment without any gateway setting of its own (DATABASE_URL, PORT, CARDS_*), plus
    `values`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "PORT") and not k.startswith("CARDS_")
    }
    return env | values


def start_gateway(
    port: int,
    env: dict[str, str],
    log: Path,
    *,
    path: str = "/ready",
    seconds: float = 30,
    append: bool = False,
    new_session: bool = False,
) -> subprocess.Popen:
    """`python -m gateway` on `port` with `env` (PORT is set here), its output in `log`; returns once
    `wait_ready` passes, and stops it if it does not."""
    if not port_is_free(port):
        raise RuntimeError(f"port {port} is in use; stop whatever listens there first")
    with open(log, "ab" if append else "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway"],
            cwd=ROOT,
            env=env | {"PORT": str(port)},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=new_session,
        )
    try:
        wait_ready(port, proc.pid, path, seconds, log)
    except BaseException:
        stop_gateway(proc)
        raise
    return proc


def stop_gateway(proc: subprocess.Popen | None, seconds: float = 40) -> None:
    """SIGTERM (in-flight requests finish), then SIGKILL after `seconds`."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# --- the whole stack, for make fuzz and make soak ---


def _terminate_on_signals() -> None:
    """SIGTERM (and SIGHUP) unwind like Ctrl-C does, so that every `finally` runs."""

    def raise_interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, raise_interrupt)


class Stack:
    """A fresh cluster in `pg_dir` on `pg_port` (pgcluster `mode`), migrated, one tenant with an API key,
    and the gateway on `gateway_port`. Leaving the `with` block stops the gateway and destroys the
    cluster (stops it, with `keep`), on failure and on SIGINT/SIGTERM too."""

    def __init__(
        self,
        pg_dir: Path,
        pg_port: int,
        mode: str,
        *,
        gateway_port: int,
        work: Path,
        gateway_env: dict[str, str] | None = None,
        keep: bool = False,
    ) -> None:
        self.pg_dir, self.pg_port, self.mode = pg_dir, pg_port, mode
        self.gateway_port, self.work, self.keep = gateway_port, work, keep
        self.gateway_env = gateway_env or {}
        self.dsn = superuser_dsn(pg_port)
        self.url = f"http://127.0.0.1:{gateway_port}"
        self.gateway_log = work / "gateway.log"
        self.gateway: subprocess.Popen | None = None
        self.tenant_id = self.api_key = ""

    def __enter__(self) -> Stack:
        _terminate_on_signals()
        self.work.mkdir(parents=True, exist_ok=True)
        try:
            pgcluster("destroy", self.pg_dir)
            pgcluster("start", self.pg_dir, self.pg_port, self.mode)
            migrate(self.dsn)
            self.tenant_id, self.api_key = create_tenant_and_key(self.dsn, "load", "run")
            self.start_gateway()
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def start_gateway(self) -> None:
        env = os.environ | {"DATABASE_URL": self.dsn} | self.gateway_env
        self.gateway = start_gateway(self.gateway_port, env, self.gateway_log)  # this run's log only

    def stop_gateway(self) -> None:
        stop_gateway(self.gateway)

    def psql(self, query: str) -> str:
        return psql(self.dsn, query)

    def __exit__(self, *exc) -> None:
        try:
            self.stop_gateway()
        finally:
            subprocess.run([PGCLUSTER, "stop" if self.keep else "destroy", str(self.pg_dir)], check=False)


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "dev-key":
        dev_key(os.environ["DATABASE_URL"], Path(argv[1]))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
