-- get_card and update_card (API.md, "Card lifecycle"; CONVENTIONS.md, "Representation
-- choices"): get_card answers a live card and its ETag ("<version>"); update_card replaces
-- the top-level fields a patch names, guarded by If-Match (CKPRQ without, CKPFL when
-- stale, "*" for any live version), bumps the version, re-hashes on a kind, title or
-- content change and refuses a live duplicate (CKDUP); a patch that changes nothing
-- answers the card as it is. Unknown, foreign and malformed ids are CKNFD; a refused
-- update writes nothing. Delete and restore: 13_delete_and_restore_card.sql.
BEGIN;
SELECT plan(59);

SELECT test.remember('tenant_a', cards.create_tenant('Tenant A')::text);
SELECT test.remember('tenant_b', cards.create_tenant('Tenant B')::text);
SELECT test.remember('tenant_z', cards.create_tenant('Scratch tenant for expected hashes')::text);
SELECT test.remember('unknown', 'a0000000-0000-4000-8000-00000000000a');

SELECT
    test.remember('p1', b.response -> 'cards' -> 0 ->> 'id') AS p1,
    test.remember('p2', b.response -> 'cards' -> 1 ->> 'id') AS p2
FROM cards.batch_create(test.id('tenant_a'), $$[
    {"title": "Brand voice", "content": {"tone": "warm"}, "kind": "brand", "tags": ["brand", "tone"],
     "metadata": {"source": "onboarding", "owner": "ana"}},
    {"title": "Taken", "content": "taken"}
]$$) AS b;
SELECT test.remember('b1', b.response -> 'cards' -> 0 ->> 'id') AS b1
FROM cards.batch_create(test.id('tenant_b'), '[{"title": "B one", "content": "b"}]') AS b;
SELECT cards.track_usage(test.id('tenant_a'), test.id('p1'), 'wf', 'run-1');
-- Created in the past (the suite runs in one transaction: now() stands still), so that
-- a change's updated_at can be told from the creation's.
UPDATE cards.cards SET created_at = '2024-01-02 03:04:05.000006+00', updated_at = '2024-01-02 03:04:05.000006+00'
WHERE tenant_id = test.id('tenant_a');
SELECT test.remember('now', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'));

-- ---------------------------------------------------------------------------------
-- Persona: tenant A, through the gateway role — get_card
-- ---------------------------------------------------------------------------------

SET LOCAL ROLE cards_gateway;

SELECT is(
    test.get_card('p1') -> 'card',
    cards.retrieve(test.id('tenant_a'), ARRAY[test.id('p1')])::jsonb -> 'cards' -> 0,
    'get_card answers the card as retrieve does, usage included'
);
SELECT is(
    test.get_card('p1') -> 'card',
    jsonb_build_object(
        'id', test.id('p1'), 'kind', 'brand', 'title', 'Brand voice', 'content', '{"tone": "warm"}'::jsonb,
        'tags', '["brand", "tone"]'::jsonb, 'metadata', '{"source": "onboarding", "owner": "ana"}'::jsonb,
        'content_hash', test.batch_hash('{"kind": "brand", "title": "Brand voice", "content": {"tone": "warm"}}'),
        'usage_count', 1, 'created_at', '2024-01-02T03:04:05.000006Z', 'updated_at', '2024-01-02T03:04:05.000006Z',
        'last_used_at', current_setting('tap.now')
    ),
    'the card is the stored card with its usage'
);
SELECT is(test.get_card('p1') ->> 'etag', '"1"', 'a new card''s ETag is its version 1, in quotes');
SELECT is(
    test.get_card(upper(test.card_ref('p1'))) -> 'card' ->> 'id',
    test.card_ref('p1'),
    'an id in upper case finds the card, answered in lower case'
);
SELECT throws_ok(test.get_card_sql('unknown'), 'CKNFD', 'No such card.', 'an unknown id is not found');
SELECT throws_ok(test.get_card_sql('not-a-uuid'), 'CKNFD', 'No such card.', 'a malformed id names no card: not found');
SELECT throws_ok(
    test.get_card_sql(replace(test.card_ref('p1'), '-', '')),
    'CKNFD',
    'No such card.',
    'an id without its hyphens is not the canonical form: not found'
);
SELECT throws_ok(
    format('SELECT * FROM cards.get_card(%L, NULL)', test.id('tenant_a')),
    'CKNFD',
    'No such card.',
    'no id is not found'
);

-- ---------------------------------------------------------------------------------
-- Persona: tenant A — update_card's precondition (If-Match)
-- ---------------------------------------------------------------------------------

SELECT test.remember('p1_v1', test.stored_card('p1')::text);
SELECT test.remember('p1_doc_v1', test.get_card('p1')::text);

SELECT throws_ok(
    test.update_card_sql('p1', NULL, '{"title": "New voice"}'),
    'CKPRQ',
    'Send If-Match with the ETag of the card you read, so that no change is lost.',
    'an update without If-Match is refused: precondition required'
);
SELECT throws_ok(
    test.update_card_sql('p1', '"2"', '{"title": "New voice"}'),
    'CKPFL',
    'The card has changed since it was read; read it again and retry.',
    'an update with an ETag that is not the current one is refused: precondition failed'
);
SELECT throws_ok(
    test.update_card_sql('p1', '1', '{"title": "New voice"}'),
    'CKPFL',
    'The card has changed since it was read; read it again and retry.',
    'the ETag must be sent quoted, as it was answered'
);
SELECT throws_ok(
    test.update_card_sql('p1', 'W/"1"', '{"title": "New voice"}'),
    'CKPFL',
    'The card has changed since it was read; read it again and retry.',
    'a weak ETag never matches: If-Match compares strongly'
);
SELECT throws_ok(
    test.update_card_sql('p1', '', '{"title": "New voice"}'),
    'CKPFL',
    'The card has changed since it was read; read it again and retry.',
    'an empty If-Match matches nothing'
);
SELECT throws_ok(
    test.update_card_sql('p1', '"2"', '{"title": '),
    'CKPFL',
    'The card has changed since it was read; read it again and retry.',
    'If-Match is checked before the body is read: a stale ETag is refused whatever the body holds'
);
SELECT throws_ok(
    test.update_card_sql('p1', NULL, '{"title": '),
    'CKPRQ',
    'Send If-Match with the ETag of the card you read, so that no change is lost.',
    'and a missing one too'
);
SELECT is(test.stored_card('p1'), test.doc('p1_v1'), 'a refused precondition writes nothing');

-- ---------------------------------------------------------------------------------
-- Persona: tenant A — update_card's changes, one version each
-- ---------------------------------------------------------------------------------

SELECT test.remember('v2', test.patch_card('p1', '"1"', '{"title": "New voice"}')::text);
SELECT is(test.doc('v2') ->> 'etag', '"2"', 'an update with the current ETag succeeds and answers the next ETag');
SELECT is(
    (test.doc('v2') -> 'card') - '{content_hash,updated_at}'::text[],
    ((test.doc('p1_doc_v1') -> 'card') - '{content_hash,updated_at}'::text[]) || '{"title": "New voice"}',
    'the answer is the card with the named field replaced and the others kept'
);
SELECT is(
    test.doc('v2') -> 'card' ->> 'content_hash',
    test.batch_hash('{"kind": "brand", "title": "New voice", "content": {"tone": "warm"}}'),
    'a title change re-hashes the card: the hash batch_create gives the new kind, title and content'
);
SELECT is(
    test.doc('v2') -> 'card' ->> 'updated_at',
    current_setting('tap.now'),
    'updated_at becomes the time of the change'
);
SELECT is(
    test.doc('v2') -> 'card' ->> 'created_at',
    '2024-01-02T03:04:05.000006Z',
    'created_at does not change'
);
SELECT is(test.get_card('p1'), test.doc('v2'), 'get_card answers the updated card and its new ETag');
SELECT throws_ok(
    test.update_card_sql('p1', '"1"', '{"title": "Lost update"}'),
    'CKPFL',
    'The card has changed since it was read; read it again and retry.',
    'the ETag read before a change is stale after it'
);

SELECT is(
    test.patch_card('p1', '*', '{"content": {"tone": "crisp"}}') -> 'card' ->> 'content_hash',
    test.batch_hash('{"kind": "brand", "title": "New voice", "content": {"tone": "crisp"}}'),
    'If-Match * matches the live card; a content change re-hashes'
);
SELECT is(test.get_card('p1') ->> 'etag', '"3"', 'and bumps the version');
SELECT is(
    test.patch_card('p1', '"9", "3"', '{"kind": "voice"}') -> 'card' ->> 'content_hash',
    test.batch_hash('{"kind": "voice", "title": "New voice", "content": {"tone": "crisp"}}'),
    'If-Match may list several ETags, any one matching; a kind change re-hashes'
);
SELECT test.remember('v4', test.get_card('p1')::text);

SELECT is(
    test.patch_card('p1', '"4"', '{"tags": ["voice"]}') -> 'card' -> 'tags',
    '["voice"]',
    'a tags change replaces the tags'
);
SELECT is(
    test.get_card('p1') -> 'card' ->> 'content_hash',
    test.doc('v4') -> 'card' ->> 'content_hash',
    'and keeps the content_hash'
);
SELECT is(
    test.patch_card('p1', '"5"', '{"metadata": {"reviewed": true}}') -> 'card' -> 'metadata',
    '{"reviewed": true}',
    'a metadata change replaces the whole object, it does not merge into it'
);
SELECT is(
    jsonb_build_array(test.get_card('p1') ->> 'etag', test.get_card('p1') -> 'card' ->> 'content_hash'),
    jsonb_build_array('"6"', test.doc('v4') -> 'card' ->> 'content_hash'),
    'and bumps the version but keeps the content_hash'
);

-- Age the last change, so that a no-op can be told from a change.
RESET ROLE;
UPDATE cards.cards SET updated_at = '2024-02-03 04:05:06+00'
WHERE card_id = test.id('p1');
SET LOCAL ROLE cards_gateway;
SELECT test.remember('p1_v6', test.stored_card('p1')::text);

SELECT is(
    test.patch_card('p1', '"6"', '{}'),
    test.get_card('p1'),
    'an empty patch answers the card as it is'
);
SELECT is(
    test.patch_card(
        'p1', '*', '{"title": "New voice", "kind": "voice", "content": {"tone": "crisp"}, "tags": ["voice"]}'
    ) ->> 'etag',
    '"6"',
    'a patch that repeats the current values answers the same ETag'
);
SELECT is(
    test.stored_card('p1'), test.doc('p1_v6'), 'a patch that changes nothing writes nothing, updated_at included'
);

-- ---------------------------------------------------------------------------------
-- Persona: tenant A — update_card refusals, each writing nothing
-- ---------------------------------------------------------------------------------

SELECT throws_ok(
    test.update_card_sql('p1', '*', '{"kind": "note", "title": "Taken", "content": "taken"}'),
    'CKDUP',
    'Another live card already has this kind, title and content.',
    'a change that would duplicate another live card is refused'
);
SELECT throws_ok(
    test.update_card_sql('p2', '"1"', '{"kind": "voice", "title": "New voice", "content": {"tone": "crisp"}}'),
    'CKDUP',
    'Another live card already has this kind, title and content.',
    'nor can the other card be changed into this one'
);
SELECT throws_ok(
    test.update_card_sql('p1', '*', '{"title": ""}'),
    'CKVAL',
    'The request is invalid: 1 error(s), listed in "errors".',
    'a patch that makes the card invalid is a validation error'
);
SELECT is(
    test.error_detail(test.update_card_sql('p1', '*', '{"title": ""}')),
    '[{"field": "title", "message": "must be 1 to 500 characters"}]',
    'the error names the field and the rule, with no index'
);
SELECT is(
    test.error_detail(test.update_card_sql('p1', '*', '{"title": null}')),
    '[{"field": "title", "message": "must be a string"}]',
    'a null title is refused: a patch cannot remove a required field'
);
SELECT is(
    test.error_detail(test.update_card_sql('p1', '*', '{"content": null}')),
    '[{"field": "content", "message": "must not be null"}]',
    'null content is refused'
);
SELECT is(
    test.error_detail(test.update_card_sql('p1', '*', '{"kind": "Brand Voice"}')),
    '[{"field": "kind", "message": "must be 1 to 64 characters of a-z, 0-9, \"_\", \".\" and \"-\""}]',
    'an invalid kind is refused'
);
SELECT is(
    test.error_detail(test.update_card_sql('p1', '*', '{"tags": ["x", "y", "x"]}')),
    '[{"field": "tags", "message": "must not repeat a tag: \"x\""}]',
    'a repeated tag is refused, naming it'
);
SELECT is(
    test.error_detail(test.update_card_sql('p1', '*', '{"metadata": null}')),
    '[{"field": "metadata", "message": "must be a JSON object"}]',
    'null metadata is refused'
);
SELECT is(
    test.error_detail(test.update_card_sql('p1', '*', '{"id": "x", "title": ""}')),
    '[{"field": "id", "message": "is not a known field"},
      {"field": "title", "message": "must be 1 to 500 characters"}]',
    'an unknown field is refused, together with every other error'
);
SELECT is(
    test.error_detail(test.update_card_sql('p1', '*', '["title"]')),
    '[{"field": "(body)", "message": "must be a JSON object"}]',
    'a body that is not an object is refused'
);
SELECT is(
    test.error_detail(test.update_card_sql('p1', '*', '{"content": {"a": ["x\u0000"]}, "title": "t\u0000"}')),
    '[{"field": "content", "message": "must not contain NUL (\\u0000)"},
      {"field": "title", "message": "must not contain NUL (\\u0000)"}]',
    'a NUL escape anywhere in a field is a validation error naming the field, not a server error'
);
SELECT throws_ok(
    test.update_card_sql('p1', '*', '{"title": "t"'),
    'CKJSN',
    'The request body is not valid JSON.',
    'a malformed body is malformed JSON'
);
SELECT throws_ok(
    test.update_card_sql('p1', '*', NULL),
    'CKJSN',
    'The request body is not valid JSON.',
    'an empty body is malformed JSON'
);
SELECT throws_ok(
    format($$SELECT * FROM cards.update_card(%L, %L, '*', '\x7b22ff')$$, test.id('tenant_a'), test.id('p1')),
    'CKJSN',
    'The request body is not valid UTF-8.',
    'a body that is not UTF-8 is refused as such'
);
SELECT throws_ok(
    test.update_card_sql('unknown', '*', '{"title": "t"}'),
    'CKNFD',
    'No such card.',
    'an update of an unknown card is not found'
);
SELECT throws_ok(
    test.update_card_sql('not-a-uuid', '*', '{"title": "t"}'),
    'CKNFD',
    'No such card.',
    'an update of a malformed id is not found'
);
SELECT is(test.stored_card('p1'), test.doc('p1_v6'), 'no refused update wrote anything to the card');
SELECT is(
    (test.stored_card('p2') ->> 'version')::integer, 1, 'nor to the card it would have duplicated'
);

RESET ROLE;

-- ---------------------------------------------------------------------------------
-- Persona: tenant B, through the gateway role — tenant A's cards
-- ---------------------------------------------------------------------------------

SET LOCAL ROLE cards_gateway;
SELECT test.remember('p2_before_b', test.stored_card('p2')::text);

SELECT throws_ok(
    test.get_card_sql('p1', 'tenant_b'), 'CKNFD', 'No such card.', 'tenant B cannot read tenant A''s card'
);
SELECT throws_ok(
    test.update_card_sql('p2', '*', '{"title": "Mine now"}', 'tenant_b'),
    'CKNFD',
    'No such card.',
    'nor update it, even with If-Match *'
);
SELECT is(
    (SELECT g.etag FROM cards.get_card(test.id('tenant_b'), test.card_ref('b1')) AS g),
    '"1"',
    'tenant B reads its own card'
);

RESET ROLE;

-- ---------------------------------------------------------------------------------
-- Persona: admin (a trusted job calling the functions directly)
-- ---------------------------------------------------------------------------------

SET LOCAL ROLE cards_admin;

SELECT is(test.get_card('p1'), test.patch_card('p1', '"6"', '{}'), 'a trusted job gets the same answers');

RESET ROLE;

-- ---------------------------------------------------------------------------------
-- Persona: superuser — what tenant B's calls wrote
-- ---------------------------------------------------------------------------------

SELECT is(test.stored_card('p2'), test.doc('p2_before_b'), 'tenant B''s update left tenant A''s card as it was');

-- ---------------------------------------------------------------------------------
-- Persona: a suspended tenant
-- ---------------------------------------------------------------------------------

SELECT cards.set_tenant_active(test.id('tenant_a'), FALSE);
SET LOCAL ROLE cards_gateway;

SELECT throws_ok(
    test.get_card_sql('p1'), 'CKFBD', 'The tenant is unknown or suspended.', 'a suspended tenant cannot get_card'
);
SELECT throws_ok(
    test.update_card_sql('p1', '*', 'not json'),
    'CKFBD',
    'The tenant is unknown or suspended.',
    'nor update_card, whatever it sends'
);

RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
