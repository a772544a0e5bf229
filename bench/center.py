"""Card Center page speed: the server time of the card list (/center/, a page of 50 cards) and of
a card page, as the gateway itself reports it (`Server-Timing: app;dur=…`, the time from the
Card Center's middleware to the rendered page: session lookup, the SQL calls, the template).

One signed-in browser session (tenant 1 of the bench data), requests one after another: this
measures what a person waits for, not throughput. Targets (docs/CENTER.md): under 100 ms each.
Reported, never asserted."""

from __future__ import annotations

import http.cookiejar
import random
import re
import statistics
import time
import urllib.parse
import urllib.request
from pathlib import Path

TARGET_MS = 100.0
_TIMING = re.compile(r"app;dur=([0-9.]+)")


def measure(gw_port: int, work: Path, requests: int) -> dict:
    """`requests` list pages (following Next page, starting over at the end) and as many card pages."""
    base = f"http://127.0.0.1:{gw_port}"
    _, _, api_key = (work / "tenants.tsv").read_text().splitlines()[0].split("\t")
    ids = (work / "ids-1.txt").read_text().split()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    sign_in = urllib.parse.urlencode({"api_key": api_key}).encode()
    with opener.open(f"{base}/center/sign-in", data=sign_in, timeout=10) as response:
        if not response.url.endswith("/center/"):
            return {"failure": f"sign-in did not reach the card list ({response.url})"}
    out: dict = {}
    rng = random.Random(7)
    page = "/center/"
    for name in ("list", "card"):
        server, client, errors = [], [], 0
        for _ in range(requests):
            path = page if name == "list" else f"/center/cards/{rng.choice(ids)}"
            started = time.perf_counter()
            try:
                with opener.open(base + path, timeout=10) as response:
                    body = response.read().decode()
                    timing = _TIMING.search(response.headers.get("Server-Timing", ""))
            except OSError:
                errors += 1
                continue
            client.append((time.perf_counter() - started) * 1000)
            if timing is None or response.status != 200:
                errors += 1
                continue
            server.append(float(timing[1]))
            if name == "list":
                following = re.search(r'href="(/center/\?[^"]*cursor=[^"]+)" rel="next"', body)
                page = following[1].replace("&amp;", "&") if following else "/center/"
        out[name] = _summary(server, client, errors)
    return out


def _summary(server: list[float], client: list[float], errors: int) -> dict:
    if not server:
        return {"requests": 0, "errors": errors}
    ordered = sorted(server)
    return {
        "requests": len(server),
        "errors": errors,
        "server_p50_ms": round(statistics.median(ordered), 2),
        "server_p95_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))], 2),
        "server_max_ms": round(ordered[-1], 2),
        "client_p50_ms": round(statistics.median(client), 2),
    }


def lines(center: dict | None) -> list[str]:
    """The report's section."""
    if not center:
        return []
    out = [
        "",
        "## Card Center pages (server time)",
        "",
        "`bench/center.py`: one signed-in session, pages one after another; the gateway's own "
        f"`Server-Timing`. Target: under {TARGET_MS:.0f} ms.",
        "",
        "| page | requests | server p50 ms | server p95 ms | server max ms | target |",
        "|---|---:|---:|---:|---:|---|",
    ]
    if "failure" in center:
        return [*out, f"| failed: {center['failure'][:120]} ||||||"]
    for name, label in (("list", "card list, 50 cards"), ("card", "card page")):
        run = center.get(name, {})
        if not run.get("requests"):
            out.append(f"| {label} | 0 ({run.get('errors', '?')} errors) |||||")
            continue
        met = "met" if run["server_p95_ms"] < TARGET_MS else "missed"
        out.append(
            f"| {label} | {run['requests']} | {run['server_p50_ms']} | {run['server_p95_ms']} | "
            f"{run['server_max_ms']} | {met} |"
        )
    return out
