"""The repository stands alone: docs/API.md's generated tables are what the code says, no tracked file
points outside the checkout, and every relative link in a tracked Markdown file reaches a tracked file."""

from __future__ import annotations

import re
import subprocess

import pytest

from gateway import bounds, docs

from .conftest import ROOT


def _tracked() -> list[str]:
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [name for name in listed.stdout.decode().split("\0") if name]


def test_docs_api_md_is_what_python_m_gateway_docs_writes():
    committed = docs.API_MD.read_text()
    assert docs.render(committed) == committed, "run `python -m gateway.docs` and commit docs/API.md"


def test_every_generated_block_of_docs_api_md_is_present_and_filled():
    rendered = docs.render(docs.API_MD.read_text())
    for name, make in docs.BLOCKS.items():
        assert make() in rendered, name
    assert "`POST /api/v1/cards/batch`" in docs.route_table()


def test_no_tracked_file_points_outside_the_checkout():
    """CI's own script alone installs Citus from the build beside the checkout when it is missing."""
    outside = re.compile(r"\.\./" + "shared/|/work/" + "shared")
    offenders = [
        name
        for name in _tracked()
        if (ROOT / name).is_file() and outside.search((ROOT / name).read_text(errors="replace"))
    ]
    assert offenders == [".ci/run"]


def test_every_relative_link_of_a_tracked_markdown_file_reaches_a_tracked_file():
    tracked = set(_tracked())
    broken = []
    for name in (n for n in tracked if n.endswith(".md")):
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", (ROOT / name).read_text()):
            if re.match(r"[a-z]+:", target) or target.startswith("/"):
                continue  # a URL, or a route of the served API
            path = ((ROOT / name).parent / target).resolve()
            inside = path.is_relative_to(ROOT.resolve())
            if not inside or not (path.is_dir() or path.relative_to(ROOT.resolve()).as_posix() in tracked):
                broken.append(f"{name} → {target}")
    assert broken == []


def _sql_interface() -> dict[str, list[str]]:
    """docs/API.md's "SQL interface" table: function → its argument names, in order."""
    text = docs.API_MD.read_text()
    section = text[text.index("## SQL interface") : text.index("## Hardening")]
    table = {}
    for name, arguments in re.findall(r"^\| `(\w+)\(([^)]*)\)", section, re.M):
        table[name] = re.findall(r"\b(p_\w+) ", arguments)
    return table


def test_the_sql_interface_of_docs_api_md_names_each_functions_arguments_in_order(admin):
    table = _sql_interface()
    assert {"create_tenant", "batch_create", "set_tenant_limits", "list_api_keys"} <= set(table)
    for name, arguments in table.items():
        rows = admin.conn.execute(
            "SELECT p.proargnames[1:p.pronargs] FROM pg_proc AS p"
            " WHERE p.pronamespace = 'cards'::regnamespace AND p.proname = %s",
            (name,),
        ).fetchall()
        assert [list(row[0]) for row in rows] == [arguments], name


def test_the_prose_of_docs_api_md_states_the_bounds_of_gateway_bounds_py():
    b = bounds
    text = " ".join(docs.API_MD.read_text().split())  # one line: prose wraps anywhere
    for phrase in [
        f'`{{"cards": [card input, …]}}` with {b.CARDS_PER_BATCH.lo}–{b.CARDS_PER_BATCH.hi} items',
        f"The key is {b.IDEMPOTENCY_KEY.lo}–{b.IDEMPOTENCY_KEY.hi} printable ASCII characters",
        f'`{{"ids": [uuid, …]}}` with {b.IDS_PER_RETRIEVE.lo}–{b.IDS_PER_RETRIEVE.hi} items',
        f"(both ids {b.RUN_ID.lo}–{b.RUN_ID.hi} characters, metadata at most {b.kib(b.METADATA_BYTES)})",
        f"`limit` {b.PAGE_LIMIT.lo}–{b.PAGE_LIMIT.hi} (default {b.PAGE_LIMIT_DEFAULT})",
        f"(at most {b.SUMMARY_BUCKETS} buckets;",
        f"the {b.TOP_CARDS} most used cards",
        f"`contains` is bounded ({b.kib(b.CONTAINS_BYTES)},",
    ]:
        assert phrase in text, phrase
