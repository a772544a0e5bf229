-- batch_create's input rules (API.md, "Card representation" and "POST
-- /api/v1/cards/batch"): each rule at and just past its limit, every invalid item
-- reported together by index in one CKVAL error, and nothing written when any item fails.
BEGIN;
-- Quiet: the 256 KiB one-word content makes the full-text index say it skips the word.
SET LOCAL client_min_messages = warning;
SELECT plan(56);

-- Test-only helpers, rolled back with the transaction.
-- The errors tenant A's batch_create reports for p_cards ("no error" if it succeeds).
CREATE FUNCTION pg_temp.batch_errors(p_cards jsonb) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT test.error_detail(
        format('SELECT * FROM cards.batch_create(%L, %L)', current_setting('tap.tenant_a'), p_cards)
    )
$$;
-- The errors for a batch of one card.
CREATE FUNCTION pg_temp.card_errors(p_card jsonb) RETURNS jsonb
LANGUAGE sql AS $$ SELECT pg_temp.batch_errors(jsonb_build_array(p_card)) $$;
-- The number of tenant A's cards, counted as the superuser running the suite (SECURITY
-- DEFINER, whoever calls it), whom row-level security does not restrict.
CREATE FUNCTION pg_temp.cards_of_a() RETURNS bigint
LANGUAGE sql SECURITY DEFINER AS $$
    SELECT count(*) FROM cards.cards AS c WHERE c.tenant_id = current_setting('tap.tenant_a')::uuid
$$;

SELECT test.remember('tenant_a', cards.create_tenant('Tenant A')::text);

-- ---------------------------------------------------------------------------------
-- Persona: tenant A, through the gateway role — one rule at a time
-- ---------------------------------------------------------------------------------

SET LOCAL ROLE cards_gateway;

-- title: required, a string of 1 to 500 characters
SELECT is(
    pg_temp.card_errors('{"content": 1}'),
    '[{"index": 0, "field": "title", "message": "is required"}]',
    'a card without a title is refused'
);
SELECT is(
    pg_temp.card_errors('{"title": "", "content": 1}'),
    '[{"index": 0, "field": "title", "message": "must be 1 to 500 characters"}]',
    'an empty title is refused'
);
SELECT is(
    pg_temp.card_errors(jsonb_build_object('title', repeat('t', 501), 'content', 1)),
    '[{"index": 0, "field": "title", "message": "must be 1 to 500 characters"}]',
    'a title of 501 characters is refused'
);
SELECT is(
    pg_temp.card_errors(jsonb_build_object('title', repeat('é', 500), 'content', 1)),
    '"no error"',
    'a title of 500 characters is accepted, counted in characters not bytes'
);
SELECT is(
    pg_temp.card_errors('{"title": 7, "content": 1}'),
    '[{"index": 0, "field": "title", "message": "must be a string"}]',
    'a non-string title is refused'
);
SELECT is(
    pg_temp.card_errors('{"title": null, "content": 1}'),
    '[{"index": 0, "field": "title", "message": "must be a string"}]',
    'a null title is refused'
);

-- content: required, any JSON value but null, at most 256 KiB serialised
SELECT is(
    pg_temp.card_errors('{"title": "no content"}'),
    '[{"index": 0, "field": "content", "message": "is required"}]',
    'a card without content is refused'
);
SELECT is(
    pg_temp.card_errors('{"title": "null content", "content": null}'),
    '[{"index": 0, "field": "content", "message": "must not be null"}]',
    'null content is refused'
);
SELECT is(
    pg_temp.card_errors(jsonb_build_object('title', 'big', 'content', repeat('c', 262143))),
    '[{"index": 0, "field": "content", "message": "must be at most 256 KiB serialised"}]',
    'content of 256 KiB + 1 byte serialised is refused'
);
SELECT is(
    pg_temp.card_errors(jsonb_build_object('title', 'big', 'content', repeat('c', 262142))),
    '"no error"',
    'content of exactly 256 KiB serialised (with its quotes) is accepted'
);
SELECT is(
    pg_temp.batch_errors($$[
        {"title": "false", "content": false}, {"title": "zero", "content": 0}, {"title": "empty", "content": ""},
        {"title": "array", "content": []}, {"title": "object", "content": {}}
    ]$$),
    '"no error"',
    'content may be any JSON value but null: false, 0, "", [] and {} are accepted'
);

-- kind: 1 to 64 characters of [a-z0-9_.-], default "note"
SELECT is(
    pg_temp.card_errors('{"title": "k", "content": 1, "kind": ""}'),
    '[{"index": 0, "field": "kind", "message": "must be 1 to 64 characters of a-z, 0-9, \"_\", \".\" and \"-\""}]',
    'an empty kind is refused'
);
SELECT is(
    pg_temp.card_errors(jsonb_build_object('title', 'k', 'content', 1, 'kind', repeat('k', 65))) -> 0 ->> 'field',
    'kind',
    'a kind of 65 characters is refused'
);
SELECT is(
    pg_temp.card_errors(jsonb_build_object('title', 'k', 'content', 1, 'kind', repeat('k', 64))),
    '"no error"',
    'a kind of 64 characters is accepted'
);
SELECT is(
    pg_temp.card_errors('{"title": "k", "content": 1, "kind": "Note"}') -> 0 ->> 'field',
    'kind',
    'a kind with an upper-case letter is refused'
);
SELECT is(
    pg_temp.card_errors('{"title": "k", "content": 1, "kind": "brand voice"}') -> 0 ->> 'field',
    'kind',
    'a kind with a space is refused'
);
SELECT is(
    pg_temp.card_errors('{"title": "k", "content": 1, "kind": "note\n"}') -> 0 ->> 'field',
    'kind',
    'a kind with a trailing newline is refused'
);
SELECT is(
    pg_temp.card_errors('{"title": "k", "content": 1, "kind": "brand.voice_v2-1"}'),
    '"no error"',
    'a kind of a-z, 0-9, ".", "_" and "-" is accepted'
);
SELECT is(
    pg_temp.card_errors('{"title": "k", "content": 1, "kind": 3}'),
    '[{"index": 0, "field": "kind", "message": "must be a string"}]',
    'a non-string kind is refused'
);
SELECT is(
    pg_temp.card_errors('{"title": "k", "content": 1, "kind": null}'),
    '[{"index": 0, "field": "kind", "message": "must be a string"}]',
    'an explicit null kind is refused (omit it for the default)'
);

-- tags: at most 32 distinct strings of 1 to 64 characters, default []
SELECT is(
    pg_temp.card_errors(jsonb_build_object(
        'title', 'tags', 'content', 1, 'tags', (SELECT jsonb_agg('t' || g) FROM generate_series(1, 33) AS g)
    )),
    '[{"index": 0, "field": "tags", "message": "must hold at most 32 tags"}]',
    '33 tags are refused'
);
SELECT is(
    pg_temp.card_errors(jsonb_build_object(
        'title', 'tags', 'content', 1, 'tags', (SELECT jsonb_agg('t' || g) FROM generate_series(1, 32) AS g)
    )),
    '"no error"',
    '32 distinct tags are accepted'
);
SELECT is(
    pg_temp.card_errors('{"title": "tags", "content": 2, "tags": ["ok", ""]}'),
    '[{"index": 0, "field": "tags", "message": "must hold strings of 1 to 64 characters"}]',
    'an empty tag is refused'
);
SELECT is(
    pg_temp.card_errors(jsonb_build_object('title', 'tags', 'content', 2, 'tags', jsonb_build_array(repeat('t', 65)))),
    '[{"index": 0, "field": "tags", "message": "must hold strings of 1 to 64 characters"}]',
    'a tag of 65 characters is refused'
);
SELECT is(
    pg_temp.card_errors(jsonb_build_object('title', 'tags', 'content', 2, 'tags', jsonb_build_array(repeat('t', 64)))),
    '"no error"',
    'a tag of 64 characters is accepted'
);
SELECT is(
    pg_temp.card_errors('{"title": "tags", "content": 3, "tags": ["ok", 1]}'),
    '[{"index": 0, "field": "tags", "message": "must hold strings of 1 to 64 characters"}]',
    'a non-string tag is refused'
);
SELECT is(
    (
        SELECT jsonb_agg(e.error - 'message')
        FROM jsonb_array_elements(pg_temp.card_errors('{"title": "tags", "content": 3, "tags": ["a", "b", "a"]}'))
            AS e (error)
    ),
    '[{"index": 0, "field": "tags"}]',
    'a repeated tag is refused, as an error of the tags field'
);
SELECT matches(
    pg_temp.card_errors('{"title": "tags", "content": 3, "tags": ["a", "b", "a"]}') -> 0 ->> 'message',
    '^must not repeat a tag',
    'the repeated-tag error says tags must be distinct'
);
SELECT is(
    pg_temp.card_errors('{"title": "tags", "content": 3, "tags": "brand"}'),
    '[{"index": 0, "field": "tags", "message": "must be an array of strings"}]',
    'tags that are not an array are refused'
);
SELECT is(
    pg_temp.card_errors('{"title": "tags", "content": 3, "tags": null}'),
    '[{"index": 0, "field": "tags", "message": "must be an array of strings"}]',
    'explicit null tags are refused (omit them for the default)'
);

-- metadata: a JSON object of at most 16 KiB serialised, default {}
SELECT is(
    pg_temp.card_errors('{"title": "m", "content": 1, "metadata": ["a"]}'),
    '[{"index": 0, "field": "metadata", "message": "must be a JSON object"}]',
    'array metadata is refused'
);
SELECT is(
    pg_temp.card_errors('{"title": "m", "content": 1, "metadata": "source"}'),
    '[{"index": 0, "field": "metadata", "message": "must be a JSON object"}]',
    'string metadata is refused'
);
SELECT is(
    pg_temp.card_errors('{"title": "m", "content": 1, "metadata": null}'),
    '[{"index": 0, "field": "metadata", "message": "must be a JSON object"}]',
    'explicit null metadata is refused (omit it for the default)'
);
-- {"k": "<n characters>"} serialises to n + 9 bytes.
SELECT is(
    pg_temp.card_errors(
        jsonb_build_object('title', 'm', 'content', 1, 'metadata', jsonb_build_object('k', repeat('m', 16376)))
    ),
    '[{"index": 0, "field": "metadata", "message": "must be at most 16 KiB serialised"}]',
    'metadata of 16 KiB + 1 byte serialised is refused'
);
SELECT is(
    pg_temp.card_errors(
        jsonb_build_object('title', 'm', 'content', 1, 'metadata', jsonb_build_object('k', repeat('m', 16375)))
    ),
    '"no error"',
    'metadata of exactly 16 KiB serialised is accepted'
);

-- unknown fields and items that are not objects
SELECT is(
    pg_temp.card_errors('{"title": "u", "content": 1, "id": "3b0e0e5e-7d25-4d8e-9e43-3f7a44b3f0d1"}'),
    '[{"index": 0, "field": "id", "message": "is not a known field"}]',
    'an unknown field is refused, even one the answer has (id)'
);
SELECT is(
    pg_temp.card_errors('{"title": "u", "content": 1, "usage_count": 5, "Title": "x"}'),
    '[{"index": 0, "field": "Title", "message": "is not a known field"},
      {"index": 0, "field": "usage_count", "message": "is not a known field"}]',
    'every unknown field is listed; field names are case-sensitive'
);
SELECT is(
    pg_temp.batch_errors('["a card", 1, null, [], true]'),
    '[{"index": 0, "field": "(card)", "message": "must be a JSON object"},
      {"index": 1, "field": "(card)", "message": "must be a JSON object"},
      {"index": 2, "field": "(card)", "message": "must be a JSON object"},
      {"index": 3, "field": "(card)", "message": "must be a JSON object"},
      {"index": 4, "field": "(card)", "message": "must be a JSON object"}]',
    'an item that is not a JSON object is refused, one error each, with no field errors'
);

-- the batch itself: an array of 1 to 1000 items
SELECT is(
    pg_temp.batch_errors('[]'),
    '[{"field": "cards", "message": "must hold 1 to 1000 cards"}]',
    'an empty batch is refused'
);
SELECT is(
    pg_temp.batch_errors(
        (SELECT jsonb_agg(jsonb_build_object('title', 'x' || g, 'content', g)) FROM generate_series(1, 1001) AS g)
    ),
    '[{"field": "cards", "message": "must hold 1 to 1000 cards"}]',
    'a batch of 1001 items is refused'
);
SELECT is(
    pg_temp.batch_errors('{"title": "t", "content": 1}'),
    '[{"field": "cards", "message": "must be an array of cards"}]',
    'a single card not wrapped in an array is refused'
);
SELECT is(
    pg_temp.batch_errors(NULL),
    '[{"field": "cards", "message": "is required"}]',
    'a NULL batch is refused'
);
SELECT is(
    pg_temp.batch_errors('"cards"'),
    '[{"field": "cards", "message": "must be an array of cards"}]',
    'a batch that is a string is refused'
);

SELECT is(
    (
        SELECT b.response::jsonb -> 'created'
        FROM cards.batch_create(
            test.id('tenant_a'),
            (
                SELECT jsonb_agg(jsonb_build_object('title', 'bulk ' || g, 'content', g))
                FROM generate_series(1, 1000) AS g
            )
        ) AS b
    ),
    '1000',
    'a batch of 1000 distinct cards is accepted and creates them all'
);

-- ---------------------------------------------------------------------------------
-- Persona: tenant A — every error of every item, together, and nothing written
-- ---------------------------------------------------------------------------------

SELECT test.remember('count_before', pg_temp.cards_of_a()::text);
SELECT test.remember(
    'bad_batch',
    $$[
        {"title": "valid 1", "content": "v1"},
        {"content": "no title"},
        {"title": "valid 2", "content": "v2"},
        {"title": "x", "content": 1, "kind": "BAD", "tags": [1], "extra": true},
        "not a card",
        {"title": "valid 3", "content": "v3"},
        {"title": "", "content": null, "kind": "", "tags": "x", "metadata": []}
    ]$$
);

SELECT throws_ok(
    format('SELECT * FROM cards.batch_create(%L, %L)', test.id('tenant_a'), current_setting('tap.bad_batch')),
    'CKVAL',
    'The request is invalid: 10 error(s), listed in "errors".',
    'a batch with invalid items raises one CKVAL error counting every problem'
);
SELECT is(
    pg_temp.batch_errors(current_setting('tap.bad_batch')::jsonb),
    '[
        {"index": 1, "field": "title", "message": "is required"},
        {"index": 3, "field": "extra", "message": "is not a known field"},
        {"index": 3, "field": "kind",
         "message": "must be 1 to 64 characters of a-z, 0-9, \"_\", \".\" and \"-\""},
        {"index": 3, "field": "tags", "message": "must hold strings of 1 to 64 characters"},
        {"index": 4, "field": "(card)", "message": "must be a JSON object"},
        {"index": 6, "field": "content", "message": "must not be null"},
        {"index": 6, "field": "kind",
         "message": "must be 1 to 64 characters of a-z, 0-9, \"_\", \".\" and \"-\""},
        {"index": 6, "field": "metadata", "message": "must be a JSON object"},
        {"index": 6, "field": "tags", "message": "must be an array of strings"},
        {"index": 6, "field": "title", "message": "must be 1 to 500 characters"}
    ]',
    'every invalid item is listed by its index, every broken rule of each, by index then field'
);
SELECT is(
    pg_temp.cards_of_a(),
    current_setting('tap.count_before')::bigint,
    'nothing is written when any item is invalid, not even the valid items'
);
SELECT is(
    pg_temp.batch_errors(
        jsonb_build_array('{"title": "no content"}'::jsonb)
        || (SELECT jsonb_agg(jsonb_build_object('title', 'bulk ' || g, 'content', g)) FROM generate_series(1, 998) AS g)
        || '[{"content": "no title"}]'::jsonb
    ),
    '[{"index": 0, "field": "content", "message": "is required"},
      {"index": 999, "field": "title", "message": "is required"}]',
    'in a full batch, invalid items at both ends are both reported by index'
);
SELECT is(
    pg_temp.cards_of_a(),
    current_setting('tap.count_before')::bigint,
    'and nothing of that batch is written'
);

-- ---------------------------------------------------------------------------------
-- Persona: tenant A — what a valid card becomes
-- ---------------------------------------------------------------------------------

SELECT test.remember('minimal', b.response -> 'cards' -> 0 ->> 'id')
FROM cards.batch_create(test.id('tenant_a'), '[{"title": "minimal", "content": {"k": "v"}}]') AS b;
SELECT test.remember('full', b.response -> 'cards' -> 0 ->> 'id')
FROM cards.batch_create(
    test.id('tenant_a'),
    '[{"title": "full", "content": [1, "two"], "kind": "fact", "tags": ["brand", "tone"],
       "metadata": {"source": "onb"}}]'
) AS b;

SELECT test.remember('minimal_doc', cards.retrieve(test.id('tenant_a'), ARRAY[test.id('minimal')])::text);
SELECT test.remember('full_doc', cards.retrieve(test.id('tenant_a'), ARRAY[test.id('full')])::text);

SELECT is(
    current_setting('tap.minimal_doc')::jsonb -> 'cards' -> 0 -> 'kind',
    '"note"',
    'an omitted kind defaults to "note"'
);
SELECT is(
    current_setting('tap.minimal_doc')::jsonb -> 'cards' -> 0 -> 'tags',
    '[]',
    'omitted tags default to []'
);
SELECT is(
    current_setting('tap.minimal_doc')::jsonb -> 'cards' -> 0 -> 'metadata',
    '{}',
    'omitted metadata defaults to {}'
);
SELECT is(
    (current_setting('tap.full_doc')::jsonb -> 'cards' -> 0) - '{id,content_hash,created_at,updated_at}'::text[],
    '{"kind": "fact", "title": "full", "content": [1, "two"], "tags": ["brand", "tone"],
      "metadata": {"source": "onb"}, "usage_count": 0, "last_used_at": null}',
    'every given field is stored as given, usage starts at 0 and unused'
);

RESET ROLE;

-- ---------------------------------------------------------------------------------
-- Persona: admin (a trusted job calling batch_create directly) — the same rules
-- ---------------------------------------------------------------------------------

SET LOCAL ROLE cards_admin;

SELECT is(
    pg_temp.card_errors('{"title": "", "content": 1, "colour": "red"}'),
    '[{"index": 0, "field": "colour", "message": "is not a known field"},
      {"index": 0, "field": "title", "message": "must be 1 to 500 characters"}]',
    'a trusted job calling batch_create directly meets the same rules'
);
SELECT throws_ok(
    format($$SELECT * FROM cards.batch_create(%L, '[]')$$, test.id('tenant_a')),
    'CKVAL',
    'The request is invalid: 1 error(s), listed in "errors".',
    'and the same error'
);

RESET ROLE;

SELECT is(
    (
        SELECT count(*) FROM cards.cards AS c
        WHERE c.tenant_id = test.id('tenant_a') AND c.title = ''
    ),
    0::bigint,
    'no card with an invalid title exists: none of the refused items was written'
);

SELECT * FROM finish();
ROLLBACK;
