"""GET /api/v1/cards: newest first, each filter (kind, repeated tag, contains, q) returning exactly the
matching live cards, keyset pagination that visits every card once, 422 for every bad value, a second
tenant who sees nothing, and the index that serves each filter."""

from __future__ import annotations

import base64
import json
import re
from urllib.parse import quote

import psycopg
import pytest

from scripts import devstack

from .conftest import create, explain_nested_statements

CARDS = "/api/v1/cards"

# Created one per batch, in this order: newest first is the reverse.
CATALOGUE = [
    {
        "kind": "note",
        "title": "Brand voice",
        "content": {"text": "warm and direct"},
        "tags": ["brand", "tone"],
        "metadata": {"source": "onboarding", "lang": "en"},
    },
    {
        "kind": "fact",
        "title": "Founded",
        "content": "The company was founded in 1999",
        "tags": ["history"],
        "metadata": {"source": "wiki"},
    },
    {
        "kind": "prompt",
        "title": "Tone for emails",
        "content": {"text": "Jumping foxes write emails", "nested": {"deep": "quarterly report"}},
        "tags": ["tone", "email"],
        "metadata": {"source": "onboarding", "lang": "de"},
    },
    {
        "kind": "fact",
        "title": "Pricing",
        "content": {"plans": ["basic", "pro"]},
        "tags": ["brand", "pricing", "tone"],
        "metadata": {"source": "wiki", "lang": "en", "owner": {"team": "sales"}},
    },
]


@pytest.fixture
async def catalogue(client, tenant, admin) -> dict[str, str]:
    """The CATALOGUE cards of `tenant`, created oldest first and indexed for q=: title -> id."""
    ids = {}
    for card in CATALOGUE:
        response = await client.post(f"{CARDS}/batch", json={"cards": [card]}, headers=tenant.auth)
        ids[card["title"]] = (await response.json())["cards"][0]["id"]
    admin.index_search(tenant)
    return ids


async def _list(client, tenant, query: str = "") -> dict:
    response = await client.get(f"{CARDS}{query}", headers=tenant.auth)
    assert response.status == 200, await response.text()
    return await response.json()


async def _titles(client, tenant, query: str) -> list[str]:
    return [card["title"] for card in (await _list(client, tenant, query))["cards"]]


async def _invalid(client, tenant, query: str) -> list[dict]:
    response = await client.get(f"{CARDS}{query}", headers=tenant.auth)
    assert response.status == 422, (query, await response.text())
    problem = await response.json()
    assert problem["type"] == "/problems/validation-error"
    return problem["errors"]


async def _walk(client, tenant, query: str) -> list[list[str]]:
    """Every page of a listing, following next_cursor: the ids of each page."""
    pages, cursor = [], None
    while True:
        suffix = f"&cursor={quote(cursor)}" if cursor else ""
        body = await _list(client, tenant, f"{query}{suffix}")
        pages.append([card["id"] for card in body["cards"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 100, "the cursor does not advance"


def _cursor(position) -> str:
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


def _contains(value: dict) -> str:
    return "?contains=" + quote(json.dumps(value))


# --- the listing and each filter ---


async def test_the_listing_is_the_live_cards_newest_first_as_retrieve_shows_them(client, tenant, catalogue):
    body = await _list(client, tenant)
    assert [card["title"] for card in body["cards"]] == [c["title"] for c in reversed(CATALOGUE)]
    assert body["next_cursor"] is None
    ids = list(reversed(catalogue.values()))
    retrieved = await client.post(f"{CARDS}/retrieve", json={"ids": ids}, headers=tenant.auth)
    assert body["cards"] == (await retrieved.json())["cards"]


async def test_a_tenant_without_cards_lists_nothing(client, tenant):
    assert await _list(client, tenant) == {"cards": [], "next_cursor": None}


async def test_kind_lists_exactly_the_cards_of_that_kind(client, tenant, catalogue):
    assert await _titles(client, tenant, "?kind=fact") == ["Pricing", "Founded"]
    assert await _titles(client, tenant, "?kind=prompt") == ["Tone for emails"]
    assert await _titles(client, tenant, "?kind=absent") == []


async def test_one_tag_lists_exactly_the_cards_carrying_it(client, tenant, catalogue):
    assert await _titles(client, tenant, "?tag=tone") == ["Pricing", "Tone for emails", "Brand voice"]
    assert await _titles(client, tenant, "?tag=history") == ["Founded"]
    assert await _titles(client, tenant, "?tag=Tone") == []  # tags are compared exactly


async def test_repeated_tags_must_all_match(client, tenant, catalogue):
    assert await _titles(client, tenant, "?tag=tone&tag=brand") == ["Pricing", "Brand voice"]
    assert await _titles(client, tenant, "?tag=brand&tag=tone&tag=pricing") == ["Pricing"]
    assert await _titles(client, tenant, "?tag=tone&tag=history") == []


async def test_contains_lists_exactly_the_cards_whose_metadata_contains_the_object(client, tenant, catalogue):
    assert await _titles(client, tenant, _contains({"source": "onboarding"})) == [
        "Tone for emails",
        "Brand voice",
    ]
    assert await _titles(client, tenant, _contains({"source": "wiki", "lang": "en"})) == ["Pricing"]
    assert await _titles(client, tenant, _contains({"owner": {"team": "sales"}})) == ["Pricing"]
    assert await _titles(client, tenant, _contains({"lang": "fr"})) == []
    assert len(await _titles(client, tenant, _contains({}))) == len(CATALOGUE)


async def test_q_searches_title_and_content_strings_with_english_stemming(client, tenant, catalogue):
    assert await _titles(client, tenant, "?q=founded") == ["Founded"]  # the title (and the content)
    assert await _titles(client, tenant, "?q=jump") == ["Tone for emails"]  # "Jumping" in the content
    assert await _titles(client, tenant, "?q=quarterly") == ["Tone for emails"]  # a nested string
    assert await _titles(client, tenant, "?q=basic") == ["Pricing"]  # a string in an array
    assert await _titles(client, tenant, "?q=pricing") == ["Pricing"]
    assert await _titles(client, tenant, "?q=brand") == ["Brand voice"]  # tags are not searched


async def test_q_takes_web_search_syntax(client, tenant, catalogue):
    assert await _titles(client, tenant, "?q=" + quote('"brand voice"')) == ["Brand voice"]
    assert await _titles(client, tenant, "?q=" + quote("emails or founded")) == ["Tone for emails", "Founded"]
    assert await _titles(client, tenant, "?q=" + quote("tone -emails")) == []
    assert await _titles(client, tenant, "?q=the") == []  # only a stop word: matches nothing


async def test_filters_combine_and_all_must_hold(client, tenant, catalogue):
    query = "?kind=fact&tag=tone&q=basic" + "&contains=" + quote(json.dumps({"lang": "en"}))
    assert await _titles(client, tenant, query) == ["Pricing"]
    assert await _titles(client, tenant, "?kind=note&tag=pricing") == []


async def test_a_deleted_card_leaves_every_filtered_listing(client, tenant, catalogue):
    await client.delete(f"{CARDS}/{catalogue['Pricing']}", headers=tenant.auth)
    for query in ["", "?kind=fact", "?tag=pricing", _contains({"owner": {"team": "sales"}}), "?q=basic"]:
        assert "Pricing" not in await _titles(client, tenant, query), query


# --- pagination ---


async def test_pages_of_cards_created_in_one_batch_visit_each_card_exactly_once(client, tenant):
    ids = await create(client, tenant, *[f"card {n}" for n in range(11)])  # one created_at for all
    pages = await _walk(client, tenant, "?limit=3")
    assert [len(page) for page in pages] == [3, 3, 3, 2]
    walked = [card_id for page in pages for card_id in page]
    assert sorted(walked) == sorted(ids)
    assert walked == [card["id"] for card in (await _list(client, tenant, "?limit=200"))["cards"]]


async def test_pages_follow_newest_first_across_batches(client, tenant):
    ids = [(await create(client, tenant, f"batch {n}"))[0] for n in range(5)]
    assert await _walk(client, tenant, "?limit=2") == [ids[4:2:-1], ids[2:0:-1], ids[0:1]]


async def test_a_filtered_listing_pages_through_the_matching_cards_only(client, tenant):
    tagged = await create(client, tenant, *[f"tagged {n}" for n in range(7)], tags=["x"])
    await create(client, tenant, *[f"other {n}" for n in range(5)], tags=["y"])
    walked = [card_id for page in await _walk(client, tenant, "?tag=x&limit=2") for card_id in page]
    assert sorted(walked) == sorted(tagged)
    assert len(walked) == len(set(walked))


async def test_a_full_last_page_still_ends_with_a_null_cursor(client, tenant):
    await create(client, tenant, "a", "b", "c", "d")
    assert [len(page) for page in await _walk(client, tenant, "?limit=2")] == [2, 2]


async def test_the_default_page_is_50_cards(client, tenant):
    await create(client, tenant, *[f"card {n}" for n in range(51)])
    body = await _list(client, tenant)
    assert len(body["cards"]) == 50
    assert body["next_cursor"] is not None
    assert len((await _list(client, tenant, "?limit=200"))["cards"]) == 51


# --- bad values: 422 naming the parameter ---


async def test_a_limit_outside_1_to_200_or_not_an_integer_is_422(client, tenant):
    for limit in ["0", "201", "abc", "", "-1", "1.5", "1e2", "%201"]:
        assert await _invalid(client, tenant, f"?limit={limit}") == [
            {"field": "limit", "message": "must be an integer from 1 to 200"}
        ], limit
    assert (await client.get(f"{CARDS}?limit=200", headers=tenant.auth)).status == 200


async def test_contains_that_is_not_a_json_object_is_422(client, tenant):
    for value in ["{", "{'a': 1}", "[1]", '"text"', "null", "1", ""]:
        errors = await _invalid(client, tenant, f"?contains={quote(value)}")
        assert [e["field"] for e in errors] == ["contains"], value


async def test_a_forged_cursor_is_422(client, tenant):
    await create(client, tenant, "a", "b")
    real = (await _list(client, tenant, "?limit=1"))["next_cursor"]
    at, card_id, digest = json.loads(base64.urlsafe_b64decode(real + "=" * (-len(real) % 4)))
    forged = [
        "garbage!",
        "",
        real[:-2],
        _cursor({"a": 1}),
        _cursor([at, card_id, "000000000000"]),  # another query's digest
        _cursor([at, "not-a-uuid", digest]),
        _cursor(["yesterday", card_id, digest]),
        "x" * 1001,
    ]
    for cursor in forged:
        errors = await _invalid(client, tenant, f"?limit=1&cursor={quote(cursor)}")
        assert [e["field"] for e in errors] == ["cursor"], cursor


async def test_a_cursor_reused_with_other_filters_is_422(client, tenant):
    await create(client, tenant, "x one", "x two", kind="x", tags=["x"])
    cursor = quote((await _list(client, tenant, "?kind=x&limit=1"))["next_cursor"])
    for other in ["", "q=x", "tag=x", "kind=y", "kind=x&tag=x", f"contains={quote('{}')}"]:
        errors = await _invalid(client, tenant, f"?{other}&limit=1&cursor={cursor}")
        assert [e["field"] for e in errors] == ["cursor"], other
    assert len((await _list(client, tenant, f"?kind=x&limit=1&cursor={cursor}"))["cards"]) == 1


async def test_a_cursor_may_change_the_page_size(client, tenant):
    await create(client, tenant, *[f"card {n}" for n in range(5)])
    cursor = quote((await _list(client, tenant, "?limit=1"))["next_cursor"])
    assert len((await _list(client, tenant, f"?limit=10&cursor={cursor}"))["cards"]) == 4


async def test_tags_given_in_another_order_keep_the_cursor_valid(client, tenant):
    await create(client, tenant, "a", "b", tags=["x", "y"])
    cursor = quote((await _list(client, tenant, "?tag=x&tag=y&limit=1"))["next_cursor"])
    assert len((await _list(client, tenant, f"?tag=y&tag=x&limit=1&cursor={cursor}"))["cards"]) == 1


async def test_a_malformed_kind_tag_or_q_is_422_naming_each(client, tenant):
    tags = "&".join(f"tag=t{n}" for n in range(33))
    for query, field in [
        ("?kind=Not%20A%20Kind", "kind"),
        ("?kind=", "kind"),
        ("?kind=" + "k" * 65, "kind"),
        ("?tag=", "tag"),
        ("?tag=" + "t" * 65, "tag"),
        (f"?{tags}", "tag"),
        ("?q=", "q"),
        ("?q=" + "w" * 501, "q"),
    ]:
        assert [e["field"] for e in await _invalid(client, tenant, query)] == [field], query


async def test_every_bad_filter_is_listed_at_once(client, tenant):
    errors = await _invalid(client, tenant, "?kind=BAD&contains=%7B&q=")
    assert [e["field"] for e in errors] == ["kind", "contains", "q"]


async def test_an_unknown_query_parameter_is_422_naming_it(client, tenant):
    assert await _invalid(client, tenant, "?tags=brand&sort=title") == [
        {"field": "tags", "message": "is not a parameter of this route"},
        {"field": "sort", "message": "is not a parameter of this route"},
    ]


async def test_a_parameter_other_than_tag_given_twice_is_422(client, tenant):
    assert await _invalid(client, tenant, "?limit=1&limit=2") == [
        {"field": "limit", "message": "must be given at most once"}
    ]


async def test_a_nul_in_a_query_value_is_422_not_a_server_error(client, tenant):
    for query, field in [("?q=a%00b", "q"), ("?tag=a&tag=%00", "tag"), ("?cursor=%00", "cursor")]:
        errors = await _invalid(client, tenant, query)
        assert [e["field"] for e in errors] == [field], query


async def test_bytes_that_are_not_utf8_in_a_query_value_are_not_a_server_error(client, tenant, catalogue):
    for query in ["?q=%FF%FE", "?kind=%C3", "?tag=%ED%A0%80"]:
        response = await client.get(f"{CARDS}{query}", headers=tenant.auth)
        assert response.status in (200, 422), query


# --- tenant isolation ---


async def test_another_tenant_lists_none_of_the_cards_whatever_the_filter(
    client, tenant, other_tenant, catalogue
):
    for query in ["", "?kind=fact", "?tag=tone", _contains({"source": "wiki"}), "?q=founded"]:
        assert await _list(client, other_tenant, query) == {"cards": [], "next_cursor": None}, query


async def test_another_tenants_cursor_shows_only_the_callers_own_cards(client, tenant, other_tenant):
    await create(client, tenant, "a", "b")
    [own] = await create(client, other_tenant, "own")
    cursor = quote((await _list(client, tenant, "?limit=1"))["next_cursor"])
    listed = (await _list(client, other_tenant, f"?limit=1&cursor={cursor}"))["cards"]
    assert [card["id"] for card in listed] in ([], [own])


# --- plans: each filter is served by its index ---

_PLAN_CARDS = 3000


def _index_scans(plan: dict) -> list[tuple[str, str]]:
    """(index name, index condition) of every index scan in a plan tree."""
    found = []
    if "Index Name" in plan:
        found.append((plan["Index Name"], plan.get("Index Cond", "")))
    for child in plan.get("Plans", []):
        found += _index_scans(child)
    return found


@pytest.fixture(scope="module")
def plans(make_database) -> dict[str, list[tuple[str, str]]]:
    """The plan of the statement list_cards builds for each filter, on a tenant with 3000 cards after
    ANALYZE: auto_explain (loaded for one superuser session) reports nested statements as NOTICEs.
    A database of its own, so that the statistics describe this tenant and not the rest of the run."""
    database = make_database()
    devstack.migrate(database)
    with psycopg.connect(database, autocommit=True) as conn:
        tenant = conn.execute("SELECT cards.create_tenant('plans')").fetchone()[0]
        for start in range(0, _PLAN_CARDS, 1000):
            batch = [
                {
                    "kind": f"k{n % 50}",
                    "title": f"card {n} w{n % 100}",
                    "content": {"text": f"body {n}"},
                    "tags": [f"t{n % 100}", "common"],
                    "metadata": {"n": n % 100},
                }
                for n in range(start, start + 1000)
            ]
            conn.execute("SELECT cards.batch_create(%s, %s)", (tenant, json.dumps(batch)))
        conn.execute("SELECT cards.index_pending_search(%s, %s)", (tenant, _PLAN_CARDS))
        # Vacuumed, as autovacuum leaves a table: until then card_search_pending still holds an
        # entry per indexed card, and q='s plan reads the tenant's search rows by key instead.
        conn.execute("VACUUM ANALYZE cards.cards, cards.card_tags, cards.card_search")
        notices = explain_nested_statements(conn)
        # A few thousand rows fit in a handful of pages, where a sequential scan costs least
        # whatever the filter; the question here is which index serves the filter.
        conn.execute("SET enable_seqscan = off")
        cursor = conn.execute("SELECT cards.list_cards(%s, p_limit => '1')", (tenant,)).fetchone()[0]
        result = {}
        for name, args in {
            "newest": {},
            "cursor": {"p_cursor": cursor["next_cursor"]},
            "kind": {"p_kind": "k7"},
            "tag": {"p_tags": ["t7"]},
            "tags": {"p_tags": ["t7", "common"]},
            "contains": {"p_contains": '{"n": 7}'},
            "q": {"p_q": "w7"},
        }.items():
            notices.clear()
            named = ", ".join(f"{arg} => %({arg})s" for arg in args)
            conn.execute(
                f"SELECT cards.list_cards(%(tenant)s{', ' if args else ''}{named})", {"tenant": tenant} | args
            )
            [explained] = [
                json.loads(text.split("plan:", 1)[1])
                for text in notices
                if "row_number() OVER ()" in text and "plan:" in text
            ]
            result[name] = _index_scans(explained["Plan"])
    return result


def _served(scans: list[tuple[str, str]], index: str, *conditions: str) -> bool:
    return any(name == index and all(c in cond for c in conditions) for name, cond in scans)


def test_the_unfiltered_listing_walks_cards_live_newest(plans):
    assert _served(plans["newest"], "cards_live_newest", "tenant_id ="), plans["newest"]


def test_a_cursor_page_starts_inside_cards_live_newest(plans):
    assert _served(plans["cursor"], "cards_live_newest", "ROW(created_at, card_id) <"), plans["cursor"]


def test_kind_is_served_by_cards_live_kind_newest(plans):
    assert _served(plans["kind"], "cards_live_kind_newest", "kind ="), plans["kind"]


def test_a_tag_is_read_newest_first_from_card_tags(plans):
    assert _served(plans["tag"], "card_tags_pkey", "tenant_id =", "tag = 't7'"), plans["tag"]


def test_repeated_tags_are_read_from_card_tags_by_the_rarest(plans):
    # t7 is on 30 cards, common on all 3000
    assert _served(plans["tags"], "card_tags_pkey", "tag = 't7'"), plans["tags"]


def test_contains_is_served_by_cards_live_metadata(plans):
    assert _served(plans["contains"], "cards_live_metadata", "metadata @>"), plans["contains"]


def test_q_is_served_by_card_search_terms(plans):
    assert _served(plans["q"], "card_search_terms", "@@"), plans["q"]


def test_every_filter_is_bounded_by_the_tenant_in_an_index(plans):
    for name, scans in plans.items():
        assert any(
            name.startswith(("cards_", "card_tags_", "card_search_")) and "tenant_id = '" in cond
            for name, cond in scans
        ), (
            name,
            scans,
        )


def test_every_index_scan_of_every_listing_plan_leads_with_the_tenant(plans):
    """The filters' operators are LEAKPROOF so that they may run inside an index scan beneath the
    row-level security barrier (docs/SECURITY.md, "Hostile input"); the scan must then read only
    the tenant's entries: its first index condition is the tenant's."""
    for name, scans in plans.items():
        for index, condition in scans:
            assert re.match(r"\(+tenant_id = ", condition), (name, index, condition)
