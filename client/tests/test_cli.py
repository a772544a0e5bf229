"""The `cards` command, as installed (the console script beside this python), against the real
gateway."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import cards, found_by_q

from cards_client._cli import UsageError, read_json_array

CARDS = Path(sys.executable).parent / "cards"


def run(tenant, *args: str, env: dict | None = None, stdin: str | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CARDS_")}
    if tenant is not None:
        base |= {"CARDS_BASE_URL": tenant.gateway.url, "CARDS_API_KEY": tenant.api_key}
    return subprocess.run(
        [str(CARDS), *args], env=base | (env or {}), capture_output=True, text=True, input=stdin, timeout=60
    )


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_import_jsonl_stores_every_row_and_exits_0(tenant, tmp_path):
    done = run(tenant, "import", str(write_jsonl(tmp_path / "cards.jsonl", cards("a", "b", "c"))))
    assert done.returncode == 0, done.stderr
    assert "created 3, duplicates 0" in done.stdout
    assert tenant.card_count() == 3


def test_import_names_invalid_rows_by_line_and_stores_the_valid_ones(tenant, tmp_path):
    rows = [*cards("a"), "{not json", {"title": "", "content": 1}, *cards("b"), [1, 2], {"title": "c"}]
    path = write_jsonl(tmp_path / "cards.jsonl", rows)
    done = run(tenant, "import", str(path), "--chunk-size", "2")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert [line.split(":")[1].strip() for line in lines] == ["line 2", "line 3", "line 5", "line 6"]
    assert "not JSON" in lines[0] and "title" in lines[1] and "not a JSON object" in lines[2]
    assert "content" in lines[3]
    assert "created 2" in done.stdout and "refused 4" in done.stdout
    assert tenant.card_count() == 2
    again = run(tenant, "import", str(path), "--chunk-size", "2")
    assert again.returncode == 1 and "created 0" in again.stdout and "2 replayed" in again.stdout
    assert tenant.card_count() == 2


def test_import_json_array(tenant, tmp_path):
    path = tmp_path / "cards.json"
    path.write_text(json.dumps([*cards("a", "b"), {"title": "x", "content": None}], indent=2))
    done = run(tenant, "import", str(path))
    assert done.returncode == 1
    assert "item 3: content" in done.stderr
    assert tenant.card_count() == 2


@pytest.mark.parametrize("block", [1, 2, 7, 1 << 16])
def test_a_json_array_is_decoded_item_by_item_across_blocks(block):
    items = [{"title": f"t{i}", "content": 1.5 * 10**i, "tags": ["x"] * (i % 3)} for i in range(12)]
    for text in (json.dumps(items), json.dumps(items, indent=2) + "\n\n"):
        assert [row for _, row in read_json_array(io.StringIO(text), block=block)] == items
    assert [row for _, row in read_json_array(io.StringIO(" [ ] "), block=block)] == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{}", "one JSON array"),
        ("[{}", "not closed"),
        ("[{},", "not closed"),
        ("[{} {}]", "expected ','"),
        ("[{}],", "followed by more text"),
        ("[{]", "item 1: not JSON"),
    ],
)
def test_a_malformed_json_array_is_a_usage_error(text, message):
    with pytest.raises(UsageError, match=message):
        list(read_json_array(io.StringIO(text), block=2))


def test_import_csv(tenant, tmp_path):
    path = tmp_path / "cards.csv"
    with open(path, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["title", "kind", "content", "tags", "metadata"])
        writer.writerow(["Tone", "", "Warm, direct", "brand, tone", '{"source": "wiki"}'])
        writer.writerow(["Founded", "fact", "1999", "", ""])
        writer.writerow(["Bad kind", "Not A Kind", '{"x": 1}', "", ""])
        writer.writerow(["Bad metadata", "", "x", "", "{oops"])
        writer.writerow(["Structured", "note", '{"steps": [1, 2]}', "a", ""])
        writer.writerow(["No content", "", "", "", ""])
    done = run(tenant, "import", str(path))
    assert done.returncode == 1, done.stderr
    refused = done.stderr.strip().splitlines()
    assert refused[0].split(":")[1].strip() == "row 4" and "kind" in refused[0]
    assert refused[1].split(":")[1].strip() == "row 5" and "metadata" in refused[1]
    assert refused[2].split(":")[1].strip() == "row 7" and "content" in refused[2]
    with tenant.client() as client:
        found = {c.title: c for c in client.list()}
    assert found["Tone"].content == "Warm, direct" and found["Tone"].tags == ["brand", "tone"]
    assert found["Tone"].metadata == {"source": "wiki"} and found["Tone"].kind == "note"
    assert found["Founded"].content == 1999 and found["Founded"].kind == "fact"
    assert found["Structured"].content == {"steps": [1, 2]}
    assert set(found) == {"Tone", "Founded", "Structured"}


def test_export_then_import_into_another_tenant_reproduces_the_cards(tenant, other_tenant, tmp_path):
    with tenant.client() as client:
        client.batch_create(
            [
                {"kind": "fact", "title": "Founded", "content": "1999", "tags": ["x"], "metadata": {"s": 1}},
                {"title": "Tone", "content": {"text": "warm", "n": [1, 2.5, None]}},
                {"title": "Ünïcode", "content": "✓"},
            ]
        )
    exported = run(tenant, "export")
    assert exported.returncode == 0, exported.stderr
    path = tmp_path / "export.jsonl"
    path.write_text(exported.stdout)
    done = run(other_tenant, "import", str(path))
    assert done.returncode == 0, done.stderr
    with tenant.client() as a, other_tenant.client() as b:
        original = {(c.content_hash, c.title, json.dumps(c.content), tuple(c.tags)) for c in a.list()}
        copied = {(c.content_hash, c.title, json.dumps(c.content), tuple(c.tags)) for c in b.list()}
    assert len(original) == 3 and copied == original


def test_export_filters(tenant):
    with tenant.client() as client:
        client.batch_create([*cards("a", tags=["x"]), {"kind": "fact", "title": "b", "content": "warm"}])
        found_by_q(client, "warm")  # the export's q= below then finds the new card
    assert [
        json.loads(line)["title"] for line in run(tenant, "export", "--tag", "x").stdout.splitlines()
    ] == ["a"]
    assert [
        json.loads(line)["title"] for line in run(tenant, "export", "--kind", "fact").stdout.splitlines()
    ] == ["b"]
    assert [
        json.loads(line)["title"] for line in run(tenant, "export", "--q", "warm").stdout.splitlines()
    ] == ["b"]


def test_get_and_usage(tenant):
    with tenant.client() as client:
        card_id = client.batch_create(cards("a")).cards[0].id
    got = run(tenant, "get", card_id)
    assert got.returncode == 0 and json.loads(got.stdout)["id"] == card_id
    args = ("usage", card_id, "--workflow-id", "w", "--run-id", "r")
    first, second = run(tenant, *args), run(tenant, *args)
    assert json.loads(first.stdout)["deduplicated"] is False
    assert json.loads(second.stdout) | {"recorded_at": None} == {
        "card_id": card_id, "usage_count": 1, "deduplicated": True, "recorded_at": None,
    }  # fmt: skip


def test_get_of_an_unknown_card_exits_1_with_the_problem(tenant):
    done = run(tenant, "get", "3f1c1b7e-8a6f-4c55-9d2e-2b1f7b0c0d11")
    assert done.returncode == 1 and "404 not-found" in done.stderr


def test_options_on_the_command_line_replace_the_environment(tenant):
    done = run(None, "--base-url", tenant.gateway.url, "export", "--api-key", tenant.api_key)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("import",), "required"),
        (("import", "missing.jsonl"), "No such file"),
        (("import", "cards.txt"), "unknown file type"),
        (("usage", "x", "--run-id", "r"), "--workflow-id"),
        (("frobnicate",), "invalid choice"),
        (("import", "cards.txt", "--chunk-size", "0"), "1 to 1000"),
        (("get", "x", "--timeout", "-1"), "positive"),
    ],
)
def test_usage_errors_exit_2(tenant, tmp_path, args, message):
    (tmp_path / "cards.txt").write_text("x")
    done = subprocess.run(
        [str(CARDS), *args],
        cwd=tmp_path,
        env=os.environ | {"CARDS_BASE_URL": tenant.gateway.url, "CARDS_API_KEY": tenant.api_key},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and message in done.stderr


def test_no_api_key_is_a_usage_error(tmp_path):
    done = run(None, "get", "x")
    assert done.returncode == 2 and "CARDS_API_KEY" in done.stderr


def test_a_csv_with_unknown_columns_is_a_usage_error(tenant, tmp_path):
    path = tmp_path / "cards.csv"
    path.write_text("title,body\na,b\n")
    done = run(tenant, "import", str(path))
    assert done.returncode == 2 and "columns" in done.stderr


def test_no_progress_bar_when_stderr_is_not_a_terminal(tenant, tmp_path):
    done = run(tenant, "import", str(write_jsonl(tmp_path / "c.jsonl", cards("a"))))
    assert done.returncode == 0 and done.stderr == ""


def test_a_progress_bar_on_a_terminal(tenant, tmp_path):
    import pty

    path = write_jsonl(tmp_path / "c.jsonl", [{"title": f"t{i}", "content": i} for i in range(300)])
    primary, secondary = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARDS_")}
    env |= {"CARDS_BASE_URL": tenant.gateway.url, "CARDS_API_KEY": tenant.api_key}
    done = subprocess.run(
        [str(CARDS), "import", str(path), "--chunk-size", "10"],
        env=env, stdout=subprocess.PIPE, stderr=secondary, timeout=60,
    )  # fmt: skip
    os.close(secondary)
    shown = os.read(primary, 65536).decode()
    os.close(primary)
    assert done.returncode == 0
    assert shown.startswith("\r[")
    last = shown.strip().split("\r")[-1]
    assert last.startswith("[" + "#" * 30 + "] 100% 300 rows")


def test_an_import_cut_off_by_an_error_says_a_rerun_is_safe(tenant, tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", cards("a"))
    done = run(
        None, "import", str(path), env={"CARDS_BASE_URL": tenant.gateway.url, "CARDS_API_KEY": "ck_bad"}
    )
    assert done.returncode == 1
    assert "401 unauthorized" in done.stderr and "run the same import again" in done.stderr
