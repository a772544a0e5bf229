-- card_usage_history (API.md, "Card lifecycle"; CONVENTIONS.md, "Representation
-- choices"): the runs that used a live card of the tenant, newest first (ties by
-- workflow_id, then run_id, descending), each with its metadata and time, one page at a
-- time with an opaque cursor; limit defaults to 50 and accepts 1 to 200. A deleted,
-- unknown, foreign or malformed card is CKNFD; a bad limit or cursor is CKVAL.
BEGIN;
SELECT plan(23);

-- Test-only helpers, rolled back with the transaction.
-- A tenant's usage history of a card, and the statement for it.
CREATE FUNCTION pg_temp.history(
    p_card text, p_limit text DEFAULT NULL, p_cursor text DEFAULT NULL, p_tenant text DEFAULT 'tenant_a'
) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT cards.card_usage_history(
        current_setting('tap.' || p_tenant)::uuid, test.card_ref(p_card), p_limit, p_cursor
    )::jsonb
$$;
CREATE FUNCTION pg_temp.history_sql(
    p_card text, p_limit text DEFAULT NULL, p_cursor text DEFAULT NULL, p_tenant text DEFAULT 'tenant_a'
) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT format(
        'SELECT cards.card_usage_history(%L, %L, %L, %L)',
        current_setting('tap.' || p_tenant), test.card_ref(p_card), p_limit, p_cursor
    )
$$;
-- The runs of a history page, as "workflow_id/run_id".
CREATE FUNCTION pg_temp.runs(p_page jsonb) RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(array_agg((u.usage ->> 'workflow_id') || '/' || (u.usage ->> 'run_id') ORDER BY u.ord), '{}')
    FROM jsonb_array_elements(p_page -> 'usage') WITH ORDINALITY AS u (usage, ord)
$$;
-- Every page of a card's history, following next_cursor to its end: a JSON array of
-- pages, each an array of runs.
CREATE FUNCTION pg_temp.walk(p_card text, p_limit text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_pages jsonb := '[]';
    v_page jsonb;
    v_cursor text;
BEGIN
    FOR i IN 1..100 LOOP
        v_page := pg_temp.history(p_card, p_limit, v_cursor);
        v_pages := v_pages || jsonb_build_array(to_jsonb(pg_temp.runs(v_page)));
        v_cursor := v_page ->> 'next_cursor';
        EXIT WHEN v_cursor IS NULL;
    END LOOP;
    RETURN v_pages;
END
$$;

SELECT test.remember('tenant_a', cards.create_tenant('Tenant A')::text);
SELECT test.remember('tenant_b', cards.create_tenant('Tenant B')::text);
SELECT test.remember('unknown', 'a0000000-0000-4000-8000-00000000000a');
SELECT
    test.remember('h1', b.response -> 'cards' -> 0 ->> 'id') AS h1,
    test.remember('h2', b.response -> 'cards' -> 1 ->> 'id') AS h2,
    test.remember('h3', b.response -> 'cards' -> 2 ->> 'id') AS h3,
    test.remember('h4', b.response -> 'cards' -> 3 ->> 'id') AS h4
FROM cards.batch_create(test.id('tenant_a'), $$[
    {"title": "Used in May", "content": 1}, {"title": "Used by 60 runs", "content": 2},
    {"title": "Never used", "content": 3}, {"title": "Used, then deleted", "content": 4}
]$$) AS b;
SELECT test.remember('b1', b.response -> 'cards' -> 0 ->> 'id') AS b1
FROM cards.batch_create(test.id('tenant_b'), '[{"title": "Used in May", "content": 1}]') AS b;

-- The usage events, each reported through track_usage and then dated. h1's three runs
-- of 2023-05-03 are reported in an order that is neither their answered order (time,
-- then workflow_id, then run_id, all descending) nor its reverse.
SELECT test.remember('events', $$[
    {"tenant": "tenant_a", "card": "h1", "wf": "wf-a", "run": "r1", "at": "2023-05-01T10:00:00Z", "metadata": {"step": 1}},
    {"tenant": "tenant_a", "card": "h1", "wf": "wf-a", "run": "r2", "at": "2023-05-02T10:00:00Z"},
    {"tenant": "tenant_a", "card": "h1", "wf": "wf-b", "run": "r3", "at": "2023-05-03T10:00:00Z"},
    {"tenant": "tenant_a", "card": "h1", "wf": "wf-a", "run": "r3", "at": "2023-05-03T10:00:00Z"},
    {"tenant": "tenant_a", "card": "h1", "wf": "wf-b", "run": "r4", "at": "2023-05-03T10:00:00Z"},
    {"tenant": "tenant_a", "card": "h1", "wf": "wf-a", "run": "r5", "at": "2023-05-04T10:00:00.123456Z", "metadata": {"step": 5}},
    {"tenant": "tenant_a", "card": "h4", "wf": "wf-a", "run": "r1", "at": "2023-05-01T10:00:00Z"},
    {"tenant": "tenant_b", "card": "b1", "wf": "wf-a", "run": "r1", "at": "2023-05-05T10:00:00Z"},
    {"tenant": "tenant_b", "card": "b1", "wf": "wf-b", "run": "x1", "at": "2024-03-01T02:00:00Z"}
]$$);
SELECT count(cards.track_usage(test.id(e.tenant), test.id(e.card), e.wf, e.run, coalesce(e.metadata, '{}')))
FROM jsonb_to_recordset(test.doc('events')) AS e (tenant text, card text, wf text, run text, metadata jsonb);
UPDATE cards.card_usage AS u SET recorded_at = e.at
FROM jsonb_to_recordset(test.doc('events')) AS e (card text, wf text, run text, at timestamptz)
WHERE u.card_id = test.id(e.card) AND u.workflow_id = e.wf AND u.run_id = e.run;
-- h2: 60 runs of one workflow, all at the same time (now(): the transaction's start).
SELECT count(cards.track_usage(test.id('tenant_a'), test.id('h2'), 'bulk', 'run-' || lpad(n::text, 2, '0')))
FROM generate_series(1, 60) AS n;
-- Soft delete directly, as the superuser, so that this file depends on no other endpoint.
UPDATE cards.cards SET deleted_at = now()
WHERE card_id = test.id('h4');

-- ---------------------------------------------------------------------------------
-- Persona: tenant A, through the gateway role — card_usage_history
-- ---------------------------------------------------------------------------------

SET LOCAL ROLE cards_gateway;

SELECT is(
    pg_temp.history('h1'),
    '{"usage": [
        {"workflow_id": "wf-a", "run_id": "r5", "metadata": {"step": 5}, "recorded_at": "2023-05-04T10:00:00.123456Z"},
        {"workflow_id": "wf-b", "run_id": "r4", "metadata": {}, "recorded_at": "2023-05-03T10:00:00.000000Z"},
        {"workflow_id": "wf-b", "run_id": "r3", "metadata": {}, "recorded_at": "2023-05-03T10:00:00.000000Z"},
        {"workflow_id": "wf-a", "run_id": "r3", "metadata": {}, "recorded_at": "2023-05-03T10:00:00.000000Z"},
        {"workflow_id": "wf-a", "run_id": "r2", "metadata": {}, "recorded_at": "2023-05-02T10:00:00.000000Z"},
        {"workflow_id": "wf-a", "run_id": "r1", "metadata": {"step": 1}, "recorded_at": "2023-05-01T10:00:00.000000Z"}
      ], "next_cursor": null}',
    'the runs that used the card come newest first (ties by workflow_id, then run_id, descending), each with its '
    || 'metadata and time'
);
SELECT is(
    pg_temp.walk('h1', '2'),
    '[["wf-a/r5", "wf-b/r4"], ["wf-b/r3", "wf-a/r3"], ["wf-a/r2", "wf-a/r1"]]',
    'following next_cursor walks every run exactly once, in order, across runs recorded at the same time'
);
SELECT is(
    pg_temp.walk('h1', '4'),
    '[["wf-a/r5", "wf-b/r4", "wf-b/r3", "wf-a/r3"], ["wf-a/r2", "wf-a/r1"]]',
    'whatever the page size'
);
SELECT is(
    pg_temp.walk('h1', '6'),
    '[["wf-a/r5", "wf-b/r4", "wf-b/r3", "wf-a/r3", "wf-a/r2", "wf-a/r1"]]',
    'a page that ends with the last run has no next cursor'
);
SELECT is(
    pg_temp.history('h3'),
    '{"usage": [], "next_cursor": null}',
    'a card never used has an empty history'
);
SELECT is(
    pg_temp.history(upper(test.card_ref('h1'))) -> 'usage' -> 0 ->> 'run_id',
    'r5',
    'an id in upper case finds the card'
);
SELECT is(
    jsonb_array_length(pg_temp.history('h2') -> 'usage'),
    50,
    'without limit=, a page holds 50 runs'
);
SELECT is(
    (SELECT array_agg(jsonb_array_length(p.page)) FROM jsonb_array_elements(pg_temp.walk('h2', NULL)) AS p (page)),
    ARRAY[50, 10],
    'and 60 runs take two pages'
);
SELECT is(
    (
        SELECT array_agg(r.run ORDER BY p.n, r.m)
        FROM jsonb_array_elements(pg_temp.walk('h2', NULL)) WITH ORDINALITY AS p (page, n)
        CROSS JOIN LATERAL jsonb_array_elements_text(p.page) WITH ORDINALITY AS r (run, m)
    ),
    (SELECT array_agg('bulk/run-' || lpad(n::text, 2, '0') ORDER BY n DESC) FROM generate_series(1, 60) AS n),
    'which hold each run exactly once'
);
SELECT is(
    jsonb_array_length(pg_temp.history('h2', '200') -> 'usage'),
    60,
    'limit=200 is accepted'
);
SELECT is(
    pg_temp.runs(pg_temp.history('h2', '1')),
    ARRAY['bulk/run-60'],
    'limit=1 is accepted'
);

-- ---------------------------------------------------------------------------------
-- Persona: tenant A — card_usage_history refusals
-- ---------------------------------------------------------------------------------

SELECT throws_ok(
    pg_temp.history_sql('h1', '0'),
    'CKVAL',
    'The request is invalid: 1 error(s), listed in "errors".',
    'limit=0 is a validation error'
);
SELECT is(
    (
        SELECT jsonb_agg(test.error_detail(pg_temp.history_sql('h1', l.value)))
        FROM unnest(ARRAY['0', '201', 'abc', '']) AS l (value)
    ),
    (
        SELECT jsonb_agg('[{"field": "limit", "message": "must be an integer from 1 to 200"}]'::jsonb)
        FROM generate_series(1, 4)
    ),
    'naming limit: limit=0, 201, abc and empty are refused'
);
SELECT test.remember('h1_page_1', pg_temp.history('h1', '2')::text);
SELECT is(
    (
        SELECT jsonb_agg(test.error_detail(pg_temp.history_sql('h1', '2', c.value)))
        FROM unnest(ARRAY[
            'not a cursor!', test.forge_cursor('hello'), test.forge_cursor('{"after": "r4"}'),
            test.forge_cursor('[]'), test.forge_cursor('["2023-05-03T10:00:00Z", "wf-b"]'),
            test.forge_cursor('["2023-05-03T10:00:00Z", "wf-b", 3]'),
            left(test.doc('h1_page_1') ->> 'next_cursor', -6), repeat('A', 1001)
        ]) AS c (value)
    ),
    (
        SELECT jsonb_agg('[{"field": "cursor", "message": "is not a cursor this API issued"}]'::jsonb)
        FROM generate_series(1, 8)
    ),
    'a forged cursor is refused: not base64url, not JSON, an object, arrays of another shape, truncated, too long'
);
SELECT is(
    test.error_detail(pg_temp.history_sql('h1', '2', test.forge_cursor('["last week", "wf-b", "r4"]'))),
    '[{"field": "cursor", "message": "must be an RFC 3339 timestamp with a time zone"}]',
    'a cursor whose time is not a time is refused'
);
SELECT throws_ok(pg_temp.history_sql('h4'), 'CKNFD', 'No such card.', 'the history of a deleted card is not found');
SELECT throws_ok(
    pg_temp.history_sql('unknown'), 'CKNFD', 'No such card.', 'the history of an unknown card is not found'
);
SELECT throws_ok(
    pg_temp.history_sql('not-a-uuid'), 'CKNFD', 'No such card.', 'the history of a malformed id is not found'
);
SELECT throws_ok(
    pg_temp.history_sql('b1'), 'CKNFD', 'No such card.', 'the history of another tenant''s card is not found'
);

RESET ROLE;

-- ---------------------------------------------------------------------------------
-- Persona: tenant B, through the gateway role
-- ---------------------------------------------------------------------------------

SET LOCAL ROLE cards_gateway;

SELECT is(
    pg_temp.runs(pg_temp.history('b1', p_tenant => 'tenant_b')),
    ARRAY['wf-b/x1', 'wf-a/r1'],
    'tenant B''s history holds its own runs only, though tenant A''s card used the same ids'
);
SELECT throws_ok(
    pg_temp.history_sql('h1', p_tenant => 'tenant_b'),
    'CKNFD',
    'No such card.',
    'tenant B cannot read the history of tenant A''s card'
);

RESET ROLE;

-- ---------------------------------------------------------------------------------
-- Persona: admin (a trusted job calling card_usage_history directly)
-- ---------------------------------------------------------------------------------

SET LOCAL ROLE cards_admin;

SELECT is(
    pg_temp.walk('h1', '3'),
    '[["wf-a/r5", "wf-b/r4", "wf-b/r3"], ["wf-a/r3", "wf-a/r2", "wf-a/r1"]]',
    'a trusted job gets the same answers'
);

RESET ROLE;

-- ---------------------------------------------------------------------------------
-- Persona: a suspended tenant
-- ---------------------------------------------------------------------------------

SELECT cards.set_tenant_active(test.id('tenant_a'), FALSE);
SET LOCAL ROLE cards_gateway;

SELECT throws_ok(
    pg_temp.history_sql('h1', 'abc'),
    'CKFBD',
    'The tenant is unknown or suspended.',
    'a suspended tenant cannot read a usage history, whatever it asks'
);

RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
