-- Helpers shared by the pgTAP files, installed once into the test database by
-- scripts/test-sql (schema "test"; never part of a migration).
CREATE SCHEMA test;
GRANT USAGE ON SCHEMA test TO public;

-- Keeps a value for the rest of the transaction under a name (tap.<name>).
CREATE FUNCTION test.remember(p_name text, p_value text) RETURNS text
LANGUAGE sql AS $$ SELECT set_config('tap.' || p_name, p_value, TRUE) $$;

-- A remembered uuid.
CREATE FUNCTION test.id(p_name text) RETURNS uuid
LANGUAGE sql STABLE AS $$ SELECT current_setting('tap.' || p_name)::uuid $$;

-- The DETAIL of the CKVAL error the statement raises (the problem's "errors"), the
-- string "no error" when it succeeds, or "SQLSTATE: message" for any other error.
CREATE FUNCTION test.error_detail(p_sql text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_state text;
    v_message text;
    v_detail text;
BEGIN
    EXECUTE p_sql;
    RETURN '"no error"';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT, v_detail = PG_EXCEPTION_DETAIL;
    IF v_state <> 'CKVAL' THEN
        RETURN to_jsonb(v_state || ': ' || v_message);
    END IF;
    RETURN v_detail::jsonb;
END
$$;

-- A remembered value as text.
CREATE FUNCTION test.val(p_name text) RETURNS text
LANGUAGE sql STABLE AS $$ SELECT current_setting('tap.' || p_name) $$;

-- A cursor for any content: how a client would forge one.
CREATE FUNCTION test.forge_cursor(p_content text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT rtrim(translate(encode(convert_to(p_content, 'UTF8'), 'base64'), E'+/\n', '-_'), '=')
$$;

-- A remembered JSON document.
CREATE FUNCTION test.doc(p_name text) RETURNS jsonb
LANGUAGE sql STABLE AS $$ SELECT current_setting('tap.' || p_name)::jsonb $$;

-- The listing fixture of 14_, 15_ and 16_: tenants A and B (tap.tenant_a, tap.tenant_b),
-- A's cards l1…l8 with fixed ids and creation times (l4, l5, l6 at the same time; l8
-- deleted; l1 used once), and B's b1, a copy of l2 newer than every card of A.
CREATE FUNCTION test.make_listing_cards() RETURNS void
LANGUAGE plpgsql AS $fixture$
BEGIN
    PERFORM test.remember('tenant_a', cards.create_tenant('Tenant A')::text);
    PERFORM test.remember('tenant_b', cards.create_tenant('Tenant B')::text);

    PERFORM cards.batch_create(test.id('tenant_a'), $$[
        {"title": "Brand voice", "content": {"tone": "Warm and friendly"}, "tags": ["brand", "tone"],
         "metadata": {"source": "onboarding", "team": {"name": "marketing", "size": 3}}},
        {"title": "Shipping times", "kind": "faq", "content": {"answer": "Orders ship within two days"},
         "tags": ["shipping", "support", "staff"], "metadata": {"source": "helpdesk", "regions": ["eu", "us"]}},
        {"title": "Returns", "kind": "faq", "content": {"answer": "Returned items are refunded", "pricing": "free",
         "code": 12345}, "tags": ["support", "returns"], "metadata": {"source": "helpdesk", "lang": "en"}},
        {"title": "Launch checklist", "content": ["Book the venue", {"step": "Email the press"}], "tags": ["launch"],
         "metadata": {"source": "onboarding", "lang": "en"}},
        {"title": "Summarise", "kind": "prompt", "content": "Summarise the customer's running notes", "tags": ["sport"]},
        {"title": "Tone check", "kind": "prompt", "content": {"text": "Check the tone of a draft before it ships"},
         "tags": ["tone"], "metadata": {"source": "helpdesk"}},
        {"title": "Running the support desk", "content": {"body": "Who answers which queue"},
         "tags": ["support", "staff"], "metadata": {"source": "helpdesk", "lang": "en"}},
        {"title": "Shipping to the moon", "kind": "faq", "content": "Deleted orders ship nowhere",
         "tags": ["shipping", "support"], "metadata": {"source": "helpdesk"}}
    ]$$);
    -- Fixed ids and creation times, so that the expected order is written out: l4, l5 and
    -- l6 are created at the same time, and their ids order them l4, l6, l5, which is
    -- neither the order they were inserted in nor its reverse. l8 is deleted.
    UPDATE cards.cards AS c SET card_id = f.card_id, created_at = f.created_at, updated_at = f.created_at
    FROM (
        VALUES
        ('Brand voice', '00000000-0000-4000-8000-000000000001'::uuid, '2024-03-01 03:00:00+00'::timestamptz),
        ('Shipping times', '00000000-0000-4000-8000-000000000002', '2024-03-01 04:00:00+00'),
        ('Returns', '00000000-0000-4000-8000-000000000003', '2024-03-01 05:00:00+00'),
        ('Launch checklist', '00000000-0000-4000-8000-000000000006', '2024-03-01 06:00:00+00'),
        ('Summarise', '00000000-0000-4000-8000-000000000004', '2024-03-01 06:00:00+00'),
        ('Tone check', '00000000-0000-4000-8000-000000000005', '2024-03-01 06:00:00+00'),
        ('Running the support desk', '00000000-0000-4000-8000-000000000007', '2024-03-01 07:00:00+00'),
        ('Shipping to the moon', '00000000-0000-4000-8000-000000000008', '2024-03-01 11:00:00+00')
    ) AS f (title, card_id, created_at)
    WHERE c.tenant_id = test.id('tenant_a') AND c.title = f.title;
    UPDATE cards.cards SET deleted_at = '2024-03-01 11:30:00+00'
    WHERE card_id = '00000000-0000-4000-8000-000000000008';
    -- Their cards.card_search rows follow the new ids (nothing else changes a card's id).
    DELETE FROM cards.card_search WHERE tenant_id = test.id('tenant_a');
    INSERT INTO cards.card_search (tenant_id, card_id, created_at)
    SELECT c.tenant_id, c.card_id, c.created_at FROM cards.cards AS c
    WHERE c.tenant_id = test.id('tenant_a');
    PERFORM
        test.remember('l1', '00000000-0000-4000-8000-000000000001') AS l1,
        test.remember('l2', '00000000-0000-4000-8000-000000000002') AS l2,
        test.remember('l3', '00000000-0000-4000-8000-000000000003') AS l3,
        test.remember('l4', '00000000-0000-4000-8000-000000000006') AS l4,
        test.remember('l5', '00000000-0000-4000-8000-000000000004') AS l5,
        test.remember('l6', '00000000-0000-4000-8000-000000000005') AS l6,
        test.remember('l7', '00000000-0000-4000-8000-000000000007') AS l7,
        test.remember('l8', '00000000-0000-4000-8000-000000000008') AS l8;
    PERFORM cards.track_usage(test.id('tenant_a'), test.id('l1'), 'wf', 'run-1');

    -- Tenant B holds a copy of l2, the newest of all cards: any filter that finds l2 would
    -- find it too if the wall between tenants leaked.
    PERFORM test.remember('b1', b.response -> 'cards' -> 0 ->> 'id')
    FROM cards.batch_create(test.id('tenant_b'), $$[
        {"title": "Shipping times", "kind": "faq", "content": {"answer": "Orders ship within two days"},
         "tags": ["shipping", "support", "staff"], "metadata": {"source": "helpdesk", "regions": ["eu", "us"]}}
    ]$$) AS b;
    UPDATE cards.cards SET created_at = '2024-03-01 12:00:00+00'
    WHERE card_id = test.id('b1');
    -- Full text as the gateway's indexer leaves it shortly after each batch commits.
    PERFORM cards.index_pending_search(test.id('tenant_a'), 100);
    PERFORM cards.index_pending_search(test.id('tenant_b'), 100);
END
$fixture$;

-- A tenant's listing (14_, 15_, 16_), as the gateway asks for it (query values as text).
CREATE FUNCTION test.list(
    p_kind text DEFAULT NULL, p_tags text[] DEFAULT NULL, p_contains text DEFAULT NULL, p_q text DEFAULT NULL,
    p_limit text DEFAULT NULL, p_cursor text DEFAULT NULL, p_tenant text DEFAULT 'tenant_a'
) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT cards.list_cards(
        current_setting('tap.' || p_tenant)::uuid, p_kind, p_tags, p_contains, p_q, p_limit, p_cursor
    )::jsonb
$$;
-- The cards of a listing page as the names of make_listing_cards' fixture (l1…l8, b1,
-- fresh), else their ids.
CREATE FUNCTION test.listing_names(p_page jsonb) RETURNS text[]
LANGUAGE sql STABLE AS $$
    SELECT coalesce(array_agg(
        coalesce(
            (
                SELECT f.name
                FROM unnest(ARRAY['l1', 'l2', 'l3', 'l4', 'l5', 'l6', 'l7', 'l8', 'b1', 'fresh']) AS f (name)
                WHERE current_setting('tap.' || f.name, TRUE) = c.card ->> 'id'
            ),
            c.card ->> 'id'
        )
        ORDER BY c.ord
    ), '{}')
    FROM jsonb_array_elements(p_page -> 'cards') WITH ORDINALITY AS c (card, ord)
$$;

-- (12_, 13_) A card id as the gateway passes it (path text): a fixture's id, or the text itself.
CREATE FUNCTION test.card_ref(p_card text) RETURNS text
LANGUAGE sql STABLE AS $$ SELECT coalesce(current_setting('tap.' || p_card, TRUE), p_card) $$;
-- The statements tenant A's gateway runs on a card; the body is sent as its UTF-8 bytes.
CREATE FUNCTION test.get_card_sql(p_card text, p_tenant text DEFAULT 'tenant_a') RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT format('SELECT * FROM cards.get_card(%L, %L)', current_setting('tap.' || p_tenant), test.card_ref(p_card))
$$;
CREATE FUNCTION test.update_card_sql(
    p_card text, p_if_match text, p_body text, p_tenant text DEFAULT 'tenant_a'
) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT format(
        $f$SELECT * FROM cards.update_card(%L, %L, %L, convert_to(%L, 'UTF8'))$f$,
        current_setting('tap.' || p_tenant), test.card_ref(p_card), p_if_match, p_body
    )
$$;
-- Tenant A's answers, as {"card": …, "etag": …}.
CREATE FUNCTION test.get_card(p_card text) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT to_jsonb(g) FROM cards.get_card(current_setting('tap.tenant_a')::uuid, test.card_ref(p_card)) AS g
$$;
CREATE FUNCTION test.patch_card(p_card text, p_if_match text, p_body text) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT to_jsonb(u) FROM cards.update_card(
        current_setting('tap.tenant_a')::uuid, test.card_ref(p_card), p_if_match, convert_to(p_body, 'UTF8')
    ) AS u
$$;
-- The content_hash batch_create gives a card, computed in a scratch tenant: what a
-- re-hashed card must carry.
CREATE FUNCTION test.batch_hash(p_card jsonb) RETURNS text
LANGUAGE sql AS $$
    SELECT b.response -> 'cards' -> 0 ->> 'content_hash'
    FROM cards.batch_create(current_setting('tap.tenant_z')::uuid, jsonb_build_array(p_card)) AS b
$$;
-- A card's stored row, read as the superuser running the suite, whom row-level security
-- does not restrict (SECURITY DEFINER: whoever calls it).
CREATE FUNCTION test.stored_card(p_card text) RETURNS jsonb
LANGUAGE sql SECURITY DEFINER AS $$
    SELECT to_jsonb(c) FROM cards.cards AS c WHERE c.card_id = test.card_ref(p_card)::uuid
$$;

-- A card's full-text search as stored in cards.card_search (NULL: not yet indexed).
CREATE FUNCTION test.stored_search(p_card text) RETURNS text
LANGUAGE sql SECURITY DEFINER AS $$
    SELECT s.search::text FROM cards.card_search AS s WHERE s.card_id = test.card_ref(p_card)::uuid
$$;

GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA test TO public;
