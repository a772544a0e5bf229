"""The package stands alone: installed, typed, importing nothing of the gateway (nor the gateway
anything of it)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

import cards_client


def test_importing_the_client_loads_nothing_of_the_gateway():
    code = "import cards_client, sys; print(sorted({m.split('.')[0] for m in sys.modules}))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert not {"gateway", "aiohttp", "asyncpg"} & set(eval(loaded))


def test_the_package_is_typed():
    assert (Path(cards_client.__file__).parent / "py.typed").exists()


@pytest.mark.skipif(
    os.environ.get("CARDS_CLIENT_REQUIRE_GATEWAY") != "1", reason="only under make test-client"
)
def test_the_tests_run_the_installed_package_not_a_source_tree():
    assert "site-packages" in Path(cards_client.__file__).parts


@pytest.mark.skipif(not (ROOT / "gateway").is_dir(), reason="no project checkout beside the client")
def test_the_gateway_imports_nothing_of_the_client():
    importing = [
        p.name for p in (ROOT / "gateway").rglob("*.py") if re.search(r"\bcards_client\b", p.read_text())
    ]
    assert importing == []
