-- Hostile input (docs/SECURITY.md, "Hostile input"), as a trusted job sends it to the SQL
-- functions directly: the bounds hold in every entry point, at and just past each limit;
-- valid input at the limits still passes (the binary-size pre-check never refuses a card
-- the text size allows); an error list holds the first 100 and the total; the privilege
-- that keeps the list out of the server log is granted.
BEGIN;
SET LOCAL client_min_messages = warning;
SELECT plan(24);

-- Test-only helpers, rolled back with the transaction.
-- The errors tenant A's batch_create reports for one card ("no error" if it succeeds).
CREATE FUNCTION pg_temp.card_errors(p_card text) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT test.error_detail(
        format('SELECT * FROM cards.batch_create(%L, %L::jsonb)', current_setting('tap.tenant_a'), '[' || p_card || ']')
    )
$$;
-- The same as raw JSON text in a request body.
CREATE FUNCTION pg_temp.body_errors(p_body text) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT test.error_detail(format(
        'SELECT * FROM cards.batch_create_request(%L, convert_to(%L, ''UTF8''), NULL)', current_setting('tap.tenant_a'), p_body
    ))
$$;
-- One error of the first card.
CREATE FUNCTION pg_temp.one(p_field text, p_message text) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_array(jsonb_build_object('index', 0, 'field', p_field, 'message', p_message))
$$;
-- Nested arrays around a value.
CREATE FUNCTION pg_temp.nested(p_depth integer, p_inner text DEFAULT '1') RETURNS text
LANGUAGE sql IMMUTABLE AS $$ SELECT repeat('[', p_depth) || p_inner || repeat(']', p_depth) $$;

SELECT test.remember('tenant_a', cards.create_tenant('Tenant A')::text);
SELECT test.remember(
    'numbers', 'must hold numbers that are 0 or of magnitude 1e-20 to 1e20, with at most 20 digits after the point'
);

SET LOCAL ROLE cards_gateway;

-- Numbers: at and past each bound.
SELECT is(
    pg_temp.card_errors('{"title": "n1", "content": [1e19, -99999999999999999999, 1e-20, 0e-20, 0.5]}'),
    '"no error"', 'numbers within the bounds are stored'
);
SELECT is(
    pg_temp.card_errors('{"title": "n2", "content": [1e20]}'), pg_temp.one('content', test.val('numbers')),
    '1e20 is refused, naming content'
);
SELECT is(
    pg_temp.card_errors('{"title": "n3", "content": {"a": [1e-21]}}'), pg_temp.one('content', test.val('numbers')),
    '1e-21 is refused'
);
SELECT is(
    pg_temp.card_errors('{"title": "n4", "content": [0e-21]}'), pg_temp.one('content', test.val('numbers')),
    'a zero with 21 digits after the point is refused'
);
SELECT is(
    pg_temp.card_errors('{"title": "n5", "content": [1.000000000000000000001]}'),
    pg_temp.one('content', test.val('numbers')),
    'a number with 21 digits after the point is refused'
);
SELECT is(
    pg_temp.card_errors('{"title": "n6", "content": 1, "metadata": {"a": 1e131071}}'),
    pg_temp.one('metadata', test.val('numbers')),
    'the largest numeric is refused in metadata'
);

-- Depth: 64 levels pass, 65 do not, in content and metadata.
SELECT is(
    pg_temp.card_errors(
        format('{"title": "d1", "content": %s, "metadata": {"a": %s}}', pg_temp.nested(64), pg_temp.nested(63))
    ),
    '"no error"', '64 levels of nesting are stored'
);
SELECT is(
    pg_temp.card_errors(format('{"title": "d2", "content": %s}', pg_temp.nested(65))),
    pg_temp.one('content', 'must not nest deeper than 64 levels'), '65 levels of content are refused'
);
SELECT is(
    pg_temp.card_errors(format('{"title": "d3", "content": 1, "metadata": {"a": %s}}', pg_temp.nested(64, '{}'))),
    pg_temp.one('metadata', 'must not nest deeper than 64 levels'), '65 levels of metadata are refused'
);
SELECT is(
    pg_temp.card_errors(format('{"title": "d4", "content": %s}', pg_temp.nested(10000))),
    pg_temp.one('content', 'must not nest deeper than 64 levels'), '10,000 levels are refused, not a stack overflow'
);

-- The binary pre-check (4 x the text size + 64 bytes) never refuses content the text size
-- allows: the densest shapes, at exactly 256 KiB of canonical text.
SELECT is(
    pg_temp.card_errors(format('{"title": "b1", "content": [%s10]}', repeat('0, ', 87380))),
    '"no error"', '256 KiB of [0, 0, ...] (12 bytes of binary per 3 of text) is stored'
);
SELECT is(
    pg_temp.card_errors(format('{"title": "b2", "content": [%s[10000]]}', repeat('[0], ', 52427))),
    '"no error"', '256 KiB of [[0], [0], ...] (20 bytes of binary per 5 of text) is stored'
);
SELECT is(
    pg_temp.card_errors(format('{"title": "b3", "content": [%s100]}', repeat('0, ', 87380))),
    pg_temp.one('content', 'must be at most 256 KiB serialised'), 'one byte more is refused'
);

-- Error lists: the first 100 and the total, in order.
SELECT is(jsonb_array_length(pg_temp.card_errors(
    '{"title": "e1", "content": 1, '
    || (SELECT string_agg(format('"k%s": 1', n), ', ') FROM generate_series(1000, 1249) AS n)
    || '}'
)), 100, 'a card with 250 unknown fields lists 100 errors');
SELECT throws_like(
    format(
        'SELECT * FROM cards.batch_create(%L, %L::jsonb)', test.val('tenant_a'),
        '[{"title": "e2", "content": 1, '
        || (SELECT string_agg(format('"k%s": 1', n), ', ') FROM generate_series(1000, 1249) AS n)
        || '}]'
    ),
    'The request is invalid: 250 errors, the first 100 listed in "errors".',
    'the message counts every error'
);
SELECT is((pg_temp.card_errors(
    '{"title": "e3", "content": 1, "' || repeat('x', 1000) || '": 1}'
) -> 0 ->> 'field'), repeat('x', 64), 'an unknown field is named by its first 64 characters');

-- Bodies: value counts before parsing, overflow and depth while parsing.
SELECT is(
    pg_temp.body_errors('{"cards": [{"title": "v1", "content": [' || repeat('0,', 1000000) || '0]}]}'),
    '[{"field": "(body)", "message": "must hold at most 1,000,000 values and 100,000 arrays and objects"}]',
    'a body of more than 1,000,000 values is refused before it is parsed'
);
SELECT is(
    pg_temp.body_errors('{"cards": [{"title": "v2", "content": ' || to_jsonb(repeat('[{,', 50000))::text || '}]}'),
    '"no error"', 'brackets and commas inside strings are not values'
);
SELECT is(
    pg_temp.body_errors('{"cards": [{"title": "v3", "content": 0.' || repeat('0', 16400) || '1}]}'),
    '[{"field": "(body)", "message": "holds a number too long for the database (see the number bounds)"}]',
    'a decimal overflowing numeric is CKVAL, not 22003'
);
SELECT is(
    pg_temp.body_errors('{"cards": [{"title": "v4", "content": ' || pg_temp.nested(50000) || '}]}'),
    '[{"field": "(body)", "message": "must not nest deeper than 64 levels"}]',
    'a body too deep for the parser is CKVAL, not 54001'
);

-- The other entry points.
SELECT test.remember('card', (
    SELECT (b.response -> 'cards' -> 0 ->> 'id')
    FROM cards.batch_create(test.id('tenant_a'), '[{"title": "u", "content": 1}]') AS b
));
SELECT is(test.error_detail(format(
    'SELECT cards.track_usage(%L, %L, ''w'', ''r'', %L)', test.val('tenant_a'), test.val('card'),
    '{"a": ' || pg_temp.nested(64) || '}'
)),
'[{"field": "metadata", "message": "must not nest deeper than 64 levels"}]', 'track_usage bounds its metadata');
SELECT is(
    test.error_detail(
        format('SELECT cards.list_cards(%L, p_contains => %L)', test.val('tenant_a'), '{"a": [[2], [2], [2]]}')
    ),
    jsonb_build_array(jsonb_build_object(
        'field', 'contains', 'message', 'must hold at most 8 array elements in all, at most 2 of them arrays or objects'
    )),
    'list_cards bounds the work of contains'
);
SELECT is(
    test.error_detail(format(
        'SELECT * FROM cards.update_card(%L, %L, ''*'', convert_to(%L, ''UTF8''))', test.val('tenant_a'),
        test.val('card'), '{"content": [1e1000]}'
    )),
    jsonb_build_array(jsonb_build_object('field', 'content', 'message', test.val('numbers'))),
    'update_card bounds the merged card'
);

RESET ROLE;
SELECT ok(
    has_parameter_privilege('cards_owner', 'log_error_verbosity', 'SET'),
    'cards_owner may set log_error_verbosity: the error list stays out of the server log'
);

SELECT * FROM finish();
ROLLBACK;
