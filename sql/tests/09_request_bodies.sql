-- The *_request functions take what the gateway received (raw body bytes, raw path id),
-- so that the gateway never parses a request: a body that is not UTF-8 JSON is CKJSN; a
-- NUL escape (\u0000, which jsonb cannot hold) is a CKVAL naming its item and field; an
-- unknown envelope field is a CKVAL; a malformed path id names no card (CKNFD).
BEGIN;
SELECT plan(54);

-- Test-only helpers, rolled back with the transaction.
-- The statements tenant A's gateway runs for a raw body (text, sent as its UTF-8 bytes).
CREATE FUNCTION pg_temp.batch_sql(p_body text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT format(
        $f$SELECT * FROM cards.batch_create_request(%L, convert_to(%L, 'UTF8'), NULL)$f$,
        current_setting('tap.tenant_a'), p_body
    )
$$;
CREATE FUNCTION pg_temp.retrieve_sql(p_body text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT format(
        $f$SELECT cards.retrieve_request(%L, convert_to(%L, 'UTF8'))$f$, current_setting('tap.tenant_a'), p_body
    )
$$;
CREATE FUNCTION pg_temp.usage_sql(p_card_id text, p_body text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT format(
        $f$SELECT * FROM cards.track_usage_request(%L, %L, convert_to(%L, 'UTF8'))$f$,
        current_setting('tap.tenant_a'), p_card_id, p_body
    )
$$;
-- Rows, counted as the superuser running the suite, whom row-level security does not
-- restrict (SECURITY DEFINER: whoever calls them).
CREATE FUNCTION pg_temp.card_count() RETURNS bigint
LANGUAGE sql SECURITY DEFINER AS $$ SELECT count(*) FROM cards.cards $$;
CREATE FUNCTION pg_temp.usage_count() RETURNS bigint
LANGUAGE sql SECURITY DEFINER AS $$ SELECT count(*) FROM cards.card_usage $$;

SELECT test.remember('tenant_a', cards.create_tenant('Tenant A')::text);
SELECT test.remember('c1', b.response -> 'cards' -> 0 ->> 'id')
FROM cards.batch_create(test.id('tenant_a'), '[{"title": "one", "content": 1}]') AS b;
SELECT test.remember('nul_message', 'must not contain NUL (\u0000)');

-- ---------------------------------------------------------------------------------
-- Persona: tenant A, through the gateway role — batch_create_request
-- ---------------------------------------------------------------------------------

SET LOCAL ROLE cards_gateway;
SELECT test.remember('cards_before', pg_temp.card_count()::text);

SELECT throws_ok(
    pg_temp.batch_sql('{"cards": [{"title": "t", "content": 1}'),
    'CKJSN',
    'The request body is not valid JSON.',
    'a truncated body is malformed JSON'
);
SELECT throws_ok(
    pg_temp.batch_sql(''),
    'CKJSN',
    'The request body is not valid JSON.',
    'an empty body is malformed JSON'
);
SELECT throws_ok(
    format('SELECT * FROM cards.batch_create_request(%L, NULL, NULL)', test.id('tenant_a')),
    'CKJSN',
    'The request body is not valid JSON.',
    'a missing (NULL) body is malformed JSON'
);
SELECT throws_ok(
    pg_temp.batch_sql($${"cards": [{'title': 't', 'content': 1}]}$$),
    'CKJSN',
    'The request body is not valid JSON.',
    'single-quoted strings are not JSON'
);
SELECT throws_ok(
    pg_temp.batch_sql('{"cards": [{"title": "\ud800", "content": 1}]}'),
    'CKJSN',
    'The request body is not valid JSON.',
    'a lone surrogate escape is malformed JSON, not a server error'
);
SELECT throws_ok(
    format($$SELECT * FROM cards.batch_create_request(%L, '\x7b22636172647322ff', NULL)$$, test.id('tenant_a')),
    'CKJSN',
    'The request body is not valid UTF-8.',
    'a body with a byte that is never UTF-8 (0xff) is refused as not UTF-8'
);
SELECT throws_ok(
    format($$SELECT * FROM cards.batch_create_request(%L, '\xeda080', NULL)$$, test.id('tenant_a')),
    'CKJSN',
    'The request body is not valid UTF-8.',
    'an encoded surrogate (CESU-8) is not UTF-8'
);
SELECT throws_ok(
    format(
        $$SELECT * FROM cards.batch_create_request(%L, convert_to(%L, 'LATIN1'), NULL)$$,
        test.id('tenant_a'), '{"cards": [{"title": "café", "content": 1}]}'
    ),
    'CKJSN',
    'The request body is not valid UTF-8.',
    'a Latin-1 body is not UTF-8'
);

SELECT is(
    test.error_detail(pg_temp.batch_sql('[{"title": "t", "content": 1}]')),
    '[{"field": "(body)", "message": "must be a JSON object"}, {"field": "cards", "message": "is required"}]',
    'a body that is not an object is refused: the cards must come wrapped as {"cards": [...]}'
);
SELECT is(
    test.error_detail(pg_temp.batch_sql('{"cards": [{"title": "t", "content": 1}], "dry_run": true}')),
    '[{"field": "dry_run", "message": "is not a known field"}]',
    'an unknown envelope field is refused'
);
SELECT is(
    test.error_detail(pg_temp.batch_sql('{"card": [{"title": "t", "content": 1}]}')),
    '[{"field": "card", "message": "is not a known field"}, {"field": "cards", "message": "is required"}]',
    'a misspelt envelope field is refused, and the missing cards reported with it'
);
SELECT is(
    test.error_detail(pg_temp.batch_sql('{"cards": [{"title": ""}], "x": 1}')),
    '[{"field": "x", "message": "is not a known field"},
      {"index": 0, "field": "content", "message": "is required"},
      {"index": 0, "field": "title", "message": "must be 1 to 500 characters"}]',
    'envelope and item errors are reported together'
);

-- NUL escapes
SELECT is(
    test.error_detail(pg_temp.batch_sql('{"cards": [{"title": "a\u0000b", "content": 1}]}')),
    jsonb_build_array(jsonb_build_object('index', 0, 'field', 'title', 'message', current_setting('tap.nul_message'))),
    'a NUL escape in a title is a validation error of that field and item'
);
SELECT is(
    test.error_detail(pg_temp.batch_sql(
        '{"cards": [{"title": "ok", "content": 1}, {"title": "deep", "content": {"a": [1, {"b": "x\u0000"}]}}]}'
    )),
    jsonb_build_array(
        jsonb_build_object('index', 1, 'field', 'content', 'message', current_setting('tap.nul_message'))
    ),
    'a NUL escape deep inside content names the content of its item'
);
SELECT is(
    test.error_detail(pg_temp.batch_sql(
        '{"cards": [{"title": "t", "content": 1, "tags": ["\u0000"], "metadata": {"k\u0000": 1}, "kind": "a\u0000"}]}'
    )),
    jsonb_build_array(
        jsonb_build_object('index', 0, 'field', 'kind', 'message', current_setting('tap.nul_message')),
        jsonb_build_object('index', 0, 'field', 'metadata', 'message', current_setting('tap.nul_message')),
        jsonb_build_object('index', 0, 'field', 'tags', 'message', current_setting('tap.nul_message')),
        jsonb_build_object(
            'index', 0, 'field', 'kind', 'message', 'must be 1 to 64 characters of a-z, 0-9, "_", "." and "-"'
        )
    ),
    'NUL escapes in tags, a metadata key and kind are each reported, with any other rule broken'
);
SELECT is(
    test.error_detail(pg_temp.batch_sql('{"cards": [{"title": "\\\u0000", "content": 1}]}')),
    jsonb_build_array(jsonb_build_object('index', 0, 'field', 'title', 'message', current_setting('tap.nul_message'))),
    'an escaped backslash followed by a NUL escape is still a NUL'
);
SELECT is(
    test.error_detail(
        pg_temp.batch_sql('{"cards": [{"title": "\u0000", "content": "\u0000"}, {"title": "\u0000"}]}')
    ),
    jsonb_build_array(
        jsonb_build_object('index', 0, 'field', 'content', 'message', current_setting('tap.nul_message')),
        jsonb_build_object('index', 0, 'field', 'title', 'message', current_setting('tap.nul_message')),
        jsonb_build_object('index', 1, 'field', 'title', 'message', current_setting('tap.nul_message')),
        jsonb_build_object('index', 1, 'field', 'content', 'message', 'is required')
    ),
    'NUL escapes in several items and fields are all reported, with the other errors'
);
SELECT is(pg_temp.card_count(), current_setting('tap.cards_before')::bigint, 'no refused body wrote a card');

SELECT test.remember(
    'escaped',
    (SELECT b.response::text FROM cards.batch_create_request(
        test.id('tenant_a'), convert_to('{"cards": [{"title": "a\\u0000", "content": "\\\\u0000"}]}', 'UTF8'), NULL
    ) AS b)
);
SELECT is(
    cards.retrieve(
        test.id('tenant_a'), ARRAY[(current_setting('tap.escaped')::jsonb -> 'cards' -> 0 ->> 'id')::uuid]
    )::jsonb -> 'cards' -> 0 -> 'title',
    to_jsonb('a\u0000'::text),
    'an escaped backslash before "u0000" is no NUL: the text \u0000 is stored as sent'
);
SELECT is(
    cards.retrieve(
        test.id('tenant_a'), ARRAY[(current_setting('tap.escaped')::jsonb -> 'cards' -> 0 ->> 'id')::uuid]
    )::jsonb -> 'cards' -> 0 -> 'content',
    to_jsonb('\\u0000'::text),
    'nor are two escaped backslashes before it'
);
SELECT results_eq(
    $$
        SELECT b.created, b.duplicates, b.replayed
        FROM cards.batch_create_request(
            current_setting('tap.tenant_a')::uuid,
            convert_to(E'\n{ "cards" : [ { "title" : "café ☕", "content" : { "emoji" : "🙂" } } ] }\n', 'UTF8'),
            NULL
        ) AS b
    $$,
    $$ VALUES (1, 0, FALSE) $$,
    'a well-formed UTF-8 body with white space around it and non-ASCII text is accepted'
);

-- ---------------------------------------------------------------------------------
-- Persona: tenant A — retrieve_request
-- ---------------------------------------------------------------------------------

SELECT throws_ok(
    pg_temp.retrieve_sql('{"ids": ['),
    'CKJSN',
    'The request body is not valid JSON.',
    'a malformed retrieve body is malformed JSON'
);
SELECT throws_ok(
    format('SELECT cards.retrieve_request(%L, NULL)', test.id('tenant_a')),
    'CKJSN',
    'The request body is not valid JSON.',
    'a missing retrieve body is malformed JSON'
);
SELECT throws_ok(
    format($$SELECT cards.retrieve_request(%L, '\xfe')$$, test.id('tenant_a')),
    'CKJSN',
    'The request body is not valid UTF-8.',
    'a retrieve body that is not UTF-8 is refused as such'
);
SELECT is(
    test.error_detail(pg_temp.retrieve_sql(format(
        '{"ids": ["not-a-uuid", 7, null, "%s", "%s", "{%s}", "%s "]}',
        test.id('c1'), replace(test.id('c1')::text, '-', ''), test.id('c1'), test.id('c1')
    ))),
    '[{"index": 0, "field": "ids", "message": "must be a UUID string"},
      {"index": 1, "field": "ids", "message": "must be a UUID string"},
      {"index": 2, "field": "ids", "message": "must be a UUID string"},
      {"index": 4, "field": "ids", "message": "must be a UUID string"},
      {"index": 5, "field": "ids", "message": "must be a UUID string"},
      {"index": 6, "field": "ids", "message": "must be a UUID string"}]',
    'every id that is not a canonical UUID string is refused by its index (no dashes, braces or spaces either)'
);
SELECT is(
    test.error_detail(pg_temp.retrieve_sql(format(
        '{"ids": ["%s", "0000000g-0000-4000-8000-000000000000", "0000-00000000-0000-0000-000000000000"]}',
        test.id('c1')
    ))),
    '[{"index": 1, "field": "ids", "message": "must be a UUID string"},
      {"index": 2, "field": "ids", "message": "must be a UUID string"}]',
    'an id of the canonical length with a non-hex digit, or with its dashes elsewhere, is refused by its index'
);
SELECT is(
    test.error_detail(pg_temp.usage_sql(test.id('c1')::text, '{"workflow_id": "wf", "run_id": "r", "metadata": null}')),
    '[{"field": "metadata", "message": "must be a JSON object"}]',
    'a usage report with metadata null is checked rule by rule, not taken for one without metadata'
);
SELECT is(
    test.error_detail(pg_temp.retrieve_sql('{"ids": ["\u0000"]}')),
    '[{"index": 0, "field": "ids", "message": "must be a UUID string"}]',
    'a NUL escape as an id is just a malformed id'
);
SELECT is(
    test.error_detail(pg_temp.retrieve_sql('{}')),
    '[{"field": "ids", "message": "must be an array of ids"}]',
    'a body without ids is refused'
);
SELECT is(
    test.error_detail(pg_temp.retrieve_sql('{"ids": "all"}')),
    '[{"field": "ids", "message": "must be an array of ids"}]',
    'ids that are not an array are refused'
);
SELECT is(
    test.error_detail(pg_temp.retrieve_sql(format('{"ids": ["%s"], "fields": ["title"]}', test.id('c1')))),
    '[{"field": "fields", "message": "is not a known field"}]',
    'an unknown envelope field is refused'
);
SELECT is(
    test.error_detail(pg_temp.retrieve_sql('["x"]')),
    '[{"field": "(body)", "message": "must be a JSON object"}, {"field": "ids", "message": "must be an array of ids"}]',
    'a body that is not an object is refused'
);
SELECT is(
    test.error_detail(pg_temp.retrieve_sql('{"ids": []}')),
    '[{"field": "ids", "message": "must hold 1 to 1000 ids"}]',
    'an empty ids list is refused'
);
SELECT is(
    test.error_detail(pg_temp.retrieve_sql(
        (SELECT jsonb_build_object('ids', jsonb_agg(gen_random_uuid()))::text FROM generate_series(1, 1001))
    )),
    '[{"field": "ids", "message": "must hold 1 to 1000 ids"}]',
    '1001 ids are refused'
);
SELECT is(
    convert_from(cards.retrieve_request(
        test.id('tenant_a'), convert_to(format('{"ids": ["%s"]}', test.id('c1')), 'UTF8')
    ), 'UTF8')::jsonb,
    cards.retrieve(test.id('tenant_a'), ARRAY[test.id('c1')])::jsonb,
    'a valid body answers what retrieve answers'
);
SELECT is(
    convert_from(cards.retrieve_request(
        test.id('tenant_a'),
        convert_to(format('{"ids": ["%s", "%s"]}', upper(test.id('c1')::text), test.id('c1')), 'UTF8')
    ), 'UTF8')::jsonb,
    cards.retrieve(test.id('tenant_a'), ARRAY[test.id('c1')])::jsonb,
    'an upper-case id is accepted, is the same id as its lower-case form, and is answered in lower case'
);

-- ---------------------------------------------------------------------------------
-- Persona: tenant A — track_usage_request
-- ---------------------------------------------------------------------------------

SELECT test.remember('usage_before', pg_temp.usage_count()::text);

SELECT throws_ok(
    pg_temp.usage_sql('not-a-uuid', '{"workflow_id": "wf", "run_id": "r"}'),
    'CKNFD',
    'No such card.',
    'a malformed path id names no card'
);
SELECT throws_ok(
    pg_temp.usage_sql(replace(test.id('c1')::text, '-', ''), '{"workflow_id": "wf", "run_id": "r"}'),
    'CKNFD',
    'No such card.',
    'a path id without dashes is not the canonical form, so names no card'
);
SELECT throws_ok(
    pg_temp.usage_sql(test.id('c1') || '/', '{"workflow_id": "wf", "run_id": "r"}'),
    'CKNFD',
    'No such card.',
    'a path id with trailing characters names no card'
);
SELECT throws_ok(
    pg_temp.usage_sql('', '{"workflow_id": "wf", "run_id": "r"}'),
    'CKNFD',
    'No such card.',
    'an empty path id names no card'
);
SELECT throws_ok(
    format($$SELECT * FROM cards.track_usage_request(%L, NULL, convert_to('{}', 'UTF8'))$$, test.id('tenant_a')),
    'CKNFD',
    'No such card.',
    'a NULL path id names no card'
);
SELECT throws_ok(
    pg_temp.usage_sql(gen_random_uuid()::text, '{"workflow_id": "wf", "run_id": "r"}'),
    'CKNFD',
    'No such card.',
    'a well-formed unknown path id is not found'
);
SELECT throws_ok(
    pg_temp.usage_sql(test.id('c1')::text, '{"workflow_id": "wf", "run_id": }'),
    'CKJSN',
    'The request body is not valid JSON.',
    'a malformed usage body is malformed JSON'
);
SELECT throws_ok(
    format('SELECT * FROM cards.track_usage_request(%L, %L, NULL)', test.id('tenant_a'), test.id('c1')),
    'CKJSN',
    'The request body is not valid JSON.',
    'a missing (NULL) usage body is malformed JSON, not a server error'
);
SELECT is(
    test.error_detail(pg_temp.usage_sql(test.id('c1')::text, '"wf"')),
    '[{"field": "(body)", "message": "must be a JSON object"}]',
    'a usage body that is not an object is refused'
);
SELECT is(
    test.error_detail(
        pg_temp.usage_sql(test.id('c1')::text, '{"workflow_id": "wf", "run_id": "r", "card_id": "x"}')
    ),
    '[{"field": "card_id", "message": "is not a known field"}]',
    'an unknown usage field is refused'
);
SELECT is(
    test.error_detail(pg_temp.usage_sql(test.id('c1')::text, '{"workflow_id": 7}')),
    '[{"field": "workflow_id", "message": "must be a string of 1 to 255 characters"},
      {"field": "run_id", "message": "must be a string of 1 to 255 characters"}]',
    'a non-string workflow_id and a missing run_id are both refused'
);
SELECT is(
    test.error_detail(
        pg_temp.usage_sql(test.id('c1')::text, '{"workflow_id": "wf", "run_id": "r", "metadata": null}')
    ),
    '[{"field": "metadata", "message": "must be a JSON object"}]',
    'an explicit null metadata is refused (omit it for {})'
);
SELECT is(
    test.error_detail(pg_temp.usage_sql(test.id('c1')::text, '{"workflow_id": "wf", "run_id": "r\u0000"}')),
    jsonb_build_array(jsonb_build_object('field', 'run_id', 'message', current_setting('tap.nul_message'))),
    'a NUL escape in run_id is a validation error of run_id'
);
SELECT is(
    test.error_detail(
        pg_temp.usage_sql(
            test.id('c1')::text, '{"workflow_id": "w\u0000", "run_id": "r", "metadata": {"\u0000": 1}}'
        )
    ),
    jsonb_build_array(
        jsonb_build_object('field', 'metadata', 'message', current_setting('tap.nul_message')),
        jsonb_build_object('field', 'workflow_id', 'message', current_setting('tap.nul_message'))
    ),
    'NUL escapes in workflow_id and in a metadata key are each reported'
);
SELECT is(
    pg_temp.usage_count(), current_setting('tap.usage_before')::bigint, 'no refused usage request recorded anything'
);

SELECT results_eq(
    format(
        $$SELECT r.response::jsonb - 'recorded_at', r.deduplicated FROM cards.track_usage_request(%L, %L, %L) AS r$$,
        test.id('tenant_a'),
        upper(test.id('c1')::text),
        convert_to('{"workflow_id": "wf", "run_id": "r"}', 'UTF8')
    ),
    format(
        $$VALUES (%L::jsonb, FALSE)$$,
        jsonb_build_object('card_id', test.id('c1'), 'usage_count', 1, 'deduplicated', FALSE)
    ),
    'an upper-case path id is accepted and answered in lower case; the report counts'
);
SELECT results_eq(
    format(
        $$SELECT r.response::jsonb -> 'usage_count', r.deduplicated FROM cards.track_usage_request(%L, %L, %L) AS r$$,
        test.id('tenant_a'),
        test.id('c1'),
        convert_to('{"run_id": "r", "workflow_id": "wf", "metadata": {}}', 'UTF8')
    ),
    $$VALUES ('1'::jsonb, TRUE)$$,
    'the repeat is answered as deduplicated, also in the second column the gateway counts'
);

RESET ROLE;

-- ---------------------------------------------------------------------------------
-- Persona: admin — the request functions are granted to trusted jobs too
-- ---------------------------------------------------------------------------------

SET LOCAL ROLE cards_admin;

SELECT throws_ok(
    pg_temp.batch_sql('{"cards": '),
    'CKJSN',
    'The request body is not valid JSON.',
    'a trusted job calling batch_create_request meets the same parsing'
);

RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
