"""The throwaway service that `make fuzz` and `make soak` run against: a PostgreSQL cluster of its
own (scripts/pgcluster, created afresh), migrated, one tenant with an API key, and the real gateway
(`python -m gateway`) as a separate process on a loopback port. Leaving the `with` block stops the
gateway and destroys the cluster, on failure and on SIGINT/SIGTERM too.

    with Stack(Path(".data/fuzz-pg"), 54395, "test", gateway_port=18395, work=Path(".data/fuzz")) as s:
        s.url, s.api_key, s.dsn, s.gateway.pid
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PGCLUSTER = str(ROOT / "scripts" / "pgcluster")
PY = str(ROOT / ".venv" / "bin" / "python")


def _terminate_on_signals() -> None:
    """SIGTERM (and SIGHUP) unwind like Ctrl-C does, so that every `finally` runs."""

    def raise_interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, raise_interrupt)


class Stack:
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
        self.dsn = f"postgresql://postgres@127.0.0.1:{pg_port}/postgres"
        self.url = f"http://127.0.0.1:{gateway_port}"
        self.gateway_log = work / "gateway.log"
        self.gateway: subprocess.Popen | None = None
        self.tenant_id = self.api_key = ""

    def __enter__(self) -> Stack:
        _terminate_on_signals()
        self.work.mkdir(parents=True, exist_ok=True)
        try:
            subprocess.run([PGCLUSTER, "destroy", str(self.pg_dir)], check=True)
            subprocess.run([PGCLUSTER, "start", str(self.pg_dir), str(self.pg_port), self.mode], check=True)
            subprocess.run(
                [PY, "-m", "gateway.migrate", self.dsn], check=True, cwd=ROOT, stdout=subprocess.DEVNULL
            )
            self.tenant_id, self.api_key = self.psql(
                "SELECT k.tenant, k.api_key FROM (SELECT cards.create_tenant('load') AS tenant) AS t,"
                " LATERAL (SELECT t.tenant, api_key FROM cards.create_api_key(t.tenant, 'run')) AS k"
            ).split("|")
            self.start_gateway()
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def start_gateway(self) -> None:
        env = os.environ | {"DATABASE_URL": self.dsn, "PORT": str(self.gateway_port)} | self.gateway_env
        with open(self.gateway_log, "wb") as log:  # this run's log only
            self.gateway = subprocess.Popen(
                [PY, "-m", "gateway"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/ready", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            if self.gateway.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the gateway did not become ready; see {self.gateway_log}")
            time.sleep(0.2)

    def stop_gateway(self) -> None:
        if self.gateway is None or self.gateway.poll() is not None:
            return
        self.gateway.send_signal(signal.SIGTERM)
        try:
            self.gateway.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.gateway.kill()
            self.gateway.wait()

    def psql(self, query: str) -> str:
        """One query as the superuser; its result unaligned (`a|b` per row)."""
        return subprocess.run(
            ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", self.dsn, "-c", query],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    def __exit__(self, *exc) -> None:
        try:
            self.stop_gateway()
        finally:
            subprocess.run([PGCLUSTER, "stop" if self.keep else "destroy", str(self.pg_dir)], check=False)
