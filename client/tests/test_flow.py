"""The whole flow, as one test: onboarding imports a tenant's knowledge from a file; a workflow
run retrieves its cards and reports each use twice (a retry), counted once; the usage summary
shows it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

CARDS = Path(sys.executable).parent / "cards"


def test_onboarding_then_a_workflow_run_then_the_summary(tenant, tmp_path):
    knowledge = tmp_path / "acme.jsonl"
    rows = [
        {"kind": "voice", "title": "Brand voice", "content": {"tone": "warm, direct"}, "tags": ["brand"]},
        {"kind": "fact", "title": "Founded", "content": "1999", "metadata": {"source": "wiki"}},
        *({"title": f"FAQ {i}", "content": {"q": f"question {i}"}, "tags": ["faq"]} for i in range(40)),
    ]
    knowledge.write_text("".join(json.dumps(r) + "\n" for r in rows))
    env = os.environ | {"CARDS_BASE_URL": tenant.gateway.url, "CARDS_API_KEY": tenant.api_key}

    # Onboarding, run twice (the second time by mistake): one set of cards.
    for created in (42, 0):
        done = subprocess.run(
            [str(CARDS), "import", str(knowledge), "--chunk-size", "10"],
            env=env,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(f"created {created},")
    assert tenant.card_count() == 42

    with tenant.client() as client:
        wanted = [c.id for c in client.list(tags=["brand"])] + [c.id for c in client.list(kind="fact")]
        # The workflow run: its cards, each use reported, and reported again as a retry would.
        with client.run("welcome-email", "run-2026-11-26-001") as run:
            found = run.cards(wanted)
            assert [c.title for c in found] == ["Brand voice", "Founded"] and not found.missing
            for card in found:
                assert run.used(card).usage_count == 1
        with client.run("welcome-email", "run-2026-11-26-001") as retry:
            assert all(retry.used(card).deduplicated for card in found)

        summary = client.usage_summary(bucket="hour")
        assert summary.events == 2
        assert {(t.title, t.events) for t in summary.top_cards} == {("Brand voice", 1), ("Founded", 1)}
        assert [c.usage_count for c in client.retrieve(wanted)] == [1, 1]
        assert [r.run_id for r in client.usage_history(wanted[0])] == ["run-2026-11-26-001"]
