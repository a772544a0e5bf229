"""Consistency checks for the operations assets that no off-the-shelf tool makes.

Run by deploy/check (which also runs hadolint, the compose-spec schema and promtool):

    python deploy/check_assets.py [--promtool PATH]

Checks, each printed as one `ok`/`FAIL` line:
  - the alert and recording rules, their unit tests' input series and the Grafana
    dashboard reference only metrics the gateway exports (deploy/metrics.yml), recording
    rules defined in deploy/prometheus/rules and Prometheus's own `up`, with label names
    and values the gateway uses;
  - every dashboard query parses (promtool check rules on a scratch rule file);
  - the dashboard's latency thresholds and the latency alerts agree with the targets;
  - every alert has a unit test where it fires and one where it stays quiet;
  - docs/OPERATIONS.md names every alert under "## Alerts", and no other alert name;
  - docker-compose.yml and deploy/Dockerfile wire together what the issue asks for.
Exit status 1 when any check fails. Standard library and PyYAML only.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
RULES_DIR = DEPLOY / "prometheus" / "rules"
TESTS_DIR = DEPLOY / "prometheus" / "tests"
DASHBOARDS_DIR = DEPLOY / "grafana" / "dashboards"
PROVISIONING = DEPLOY / "grafana" / "provisioning"
RUNBOOK = ROOT / "docs" / "OPERATIONS.md"
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"

# PromQL words that look like identifiers but name no series.
KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "and",
    "or",
    "unless",
    "inf",
    "nan",
    "atan2",
    "start",
    "end",
    # aggregation operators, which may be followed by `by (...)` before their `(`
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
}
LABEL_LIST_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
# Labels whose values are the same wherever they appear, recorded series included.
GLOBAL_LABELS = ("route", "outcome", "result", "kind", "reason")
ALERT_NAME = re.compile(r"\bCards[A-Z][A-Za-z0-9]+\b")
MATCHER = re.compile(
    r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"
    r"(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|`[^`]*`)\s*,?"
)


# --------------------------------------------------------------------------- PromQL


@dataclass
class Selector:
    name: str | None
    matchers: list[tuple[str, str, str]] = field(default_factory=list)


def _unquote(token: str) -> str:
    if token[0] == "`":
        return token[1:-1]
    return bytes(token[1:-1], "utf-8").decode("unicode_escape")


def _parse_matchers(body: str) -> list[tuple[str, str, str]]:
    out, pos = [], 0
    while pos < len(body):
        if not body[pos:].strip():
            break
        m = MATCHER.match(body, pos)
        if not m:
            raise ValueError(f"cannot read label matchers {{{body}}}")
        out.append((m.group(1), m.group(2), _unquote(m.group(3))))
        pos = m.end()
    return out


def _skip_string(expr: str, i: int) -> int:
    quote = expr[i]
    i += 1
    while i < len(expr) and expr[i] != quote:
        i += 2 if expr[i] == "\\" and quote != "`" else 1
    return i + 1


def _matching(expr: str, i: int, open_: str, close: str) -> int:
    """Index just past the bracket that closes the one at i (strings skipped)."""
    depth = 0
    while i < len(expr):
        c = expr[i]
        if c in "\"'`":
            i = _skip_string(expr, i)
            continue
        if c == open_:
            depth += 1
        elif c == close:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise ValueError(f"unbalanced {open_}{close} in {expr!r}")


def selectors(expr: str) -> list[Selector]:
    """Every series selector in a PromQL expression: metric name and label matchers."""
    found: list[Selector] = []
    i, n = 0, len(expr)
    while i < n:
        c = expr[i]
        if c == "#":  # a comment runs to the end of the line
            while i < n and expr[i] != "\n":
                i += 1
        elif c in "\"'`":
            i = _skip_string(expr, i)
        elif c == "[":  # range or subquery: durations and $__rate_interval
            i = _matching(expr, i, "[", "]")
        elif c == "{":  # a selector with no metric name
            end = _matching(expr, i, "{", "}")
            found.append(Selector(None, _parse_matchers(expr[i + 1 : end - 1])))
            i = end
        elif c.isdigit() or (c == "." and i + 1 < n and expr[i + 1].isdigit()):
            while i < n and (expr[i].isalnum() or expr[i] in "._"):
                i += 1
        elif c.isalpha() or c in "_:":
            j = i
            while j < n and (expr[j].isalnum() or expr[j] in "_:"):
                j += 1
            word = expr[i:j]
            k = j
            while k < n and expr[k].isspace():
                k += 1
            nxt = expr[k] if k < n else ""
            if word.lower() in LABEL_LIST_KEYWORDS and nxt == "(":
                i = _matching(expr, k, "(", ")")
            elif word.lower() in KEYWORDS or nxt == "(":
                i = j  # a keyword, or a function / aggregation: its arguments follow
            else:
                sel = Selector(word)
                if nxt == "{":
                    end = _matching(expr, k, "{", "}")
                    sel.matchers = _parse_matchers(expr[k + 1 : end - 1])
                    j = end
                found.append(sel)
                i = j
        else:
            i += 1
    return found


def series_selector(text: str) -> Selector:
    """A promtool input series (`name{a="b"}`) as a selector."""
    sels = selectors(text)
    if len(sels) != 1:
        raise ValueError(f"not one series: {text!r}")
    return sels[0]


# --------------------------------------------------------------------------- contract


class Contract:
    def __init__(self, path: Path, recorded: set[str]):
        data = yaml.safe_load(path.read_text())
        self.metrics: dict = data["metrics"]
        self.builtin = set(data["prometheus_series"])
        self.target_labels = set(data["target_labels"])
        self.job = data["job"]
        self.latency = data["latency_targets"]
        self.objective = data["slo_objective"]
        self.recorded = recorded
        self.values: dict[str, set[str]] = {}
        for label in GLOBAL_LABELS:
            for spec in self.metrics.values():
                vals = (spec.get("labels") or {}).get(label)
                if vals:
                    self.values.setdefault(label, set()).update(vals)

    def base(self, name: str) -> tuple[str, dict] | None:
        """The contract entry a concrete series name belongs to."""
        if name in self.metrics and self.metrics[name]["type"] != "histogram":
            return name, self.metrics[name]
        for suffix in HISTOGRAM_SUFFIXES:
            stem = name[: -len(suffix)]
            if name.endswith(suffix) and self.metrics.get(stem, {}).get("type") == "histogram":
                return stem, self.metrics[stem]
        return None

    def problems(self, sel: Selector, where: str) -> list[str]:
        out = []
        name = sel.name
        for label, op, value in sel.matchers:
            if label == "__name__" and op == "=":
                name = value
        if name is None:
            return [f"{where}: a selector without a metric name"]
        entry = self.base(name)
        if name in self.metrics and self.metrics[name]["type"] == "histogram":
            return [f"{where}: `{name}` is a histogram: select {name}_bucket, _sum or _count"]
        if entry is None and name not in self.recorded and name not in self.builtin:
            return [f"{where}: `{name}` is neither exported by the gateway, a recording rule, nor `up`"]
        for label, op, value in sel.matchers:
            if label == "__name__":
                continue
            allowed: set[str] | None = None
            if entry is not None:
                _stem, spec = entry
                labels = spec.get("labels") or {}
                known = set(labels) | self.target_labels
                if name.endswith("_bucket") and spec["type"] == "histogram":
                    known.add("le")
                if label not in known:
                    out.append(f"{where}: `{name}` has no label `{label}`")
                    continue
                if label == "le":
                    # As prometheus_client writes them (1 -> "1.0"); Prometheus 2 matches
                    # the text exactly.
                    allowed = {repr(float(b)) for b in spec["buckets"]} | {"+Inf"}
                elif labels.get(label):
                    allowed = set(labels[label])
            elif label in self.values:
                allowed = self.values[label]
            if allowed is None:
                continue
            if op == "=" and value not in allowed:
                out.append(f"{where}: `{name}` never has {label}={value!r} (known: {sorted(allowed)})")
            elif op == "=~":
                try:
                    rx = re.compile(f"(?:{value})\\Z")
                except re.error as exc:
                    out.append(f"{where}: bad regex {value!r}: {exc}")
                    continue
                if not any(rx.match(v) for v in allowed):
                    out.append(f"{where}: {label}=~{value!r} matches no value `{name}` has")
        return out


# --------------------------------------------------------------------------- loading


def load_rules() -> tuple[list[dict], list[dict]]:
    records, alerts = [], []
    for path in sorted(RULES_DIR.glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                rule = dict(rule, _file=path.name, _group=group["name"])
                (alerts if "alert" in rule else records).append(rule)
    return records, alerts


def dashboard_exprs(dash: dict) -> list[tuple[str, str]]:
    out = []

    def walk(panels: list) -> None:
        for panel in panels:
            for target in panel.get("targets", []):
                if target.get("expr"):
                    out.append((f"panel {panel.get('title')!r} {target.get('refId')}", target["expr"]))
            walk(panel.get("panels", []))

    walk(dash.get("panels", []))
    for var in dash.get("templating", {}).get("list", []):
        query = var.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        if var.get("type") == "query" and query:
            out.append((f"variable {var.get('name')}", query))
    return out


def all_panels(dash: dict) -> list[dict]:
    out = []

    def walk(panels: list) -> None:
        for panel in panels:
            out.append(panel)
            walk(panel.get("panels", []))

    walk(dash.get("panels", []))
    return out


def grafana_to_promql(expr: str) -> str:
    """Replace Grafana's macros so that promtool can parse the query."""
    expr = re.sub(r"\$__(rate_interval|interval|range)\b", "5m", expr)
    return re.sub(r"\$\{?[A-Za-z_]\w*\}?", "x", expr)


# --------------------------------------------------------------------------- checks


class Checker:
    def __init__(self, promtool: str):
        self.promtool = promtool
        self.records, self.alerts = load_rules()
        self.recorded = {r["record"] for r in self.records}
        self.contract = Contract(DEPLOY / "metrics.yml", self.recorded)
        self.dashboards = {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARDS_DIR.glob("*.json"))}
        self.results: list[tuple[bool, str, list[str]]] = []

    def check(self, title: str, problems: list[str]) -> None:
        self.results.append((not problems, title, problems))

    def rules_metrics(self) -> None:
        problems, n = [], 0
        for rule in self.records + self.alerts:
            name = rule.get("record") or rule.get("alert")
            for sel in selectors(rule["expr"]):
                n += 1
                problems += self.contract.problems(sel, f"{rule['_file']} {name}")
        self.check(f"rules reference only exported metrics and recording rules ({n} selectors)", problems)

    def dashboard_metrics(self) -> None:
        problems, n = [], 0
        if not self.dashboards:
            problems.append(f"no dashboard JSON in {DASHBOARDS_DIR.relative_to(ROOT)}")
        for fname, dash in self.dashboards.items():
            for where, expr in dashboard_exprs(dash):
                for sel in selectors(expr):
                    n += 1
                    problems += self.contract.problems(sel, f"{fname} {where}")
        self.check(
            f"dashboard references only exported metrics and recording rules ({n} selectors)", problems
        )

    def dashboard_queries_parse(self) -> None:
        rules = [
            {"record": f"dashboard:query_{i}:check", "expr": grafana_to_promql(expr)}
            for i, (_, expr) in enumerate(e for d in self.dashboards.values() for e in dashboard_exprs(d))
        ]
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "dashboard-queries.yml"
            path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
            proc = subprocess.run(
                [self.promtool, "check", "rules", str(path)], capture_output=True, text=True
            )
        problems = [] if proc.returncode == 0 else (proc.stdout + proc.stderr).strip().splitlines()
        self.check(f"every dashboard query parses (promtool, {len(rules)} queries)", problems)

    def dashboard_structure(self) -> None:
        problems = []
        ds = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
        uids = {d["uid"] for d in ds["datasources"]}
        for fname, dash in self.dashboards.items():
            for key in ("uid", "title", "schemaVersion", "panels"):
                if key not in dash:
                    problems.append(f"{fname}: no {key!r}")
            ids = [p.get("id") for p in all_panels(dash)]
            if len(ids) != len(set(ids)) or None in ids:
                problems.append(f"{fname}: panel ids are missing or repeated")
            for panel in all_panels(dash):
                if panel.get("type") == "row":
                    continue
                if "gridPos" not in panel:
                    problems.append(f"{fname}: panel {panel.get('title')!r} has no gridPos")
                for t in [panel, *panel.get("targets", [])]:
                    uid = (t.get("datasource") or {}).get("uid")
                    if uid not in uids:
                        problems.append(
                            f"{fname}: panel {panel.get('title')!r} uses datasource {uid!r}, "
                            f"provisioned: {sorted(uids)}"
                        )
                refs = [t.get("refId") for t in panel.get("targets", [])]
                if len(refs) != len(set(refs)):
                    problems.append(f"{fname}: panel {panel.get('title')!r} repeats a refId")
        provider = yaml.safe_load((PROVISIONING / "dashboards" / "cards.yml").read_text())
        if not provider.get("providers"):
            problems.append("grafana dashboards provisioning declares no provider")
        self.check("dashboard and Grafana provisioning are well formed", problems)

    def latency_targets(self) -> None:
        """Each target ("METHOD route") has its alert, comparing the p95 of exactly that method
        and route with the SLO, and a dashboard panel drawing that p95 with the SLO in red and
        the benchmark's target, if it has one, in yellow."""
        problems = []
        alerts = {a["alert"]: a for a in self.alerts}

        def p95_of(expr: str) -> list[Selector]:
            return [s for s in selectors(expr) if s.name and s.name.endswith(":p95_5m")]

        for endpoint, t in self.contract.latency.items():
            method, _, route = endpoint.partition(" ")
            if not re.fullmatch(r"[A-Z]+", method) or route not in self.contract.values.get("route", ()):
                problems.append(f"latency target {endpoint!r}: want 'METHOD route', a route of the gateway")
                continue
            want = {("route", "=", route), ("method", "=", method)}
            bench = t.get("bench")
            alert = alerts.get(t["alert"])
            if alert is None:
                problems.append(f"no alert {t['alert']} for {endpoint}")
            else:
                m = re.fullmatch(r"(.+?)\s*>\s*([0-9.]+)", alert["expr"].strip(), re.S)
                sels = p95_of(m.group(1)) if m else []
                if not m or len(sels) != 1 or set(sels[0].matchers) != want or float(m.group(2)) != t["slo"]:
                    problems.append(
                        f"{t['alert']} should compare the p95 of {endpoint} (route and method) with "
                        f"{t['slo']}: {alert['expr']!r}"
                    )
            seen = False
            for fname, dash in self.dashboards.items():
                for panel in all_panels(dash):
                    sels = [s for x in panel.get("targets", []) for s in p95_of(x.get("expr", ""))]
                    for sel in sels:
                        labels = {label for label, _, _ in sel.matchers}
                        if ("route", "=", route) in sel.matchers and "method" not in labels:
                            problems.append(
                                f"{fname} panel {panel['title']!r}: the p95 of {route} without a method "
                                "mixes the operations of the route"
                            )
                    if not any(set(sel.matchers) == want for sel in sels):
                        continue
                    seen = True
                    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
                    values = {s["color"]: s["value"] for s in steps}
                    if values.get("red") != t["slo"] or values.get("yellow") != bench:
                        yellow = "no yellow (none)" if bench is None else f"yellow={bench} (benchmark)"
                        problems.append(
                            f"{fname} panel {panel['title']!r}: thresholds {values}, "
                            f"want red={t['slo']} (SLO) and {yellow}"
                        )
                    mode = (
                        panel["fieldConfig"]["defaults"]
                        .get("custom", {})
                        .get("thresholdsStyle", {})
                        .get("mode")
                    )
                    if mode in (None, "off"):
                        problems.append(f"{fname} panel {panel['title']!r}: thresholds are not drawn")
            if not seen:
                problems.append(f"no dashboard panel draws the p95 of {endpoint}")
        self.check("latency alerts and dashboard thresholds match the targets", problems)

    def unit_tests(self) -> None:
        problems, fires, quiet = [], set(), set()
        names = {a["alert"] for a in self.alerts}
        files = sorted(TESTS_DIR.glob("*.yml"))
        for path in files:
            doc = yaml.safe_load(path.read_text())
            for i, test in enumerate(doc.get("tests", [])):
                where = f"{path.name} test {test.get('name', i)!r}"
                for series in test.get("input_series", []):
                    try:
                        problems += self.contract.problems(series_selector(series["series"]), where)
                    except ValueError as exc:
                        problems.append(f"{where}: {exc}")
                for case in test.get("alert_rule_test", []):
                    name = case["alertname"]
                    if name not in names:
                        problems.append(f"{where}: tests unknown alert {name}")
                    (fires if case.get("exp_alerts") else quiet).add(name)
        for name in sorted(names - fires):
            problems.append(f"{name}: no unit test where it fires")
        for name in sorted(names - quiet):
            problems.append(f"{name}: no unit test where it stays quiet")
        self.check(
            f"every alert has a firing and a quiet unit test ({len(names)} alerts, {len(files)} files)",
            problems,
        )

    def alert_metadata(self) -> None:
        problems = []
        seen = set()
        for a in self.alerts:
            name = a["alert"]
            if name in seen:
                problems.append(f"{name}: defined twice")
            seen.add(name)
            if not ALERT_NAME.fullmatch(name):
                problems.append(
                    f"{name}: alert names match {ALERT_NAME.pattern} (the runbook check relies on it)"
                )
            if a.get("labels", {}).get("severity") not in ("page", "ticket"):
                problems.append(f"{name}: severity must be page or ticket")
            ann = a.get("annotations", {})
            if not ann.get("summary"):
                problems.append(f"{name}: no summary")
            if ann.get("runbook_url") != f"docs/OPERATIONS.md#{name.lower()}":
                problems.append(f"{name}: runbook_url should be docs/OPERATIONS.md#{name.lower()}")
        self.check("alerts carry severity, summary and a runbook link", problems)

    def runbook(self) -> None:
        problems = []
        names = {a["alert"] for a in self.alerts}
        text = RUNBOOK.read_text() if RUNBOOK.exists() else ""
        if not text:
            problems.append(f"{RUNBOOK.relative_to(ROOT)} is missing")
        section, headed = None, []
        for line in text.splitlines():
            if line.startswith("## "):
                section = line[3:].strip()
            elif line.startswith("### ") and section == "Alerts":
                headed.append(line[4:].strip())
        if text and section is None:
            problems.append("the runbook has no '## Alerts' section")
        for h in headed:
            if h not in names:
                problems.append(f"'### {h}' under Alerts is not an alert in deploy/prometheus/rules")
        if len(headed) != len(set(headed)):
            problems.append("an alert has two sections")
        for name in sorted(names - set(headed)):
            problems.append(f"{name} has no '### {name}' section under '## Alerts'")
        for word in sorted(set(ALERT_NAME.findall(text)) - names):
            problems.append(f"the runbook names {word}, which is no alert in deploy/prometheus/rules")
        self.check(f"runbook names every alert and no other ({len(names)} alerts)", problems)

    def compose(self) -> None:
        problems = []
        doc = yaml.safe_load(COMPOSE.read_text())
        services = doc.get("services", {})
        want = {"postgres", "migrate", "gateway", "prometheus", "grafana"}
        if set(services) != want:
            problems.append(f"services are {sorted(services)}, want {sorted(want)}")
        for name, svc in services.items():
            image = svc.get("image", "")
            if not image or ":" not in image or image.endswith(":latest"):
                problems.append(f"{name}: image {image!r} should carry a fixed tag")
            build = svc.get("build")
            if build:
                dockerfile = ROOT / build.get("context", ".") / build.get("dockerfile", "Dockerfile")
                if not dockerfile.exists():
                    problems.append(f"{name}: {dockerfile} does not exist")
            for dep in svc.get("depends_on", {}):
                if dep not in services:
                    problems.append(f"{name}: depends on unknown service {dep}")
            for vol in svc.get("volumes", []):
                src = vol.split(":")[0] if isinstance(vol, str) else vol.get("source", "")
                if src.startswith((".", "/")) and not (ROOT / src).exists():
                    problems.append(f"{name}: bind mount source {src} does not exist")
        pg_image = services.get("postgres", {}).get("image", "")
        if not re.fullmatch(r"postgres:15(\.\d+)?(-\w+)?", pg_image):
            problems.append(f"postgres: image {pg_image!r} is not PostgreSQL 15")
        migrate, gateway = services.get("migrate", {}), services.get("gateway", {})
        if "gateway.migrate" not in json.dumps(migrate.get("command", "")):
            problems.append("migrate: command does not run python -m gateway.migrate")
        if migrate.get("restart", "no") != "no":
            problems.append("migrate: a one-shot must not restart")
        if (gateway.get("depends_on", {}).get("migrate") or {}).get(
            "condition"
        ) != "service_completed_successfully":
            problems.append("gateway: must depend on migrate with condition service_completed_successfully")
        env = gateway.get("environment", {})
        for var in ("DATABASE_URL", "PORT", "CARDS_JWT_SECRET"):
            if var not in env:
                problems.append(f"gateway: environment lacks {var}")
        if gateway.get("image") != migrate.get("image"):
            problems.append("migrate and gateway should run the same image")
        port = str(env.get("PORT", "8002"))
        prom = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
        jobs = {j["job_name"]: j for j in prom.get("scrape_configs", [])}
        job = jobs.get(self.contract.job)
        targets = [t for sc in (job or {}).get("static_configs", []) for t in sc.get("targets", [])]
        if f"gateway:{port}" not in targets:
            problems.append(
                f"prometheus job {self.contract.job} does not scrape gateway:{port} (targets {targets})"
            )
        mounts = " ".join(services.get("prometheus", {}).get("volumes", []))
        if "deploy/prometheus/rules" not in mounts or "prometheus.yml" not in mounts:
            problems.append("prometheus: config and rules are not mounted from deploy/prometheus")
        gmounts = services.get("grafana", {}).get("volumes", [])
        ds = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
        if not any("prometheus:9090" in d.get("url", "") for d in ds["datasources"]):
            problems.append("grafana datasource does not point at the prometheus service")
        provider = yaml.safe_load((PROVISIONING / "dashboards" / "cards.yml").read_text())
        paths = {p["options"]["path"] for p in provider["providers"]}
        dash_mounts = {
            v.split(":")[1] for v in gmounts if v.split(":")[0].endswith("deploy/grafana/dashboards")
        }
        if not paths & dash_mounts:
            problems.append(
                f"grafana: provider path {sorted(paths)} is not where dashboards are mounted "
                f"{sorted(dash_mounts)}"
            )
        if not any(v.startswith("./deploy/grafana/provisioning:/etc/grafana/provisioning") for v in gmounts):
            problems.append("grafana: provisioning is not mounted at /etc/grafana/provisioning")
        self.check("docker-compose.yml wires the five services together", problems)

    def dockerfile(self) -> None:
        problems = []
        lines, cur = [], ""
        for raw in DOCKERFILE.read_text().splitlines():
            if raw.lstrip().startswith("#") and not cur:
                continue
            cur += raw.rstrip("\\").strip() + " "
            if not raw.rstrip().endswith("\\"):
                lines.append(cur.strip())
                cur = ""
        instr = [
            (ln.split(None, 1)[0].upper(), ln.split(None, 1)[1] if " " in ln else "") for ln in lines if ln
        ]
        froms = [a for i, a in instr if i == "FROM"]
        if not froms or not froms[-1].startswith("python:3.11-slim"):
            problems.append(f"final FROM is {froms[-1:]}, want python:3.11-slim")
        users = [a for i, a in instr if i == "USER"]
        if not users or users[-1].split(":")[0] in ("root", "0"):
            problems.append("the image must end with a non-root USER")
        health = [a for i, a in instr if i == "HEALTHCHECK"]
        if not health or "/ready" not in health[-1] or "urllib" not in health[-1]:
            problems.append("HEALTHCHECK must hit /ready with urllib")
        cmd = [a for i, a in instr if i == "CMD"]
        if not cmd or json.loads(cmd[-1]) != ["python", "-m", "gateway"]:
            problems.append(f'CMD should be ["python", "-m", "gateway"], is {cmd[-1:]}')
        if any(i == "ENTRYPOINT" for i, _ in instr):
            problems.append("no ENTRYPOINT: the migrate one-shot replaces the command")
        self.check("Dockerfile: slim base, non-root, /ready healthcheck, python -m gateway", problems)

    def run(self) -> int:
        for step in (
            self.rules_metrics,
            self.dashboard_metrics,
            self.dashboard_queries_parse,
            self.dashboard_structure,
            self.latency_targets,
            self.unit_tests,
            self.alert_metadata,
            self.runbook,
            self.compose,
            self.dockerfile,
        ):
            try:
                step()
            except Exception as exc:  # one broken asset must not hide the other checks
                self.check(step.__name__, [f"{type(exc).__name__}: {exc}"])
        for ok, title, problems in self.results:
            print(f"{'ok  ' if ok else 'FAIL'}  {title}")
            for p in problems:
                print(f"        {p}")
        return 0 if all(ok for ok, _, _ in self.results) else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--promtool", default=shutil.which("promtool") or "/usr/bin/promtool")
    args = parser.parse_args()
    sys.exit(Checker(args.promtool).run())


if __name__ == "__main__":
    main()
