"""The README's trust model and the route table are held to the catalogs: who may execute what is
read from the database, so the documentation cannot drift from the grants."""

from __future__ import annotations

import re

import yaml

from gateway.routes import ROUTES

from .conftest import ROOT

ROLES = ("cards_gateway", "cards_admin")


def _executable(admin, role: str) -> set[str]:
    rows = admin.conn.execute(
        "SELECT p.proname FROM pg_proc AS p WHERE p.pronamespace = 'cards'::regnamespace"
        " AND has_function_privilege(%s, p.oid, 'EXECUTE')",
        (role,),
    )
    return {name for (name,) in rows}


def _readme_table() -> dict[str, set[str]]:
    table = {}
    for line in (ROOT / "README.md").read_text().splitlines():
        match = re.match(r"\s*\| `(\w+)`[^|]*\| (.*) \|$", line)
        if match:
            table[match.group(1)] = set(re.findall(r"`(\w+)`", match.group(2))) - {"cards"}
    return table


def test_the_readme_names_exactly_what_each_role_may_execute(admin):
    table = _readme_table()
    assert table["cards_gateway"] == _executable(admin, "cards_gateway")
    assert table["cards_admin"] == _executable(admin, "cards_admin") - table["cards_gateway"]
    assert _executable(admin, "public") == set()


def test_every_api_route_calls_a_function_the_gateway_may_execute(admin):
    called = {route.sql_function.removeprefix("cards.") for route in ROUTES if route.sql}
    assert called <= _executable(admin, "cards_gateway")
    assert {r.operation_id for r in ROUTES if r.scope} and all(
        r.scope in {"cards:read", "cards:write", "usage:write"} for r in ROUTES if r.scope
    )


def test_the_metrics_route_labels_are_the_route_tables_paths():
    metrics = yaml.safe_load((ROOT / "deploy" / "metrics.yml").read_text())
    labels = set(metrics["metrics"]["cards_http_requests_total"]["labels"]["route"])
    assert labels == {route.template for route in ROUTES} | {"unmatched"}


def test_every_route_that_writes_needs_cards_write_and_every_read_needs_cards_read():
    for route in ROUTES:
        if route.scope is None:
            assert not route.path.startswith("/api/")
        elif route.operation_id == "trackUsage":
            assert route.scope == "usage:write"
        else:
            assert route.scope == (
                "cards:read"
                if route.method == "GET" or route.operation_id == "retrieveCards"
                else "cards:write"
            )
