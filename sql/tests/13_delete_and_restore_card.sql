-- delete_card and restore_card (API.md, "Card lifecycle"; CONVENTIONS.md, "Representation
-- choices"): a delete is soft (deleted_at, a new version), and the card leaves get_card,
-- retrieve, the listing, usage reports and dedupe; deleting it again is CKNFD. restore_card
-- brings it back with a new version and its usage, answers a live card unchanged, and is
-- CKDUP while a live card has the same kind, title and content. Unknown, foreign and
-- malformed ids are CKNFD; a refused call writes nothing.
BEGIN;
SELECT plan(36);

-- Test-only helpers, rolled back with the transaction.
-- The statements tenant A's gateway runs on a card.
CREATE FUNCTION pg_temp.delete_sql(p_card text, p_tenant text DEFAULT 'tenant_a') RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT format('SELECT cards.delete_card(%L, %L)', current_setting('tap.' || p_tenant), test.card_ref(p_card))
$$;
CREATE FUNCTION pg_temp.restore_sql(p_card text, p_tenant text DEFAULT 'tenant_a') RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT format(
        'SELECT * FROM cards.restore_card(%L, %L)', current_setting('tap.' || p_tenant), test.card_ref(p_card)
    )
$$;
-- Tenant A's answers, as {"card": …, "etag": …}.
CREATE FUNCTION pg_temp.restore(p_card text) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT to_jsonb(r) FROM cards.restore_card(current_setting('tap.tenant_a')::uuid, test.card_ref(p_card)) AS r
$$;
-- The ids tenant A's unfiltered listing answers (the fixtures are few: one page).
CREATE FUNCTION pg_temp.listed() RETURNS text[]
LANGUAGE sql AS $$
    SELECT coalesce(array_agg(c.card ->> 'id'), '{}')
    FROM json_array_elements(cards.list_cards(current_setting('tap.tenant_a')::uuid) -> 'cards') AS c (card)
$$;

SELECT test.remember('tenant_a', cards.create_tenant('Tenant A')::text);
SELECT test.remember('tenant_b', cards.create_tenant('Tenant B')::text);
SELECT test.remember('tenant_z', cards.create_tenant('Scratch tenant for expected hashes')::text);
SELECT test.remember('unknown', 'a0000000-0000-4000-8000-00000000000a');

SELECT
    test.remember('d1', b.response -> 'cards' -> 0 ->> 'id') AS d1,
    test.remember('d2', b.response -> 'cards' -> 1 ->> 'id') AS d2,
    test.remember('d3', b.response -> 'cards' -> 2 ->> 'id') AS d3,
    test.remember('kept', b.response -> 'cards' -> 3 ->> 'id') AS kept
FROM cards.batch_create(test.id('tenant_a'), $$[
    {"title": "Retired", "content": "retired"}, {"title": "Archived", "content": "archived"},
    {"title": "Spare", "content": "spare"}, {"title": "Kept", "content": "kept"}
]$$) AS b;
SELECT cards.track_usage(test.id('tenant_a'), test.id('d1'), 'wf', 'run-1');
-- Created in the past (the suite runs in one transaction: now() stands still), so that
-- a change's updated_at can be told from the creation's.
UPDATE cards.cards SET created_at = '2024-01-02 03:04:05.000006+00', updated_at = '2024-01-02 03:04:05.000006+00'
WHERE tenant_id = test.id('tenant_a');
SELECT test.remember('now', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'));

-- ---------------------------------------------------------------------------------
-- Persona: tenant A, through the gateway role — delete_card
-- ---------------------------------------------------------------------------------

SET LOCAL ROLE cards_gateway;

SELECT lives_ok(pg_temp.delete_sql('d1'), 'a live card can be deleted');
SELECT is(
    (SELECT jsonb_build_array(s -> 'version', s -> 'deleted_at', s -> 'updated_at') FROM test.stored_card('d1') AS s),
    jsonb_build_array(2, now(), now()),
    'a delete is soft: the row stays, marked deleted, with the next version'
);
SELECT throws_ok(test.get_card_sql('d1'), 'CKNFD', 'No such card.', 'a deleted card is not found by get_card');
SELECT is(
    cards.retrieve(test.id('tenant_a'), ARRAY[test.id('d1')])::jsonb -> 'missing',
    jsonb_build_array(test.id('d1')),
    'retrieve lists a deleted card as missing'
);
SELECT ok(NOT pg_temp.listed() @> ARRAY[test.card_ref('d1')], 'a deleted card leaves the listing');
SELECT throws_ok(
    format($$SELECT cards.track_usage(%L, %L, 'wf', 'run-2')$$, test.id('tenant_a'), test.id('d1')),
    'CKNFD',
    'No such card.',
    'usage of a deleted card cannot be reported'
);
SELECT throws_ok(
    format('SELECT cards.card_usage_history(%L, %L)', test.id('tenant_a'), test.id('d1')),
    'CKNFD',
    'No such card.',
    'nor its usage history read'
);
SELECT throws_ok(
    test.update_card_sql('d1', '*', '{"title": "t"}'),
    'CKNFD',
    'No such card.',
    'a deleted card cannot be updated'
);
SELECT throws_ok(pg_temp.delete_sql('d1'), 'CKNFD', 'No such card.', 'deleting a card twice: the second is not found');
SELECT is((test.stored_card('d1') ->> 'version')::integer, 2, 'and does not bump the version');
SELECT throws_ok(pg_temp.delete_sql('unknown'), 'CKNFD', 'No such card.', 'deleting an unknown card is not found');
SELECT throws_ok(pg_temp.delete_sql('not-a-uuid'), 'CKNFD', 'No such card.', 'deleting a malformed id is not found');

SELECT test.remember('again', b.response::text)
FROM cards.batch_create(test.id('tenant_a'), '[{"title": "Retired", "content": "retired"}]') AS b;
SELECT is(
    test.doc('again') -> 'cards' -> 0 ->> 'status',
    'created',
    'a deleted card leaves dedupe: a batch with the same content creates a card'
);
SELECT isnt(
    test.doc('again') -> 'cards' -> 0 ->> 'id',
    test.card_ref('d1'),
    'a new card, not the deleted one'
);
SELECT test.remember('d1_again', test.doc('again') -> 'cards' -> 0 ->> 'id');

SELECT lives_ok(pg_temp.delete_sql('d2'), 'another card is deleted');
SELECT is(
    test.patch_card('d3', '"1"', '{"title": "Archived", "content": "archived"}') ->> 'etag',
    '"2"',
    'a deleted card does not block an update to its kind, title and content'
);

-- ---------------------------------------------------------------------------------
-- Persona: tenant A — restore_card
-- ---------------------------------------------------------------------------------

SELECT test.remember('d1_deleted', test.stored_card('d1')::text);
SELECT throws_ok(
    pg_temp.restore_sql('d1'),
    'CKDUP',
    'A live card with the same kind, title and content exists; it cannot be restored.',
    'a deleted card cannot be restored while a live card has its content'
);
SELECT throws_ok(
    pg_temp.restore_sql('d2'),
    'CKDUP',
    'A live card with the same kind, title and content exists; it cannot be restored.',
    'nor when a live card was updated to its content'
);
SELECT is(test.stored_card('d1'), test.doc('d1_deleted'), 'a refused restore writes nothing');

SELECT lives_ok(pg_temp.delete_sql('d1_again'), 'the live duplicate is deleted');
SELECT test.remember('restored', pg_temp.restore('d1')::text);
SELECT is(test.doc('restored') ->> 'etag', '"3"', 'then the card is restored, with a new version');
SELECT is(
    (test.doc('restored') -> 'card') - 'updated_at',
    jsonb_build_object(
        'id', test.id('d1'), 'kind', 'note', 'title', 'Retired', 'content', 'retired', 'tags', '[]'::jsonb,
        'metadata', '{}'::jsonb, 'content_hash', test.batch_hash('{"title": "Retired", "content": "retired"}'),
        'usage_count', 1, 'created_at', '2024-01-02T03:04:05.000006Z', 'last_used_at', current_setting('tap.now')
    ),
    'the restored card is the card as it was, its usage included'
);
SELECT is(test.stored_card('d1') -> 'deleted_at', 'null', 'it is no longer marked deleted');
SELECT is(test.get_card('d1'), test.doc('restored'), 'get_card finds it again');
SELECT ok(pg_temp.listed() @> ARRAY[test.card_ref('d1')], 'it is listed again');
SELECT is(
    cards.track_usage(test.id('tenant_a'), test.id('d1'), 'wf', 'run-2')::jsonb -> 'usage_count',
    '2',
    'and its usage can be reported again, counting on from before'
);
SELECT is(
    pg_temp.restore('d1') ->> 'etag',
    '"3"',
    'restoring a live card answers it unchanged'
);
SELECT is((test.stored_card('d1') ->> 'version')::integer, 3, 'without a new version');
SELECT throws_ok(pg_temp.restore_sql('unknown'), 'CKNFD', 'No such card.', 'restoring an unknown card is not found');
SELECT throws_ok(pg_temp.restore_sql('not-a-uuid'), 'CKNFD', 'No such card.', 'restoring a malformed id is not found');

RESET ROLE;

-- ---------------------------------------------------------------------------------
-- Persona: tenant B, through the gateway role — tenant A's cards
-- ---------------------------------------------------------------------------------

SET LOCAL ROLE cards_gateway;
SELECT test.remember('kept_before_b', test.stored_card('kept')::text);

SELECT throws_ok(
    pg_temp.restore_sql('d2', 'tenant_b'), 'CKNFD', 'No such card.', 'tenant B cannot restore tenant A''s deleted card'
);
SELECT throws_ok(
    pg_temp.delete_sql('kept', 'tenant_b'), 'CKNFD', 'No such card.', 'nor delete tenant A''s live card'
);

RESET ROLE;

-- ---------------------------------------------------------------------------------
-- Persona: superuser — what tenant B's calls wrote
-- ---------------------------------------------------------------------------------

SELECT ok(test.stored_card('d2') ->> 'deleted_at' IS NOT NULL, 'tenant B''s restore left tenant A''s card deleted');
SELECT is(
    test.stored_card('kept'), test.doc('kept_before_b'), 'and its delete left tenant A''s live card as it was'
);

-- ---------------------------------------------------------------------------------
-- Persona: a suspended tenant
-- ---------------------------------------------------------------------------------

SELECT cards.set_tenant_active(test.id('tenant_a'), FALSE);
SET LOCAL ROLE cards_gateway;

SELECT throws_ok(
    pg_temp.delete_sql('kept'), 'CKFBD', 'The tenant is unknown or suspended.', 'a suspended tenant cannot delete_card'
);
SELECT throws_ok(
    pg_temp.restore_sql('d2'), 'CKFBD', 'The tenant is unknown or suspended.', 'nor restore_card'
);

RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
