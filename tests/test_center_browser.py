"""Card Center in a real browser: Debian's chromium, headless, driven by Playwright (never a
downloaded browser) through every story of the Card Center contract, finding things by role
and label as a person would. axe-core checks each page; no page may break its CSP.

One gateway process and one browser serve the whole module; each test has its own browser
context (cookies) and its own tenant. With CENTER_SCREENSHOTS=<dir> the stories also save
a screenshot of each page there (`make center-screenshots` writes docs/center/)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, Route, expect, sync_playwright

from .conftest import ROOT, free_port, process_env

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
XSS = "<img src=x onerror=alert(1)>"
SCREENSHOTS = os.environ.get("CENTER_SCREENSHOTS")


@pytest.fixture(scope="module")
def base_url(database: str) -> Iterator[str]:
    """`python -m gateway` on a free port, serving the session's database."""
    port = free_port()
    env = process_env(database, port, HOST="127.0.0.1", CARDS_LOG_LEVEL="WARNING")
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while True:  # until it answers /health
            assert process.poll() is None and time.monotonic() < deadline, "the gateway did not start"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, base_url: str) -> Iterator[Page]:
    """A fresh browser context; fails the test if any page broke its CSP or showed a dialog."""
    context = browser.new_context(base_url=base_url, viewport={"width": 1200, "height": 820})
    page = context.new_page()
    page.set_default_timeout(10_000)
    complaints: list[str] = []
    page.on("console", lambda m: "Content Security Policy" in m.text and complaints.append(m.text))
    page.on("dialog", lambda d: complaints.append(f"a dialog opened: {d.message}") or d.dismiss())
    yield page
    context.close()
    assert complaints == []


# --- helpers: what a person does, and what the tests arrange through SQL ---


def sign_in(page: Page, credential: str) -> None:
    page.goto("/center/")
    page.get_by_label("API key").fill(credential)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Cards", exact=True)).to_be_visible()


def seed(admin, tenant, *cards: dict) -> list[str]:
    """Creates cards the way an onboarding job does (cards.batch_create); returns their ids."""
    response = admin.value(
        "SELECT response FROM cards.batch_create(%s, %s::jsonb)", tenant.id, json.dumps(cards)
    )
    return [card["id"] for card in response["cards"]]


def card(title: str, **fields) -> dict:
    return {"title": title, "content": {"text": f"about {title}"}, **fields}


def no_serious_violations(page: Page) -> None:
    """axe-core (from the pinned axe-playwright-python) on the page as it is now."""
    violations = Axe().run(page).response["violations"]
    serious = [
        (v["id"], v["impact"], [(node["target"], node["failureSummary"]) for node in v["nodes"]])
        for v in violations
        if v["impact"] in ("serious", "critical")
    ]
    assert serious == []


def screenshot(page: Page, name: str, full_page: bool = True) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"), full_page=full_page)


def session_count(admin, tenant) -> int:
    return admin.value("SELECT count(*) FROM cards.sessions WHERE tenant_id = %s", tenant.id)


# --- signing in and out ---


def test_sign_in_and_navigation_work_with_the_keyboard_alone(page, tenant):
    page.goto("/center/")
    expect(page.get_by_label("API key")).to_be_focused()
    expect(page.get_by_label("API key")).to_have_attribute("type", "password")
    screenshot(page, "sign-in")
    no_serious_violations(page)
    page.keyboard.type(tenant.key)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Cards", exact=True)).to_be_visible()
    page.keyboard.press("Tab")  # the skip link first
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Cards", exact=True)).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Import", exact=True)).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Import")).to_be_visible()
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Usage", exact=True)).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Sign out")).to_be_focused()


def test_the_browser_never_holds_the_key(page, tenant):
    sign_in(page, tenant.key)
    assert tenant.key not in page.url
    assert (
        page.evaluate("JSON.stringify(localStorage) + JSON.stringify(sessionStorage) + document.cookie")
        == "{}{}"
    )
    [cookie] = page.context.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/center"
    assert tenant.key not in cookie["value"]


def test_a_wrong_key_shows_an_alert_and_stays_on_the_page(page, tenant):
    page.goto("/center/sign-in")
    page.get_by_label("API key").fill(tenant.key[:-2] + "zz")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not accepted")
    expect(page.get_by_label("API key")).to_be_visible()
    no_serious_violations(page)


def test_sign_out_ends_the_session_in_the_database(page, admin, tenant):
    sign_in(page, tenant.key)
    assert session_count(admin, tenant) == 1
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("API key")).to_be_visible()
    assert session_count(admin, tenant) == 0
    page.goto("/center/usage")
    expect(page.get_by_label("API key")).to_be_visible()


def test_revoking_the_key_ends_the_browsers_session_within_5_seconds(page, admin, tenant):
    sign_in(page, tenant.key)
    admin.revoke(tenant)
    revoked = time.monotonic()
    while page.get_by_label("API key").count() == 0:
        assert time.monotonic() - revoked < 5, "the page still opened 5 s after the key was revoked"
        time.sleep(0.25)
        page.goto("/center/")


# --- the card list ---


def test_search_kind_and_tag_filter_the_list_and_live_in_the_url(page, admin, tenant):
    seed(
        admin, tenant, card("Brand voice", kind="guide", tags=["brand"]),
        card("Founded in 1999", kind="fact"), card("Tone of support replies", kind="guide", tags=["support"]),
    )  # fmt: skip
    sign_in(page, tenant.key)
    screenshot(page, "cards")
    page.get_by_label("Search").fill("voice")
    page.get_by_label("Search").press("Enter")
    expect(page.get_by_role("link", name="Brand voice")).to_be_visible()
    expect(page.get_by_role("link", name="Founded in 1999")).to_have_count(0)
    assert "q=voice" in page.url
    page.goto("/center/?kind=guide&tag=support")  # a bookmark
    expect(page.get_by_label("Kind")).to_have_value("guide")
    expect(page.get_by_label("Tag")).to_have_value("support")
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(page.get_by_role("link", name="Tone of support replies")).to_be_visible()
    page.get_by_label("Tag").fill("")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("tbody tr")).to_have_count(2)
    assert "kind=guide" in page.url


def test_next_page_walks_the_list_fifty_at_a_time(page, admin, tenant):
    seed(admin, tenant, *[card(f"Card {n:02}") for n in range(55)])
    sign_in(page, tenant.key)
    expect(page.locator("tbody tr")).to_have_count(50)
    no_serious_violations(page)
    page.get_by_role("link", name="Next page").click()
    expect(page.locator("tbody tr")).to_have_count(5)
    expect(page.get_by_role("link", name="Next page")).to_have_count(0)
    assert "cursor=" in page.url


# --- one card ---


def test_the_card_page_shows_content_metadata_and_usage(page, admin, tenant):
    brand = card(
        "Brand voice", kind="guide", tags=["brand", "tone"], content={"tone": "warm, direct"},
        metadata={"source": "onboarding"},
    )  # fmt: skip
    [card_id] = seed(admin, tenant, brand)
    for run in ("run-1", "run-2"):
        admin.value("SELECT cards.track_usage(%s, %s, 'welcome-email', %s)", tenant.id, card_id, run)
    sign_in(page, tenant.key)
    page.get_by_role("link", name="Brand voice").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Brand voice")
    expect(page.get_by_label("Content")).to_contain_text('"tone": "warm, direct"')
    expect(page.get_by_label("Metadata")).to_contain_text('"source": "onboarding"')
    expect(page.locator("dd").filter(has_text="guide")).to_be_visible()
    expect(page.get_by_role("row", name="welcome-email run-2")).to_be_visible()
    expect(page.get_by_role("row", name="welcome-email run-1")).to_be_visible()
    expect(page.locator(".facts > div").filter(has_text="Usage count")).to_have_text("Usage count2")
    expect(page.get_by_role("button", name="Edit")).to_be_visible()
    expect(page.get_by_role("button", name="Delete")).to_be_visible()
    screenshot(page, "card")
    no_serious_violations(page)


def test_a_title_with_markup_is_shown_as_text(page, admin, tenant):
    seed(admin, tenant, card(XSS))
    sign_in(page, tenant.key)
    page.get_by_role("link", name=XSS).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(XSS)
    expect(page.locator("main img")).to_have_count(0)


def test_editing_saves_through_if_match(page, admin, tenant):
    seed(admin, tenant, card("Brand voice"))
    sign_in(page, tenant.key)
    page.get_by_role("link", name="Brand voice").click()
    page.get_by_role("button", name="Edit").click()
    screenshot(page, "edit")
    no_serious_violations(page)
    page.get_by_label("Title").fill("Brand voice, 2027")
    page.get_by_label("Tags").fill("brand, tone")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Brand voice, 2027")
    expect(page.get_by_role("link", name="tone")).to_be_visible()


def test_invalid_json_is_named_next_to_its_field_before_anything_is_sent(page, admin, tenant):
    [card_id] = seed(admin, tenant, card("Brand voice"))
    sign_in(page, tenant.key)
    page.goto(f"/center/cards/{card_id}/edit")
    posts: list[str] = []
    page.on("request", lambda r: r.method == "POST" and posts.append(r.url))
    page.get_by_label("Content").fill('{"tone": ')
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_label("Content")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Content")).to_be_focused()
    expect(page.locator("#content-error")).to_contain_text("Content is not valid JSON")
    assert posts == []


def _conflict(page, admin, tenant) -> str:
    """Opens the edit form, lets someone else change the card, then saves the person's edit."""
    [card_id] = seed(admin, tenant, card("Brand voice"))
    sign_in(page, tenant.key)
    page.goto(f"/center/cards/{card_id}/edit")
    page.get_by_label("Title").fill("My title")
    admin.value(
        "SELECT card FROM cards.update_card(%s, %s, '*', convert_to('{\"title\": \"Their title\"}', 'UTF8'))",
        tenant.id, card_id,
    )  # fmt: skip
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert")).to_contain_text("was changed")
    return card_id


def test_a_conflicting_edit_shows_both_versions_and_use_my_changes_saves_mine(page, admin, tenant):
    _conflict(page, admin, tenant)
    expect(page.get_by_role("region", name="Current version")).to_contain_text("Their title")
    expect(page.get_by_role("region", name="Your edit").get_by_label("Title")).to_have_value("My title")
    screenshot(page, "conflict")
    no_serious_violations(page)
    page.get_by_role("button", name="Use my changes").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("My title")


def test_discard_my_changes_keeps_the_other_version(page, admin, tenant):
    _conflict(page, admin, tenant)
    page.get_by_role("button", name="Discard my changes").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Their title")


def test_delete_then_undo_brings_the_card_back(page, admin, tenant):
    seed(admin, tenant, card("Retire me"))
    sign_in(page, tenant.key)
    page.get_by_role("link", name="Retire me").click()
    page.get_by_role("button", name="Delete").click()
    expect(page.get_by_role("heading", name="Deleted")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("“Retire me” was deleted")
    assert admin.card_count(tenant) == 0
    screenshot(page, "deleted")
    no_serious_violations(page)
    page.get_by_role("button", name="Undo").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Retire me")
    assert admin.card_count(tenant) == 1


# --- import ---

JSON_LINES = "\n".join(
    [
        json.dumps(card("Imported one", tags=["import"])),
        json.dumps(card("Imported two")),
        json.dumps({"title": "", "content": 1}),
        "{not json",
        json.dumps(card("Imported three", kind="fact")),
    ]
)


def _import(page: Page, name: str, text: str, *, hold: bool = False) -> None:
    """Chooses the file and presses Import; with `hold`, the first chunk is held until the progress
    bar has been seen."""
    page.goto("/center/import")
    page.get_by_label("Cards file").set_input_files(
        files=[{"name": name, "mimeType": "text/plain", "buffer": text.encode()}]
    )
    held: list[Route] = []
    if hold:
        page.route("**/center/import/chunk", lambda route: held.append(route))
    page.get_by_role("button", name="Import").click()
    if hold:
        expect(page.get_by_role("progressbar")).to_be_visible()
        screenshot(page, "import-progress")
        while not held:
            page.wait_for_timeout(50)
        held[0].continue_()
        page.unroute("**/center/import/chunk")
    expect(page.get_by_role("status")).to_contain_text("Import finished")


def test_an_import_stores_the_valid_rows_and_names_each_refused_row(page, admin, tenant):
    sign_in(page, tenant.key)
    _import(page, "cards.jsonl", JSON_LINES, hold=True)
    summary = page.get_by_role("status")
    expect(summary).to_contain_text("3 created, 0 duplicates, 2 refused")
    expect(summary).to_contain_text("Row 3: title")
    expect(summary).to_contain_text("Row 4: not valid JSON")
    assert admin.card_count(tenant) == 3
    screenshot(page, "import")
    no_serious_violations(page)


def test_importing_the_same_file_again_creates_nothing(page, admin, tenant):
    sign_in(page, tenant.key)
    _import(page, "cards.jsonl", JSON_LINES)
    _import(page, "cards.jsonl", JSON_LINES)
    expect(page.get_by_role("status")).to_contain_text("0 created, 3 duplicates, 2 refused")
    assert admin.card_count(tenant) == 3


def test_a_csv_file_is_imported_by_its_columns(page, admin, tenant):
    csv = (
        "title,kind,content,tags,metadata\n"
        'Brand voice,guide,"{""tone"": ""warm""}","brand, tone","{""source"": ""csv""}"\n'
        "Founded,fact,1999,,\n"
        '"Multi\nline",note,plain text,,\n'
        "Bad metadata,note,1,,{oops\n"
    )
    sign_in(page, tenant.key)
    _import(page, "cards.csv", csv)
    expect(page.get_by_role("status")).to_contain_text("3 created, 0 duplicates, 1 refused")
    expect(page.get_by_role("status")).to_contain_text("Row 6: metadata")
    stored = admin.value(
        "SELECT jsonb_object_agg(title, jsonb_build_array(kind, content, tags, metadata))"
        " FROM cards.cards WHERE tenant_id = %s",
        tenant.id,
    )
    assert stored == {
        "Brand voice": ["guide", {"tone": "warm"}, ["brand", "tone"], {"source": "csv"}],
        "Founded": ["fact", 1999, [], {}],
        "Multi\nline": ["note", "plain text", [], {}],
    }


def test_a_json_array_file_is_imported(page, admin, tenant):
    sign_in(page, tenant.key)
    _import(page, "cards.json", json.dumps([card("A"), card("B"), "not a card"]))
    expect(page.get_by_role("status")).to_contain_text("2 created, 0 duplicates, 1 refused")
    expect(page.get_by_role("status")).to_contain_text("Row 3: is not a card object")


# --- usage ---


def test_the_usage_page_charts_events_per_day_and_links_the_most_used_cards(page, admin, tenant):
    ids = seed(admin, tenant, card("Popular"), card("Rare"))
    for n in range(3):
        admin.value("SELECT cards.track_usage(%s, %s, 'wf', %s)", tenant.id, ids[0], f"run-{n}")
    admin.value("SELECT cards.track_usage(%s, %s, 'wf', 'run-x')", tenant.id, ids[1])
    # Earlier days' events, written as a superuser (retention-style history): 2 to 5 a day.
    admin.conn.execute(
        "INSERT INTO cards.card_usage (tenant_id, card_id, workflow_id, run_id, recorded_at)"
        " SELECT %s, %s, 'wf', 'old-' || d || '-' || n, now() - d * interval '1 day'"
        " FROM generate_series(1, 20) AS d, generate_series(1, 2 + d %% 4) AS n",
        (tenant.id, ids[0]),
    )
    sign_in(page, tenant.key)
    page.get_by_role("link", name="Usage", exact=True).click()
    expect(page.get_by_role("heading", name="Usage", exact=True)).to_be_visible()
    expect(page.get_by_role("img", name="Events per day")).to_be_visible()
    expect(page.get_by_text("74 usage events in the last 30 days")).to_be_visible()
    screenshot(page, "usage")
    no_serious_violations(page)
    page.get_by_label("Window").select_option("7")
    page.get_by_role("button", name="Show").click()
    assert "days=7" in page.url
    page.get_by_role("link", name="Popular").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Popular")


# --- cross-site requests ---


class _AttackerPage(BaseHTTPRequestHandler):
    """Another site: a page whose script posts a delete form to the Card Center."""

    target = ""

    def do_GET(self) -> None:
        body = (
            f'<form id="f" method="post" action="{self.target}"><input name="_token" value="guess"></form>'
            '<script>document.getElementById("f").submit()</script>'
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def test_a_form_posted_from_another_site_changes_nothing(page, admin, tenant, base_url):
    [card_id] = seed(admin, tenant, card("Keep me"))
    sign_in(page, tenant.key)
    _AttackerPage.target = f"{base_url}/center/cards/{card_id}/delete"
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _AttackerPage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with page.expect_response(_AttackerPage.target) as answer:
            page.goto(f"http://localhost:{server.server_port}/")
        assert answer.value.status in (303, 403)  # refused, or no cookie sent at all (SameSite)
    finally:
        server.shutdown()
        server.server_close()
    assert admin.card_count(tenant) == 1


# --- /docs ---


def test_docs_is_an_interactive_reference_built_from_openapi_json(page):
    page.goto("/docs")
    expect(page.get_by_text("/api/v1/cards/batch", exact=True)).to_be_visible()
    page.get_by_text("/api/v1/cards/batch", exact=True).click()
    page.get_by_role("button", name="Try it out").click()
    expect(page.get_by_role("button", name="Execute")).to_be_visible()
    screenshot(page, "docs", full_page=False)
    no_serious_violations(page)
