-- Content deduplication (API.md, "Dedup"): an item whose content_hash matches a live card
-- of the tenant, or an earlier item of the same batch, is not inserted again; it answers
-- that card's id with status "duplicate". content_hash is SHA-256 of the jsonb text of
-- [kind, title, content] (CONVENTIONS.md), so key order and white space do not matter.
BEGIN;
SELECT plan(32);

-- Test-only helpers, rolled back with the transaction.
-- Tenant A's batch_create, remembered under p_name; answers the document.
CREATE FUNCTION pg_temp.batch(p_name text, p_cards jsonb) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT test.remember(p_name, b.response::text)::jsonb
    FROM cards.batch_create(current_setting('tap.tenant_a')::uuid, p_cards) AS b
$$;
-- The statuses, ids or hashes of a remembered batch answer, in item order.
CREATE FUNCTION pg_temp.items(p_name text, p_key text) RETURNS text[]
LANGUAGE sql STABLE AS $$
    SELECT array_agg(i.item ->> p_key ORDER BY i.ord)
    FROM jsonb_array_elements(current_setting('tap.' || p_name)::jsonb -> 'cards') WITH ORDINALITY AS i (item, ord)
$$;
-- Stored rows, read as the superuser running the suite, whom row-level security does not
-- restrict (SECURITY DEFINER: whoever calls them).
CREATE FUNCTION pg_temp.cards_of_a() RETURNS bigint
LANGUAGE sql SECURITY DEFINER AS
$$ SELECT count(*) FROM cards.cards AS c WHERE c.tenant_id = current_setting('tap.tenant_a')::uuid $$;
CREATE FUNCTION pg_temp.stored_card(p_card_id text) RETURNS cards.cards
LANGUAGE sql SECURITY DEFINER AS $$ SELECT c FROM cards.cards AS c WHERE c.card_id = p_card_id::uuid $$;

SELECT test.remember('tenant_a', cards.create_tenant('Tenant A')::text);

-- ---------------------------------------------------------------------------------
-- Persona: tenant A, through the gateway role — dedupe within one batch
-- ---------------------------------------------------------------------------------

SET LOCAL ROLE cards_gateway;

SELECT pg_temp.batch('first', $$[
    {"title": "X", "content": {"b": [1, 2], "a": "x"}, "tags": ["first"], "metadata": {"n": 1}},
    {"title": "Y", "content": "y"},
    {"title": "X", "content": {"a": "x", "b": [1, 2]}, "tags": ["second"], "metadata": {"n": 2}},
    {"title": "Z", "content": "z", "kind": "fact"},
    {"title": "X", "kind": "note", "content": {"b": [1, 2], "a": "x"}}
]$$);

SELECT is(
    pg_temp.items('first', 'status'),
    ARRAY['created', 'created', 'duplicate', 'created', 'duplicate'],
    'a repeat of an earlier item of the same batch is a duplicate; the first one is created'
);
SELECT is(
    pg_temp.items('first', 'index'),
    ARRAY['0', '1', '2', '3', '4'],
    'the answer lists every item, in request order, with its index'
);
SELECT ok(
    (pg_temp.items('first', 'id'))[3] = (pg_temp.items('first', 'id'))[1]
    AND (pg_temp.items('first', 'id'))[5] = (pg_temp.items('first', 'id'))[1],
    'a duplicate answers the id of the card it duplicates'
);
SELECT is(
    (SELECT count(DISTINCT i) FROM unnest(pg_temp.items('first', 'id')) AS i),
    3::bigint,
    'the created items have distinct ids'
);
SELECT is(
    test.doc('first') - 'cards',
    '{"created": 3, "duplicates": 2}',
    'the answer counts created and duplicate items'
);
SELECT is(pg_temp.cards_of_a(), 3::bigint, 'only the created items are written');
SELECT results_eq(
    $$ SELECT c.tags, c.metadata FROM pg_temp.stored_card((pg_temp.items('first', 'id'))[1]) AS c $$,
    $$ VALUES (ARRAY['first'], '{"n": 1}'::jsonb) $$,
    'the card keeps the tags and metadata of the first of its items'
);
SELECT set_eq(
    $$ SELECT jsonb_object_keys(test.doc('first')) $$,
    ARRAY['cards', 'created', 'duplicates'],
    'the answer holds exactly cards, created and duplicates'
);
SELECT is_empty(
    $$
        SELECT i.item FROM jsonb_array_elements(test.doc('first') -> 'cards') AS i (item)
        WHERE (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(i.item) AS k) <> '{content_hash,id,index,status}'
    $$,
    'each item of the answer holds exactly index, id, status and content_hash'
);

-- ---------------------------------------------------------------------------------
-- Persona: tenant A — the content hash
-- ---------------------------------------------------------------------------------

SELECT is_empty(
    $$ SELECT h FROM unnest(pg_temp.items('first', 'content_hash')) AS h WHERE h !~ '^[0-9a-f]{64}$' $$,
    'every content_hash is 64 lowercase hex characters'
);
SELECT is(
    (pg_temp.items('first', 'content_hash'))[1],
    encode(sha256(convert_to(jsonb_build_array('note', 'X', '{"a": "x", "b": [1, 2]}'::jsonb)::text, 'UTF8')), 'hex'),
    'content_hash is SHA-256 of the jsonb text of [kind, title, content], an omitted kind counting as "note"'
);
SELECT is(
    (pg_temp.items('first', 'content_hash'))[4],
    encode(sha256(convert_to('["fact", "Z", "z"]', 'UTF8')), 'hex'),
    'content_hash covers the kind given'
);
SELECT ok(
    (pg_temp.items('first', 'content_hash'))[3] = (pg_temp.items('first', 'content_hash'))[1]
    AND (pg_temp.items('first', 'content_hash'))[5] = (pg_temp.items('first', 'content_hash'))[1],
    'tags and metadata are not part of the hash; key order inside content is not either'
);
SELECT is(
    encode((pg_temp.stored_card((pg_temp.items('first', 'id'))[1])).content_hash, 'hex'),
    (pg_temp.items('first', 'content_hash'))[1],
    'the hash answered is the hash stored'
);

-- Raw request bodies: the same card written with other key order and white space.
SELECT test.remember('raw_1', b.response::text)
FROM cards.batch_create_request(
    test.id('tenant_a'),
    convert_to('{"cards": [{"title": "raw", "content": {"x": 1, "y": {"p": true, "q": null}}}]}', 'UTF8'),
    NULL
) AS b;
SELECT test.remember('raw_2', b.response::text)
FROM cards.batch_create_request(
    test.id('tenant_a'),
    convert_to(
        E'{ "cards" : [ {\n  "content" : { "y" : { "q" : null , "p" : true } , "x" : 1 } ,\n  "title" : "raw" } ] }',
        'UTF8'
    ),
    NULL
) AS b;

SELECT is(
    test.doc('raw_2') -> 'cards' -> 0 ->> 'status',
    'duplicate',
    'the same card sent with other key order and white space is a duplicate'
);
SELECT is(
    (test.doc('raw_2') -> 'cards' -> 0) - 'status',
    (test.doc('raw_1') -> 'cards' -> 0) - 'status',
    'and answers the same id and content_hash'
);

SELECT is(
    (
        SELECT array_agg(i.item ->> 'status' ORDER BY i.ord)
        FROM
            jsonb_array_elements(
                pg_temp.batch('numbers', '[{"title": "n", "content": 1}, {"title": "n", "content": 1.0}]') -> 'cards'
            )
            WITH ORDINALITY AS i (item, ord)
    ),
    ARRAY['created', 'created'],
    'numbers keep their written form: content 1 and 1.0 are different cards'
);
SELECT is(
    (
        SELECT array_agg(i.item ->> 'status' ORDER BY i.ord)
        FROM
            jsonb_array_elements(
                pg_temp.batch('variants', $$[
                    {"title": "Y", "content": "y", "kind": "fact"},
                    {"title": "Y ", "content": "y"},
                    {"title": "Y", "content": "y "},
                    {"title": "Y", "content": ["y"]}
                ]$$) -> 'cards'
            )
            WITH ORDINALITY AS i (item, ord)
    ),
    ARRAY['created', 'created', 'created', 'created'],
    'a different kind, title or content (even by one space or by type) is a different card'
);

-- ---------------------------------------------------------------------------------
-- Persona: tenant A — dedupe against the tenant's existing live cards
-- ---------------------------------------------------------------------------------

SELECT test.remember('count_before', pg_temp.cards_of_a()::text);
SELECT pg_temp.batch(
    'again', '[{"title": "X", "content": {"a": "x", "b": [1, 2]}, "tags": ["third"]}, {"title": "W", "content": "w"}]'
);

SELECT is(
    pg_temp.items('again', 'status'),
    ARRAY['duplicate', 'created'],
    'an item matching an existing live card is a duplicate'
);
SELECT is(
    (pg_temp.items('again', 'id'))[1],
    (pg_temp.items('first', 'id'))[1],
    'and answers the existing card''s id'
);
SELECT is(
    test.doc('again') - 'cards',
    '{"created": 1, "duplicates": 1}',
    'and is counted as a duplicate'
);
SELECT is(
    pg_temp.cards_of_a(),
    current_setting('tap.count_before')::bigint + 1,
    'only the new item is written'
);
SELECT is(
    (pg_temp.stored_card((pg_temp.items('first', 'id'))[1])).tags,
    ARRAY['first'],
    'a duplicate does not change the existing card'
);

SELECT pg_temp.batch(
    'repeated', (SELECT jsonb_agg('{"title": "same", "content": "same"}'::jsonb) FROM generate_series(1, 5))
);
SELECT is(
    test.doc('repeated') - 'cards',
    '{"created": 1, "duplicates": 4}',
    'five identical items create one card and four duplicates'
);
SELECT is(
    (SELECT count(DISTINCT i) FROM unnest(pg_temp.items('repeated', 'id')) AS i),
    1::bigint,
    'all five answer the same id'
);

SELECT pg_temp.batch('existing_twice', '[{"title": "Y", "content": "y"}, {"title": "Y", "content": "y"}]');
SELECT is(
    pg_temp.items('existing_twice', 'status'),
    ARRAY['duplicate', 'duplicate'],
    'an existing card sent twice in a batch is a duplicate both times'
);
SELECT is(
    pg_temp.items('existing_twice', 'id'),
    ARRAY[(pg_temp.items('first', 'id'))[2], (pg_temp.items('first', 'id'))[2]],
    'both answer the existing card''s id'
);

SELECT test.remember('counts', row_to_json(b)::text)
FROM cards.batch_create_request(
    test.id('tenant_a'),
    convert_to(
        '{"cards": [{"title": "Y", "content": "y"}, {"title": "V", "content": "v"}, {"title": "V", "content": "v"}]}',
        'UTF8'
    ),
    NULL
) AS b;
SELECT is(
    test.doc('counts') - 'response',
    '{"replayed": false, "created": 1, "duplicates": 2}',
    'batch_create_request also answers the created and duplicate counts, for the gateway''s metrics'
);
SELECT is(
    (test.doc('counts') -> 'response') - 'cards',
    '{"created": 1, "duplicates": 2}',
    'which agree with its document'
);

RESET ROLE;

-- ---------------------------------------------------------------------------------
-- Persona: tenant A — a soft-deleted card is not deduplicated against
-- ---------------------------------------------------------------------------------

-- Soft delete directly, as the superuser, so that this file depends on no other endpoint.
UPDATE cards.cards SET deleted_at = now()
WHERE card_id = (pg_temp.items('first', 'id'))[4]::uuid;

SET LOCAL ROLE cards_gateway;
SELECT pg_temp.batch('after_delete', '[{"title": "Z", "content": "z", "kind": "fact"}]');

SELECT is(
    pg_temp.items('after_delete', 'status'),
    ARRAY['created'],
    'content matching only a deleted card is created anew'
);
SELECT isnt(
    (pg_temp.items('after_delete', 'id'))[1],
    (pg_temp.items('first', 'id'))[4],
    'with a new id'
);
SELECT is(
    (pg_temp.items('after_delete', 'content_hash'))[1],
    (pg_temp.items('first', 'content_hash'))[4],
    'and the same content_hash'
);

RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
