"""`make fuzz`: Schemathesis against the served /openapi.json of a real gateway on a real database.

    .venv/bin/python -m scripts.fuzz [--examples 150] [--seed N] [--no-report] [--keep]

Starts its own stack (scripts/devstack.py: cluster `.data/fuzz-pg` on port 54395, migrated, a tenant and
API key, the gateway on 127.0.0.1:18395), runs `schemathesis run` with scripts/fuzz.toml (every phase:
examples, coverage, fuzzing, stateful over the spec's links; every check, plus ours in
scripts/fuzz_hooks.py), stops the stack, and writes the figures into docs/FUZZING.md between its
result markers. Exits non-zero if Schemathesis found a failure, any response was a 5xx, the gateway
logged an unexpected error, or fewer than 1,000 cases ran.
"""

from __future__ import annotations

import argparse
import base64
import collections
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from gateway.routes import SPEC
from scripts.devstack import ROOT, Stack
from scripts.report_section import write_section

CONFIG = ROOT / "scripts" / "fuzz.toml"
REPORT = ROOT / "docs" / "FUZZING.md"
BEGIN, END = "<!-- fuzz-results:begin -->", "<!-- fuzz-results:end -->"
MIN_CASES = 1000
KNOWN_LOG = "known-defects.ndjson"  # failures of known, open defects (scripts/fuzz_hooks.py KNOWN_DEFECTS)


def run_schemathesis(
    url: str, api_key: str, examples: int, seed: int, reports: Path, echo: bool = False
) -> tuple[int, str]:
    """`schemathesis run` as both `make fuzz` and the short run in tests/test_fuzz.py use it: its exit
    code and output (also printed as it comes when `echo`). Reports go to `reports`."""
    reports.mkdir(parents=True, exist_ok=True)
    command = [
        *(sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG), "--no-color", "run"),
        f"{url}/openapi.json",
        *("--header", f"Authorization: Bearer {api_key}"),
        *("--max-examples", str(examples), "--seed", str(seed)),
        *("--report", "ndjson,json,junit", "--report-dir", str(reports)),
    ]
    env = os.environ | {
        "CARDS_FUZZ_KNOWN_LOG": str(reports / KNOWN_LOG),
        "HYPOTHESIS_STORAGE_DIRECTORY": str(reports / "hypothesis"),  # not .hypothesis/ in the work tree
    }
    output = []
    with subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        for line in process.stdout:
            output.append(line)
            if echo:
                sys.stdout.write(line)
                sys.stdout.flush()
    return process.returncode, "".join(output)


@dataclass
class Summary:
    """What one run did, read from Schemathesis's NDJSON events and JSON report."""

    cases: int = 0
    by_operation: dict[str, collections.Counter] = field(default_factory=dict)
    by_phase: collections.Counter = field(default_factory=collections.Counter)
    statuses: collections.Counter = field(default_factory=collections.Counter)
    server_errors: list[str] = field(default_factory=list)
    links: collections.Counter = field(default_factory=collections.Counter)  # transition → times
    checks: collections.Counter = field(default_factory=collections.Counter)  # (check, status) → n
    failures: list[dict] = field(default_factory=list)
    known: collections.Counter = field(default_factory=collections.Counter)  # open defect → failures
    exit_code: int | None = None
    running_time: float = 0.0
    version: str = ""


def _operation(method: str, path: str, documented: set[str]) -> str:
    label = f"{method} {path}"
    return label if label in documented else "an undocumented method (405 expected)"


def summarize(reports: Path, spec: dict) -> Summary:
    documented = {f"{m.upper()} {p}" for p, item in spec["paths"].items() for m in item}
    summary = Summary()
    ndjson = max(reports.glob("ndjson-*.ndjson"))
    with open(ndjson) as events:
        for line in events:
            event = json.loads(line)
            finished = event.get("ScenarioFinished")
            if finished is None:
                continue
            recorder, phase = finished["recorder"], finished["phase"]
            for case_id, interaction in recorder.get("interactions", {}).items():
                node = recorder["cases"][case_id]
                case = node["value"]
                mode = case.get("meta", {}).get("generation", {}).get("mode", "?")
                status = (interaction.get("response") or {}).get("status_code")
                operation = _operation(case["method"], case["path"], documented)
                counter = summary.by_operation.setdefault(operation, collections.Counter())
                counter.update(["cases", phase, mode, f"{status // 100}xx" if status else "no answer"])
                summary.by_phase[phase] += 1
                summary.statuses[status] += 1
                summary.cases += 1
                if status is None or status >= 500:
                    summary.server_errors.append(_describe(interaction))
                if node.get("transition"):
                    transition = node["transition"]
                    summary.links[(transition["id"], transition.get("is_inferred", False))] += 1
            for results in recorder.get("checks", {}).values():
                summary.checks.update((check["name"], check["status"]) for check in results)
    if (reports / KNOWN_LOG).exists():
        for line in (reports / KNOWN_LOG).read_text().splitlines():
            summary.known[json.loads(line)["defect"]] += 1
    report = json.loads(max(reports.glob("json-*.json")).read_text())
    summary.failures = report.get("failures", [])
    summary.exit_code = report.get("exit_code")
    summary.running_time = report.get("running_time", 0.0)
    summary.version = report.get("schemathesis_version", "")
    return summary


def _describe(interaction: dict) -> str:
    request, response = interaction["request"], interaction.get("response") or {}
    body = base64.b64decode((response.get("content") or {}).get("$base64", "")).decode(errors="replace")
    return f"{request['method']} {request['uri']} → {response.get('status_code')} {body[:300]}"


def unexpected_errors(gateway_log: Path) -> int:
    """Tracebacks the gateway logged as `unexpected error` (each one answered 500)."""
    if not gateway_log.exists():
        return 0
    return sum(
        '"msg":"unexpected error"' in line for line in gateway_log.read_text(errors="replace").splitlines()
    )


def render(
    summary: Summary, *, seed: int, examples: int, started: datetime, wall_s: float, logged: int
) -> str:
    ok = summary.exit_code == 0 and not summary.server_errors and not logged and summary.cases >= MIN_CASES
    lines = [
        BEGIN,
        "",
        f"## Last run: {started:%Y-%m-%d %H:%M} UTC — {'PASS' if ok else 'FAIL'}",
        "",
        "| | |",
        "|---|---|",
        f"| command | `make fuzz` (`python -m scripts.fuzz --examples {examples} --seed {seed}`) |",
        f"| Schemathesis | {summary.version}, config `scripts/fuzz.toml`, every phase, every check |",
        f"| seed | {seed} (rerun exactly: `make fuzz FUZZ_SEED={seed}`) |",
        f"| max examples | {examples} per operation and phase |",
        f"| duration | {wall_s:.0f} s in all ({summary.running_time:.0f} s of testing) |",
        f"| cases tried | **{summary.cases}** requests, each checked |",
        f"| by phase | {', '.join(f'{p} {n}' for p, n in sorted(summary.by_phase.items()))} |",
        f"| 5xx answers | **{len(summary.server_errors)}** |",
        f"| unexpected errors in the gateway log | **{logged}** |",
        f"| failures reported by Schemathesis | **{sum(f.get('count', 1) for f in summary.failures)}** |",
        f"| failures set aside (known open defects, known false alarms) | {_known(summary)} |",
        f"| API links followed | {len(summary.links)} distinct ({sum(summary.links.values())} times) |",
        "",
        "Cases per operation (positive = generated to be valid, negative = to be invalid):",
        "",
        "| operation | cases | coverage | fuzzing | stateful | positive | negative | 2xx | 4xx | 5xx |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for operation, c in sorted(summary.by_operation.items(), key=lambda item: (item[0][0] == "a", item[0])):
        row = [c["cases"], c["coverage"], c["fuzzing"], c["stateful"], c["positive"], c["negative"]]
        row += [c["2xx"], c["4xx"], c["5xx"]]
        lines.append(f"| `{operation}` | " + " | ".join(str(n) for n in row) + " |")
    lines += ["", "Statuses answered:", ""]
    lines.append(", ".join(f"{status}: {n}" for status, n in sorted(summary.statuses.items(), key=str)))
    lines += ["", "Checks run (passed / failed):", "", "| check | passed | failed |", "|---|--:|--:|"]
    names = sorted({name for name, _ in summary.checks})
    for name in names:
        lines.append(
            f"| `{name}` | {summary.checks[(name, 'success')]} | {summary.checks[(name, 'failure')]} |"
        )
    lines += ["", "Links followed in the stateful phase (★ = inferred by Schemathesis, not in the spec):", ""]
    for (link, inferred), n in sorted(summary.links.items()):
        lines.append(f"- {link}{' ★' if inferred else ''}: {n}")
    lines += ["", "Failures:", ""]
    if summary.failures:
        for failure in summary.failures:
            where = ", ".join(failure.get("operations", []))
            lines.append(f"- {failure['code']} {failure['title']} ×{failure.get('count', 1)}: {where}")
    elif not summary.known:
        lines.append("- none")
    for name, n in sorted(summary.known.items()):
        lines.append(f"- set aside, `{name}` (`KNOWN_DEFECTS` in scripts/fuzz_hooks.py): {n} failures")
    for error in summary.server_errors[:20]:
        lines.append(f"- 5xx: `{error}`")
    lines += ["", END]
    return "\n".join(lines)


def _known(summary: Summary) -> str:
    if not summary.known:
        return "none"
    return ", ".join(f"`{name}` ×{n}" for name, n in sorted(summary.known.items())) + " (counted, not failed)"


def write_report(section: str) -> None:
    write_section(REPORT, BEGIN, END, section, "Fuzzing")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    # `make fuzz FUZZ_SEED=N FUZZ_EXAMPLES=M`: make passes command-line variables in the environment.
    env_seed, env_examples = os.environ.get("FUZZ_SEED"), os.environ.get("FUZZ_EXAMPLES")
    parser.add_argument(
        "--examples",
        type=int,
        default=int(env_examples) if env_examples else 150,
        help="max examples per operation and phase ($FUZZ_EXAMPLES; default 150)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=int(env_seed) if env_seed else None,
        help="$FUZZ_SEED; default: a random one, printed and recorded",
    )
    parser.add_argument("--pg-dir", type=Path, default=ROOT / ".data" / "fuzz-pg")
    parser.add_argument("--pg-port", type=int, default=54395)
    parser.add_argument("--gw-port", type=int, default=18395)
    parser.add_argument("--work", type=Path, default=ROOT / ".data" / "fuzz")
    parser.add_argument("--no-report", action="store_true", help="do not rewrite docs/FUZZING.md")
    parser.add_argument("--keep", action="store_true", help="keep the cluster's files (stopped) at the end")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    reports = args.work / "reports"
    shutil.rmtree(reports, ignore_errors=True)
    started, t0 = datetime.now(UTC), time.monotonic()
    print(f"fuzz: seed {seed}, {args.examples} examples per operation and phase", flush=True)
    # The fuzzer sends hundreds of unauthenticated requests from one address on purpose: the per-address
    # throttle of failed authentications would answer 429 to everything after them.
    quiet = {"CARDS_AUTH_FAILURE_LIMIT": "0"}
    with Stack(
        args.pg_dir,
        args.pg_port,
        "test",
        gateway_port=args.gw_port,
        work=args.work,
        gateway_env=quiet,
        keep=args.keep,
    ) as stack:
        returncode, output = run_schemathesis(
            stack.url, stack.api_key, args.examples, seed, reports, echo=True
        )
        (args.work / "schemathesis.log").write_text(output)
        logged = unexpected_errors(stack.gateway_log)
    summary = summarize(reports, SPEC)
    wall = time.monotonic() - t0
    section = render(summary, seed=seed, examples=args.examples, started=started, wall_s=wall, logged=logged)
    if not args.no_report:
        write_report(section)
    print(re.sub(r"\n{3,}", "\n\n", section.replace(BEGIN, "").replace(END, "")))
    problems = []
    if returncode != 0:
        problems.append(f"schemathesis exited {returncode} (see {args.work / 'schemathesis.log'})")
    if summary.server_errors or logged:
        problems.append(f"{len(summary.server_errors)} 5xx answers, {logged} unexpected errors logged")
    if summary.cases < MIN_CASES:
        problems.append(f"only {summary.cases} cases ran (at least {MIN_CASES} wanted): raise --examples")
    for problem in problems:
        print(f"fuzz: FAIL: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
