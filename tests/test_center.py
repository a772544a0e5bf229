"""Card Center over HTTP (no browser): sessions (cookie, storage, expiry, revocation, sign-out),
cross-site refusal, security headers, escaping, the import chunk's idempotency, edit conflicts,
and /docs. The browser stories are in test_center_browser.py."""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
import uuid

import pytest

from gateway.config import Config, ConfigError

from .conftest import create, make_jwt

COOKIE = "cards_center"
XSS = "<img src=x onerror=alert(1)>"


async def sign_in(client, credential: str) -> str:
    """Signs in as a browser form would; returns the session cookie's value."""
    response = await client.post("/center/sign-in", data={"api_key": credential}, allow_redirects=False)
    assert response.status == 303, await response.text()
    assert response.headers["Location"] == "/center/"
    return response.cookies[COOKIE].value


def jar(cookie: str) -> dict[str, str]:
    return {"Cookie": f"{COOKIE}={cookie}"}


async def form_token(client, cookie: str) -> str:
    page = await (await client.get("/center/", headers=jar(cookie))).text()
    return re.search(r'name="_token" value="([^"]+)"', page)[1]


def session_rows(admin, tenant) -> list:
    return admin.conn.execute(
        "SELECT session_hash, key_id, scopes, expires_at - created_at"
        " FROM cards.sessions WHERE tenant_id = %s",
        (tenant.id,),
    ).fetchall()


# --- signing in ---


async def test_signing_in_sets_an_httponly_samesite_strict_cookie_for_center_only(client, tenant):
    response = await client.post("/center/sign-in", data={"api_key": tenant.key}, allow_redirects=False)
    morsel = response.cookies[COOKIE]
    assert morsel["httponly"] and morsel["samesite"] == "Strict" and morsel["path"] == "/center"
    assert not morsel["secure"]  # served over plain http here; Secure when the request came over https
    assert tenant.key not in response.headers["Set-Cookie"]


async def test_the_cookie_is_secure_when_a_tls_proxy_forwarded_the_sign_in(client, tenant):
    response = await client.post(
        "/center/sign-in",
        data={"api_key": tenant.key},
        headers={"X-Forwarded-Proto": "https"},
        allow_redirects=False,
    )
    assert response.cookies[COOKIE]["secure"]


async def test_the_session_is_stored_only_as_a_hash_with_its_key_and_scopes(client, admin, tenant):
    cookie = await sign_in(client, tenant.key)
    assert cookie.startswith(f"cs_{tenant.id.replace('-', '')}_")
    [(stored, key_id, scopes, lifetime)] = session_rows(admin, tenant)
    assert stored == hashlib.sha256(cookie.encode()).digest()
    assert str(key_id) == tenant.key_id
    assert scopes == ["cards:read", "cards:write", "usage:write"]
    assert lifetime.total_seconds() == pytest.approx(12 * 3600, abs=5)


async def test_a_signed_in_browser_sees_the_card_list(client, tenant):
    await create(client, tenant, "Brand voice")
    cookie = await sign_in(client, tenant.key)
    page = await (await client.get("/center/", headers=jar(cookie))).text()
    assert "Brand voice" in page and "<h1>Cards</h1>" in page


async def test_without_a_session_a_page_redirects_to_sign_in(client):
    response = await client.get("/center/usage", allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/center/sign-in"


async def test_a_forged_cookie_for_a_real_tenant_is_no_session(client, tenant):
    forged = f"cs_{tenant.id.replace('-', '')}_{'A' * 43}"
    response = await client.get("/center/", headers=jar(forged), allow_redirects=False)
    assert response.status == 303


async def test_a_wrong_key_shows_an_alert_and_stays_on_the_sign_in_page(client, tenant):
    response = await client.post("/center/sign-in", data={"api_key": tenant.key[:-1] + "x"})
    assert response.status == 401
    assert 'role="alert"' in await response.text()
    assert COOKIE not in response.cookies


async def test_a_jwt_signs_in_for_no_longer_than_the_token_lives(client, admin, tenant):
    await sign_in(client, make_jwt(tenant.id, expires_in=600))
    [(_, key_id, _, lifetime)] = session_rows(admin, tenant)
    assert key_id is None
    assert lifetime.total_seconds() == pytest.approx(600, abs=5)


async def test_a_suspended_tenant_cannot_sign_in(client, admin, tenant):
    admin.set_active(tenant, False)
    response = await client.post("/center/sign-in", data={"api_key": tenant.key}, allow_redirects=False)
    assert response.status == 403
    assert session_rows(admin, tenant) == []


# --- how sessions end ---


async def _refused_within(client, cookie: str, seconds: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        response = await client.get("/center/", headers=jar(cookie), allow_redirects=False)
        if response.status == 303:
            return time.monotonic() - started
        await asyncio.sleep(0.2)
    raise AssertionError(f"the session still worked after {seconds} s")


async def test_revoking_the_key_ends_its_sessions_within_5_seconds(client, admin, tenant):
    cookie = await sign_in(client, tenant.key)
    assert (await client.get("/center/", headers=jar(cookie))).status == 200  # cached now
    admin.revoke(tenant)
    assert await _refused_within(client, cookie, 5) < 5
    assert session_rows(admin, tenant) == []


async def test_suspending_the_tenant_ends_its_sessions_within_5_seconds(client, admin, tenant):
    cookie = await sign_in(client, tenant.key)
    assert (await client.get("/center/", headers=jar(cookie))).status == 200
    admin.set_active(tenant, False)
    assert await _refused_within(client, cookie, 5) < 5


async def test_signing_out_ends_the_session_in_the_database(client, admin, tenant):
    cookie = await sign_in(client, tenant.key)
    token = await form_token(client, cookie)
    response = await client.post(
        "/center/sign-out", data={"_token": token}, headers=jar(cookie), allow_redirects=False
    )
    assert response.status == 303 and response.headers["Location"] == "/center/sign-in"
    assert response.cookies[COOKIE].value == ""
    assert session_rows(admin, tenant) == []
    assert (await client.get("/center/", headers=jar(cookie), allow_redirects=False)).status == 303


async def test_a_session_expires_after_the_configured_lifetime(make_client, tenant):
    client = await make_client(session_ttl_s=1, auth_cache_ttl_s=0)
    cookie = await sign_in(client, tenant.key)
    assert (await client.get("/center/", headers=jar(cookie))).status == 200
    await asyncio.sleep(1.2)
    assert (await client.get("/center/", headers=jar(cookie), allow_redirects=False)).status == 303


def test_the_session_lifetime_setting_is_checked_at_start_up():
    assert Config.from_env({"DATABASE_URL": "x", "CARDS_SESSION_TTL_S": "3600"}).session_ttl_s == 3600
    assert Config.from_env({"DATABASE_URL": "x"}).session_ttl_s == 12 * 3600
    with pytest.raises(ConfigError, match="CARDS_SESSION_TTL_S"):
        Config.from_env({"DATABASE_URL": "x", "CARDS_SESSION_TTL_S": "0"})


async def test_a_session_without_the_write_scope_may_read_but_not_delete(make_client, admin, tenant):
    client = await make_client(auth_cache_ttl_s=0)
    [card_id] = await create(client, tenant, "Keep me")
    cookie = await sign_in(client, tenant.key)
    token = await form_token(client, cookie)
    admin.conn.execute("UPDATE cards.sessions SET scopes = '{cards:read}' WHERE tenant_id = %s", (tenant.id,))
    assert (await client.get(f"/center/cards/{card_id}", headers=jar(cookie))).status == 200
    response = await _delete(client, tenant, cookie, card_id, token=token)
    assert response.status == 403
    assert "cards:write" in await response.text()
    assert admin.card_count(tenant) == 1


# --- fairness ---


async def test_pages_spend_the_tenants_rate_limit_that_api_calls_spend_too(client, admin, tenant):
    """A person clicking through pages draws from the same budget as the tenant's services, so
    neither can starve the other's tenants."""
    cookie = await sign_in(client, tenant.key)
    admin.value("SELECT cards.set_tenant_limits(%s, 0.5, 2)", tenant.id)
    statuses = [(await client.get("/center/", headers=jar(cookie))).status for _ in range(3)]
    assert statuses == [200, 200, 429]
    refused = await client.get("/center/", headers=jar(cookie))
    assert refused.status == 429 and int(refused.headers["Retry-After"]) >= 1
    assert "rate limit" in await refused.text()
    api = await client.post("/api/v1/cards/retrieve", json={"ids": [str(uuid.uuid4())]}, headers=tenant.auth)
    assert api.status == 429


# --- cross-site requests ---


async def _delete(client, tenant, cookie, card_id, *, token=None, **headers):
    token = await form_token(client, cookie) if token is None else token
    return await client.post(
        f"/center/cards/{card_id}/delete",
        data={"_token": token},
        headers=jar(cookie) | headers,
        allow_redirects=False,
    )


async def test_a_cross_site_post_is_refused_and_changes_nothing(client, admin, tenant):
    [card_id] = await create(client, tenant, "Keep me")
    cookie = await sign_in(client, tenant.key)
    response = await _delete(client, tenant, cookie, card_id, **{"Sec-Fetch-Site": "cross-site"})
    assert response.status == 403
    assert admin.card_count(tenant) == 1


async def test_a_post_from_another_origin_is_refused(client, admin, tenant):
    [card_id] = await create(client, tenant, "Keep me")
    cookie = await sign_in(client, tenant.key)
    response = await _delete(client, tenant, cookie, card_id, Origin="https://evil.example")
    assert response.status == 403
    assert admin.card_count(tenant) == 1


async def test_a_post_without_the_form_token_is_refused(client, admin, tenant):
    [card_id] = await create(client, tenant, "Keep me")
    cookie = await sign_in(client, tenant.key)
    response = await _delete(client, tenant, cookie, card_id, token="forged")
    assert response.status == 403
    assert admin.card_count(tenant) == 1


async def test_a_same_origin_post_with_the_form_token_is_done(client, admin, tenant):
    [card_id] = await create(client, tenant, "Delete me")
    cookie = await sign_in(client, tenant.key)
    response = await _delete(client, tenant, cookie, card_id, **{"Sec-Fetch-Site": "same-origin"})
    assert response.status == 303
    assert response.headers["Location"].startswith(f"/center/cards/{card_id}/deleted?")
    assert admin.card_count(tenant) == 0


async def test_a_cross_site_sign_in_is_refused(client, admin, tenant):
    response = await client.post(
        "/center/sign-in", data={"api_key": tenant.key}, headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert response.status == 403
    assert session_rows(admin, tenant) == []


# --- what every page carries ---


@pytest.mark.parametrize("path", ["/center/sign-in", "/center/", "/center/import", "/center/usage", "/docs"])
async def test_every_page_has_a_strict_csp_and_no_inline_script(client, tenant, path):
    cookie = await sign_in(client, tenant.key)
    response = await client.get(path, headers=jar(cookie))
    assert response.status == 200
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    page = await response.text()
    assert all(
        re.fullmatch(r'<script src="/[^"]+"( defer)?>', tag) for tag in re.findall(r"<script[^>]*>", page)
    )
    assert not re.search(r"""\son[a-z]+\s*=|(src|href)=["']?(https?:)?//""", page)


async def test_a_card_title_is_shown_as_text(client, tenant):
    [card_id] = await create(client, tenant, XSS)
    cookie = await sign_in(client, tenant.key)
    for path in ["/center/", f"/center/cards/{card_id}", f"/center/cards/{card_id}/edit"]:
        page = await (await client.get(path, headers=jar(cookie))).text()
        assert XSS not in page
        assert "&lt;img src=x onerror=alert(1)&gt;" in page


async def test_an_unknown_card_is_a_404_page(client, tenant):
    cookie = await sign_in(client, tenant.key)
    response = await client.get("/center/cards/00000000-0000-4000-8000-000000000000", headers=jar(cookie))
    assert response.status == 404 and response.content_type == "text/html"


async def test_another_tenants_card_is_a_404_page(client, tenant, other_tenant):
    [card_id] = await create(client, other_tenant, "Theirs")
    cookie = await sign_in(client, tenant.key)
    response = await client.get(f"/center/cards/{card_id}", headers=jar(cookie))
    assert response.status == 404
    assert "Theirs" not in await response.text()


async def test_a_bad_filter_is_named_on_the_list_page(client, tenant):
    cookie = await sign_in(client, tenant.key)
    response = await client.get("/center/?kind=Not%20A%20Kind", headers=jar(cookie))
    assert response.status == 422
    assert 'role="alert"' in await response.text()


# --- import chunks ---


async def _chunk(client, cookie, token, body: bytes):
    return await client.post(
        "/center/import/chunk",
        data=body,
        headers=jar(cookie)
        | {"Content-Type": "application/json", "Accept": "application/json", "X-Form-Token": token},
    )


async def test_an_import_chunk_sent_twice_creates_its_cards_once(client, admin, tenant):
    cookie = await sign_in(client, tenant.key)
    token = await form_token(client, cookie)
    body = b'{"cards": [{"title": "One", "content": 1}, {"title": "Two", "content": 2}]}'
    first = await _chunk(client, cookie, token, body)
    assert first.status == 201 and (await first.json())["created"] == 2
    again = await _chunk(client, cookie, token, body)
    assert again.status == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert admin.card_count(tenant) == 2


async def test_an_import_chunk_with_an_invalid_card_stores_nothing_and_names_its_index(client, admin, tenant):
    cookie = await sign_in(client, tenant.key)
    token = await form_token(client, cookie)
    response = await _chunk(
        client, cookie, token, b'{"cards": [{"title": "ok", "content": 1}, {"title": ""}]}'
    )
    assert response.status == 422
    assert response.content_type == "application/problem+json"
    assert {error["index"] for error in (await response.json())["errors"]} == {1}
    assert admin.card_count(tenant) == 0


async def test_an_import_chunk_without_a_session_is_a_401_problem(client):
    response = await client.post(
        "/center/import/chunk",
        data=b"{}",
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    assert response.status == 401 and response.content_type == "application/problem+json"


# --- editing ---


async def test_saving_with_a_stale_etag_writes_nothing_and_shows_the_conflict(client, admin, tenant):
    [card_id] = await create(client, tenant, "Original")
    cookie = await sign_in(client, tenant.key)
    token = await form_token(client, cookie)
    form = {"_token": token, "etag": '"1"', "kind": "note", "tags": "", "content": "{}", "metadata": "{}"}
    await client.patch(
        f"/api/v1/cards/{card_id}",
        json={"title": "Changed elsewhere"},
        headers=tenant.auth | {"If-Match": '"1"'},
    )
    response = await client.post(
        f"/center/cards/{card_id}/edit",
        data=form | {"title": "Mine"},
        headers=jar(cookie),
        allow_redirects=False,
    )
    assert response.status == 409
    page = await response.text()
    assert "was changed" in page and "Use my changes" in page and "Discard my changes" in page
    title = admin.value("SELECT title FROM cards.cards WHERE card_id = %s", card_id)
    assert title == "Changed elsewhere"


async def test_saving_invalid_json_names_the_field_and_writes_nothing(client, admin, tenant):
    [card_id] = await create(client, tenant, "Original")
    cookie = await sign_in(client, tenant.key)
    token = await form_token(client, cookie)
    form = {"_token": token, "etag": '"1"', "title": "New", "kind": "note", "tags": "", "metadata": "{}"}
    response = await client.post(
        f"/center/cards/{card_id}/edit", data=form | {"content": "{oops"}, headers=jar(cookie)
    )
    assert response.status == 422
    assert "Content is not valid JSON" in await response.text()
    assert admin.value("SELECT title FROM cards.cards WHERE card_id = %s", card_id) == "Original"


# --- /docs ---


@pytest.mark.parametrize("name", ["swagger-ui-bundle.js", "swagger-ui.css", "init.js"])
async def test_the_docs_assets_are_served_by_the_gateway(client, name):
    response = await client.get(f"/docs/static/{name}")
    assert response.status == 200
    assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_the_docs_serve_no_other_file_of_the_bundle(client):
    assert (await client.get("/docs/static/index.html")).status == 404
