"""`python -m gateway`: serve on $PORT with uvloop until SIGINT/SIGTERM, then drain and exit.

With CARDS_WORKERS > 1 (the default is one per core) this process forks that many workers, each
an independent gateway listening on the same port (SO_REUSEPORT: the kernel spreads connections
over them), and only supervises them: it passes SIGINT/SIGTERM on, each worker drains its
requests, and it exits when they all have. A worker that dies stops the others (the service
manager restarts the whole); a supervisor killed outright takes its workers with it. Their
metrics are added up across workers (metrics.py)."""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import signal
import sys
import tempfile

from .config import Config, ConfigError
from .logs import configure

log = logging.getLogger("cards.gateway")
PR_SET_PDEATHSIG = 1  # prctl(2)
_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


def main() -> None:
    try:
        config = Config.from_env()
    except ConfigError as exc:
        sys.exit(f"cards gateway: {exc}")
    configure(config.log_level)
    if config.workers == 1:
        sys.exit(serve(config))
    sys.exit(supervise(config))


def serve(config: Config, reuse_port: bool = False) -> int:
    """One gateway in this process until SIGINT/SIGTERM; its exit status."""
    # Imported here: in a worker, prometheus_client must first see PROMETHEUS_MULTIPROC_DIR.
    import asyncio

    import asyncpg
    import uvloop
    from aiohttp import web

    from .app import init_app

    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    app = init_app(config)
    if reuse_port:
        app.on_startup.append(_stop_when_orphaned)
    try:
        web.run_app(
            app,
            host=config.host,
            port=config.port,
            loop=loop,
            reuse_port=reuse_port,
            access_log=None,  # the middleware writes one JSON line per request instead
            shutdown_timeout=config.shutdown_timeout_s,
            # once the pool is open
            print=lambda _: log.info(
                "serving", extra={"host": config.host or "*", "port": config.port, "pid": os.getpid()}
            ),
        )
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"cards gateway: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


def _exit_before_serving(signum: int, frame: object = None) -> None:
    os._exit(0)


def _die_with(parent: int) -> None:
    """This worker is killed as soon as its supervisor dies, however it dies: a gateway that is
    SIGKILLed is gone as a whole, as one process would be (Linux's parent-death signal)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: _stop_when_orphaned still stops it
        pass
    if os.getppid() != parent:  # it died before the signal was asked for
        os._exit(1)


async def _stop_when_orphaned(app) -> None:
    """Where there is no parent-death signal: a worker whose supervisor is gone drains and stops."""
    import asyncio

    parent = os.getppid()

    async def watch() -> None:
        while True:
            await asyncio.sleep(1)
            if os.getppid() != parent:
                os.kill(os.getpid(), signal.SIGTERM)
                return

    _watching.add(asyncio.get_running_loop().create_task(watch()))


_watching: set = set()  # keeps the watch task referenced


def supervise(config: Config) -> int:
    """Forks the workers and waits for them; the first non-zero exit status, else 0."""
    supervisor = os.getpid()
    metrics_dir = tempfile.mkdtemp(prefix="cards-gateway-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir  # before any worker imports prometheus_client
    workers: set[int] = set()
    stopping = False
    status = 0

    def stop(signum: int, frame: object = None) -> None:
        nonlocal stopping
        stopping = True
        for pid in workers:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        for _ in range(config.workers):
            if stopping:
                break
            # Held across the fork: a signal the child got before its own handlers were set
            # would run the supervisor's stop() in it (which then served on regardless).
            signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
            pid = os.fork()
            if pid == 0:
                _die_with(supervisor)
                # A process group of its own: a terminal's Ctrl-C reaches the supervisor alone,
                # which passes it on once.
                os.setpgid(0, 0)
                # Until aiohttp takes the signals over as it starts serving, a stop finds
                # nothing to drain: exit at once, and cleanly (the default action would make
                # the supervisor report a failure for a gateway stopped while it starts).
                signal.signal(signal.SIGTERM, _exit_before_serving)
                signal.signal(signal.SIGINT, _exit_before_serving)
                signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
                code = 1
                try:
                    code = serve(config, reuse_port=True)
                finally:
                    logging.shutdown()
                    sys.stdout.flush()
                    sys.stderr.flush()
                    os._exit(code)
            workers.add(pid)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
        log.info("supervising", extra={"workers": sorted(workers), "port": config.port})
        from prometheus_client import multiprocess

        while workers:
            pid, wait_status = os.wait()
            workers.discard(pid)
            multiprocess.mark_process_dead(pid, metrics_dir)
            code = os.waitstatus_to_exitcode(wait_status)
            if code != 0 and not stopping:
                log.error("a worker exited: stopping the others", extra={"pid": pid, "status": code})
                stop(signal.SIGTERM)
            if code != 0 and not status:
                status = code if code > 0 else 128 - code
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return status


if __name__ == "__main__":
    main()
