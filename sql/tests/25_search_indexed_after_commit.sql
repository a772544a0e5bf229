-- Full-text search indexed after the commit (migrations 0009 and 0011, sql/functions/16_card_search.sql
-- and 23_search_index.sql): a new card's cards.card_search row is "pending" (search NULL) until
-- cards.index_pending_search indexes it, and q=
-- finds it only then; the indexer works one tenant at a time and never touches another's
-- cards; search_index_backlog shows every tenant's pending cards; update_card indexes the
-- card it changes at once.
BEGIN;
SELECT plan(21);

SELECT test.remember('tenant_a', cards.create_tenant('Tenant A')::text);
SELECT test.remember('tenant_b', cards.create_tenant('Tenant B')::text);

SELECT
    test.remember('a1', b.response -> 'cards' -> 0 ->> 'id') AS a1,
    test.remember('a2', b.response -> 'cards' -> 1 ->> 'id') AS a2,
    test.remember('a3', b.response -> 'cards' -> 2 ->> 'id') AS a3
FROM cards.batch_create(test.id('tenant_a'), $$[
    {"title": "Walrus handbook", "content": {"text": "Feeding the walruses"}},
    {"title": "Penguin handbook", "content": "penguins"},
    {"title": "Seal handbook", "content": "seals"}
]$$) AS b;
SELECT test.remember('b1', b.response -> 'cards' -> 0 ->> 'id') AS b1
FROM cards.batch_create(test.id('tenant_b'), '[{"title": "Walrus handbook", "content": {"text": "walrus"}}]') AS b;
-- Created in the past (now() stands still within the suite's transaction), so the backlog's
-- age is known.
UPDATE cards.card_search SET created_at = now() - interval '90 seconds'
WHERE tenant_id = test.id('tenant_a');
UPDATE cards.card_search SET created_at = now() - interval '150 seconds'
WHERE card_id = test.id('a1');

-- A duplicate of a1: the batch creates no card.
SELECT count(*) FROM cards.batch_create(
    test.id('tenant_a'), '[{"title": "Walrus handbook", "content": {"text": "Feeding the walruses"}}]'
);
SELECT is(
    (
        SELECT count(*) FROM cards.card_search
        WHERE tenant_id = test.id('tenant_a')
    ),
    3::bigint,
    'batch_create adds one search row per card it creates, and none for a duplicate'
);

SELECT test.remember('a1_vector', cards.search_vector('Walrus handbook', '{"text": "Feeding the walruses"}')::text);

SET LOCAL ROLE cards_gateway;

-- ---------------------------------------------------------------------------------
-- A new card is pending until indexed
-- ---------------------------------------------------------------------------------

SELECT is(
    test.stored_search('a1'),
    NULL,
    'batch_create adds a new card''s search row empty: it is not yet indexed'
);
SELECT is(
    test.listing_names(test.list(p_q => 'walrus')),
    '{}',
    'q= does not find a card that is not yet indexed'
);
SELECT set_eq(
    'SELECT b.tenant_id, b.pending FROM cards.search_index_backlog() AS b',
    $$VALUES (current_setting('tap.tenant_a')::uuid, 3::bigint), (current_setting('tap.tenant_b')::uuid, 1::bigint)$$,
    'the backlog lists every tenant with pending cards and how many (the gateway role may read it)'
);
SELECT ok(
    (
        SELECT b.oldest_age_s = 150 FROM cards.search_index_backlog() AS b
        WHERE b.tenant_id = test.id('tenant_a')
    ),
    'the backlog answers the age of the tenant''s oldest pending card, in seconds'
);

-- ---------------------------------------------------------------------------------
-- The indexer: one tenant, a bounded number of cards, oldest first
-- ---------------------------------------------------------------------------------

SELECT is(
    cards.index_pending_search(test.id('tenant_a'), 1),
    1,
    'index_pending_search indexes at most p_limit cards and answers how many (the gateway role may call it)'
);
SELECT isnt(test.stored_search('a1'), NULL, 'it takes the tenant''s oldest pending card first');
SELECT is(
    test.listing_names(test.list(p_q => 'walrus')),
    ARRAY[test.id('a1')::text],
    'once indexed, q= finds the card: its title and its content''s strings, as before'
);
SELECT is(
    test.stored_search('a1'),
    test.val('a1_vector'),
    'the indexed value is cards.search_vector of the title and content'
);
SELECT is(cards.index_pending_search(test.id('tenant_a'), 100), 2, 'the next call indexes the rest of the tenant''s');
SELECT is(cards.index_pending_search(test.id('tenant_a'), 100), 0, 'and then there is nothing left to index');
SELECT is(
    test.stored_search('b1'),
    NULL,
    'indexing one tenant never touches another tenant''s cards'
);
SELECT is(
    test.listing_names(test.list(p_q => 'walrus', p_tenant => 'tenant_b')),
    '{}',
    'whose cards q= still does not find'
);
SELECT set_eq(
    'SELECT b.tenant_id, b.pending FROM cards.search_index_backlog() AS b',
    $$VALUES (current_setting('tap.tenant_b')::uuid, 1::bigint)$$,
    'the backlog no longer lists a tenant whose cards are all indexed'
);
SELECT is(cards.index_pending_search(test.id('tenant_b'), 0), 0, 'a limit of 0 indexes nothing');

-- ---------------------------------------------------------------------------------
-- update_card indexes at once
-- ---------------------------------------------------------------------------------

SELECT is(
    (
        SELECT u.etag FROM cards.update_card(
            test.id('tenant_b'), test.id('b1')::text, '*', convert_to('{"title": "Narwhal handbook"}', 'UTF8')
        ) AS u
    ),
    '"2"',
    'an update of a pending card succeeds'
);
SELECT is(
    test.listing_names(test.list(p_q => 'narwhal', p_tenant => 'tenant_b')),
    ARRAY['b1'],
    'and q= finds the updated card at once, without the indexer'
);
SELECT count(*) FROM cards.update_card(
    test.id('tenant_a'), test.id('a3')::text, '*', convert_to('{"title": "Sea lion handbook"}', 'UTF8')
);
SELECT is(
    test.listing_names(test.list(p_q => 'lion')),
    ARRAY[test.id('a3')::text],
    'so does an update of an indexed card: q= finds its new title at once'
);
SELECT count(*) FROM cards.delete_card(test.id('tenant_a'), test.id('a3')::text);
SELECT is(
    test.listing_names(test.list(p_q => 'lion')),
    '{}',
    'q= does not find a deleted card'
);
SELECT count(*) FROM cards.restore_card(test.id('tenant_a'), test.id('a3')::text);
SELECT is(
    test.listing_names(test.list(p_q => 'lion')),
    ARRAY[test.id('a3')::text],
    'a restored card is found again at once: its search row stayed'
);

-- ---------------------------------------------------------------------------------
-- The backlog reads the pending cards only, also under statistics from an import
-- ---------------------------------------------------------------------------------

RESET ROLE;
SELECT count(*) FROM generate_series(0, 1) AS part, cards.batch_create(
    test.id('tenant_b'),
    (
        SELECT jsonb_agg(jsonb_build_object('title', 'imported ' || part || '-' || g, 'content', g))
        FROM generate_series(1, 1000) AS g
    )
);
ANALYZE cards.card_search;  -- statistics in which almost every card is pending
SELECT cards.index_pending_search(test.id('tenant_b'), 5000);
SELECT test.remember('seq_scans', (
    SELECT s.seq_scan::text FROM pg_catalog.pg_stat_xact_user_tables AS s
    WHERE s.relid = 'cards.card_search'::regclass
));
SET LOCAL ROLE cards_gateway;
SELECT count(*) FROM cards.search_index_backlog();
RESET ROLE;
SELECT is(
    (
        SELECT s.seq_scan FROM pg_catalog.pg_stat_xact_user_tables AS s
        WHERE s.relid = 'cards.card_search'::regclass
    ),
    current_setting('tap.seq_scans')::bigint,
    'search_index_backlog does not scan the whole table when the statistics say most cards are pending'
);

SELECT * FROM finish();
ROLLBACK;
