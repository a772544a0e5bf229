-- list_cards' refusals (API.md, "Card lifecycle": bad filter values get a 422): every
-- bad filter value is a CKVAL naming its field, all reported together; a cursor is refused
-- when this API did not issue it (forged, altered, truncated) or issued it for other
-- filters. The fixtures are those of 14_listing_filters_and_search.sql.
BEGIN;
SELECT plan(35);

-- Test-only helpers, rolled back with the transaction.
-- Tenant A's listing as a statement, for test.error_detail.
CREATE FUNCTION pg_temp.list_sql(
    p_kind text DEFAULT NULL, p_tags text[] DEFAULT NULL, p_contains text DEFAULT NULL, p_q text DEFAULT NULL,
    p_limit text DEFAULT NULL, p_cursor text DEFAULT NULL
) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT format(
        'SELECT cards.list_cards(%L, %L, %L::text[], %L, %L, %L, %L)',
        current_setting('tap.tenant_a'), p_kind, p_tags, p_contains, p_q, p_limit, p_cursor
    )
$$;
-- A cursor's content.
CREATE FUNCTION pg_temp.cursor_content(p_cursor text) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT convert_from(decode(
        rpad(translate(p_cursor, '-_', '+/'), ((char_length(p_cursor) + 3) / 4) * 4, '='), 'base64'
    ), 'UTF8')::jsonb
$$;
-- A cursor this API issued, with one element of its content replaced.
CREATE FUNCTION pg_temp.altered(p_cursor text, p_element integer, p_value jsonb) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT test.forge_cursor(jsonb_set(pg_temp.cursor_content(p_cursor), ARRAY[p_element::text], p_value)::text)
$$;
-- The error a bad cursor gets.
CREATE FUNCTION pg_temp.cursor_error(p_message text) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$ SELECT jsonb_build_array(jsonb_build_object('field', 'cursor', 'message', p_message)) $$;

SELECT test.make_listing_cards();

-- ---------------------------------------------------------------------------------
-- Persona: tenant A, through the gateway role — cursors refused
-- ---------------------------------------------------------------------------------

SET LOCAL ROLE cards_gateway;

SELECT test.remember('page_1', test.list(p_limit => '2')::text);
SELECT test.remember('tag_page_1', test.list(p_tags => '{staff,support}', p_limit => '1')::text);
SELECT test.remember(
    'contains_page_1', test.list(p_contains => '{"lang": "en", "source": "helpdesk"}', p_limit => '1')::text
);
SELECT test.remember('kind_page_1', test.list(p_kind => 'faq', p_limit => '1')::text);
SELECT test.remember('q_page_1', test.list(p_q => 'ship', p_limit => '1')::text);

SELECT throws_ok(
    pg_temp.list_sql(p_kind => 'faq', p_limit => '2', p_cursor => test.doc('page_1') ->> 'next_cursor'),
    'CKVAL',
    'The request is invalid: 1 error(s), listed in "errors".',
    'a cursor used with other filters is a validation error'
);
SELECT is(
    test.error_detail(
        pg_temp.list_sql(p_kind => 'faq', p_limit => '2', p_cursor => test.doc('page_1') ->> 'next_cursor')
    ),
    pg_temp.cursor_error('is not a cursor this API issued for this query'),
    'naming the cursor: an unfiltered listing''s cursor is refused with kind='
);
SELECT is(
    test.error_detail(
        pg_temp.list_sql(p_kind => 'note', p_limit => '1', p_cursor => test.doc('kind_page_1') ->> 'next_cursor')
    ),
    pg_temp.cursor_error('is not a cursor this API issued for this query'),
    'a kind=faq cursor is refused with kind=note'
);
SELECT is(
    test.error_detail(
        pg_temp.list_sql(p_limit => '1', p_cursor => test.doc('kind_page_1') ->> 'next_cursor')
    ),
    pg_temp.cursor_error('is not a cursor this API issued for this query'),
    'and without the filter'
);
SELECT is(
    test.error_detail(
        pg_temp.list_sql(p_q => 'faq', p_limit => '1', p_cursor => test.doc('kind_page_1') ->> 'next_cursor')
    ),
    pg_temp.cursor_error('is not a cursor this API issued for this query'),
    'and with the same value given to another filter (kind=faq, then q=faq)'
);
SELECT is(
    test.error_detail(pg_temp.list_sql(
        p_tags => '{support}', p_limit => '1', p_cursor => test.doc('tag_page_1') ->> 'next_cursor'
    )),
    pg_temp.cursor_error('is not a cursor this API issued for this query'),
    'a cursor for two tags is refused with one of them'
);
SELECT is(
    test.error_detail(pg_temp.list_sql(
        p_contains => '{"lang": "de", "source": "helpdesk"}', p_limit => '1',
        p_cursor => test.doc('contains_page_1') ->> 'next_cursor'
    )),
    pg_temp.cursor_error('is not a cursor this API issued for this query'),
    'a contains= cursor is refused with another object'
);
SELECT is(
    test.error_detail(
        pg_temp.list_sql(p_q => 'shipped', p_limit => '1', p_cursor => test.doc('q_page_1') ->> 'next_cursor')
    ),
    pg_temp.cursor_error('is not a cursor this API issued for this query'),
    'a q= cursor is refused with another search'
);
SELECT is(
    test.error_detail(pg_temp.list_sql(p_limit => '2', p_cursor => 'not a cursor!')),
    pg_temp.cursor_error('is not a cursor this API issued'),
    'a cursor that is not base64url is refused'
);
SELECT is(
    test.error_detail(pg_temp.list_sql(p_limit => '2', p_cursor => test.forge_cursor('hello'))),
    pg_temp.cursor_error('is not a cursor this API issued'),
    'a cursor that does not hold JSON is refused'
);
SELECT is(
    test.error_detail(pg_temp.list_sql(p_limit => '2', p_cursor => test.forge_cursor('{"after": "l4"}'))),
    pg_temp.cursor_error('is not a cursor this API issued'),
    'a cursor that holds a JSON object is refused'
);
SELECT is(
    test.error_detail(pg_temp.list_sql(p_limit => '2', p_cursor => test.forge_cursor('[]'))),
    pg_temp.cursor_error('is not a cursor this API issued for this query'),
    'a cursor that holds another JSON array is refused'
);
SELECT is(
    test.error_detail(pg_temp.list_sql(
        p_limit => '2', p_cursor => left(test.doc('page_1') ->> 'next_cursor', -6)
    )),
    pg_temp.cursor_error('is not a cursor this API issued'),
    'a truncated cursor is refused'
);
SELECT is(
    test.error_detail(pg_temp.list_sql(
        p_limit => '2',
        p_cursor => pg_temp.altered(test.doc('page_1') ->> 'next_cursor', 1, '"l4"')
    )),
    pg_temp.cursor_error('is not a cursor this API issued for this query'),
    'a cursor whose card id was altered is refused'
);
SELECT is(
    test.error_detail(pg_temp.list_sql(
        p_limit => '2',
        p_cursor => pg_temp.altered(test.doc('page_1') ->> 'next_cursor', 0, '"yesterday"')
    )),
    '[{"field": "cursor", "message": "must be an RFC 3339 timestamp with a time zone"}]',
    'a cursor whose time was altered is refused'
);
SELECT is(
    test.error_detail(
        pg_temp.list_sql(p_limit => '2', p_cursor => test.forge_cursor(jsonb_build_array(repeat('x', 750))::text))
    ),
    pg_temp.cursor_error('is not a cursor this API issued'),
    'a cursor of over 1000 characters is refused'
);

-- ---------------------------------------------------------------------------------
-- Persona: tenant A — bad filter values
-- ---------------------------------------------------------------------------------

SELECT throws_ok(
    pg_temp.list_sql(p_limit => '0'),
    'CKVAL',
    'The request is invalid: 1 error(s), listed in "errors".',
    'limit=0 is a validation error'
);
SELECT is(
    test.error_detail(pg_temp.list_sql(p_limit => '0')),
    '[{"field": "limit", "message": "must be an integer from 1 to 200"}]',
    'naming limit and the rule'
);
SELECT is(
    test.error_detail(pg_temp.list_sql(p_limit => '201')),
    '[{"field": "limit", "message": "must be an integer from 1 to 200"}]',
    'limit=201 is refused'
);
SELECT is(
    (
        SELECT jsonb_agg(test.error_detail(pg_temp.list_sql(p_limit => l.value)) -> 0 ->> 'field')
        FROM unnest(ARRAY['abc', '', '-1', '1.5', ' 5', '1e2', '99999999999']) AS l (value)
    ),
    '["limit", "limit", "limit", "limit", "limit", "limit", "limit"]',
    'a limit that is not a plain integer is refused: abc, empty, -1, 1.5, " 5", 1e2, an overflowing number'
);
SELECT is(
    test.error_detail(pg_temp.list_sql(p_contains => '{"source": ')),
    '[{"field": "contains", "message": "must be a JSON object"}]',
    'malformed JSON in contains= is refused'
);
SELECT is(
    (
        SELECT jsonb_agg(test.error_detail(pg_temp.list_sql(p_contains => c.value)) -> 0 ->> 'field')
        FROM unnest(ARRAY['["helpdesk"]', '"helpdesk"', 'null', '3', '']) AS c (value)
    ),
    '["contains", "contains", "contains", "contains", "contains"]',
    'contains= that is not a JSON object is refused: an array, a string, null, a number, nothing'
);
SELECT is(
    test.error_detail(pg_temp.list_sql(p_contains => repeat('[', 16000))),
    '[{"field": "contains", "message": "must be a JSON object"}]',
    'contains= nested too deeply to parse is refused, not a server error'
);
SELECT is(
    test.error_detail(pg_temp.list_sql(p_contains => '{"s": "\u0000"}')),
    '[{"field": "contains", "message": "must not contain NUL (\\u0000)"}]',
    'contains= holding a NUL escape is refused as holding NUL'
);
SELECT is(
    test.error_detail(pg_temp.list_sql(p_contains => '{"s": "\\u0000"}')),
    '"no error"',
    'contains= holding an escaped backslash before u0000 holds no NUL, and is accepted'
);
SELECT is(
    test.error_detail(pg_temp.list_sql(p_contains => '{"s": "' || repeat('é', 8188) || '"}')),
    '[{"field": "contains", "message": "must be at most 16 KiB"}]',
    'contains= over 16 KiB of text (16,385 bytes) is refused: no card''s metadata is larger'
);
SELECT is(
    test.error_detail(pg_temp.list_sql(p_contains => '{"s": "' || repeat('é', 8187) || '"}')),
    '"no error"',
    'contains= of 16,383 bytes is accepted'
);
SELECT is(
    test.error_detail(pg_temp.list_sql(p_kind => 'FAQ')),
    '[{"field": "kind", "message": "must be 1 to 64 characters of a-z, 0-9, \"_\", \".\" and \"-\""}]',
    'a kind= that no card could have is refused'
);
SELECT is(
    test.error_detail(pg_temp.list_sql(p_tags => ARRAY[''])),
    '[{"field": "tag", "message": "must be at most 32 tags of 1 to 64 characters"}]',
    'an empty tag= is refused'
);
SELECT is(
    test.error_detail(pg_temp.list_sql(p_tags => (SELECT array_agg('t' || n) FROM generate_series(1, 33) AS n))),
    '[{"field": "tag", "message": "must be at most 32 tags of 1 to 64 characters"}]',
    '33 tag= are refused'
);
SELECT is(
    test.error_detail(pg_temp.list_sql(p_q => '')),
    '[{"field": "q", "message": "must be 1 to 500 characters"}]',
    'an empty q= is refused'
);
SELECT is(
    test.error_detail(pg_temp.list_sql(p_q => repeat('q', 501))),
    '[{"field": "q", "message": "must be 1 to 500 characters"}]',
    'a q= of 501 characters is refused'
);
SELECT is(
    test.error_detail(pg_temp.list_sql(
        p_kind => repeat('k', 64), p_tags => ARRAY[repeat('t', 64)], p_q => repeat('q', 500), p_limit => '200'
    )),
    '"no error"',
    'the longest kind, tag and q are accepted'
);
SELECT is(
    test.error_detail(
        pg_temp.list_sql(p_kind => '', p_tags => ARRAY[repeat('t', 65)], p_contains => '[]', p_q => '')
    ),
    '[{"field": "kind", "message": "must be 1 to 64 characters of a-z, 0-9, \"_\", \".\" and \"-\""},
      {"field": "tag", "message": "must be at most 32 tags of 1 to 64 characters"},
      {"field": "contains", "message": "must be a JSON object"},
      {"field": "q", "message": "must be 1 to 500 characters"}]',
    'every bad filter is reported together'
);

RESET ROLE;

-- ---------------------------------------------------------------------------------
-- Persona: a suspended tenant
-- ---------------------------------------------------------------------------------

SELECT cards.set_tenant_active(test.id('tenant_a'), FALSE);
SET LOCAL ROLE cards_gateway;

SELECT throws_ok(
    pg_temp.list_sql(p_limit => 'abc'),
    'CKFBD',
    'The tenant is unknown or suspended.',
    'a suspended tenant cannot list its cards, whatever it asks'
);

RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
