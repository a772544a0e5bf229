-- list_cards' pages (API.md, "Card lifecycle"; CONVENTIONS.md, "Representation
-- choices"): keyset pagination, newest first, with an opaque cursor. Following
-- next_cursor walks every card exactly once, across cards created at the same time and
-- while cards are created and deleted; the last page has no cursor; limit defaults to 50
-- and accepts 1 to 200. The fixtures are those of 14_listing_filters_and_search.sql.
BEGIN;
SELECT plan(19);

-- Test-only helpers, rolled back with the transaction.
-- Every page of a listing, following next_cursor to its end: a JSON array of pages, each
-- an array of names.
CREATE FUNCTION pg_temp.walk(
    p_limit text, p_kind text DEFAULT NULL, p_tags text[] DEFAULT NULL, p_contains text DEFAULT NULL,
    p_q text DEFAULT NULL, p_tenant text DEFAULT 'tenant_a'
) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_pages jsonb := '[]';
    v_page jsonb;
    v_cursor text;
BEGIN
    FOR i IN 1..100 LOOP
        v_page := test.list(p_kind, p_tags, p_contains, p_q, p_limit, v_cursor, p_tenant);
        v_pages := v_pages || jsonb_build_array(to_jsonb(test.listing_names(v_page)));
        v_cursor := v_page ->> 'next_cursor';
        EXIT WHEN v_cursor IS NULL;
    END LOOP;
    RETURN v_pages;
END
$$;
-- Tenant C's live cards in listing order, read as the superuser running the suite, whom
-- row-level security does not restrict (SECURITY DEFINER: whoever calls it).
CREATE FUNCTION pg_temp.stored_order(p_tenant text) RETURNS text[]
LANGUAGE sql SECURITY DEFINER AS $$
    SELECT array_agg(c.card_id::text ORDER BY c.created_at DESC, c.card_id DESC) FROM cards.cards AS c
    WHERE c.tenant_id = current_setting('tap.' || p_tenant)::uuid AND c.deleted_at IS NULL
$$;

SELECT test.make_listing_cards();
SELECT test.remember('tenant_c', cards.create_tenant('Tenant C, with many cards')::text);

-- Tenant C: 205 cards, created in groups of up to seven at the same time.
SELECT count(*) FROM cards.batch_create(
    test.id('tenant_c'),
    (
        SELECT jsonb_agg(jsonb_build_object('title', 'bulk ' || n, 'content', n, 'kind', 'bulk'))
        FROM generate_series(1, 205) AS n
    )
);
UPDATE cards.cards
SET created_at = '2024-03-01 00:00:00+00'::timestamptz + (content::integer % 30) * interval '1 minute'
WHERE tenant_id = test.id('tenant_c');

-- ---------------------------------------------------------------------------------
-- Persona: tenant A, through the gateway role — pages
-- ---------------------------------------------------------------------------------

SET LOCAL ROLE cards_gateway;

SELECT is(
    pg_temp.walk('2'),
    '[["l7", "l4"], ["l6", "l5"], ["l3", "l2"], ["l1"]]',
    'following next_cursor walks every card exactly once, in order, across cards created at the same time'
);
SELECT is(
    pg_temp.walk('3'),
    '[["l7", "l4", "l6"], ["l5", "l3", "l2"], ["l1"]]',
    'whatever the page size'
);
SELECT is(
    pg_temp.walk('7'),
    '[["l7", "l4", "l6", "l5", "l3", "l2", "l1"]]',
    'a page that ends with the last card has no next cursor'
);
SELECT is(
    pg_temp.walk('1', p_tags => '{support}'),
    '[["l7"], ["l3"], ["l2"]]',
    'the pages of a filtered listing hold only matching cards'
);
SELECT is(
    pg_temp.walk('1', p_q => 'ship'),
    '[["l6"], ["l2"]]',
    'a search is paginated too'
);
SELECT test.remember('page_1', test.list(p_limit => '2')::text);
SELECT is(
    test.listing_names(test.list(p_limit => '5', p_cursor => test.doc('page_1') ->> 'next_cursor')),
    ARRAY['l6', 'l5', 'l3', 'l2', 'l1'],
    'a cursor may be followed with another page size'
);
SELECT test.remember('tag_page_1', test.list(p_tags => '{staff,support}', p_limit => '1')::text);
SELECT is(
    test.listing_names(test.list(
        p_tags => '{support,staff}', p_limit => '1', p_cursor => test.doc('tag_page_1') ->> 'next_cursor'
    )),
    ARRAY['l2'],
    'a cursor is valid with the same tags in another order'
);
SELECT test.remember(
    'contains_page_1', test.list(p_contains => '{"lang": "en", "source": "helpdesk"}', p_limit => '1')::text
);
SELECT is(
    test.listing_names(test.list(
        p_contains => '{ "source":"helpdesk","lang" : "en" }', p_limit => '1',
        p_cursor => test.doc('contains_page_1') ->> 'next_cursor'
    )),
    ARRAY['l3'],
    'and with the same contains object written with other key order and spacing'
);
-- ---------------------------------------------------------------------------------
-- Persona: tenant A — pages while cards change
-- ---------------------------------------------------------------------------------

RESET ROLE;
-- As the superuser, so that this file depends on no other endpoint: a card created
-- now (the newest) and l6, not yet listed, deleted.
SELECT test.remember('fresh', b.response -> 'cards' -> 0 ->> 'id')
FROM cards.batch_create(test.id('tenant_a'), '[{"title": "Fresh", "content": "fresh"}]') AS b;
UPDATE cards.cards SET deleted_at = now()
WHERE card_id = test.id('l6');
SET LOCAL ROLE cards_gateway;

SELECT is(
    test.listing_names(test.list(p_limit => '2', p_cursor => test.doc('page_1') ->> 'next_cursor')),
    ARRAY['l5', 'l3'],
    'the next page continues after the last card seen: a card created since is not slipped in, one deleted since is '
    || 'left out'
);
SELECT is(
    test.listing_names(test.list(p_limit => '2')),
    ARRAY['fresh', 'l7'],
    'a new listing starts with the new card'
);

RESET ROLE;

-- ---------------------------------------------------------------------------------
-- Persona: tenant B, through the gateway role
-- ---------------------------------------------------------------------------------

SET LOCAL ROLE cards_gateway;

SELECT is(pg_temp.walk('1', p_tenant => 'tenant_b'), '[["b1"]]', 'tenant B''s pages hold only its own card');

RESET ROLE;

-- ---------------------------------------------------------------------------------
-- Persona: tenant C, through the gateway role — page sizes over 205 cards
-- ---------------------------------------------------------------------------------

SET LOCAL ROLE cards_gateway;

SELECT test.remember('c_all', to_jsonb(pg_temp.stored_order('tenant_c'))::text);

SELECT is(
    jsonb_array_length(test.list(p_tenant => 'tenant_c') -> 'cards'),
    50,
    'without limit=, a page holds 50 cards'
);
SELECT isnt(test.list(p_tenant => 'tenant_c') ->> 'next_cursor', NULL, 'and a cursor to the next');
SELECT is(
    jsonb_array_length(test.list(p_limit => '200', p_tenant => 'tenant_c') -> 'cards'),
    200,
    'limit=200 is accepted and holds 200 cards'
);
SELECT is(
    jsonb_array_length(test.list(p_limit => '1', p_tenant => 'tenant_c') -> 'cards'),
    1,
    'limit=1 is accepted and holds one card'
);
SELECT is(
    (
        SELECT array_agg(jsonb_array_length(p.page))
        FROM jsonb_array_elements(pg_temp.walk(NULL, p_tenant => 'tenant_c')) AS p (page)
    ),
    ARRAY[50, 50, 50, 50, 5],
    '205 cards take five default pages'
);
SELECT is(
    (
        SELECT jsonb_agg(c.id ORDER BY p.n, c.m)
        FROM jsonb_array_elements(pg_temp.walk(NULL, p_tenant => 'tenant_c')) WITH ORDINALITY AS p (page, n)
        CROSS JOIN LATERAL jsonb_array_elements(p.page) WITH ORDINALITY AS c (id, m)
    ),
    test.doc('c_all'),
    'which hold every card exactly once, newest first and by id among those created together'
);
SELECT is(
    (
        SELECT jsonb_agg(c.id ORDER BY p.n, c.m)
        FROM
            jsonb_array_elements(pg_temp.walk('7', p_kind => 'bulk', p_tenant => 'tenant_c'))
            WITH ORDINALITY AS p (page, n)
        CROSS JOIN LATERAL jsonb_array_elements(p.page) WITH ORDINALITY AS c (id, m)
    ),
    test.doc('c_all'),
    'and so do pages of 7 of a filtered listing'
);

RESET ROLE;

-- ---------------------------------------------------------------------------------
-- Persona: admin (a trusted job calling list_cards directly)
-- ---------------------------------------------------------------------------------

SET LOCAL ROLE cards_admin;

SELECT is(
    pg_temp.walk('4'),
    '[["fresh", "l7", "l4", "l5"], ["l3", "l2", "l1"]]',
    'a trusted job gets the same answers'
);

RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
