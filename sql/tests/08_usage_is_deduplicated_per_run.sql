-- track_usage (API.md, "POST /api/v1/cards/{id}/usage"): the first report of a (card,
-- workflow_id, run_id) adds one to usage_count and sets last_used_at; a repeat answers
-- deduplicated, with the first report's recorded_at, and changes nothing. Unknown,
-- deleted or foreign card: CKNFD. Concurrent reports need two sessions: see tests/.
BEGIN;
SELECT plan(37);

-- Test-only helpers, rolled back with the transaction.
-- The errors tenant A's report on card u1 is refused with ("no error" if it succeeds).
CREATE FUNCTION pg_temp.usage_errors(p_workflow text, p_run text, p_metadata jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE sql AS $$
    SELECT test.error_detail(format(
        'SELECT cards.track_usage(%L, %L, %L, %L, %L)',
        current_setting('tap.tenant_a'), current_setting('tap.u1'), p_workflow, p_run, p_metadata
    ))
$$;
-- Tenant A reports that a run used a named card; answers the document.
CREATE FUNCTION pg_temp.use(p_card text, p_workflow text, p_run text, p_metadata jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE sql AS $$
    SELECT cards.track_usage(
        current_setting('tap.tenant_a')::uuid, current_setting('tap.' || p_card)::uuid, p_workflow, p_run, p_metadata
    )::jsonb
$$;
-- A named card of tenant A as retrieve answers it.
CREATE FUNCTION pg_temp.card(p_card text) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT cards.retrieve(current_setting('tap.tenant_a')::uuid, ARRAY[current_setting('tap.' || p_card)::uuid])::jsonb
        -> 'cards' -> 0
$$;
-- Usage rows, read as the superuser running the suite, whom row-level security does not
-- restrict (SECURITY DEFINER: whoever calls them).
CREATE FUNCTION pg_temp.usage_rows(p_card text) RETURNS SETOF cards.card_usage
LANGUAGE sql SECURITY DEFINER AS $$
    SELECT * FROM cards.card_usage AS u WHERE u.card_id = current_setting('tap.' || p_card)::uuid
$$;
CREATE FUNCTION pg_temp.counter_rows(p_card text) RETURNS SETOF cards.card_usage_counters
LANGUAGE sql SECURITY DEFINER AS $$
    SELECT * FROM cards.card_usage_counters AS n WHERE n.card_id = current_setting('tap.' || p_card)::uuid
$$;

SELECT test.remember('tenant_a', cards.create_tenant('Tenant A')::text);
SELECT test.remember('tenant_b', cards.create_tenant('Tenant B')::text);
SELECT
    test.remember('u1', b.response -> 'cards' -> 0 ->> 'id') AS u1,
    test.remember('u2', b.response -> 'cards' -> 1 ->> 'id') AS u2,
    test.remember('u3', b.response -> 'cards' -> 2 ->> 'id') AS u3
FROM cards.batch_create(
    test.id('tenant_a'),
    '[{"title": "used", "content": 1}, {"title": "unused", "content": 2}, {"title": "deleted", "content": 3}]'
) AS b;
SELECT test.remember('b1', b.response -> 'cards' -> 0 ->> 'id')
FROM cards.batch_create(test.id('tenant_b'), '[{"title": "used", "content": 1}]') AS b;
-- Soft delete directly, as the superuser, so that this file depends on no other endpoint.
UPDATE cards.cards SET deleted_at = now()
WHERE card_id = test.id('u3');

SELECT test.remember('now', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'));

-- ---------------------------------------------------------------------------------
-- Persona: tenant A, through the gateway role — first report and repeats
-- ---------------------------------------------------------------------------------

SET LOCAL ROLE cards_gateway;

SELECT is(
    jsonb_build_array(pg_temp.card('u1') -> 'usage_count', pg_temp.card('u1') -> 'last_used_at'),
    '[0, null]',
    'a card starts unused: usage_count 0, last_used_at null'
);
SELECT is(
    pg_temp.use('u1', 'wf-1', 'run-1', '{"step": 1}'),
    jsonb_build_object(
        'card_id', test.id('u1'), 'usage_count', 1, 'deduplicated', FALSE, 'recorded_at', current_setting('tap.now')
    ),
    'the first report of a run counts one and answers when it was recorded'
);
SELECT is(
    pg_temp.card('u1') -> 'usage_count',
    '1',
    'retrieve shows the count'
);
SELECT is(
    pg_temp.card('u1') ->> 'last_used_at',
    current_setting('tap.now'),
    'and last_used_at, set to the report''s time'
);
SELECT results_eq(
    $$ SELECT u.workflow_id, u.run_id, u.metadata FROM pg_temp.usage_rows('u1') AS u $$,
    $$ VALUES ('wf-1', 'run-1', '{"step": 1}'::jsonb) $$,
    'the usage event is stored with its workflow, run and metadata'
);

-- Age the first report so that a repeat's answer can be told from a fresh one.
RESET ROLE;
UPDATE cards.card_usage SET recorded_at = '2020-01-02 03:04:05.123456+00'
WHERE card_id = test.id('u1');
SET LOCAL ROLE cards_gateway;

SELECT is(
    pg_temp.use('u1', 'wf-1', 'run-1', '{"step": 2}'),
    jsonb_build_object(
        'card_id', test.id('u1'),
        'usage_count', 1,
        'deduplicated', TRUE,
        'recorded_at', '2020-01-02T03:04:05.123456Z'
    ),
    'a repeat of the run answers deduplicated, the unchanged count and the first report''s recorded_at'
);
SELECT results_eq(
    $$ SELECT u.metadata, u.recorded_at FROM pg_temp.usage_rows('u1') AS u $$,
    $$ VALUES ('{"step": 1}'::jsonb, '2020-01-02 03:04:05.123456+00'::timestamptz) $$,
    'a repeat changes nothing stored, not even the metadata'
);
SELECT is(
    jsonb_build_array(pg_temp.card('u1') -> 'usage_count', pg_temp.card('u1') -> 'last_used_at'),
    jsonb_build_array(1, current_setting('tap.now')),
    'a repeat changes neither usage_count nor last_used_at'
);
SELECT is(
    pg_temp.use('u1', 'wf-1', 'run-1') -> 'deduplicated',
    'true',
    'a third report of the run is deduplicated too'
);

SELECT is(
    pg_temp.use('u1', 'wf-1', 'run-2') - 'card_id',
    jsonb_build_object('usage_count', 2, 'deduplicated', FALSE, 'recorded_at', current_setting('tap.now')),
    'another run of the same workflow counts again'
);
SELECT is(
    pg_temp.use('u1', 'wf-2', 'run-1') -> 'usage_count',
    '3',
    'the same run id under another workflow is another run'
);
SELECT is(
    pg_temp.use('u1', 'ab', 'c') -> 'usage_count',
    '4',
    'workflow "ab", run "c" counts'
);
SELECT is(
    pg_temp.use('u1', 'a', 'bc') -> 'usage_count',
    '5',
    'and workflow "a", run "bc" is a different run'
);
SELECT is(
    pg_temp.use('u1', 'ab', 'c') -> 'deduplicated',
    'true',
    'while workflow "ab", run "c" again is a repeat'
);

-- 40 more runs, each reported twice, interleaved.
SELECT count(d.doc)
FROM generate_series(1, 2) AS rep, generate_series(1, 40) AS run, pg_temp.use('u1', 'bulk', 'run-' || run) AS d (doc);

SELECT is(
    pg_temp.card('u1') -> 'usage_count',
    '45',
    'after 45 distinct runs, some reported twice, usage_count is 45'
);
SELECT is(
    (pg_temp.card('u1') -> 'usage_count')::bigint,
    (SELECT count(*) FROM pg_temp.usage_rows('u1')),
    'usage_count equals the number of distinct runs recorded'
);
SELECT is(
    (SELECT sum(n.usage_count) FROM pg_temp.counter_rows('u1') AS n),
    45::numeric,
    'the counter slots add up to the count'
);
SELECT cmp_ok(
    (SELECT count(*) FROM pg_temp.counter_rows('u1')),
    '>',
    1::bigint,
    'a popular card''s count is spread over several slots, so concurrent runs do not queue on one row'
);
SELECT is(
    pg_temp.card('u2') -> 'usage_count',
    '0',
    'another card''s usage is untouched'
);
SELECT is(
    pg_temp.use('u2', 'wf-1', 'run-1') -> 'deduplicated',
    'false',
    'the same run using another card counts for that card'
);

-- ---------------------------------------------------------------------------------
-- Persona: tenant A — cards that cannot be found
-- ---------------------------------------------------------------------------------

SELECT throws_ok(
    format($$SELECT cards.track_usage(%L, %L, 'wf', 'run')$$, test.id('tenant_a'), gen_random_uuid()),
    'CKNFD',
    'No such card.',
    'a report for an unknown card is not found'
);
SELECT throws_ok(
    format($$SELECT cards.track_usage(%L, %L, 'wf', 'run')$$, test.id('tenant_a'), test.id('u3')),
    'CKNFD',
    'No such card.',
    'a report for a deleted card is not found'
);
SELECT throws_ok(
    format($$SELECT cards.track_usage(%L, %L, 'wf', 'run')$$, test.id('tenant_a'), test.id('b1')),
    'CKNFD',
    'No such card.',
    'a report for another tenant''s card is not found'
);
SELECT throws_ok(
    format($$SELECT cards.track_usage(%L, NULL, 'wf', 'run')$$, test.id('tenant_a')),
    'CKNFD',
    'No such card.',
    'a report for a NULL card is not found'
);

-- ---------------------------------------------------------------------------------
-- Persona: tenant A — invalid reports
-- ---------------------------------------------------------------------------------

SELECT test.remember('usage_before', (SELECT count(*) FROM pg_temp.usage_rows('u1'))::text);

SELECT throws_ok(
    format($$SELECT cards.track_usage(%L, %L, '', 'run')$$, test.id('tenant_a'), test.id('u1')),
    'CKVAL',
    'The request is invalid: 1 error(s), listed in "errors".',
    'an empty workflow_id is a validation error'
);
SELECT is(
    pg_temp.usage_errors('', 'run'),
    '[{"field": "workflow_id", "message": "must be a string of 1 to 255 characters"}]',
    'the error names workflow_id and the rule'
);
SELECT is(
    pg_temp.usage_errors(repeat('w', 256), 'run'),
    '[{"field": "workflow_id", "message": "must be a string of 1 to 255 characters"}]',
    'a workflow_id of 256 characters is refused'
);
SELECT is(
    pg_temp.usage_errors(NULL, 'run'),
    '[{"field": "workflow_id", "message": "must be a string of 1 to 255 characters"}]',
    'a NULL workflow_id is refused'
);
SELECT is(
    pg_temp.usage_errors('wf', ''),
    '[{"field": "run_id", "message": "must be a string of 1 to 255 characters"}]',
    'an empty run_id is refused'
);
SELECT is(
    pg_temp.usage_errors('wf', repeat('r', 256)),
    '[{"field": "run_id", "message": "must be a string of 1 to 255 characters"}]',
    'a run_id of 256 characters is refused'
);
SELECT is(
    pg_temp.usage_errors('wf', 'run', '[]'),
    '[{"field": "metadata", "message": "must be a JSON object"}]',
    'metadata that is not an object is refused'
);
SELECT is(
    pg_temp.usage_errors('wf', 'run', NULL),
    '[{"field": "metadata", "message": "must be a JSON object"}]',
    'NULL metadata is refused'
);
SELECT is(
    pg_temp.usage_errors('wf', 'run', jsonb_build_object('k', repeat('m', 16376))),
    '[{"field": "metadata", "message": "must be at most 16 KiB serialised"}]',
    'metadata over 16 KiB serialised is refused'
);
SELECT is(
    pg_temp.usage_errors('', NULL, '"x"'),
    '[{"field": "workflow_id", "message": "must be a string of 1 to 255 characters"},
      {"field": "run_id", "message": "must be a string of 1 to 255 characters"},
      {"field": "metadata", "message": "must be a JSON object"}]',
    'every invalid field is reported together'
);
SELECT is(
    (SELECT count(*) FROM pg_temp.usage_rows('u1')),
    current_setting('tap.usage_before')::bigint,
    'an invalid report records nothing'
);
SELECT is(
    pg_temp.use('u1', repeat('w', 255), repeat('r', 255), jsonb_build_object('k', repeat('m', 16375)))
    -> 'deduplicated',
    'false',
    'ids of 255 characters and metadata of exactly 16 KiB are accepted'
);

RESET ROLE;

-- ---------------------------------------------------------------------------------
-- Persona: tenant B, through the gateway role — the same run ids
-- ---------------------------------------------------------------------------------

SET LOCAL ROLE cards_gateway;

SELECT is(
    cards.track_usage(test.id('tenant_b'), test.id('b1'), 'wf-1', 'run-1')::jsonb
    - '{card_id,recorded_at}'::text[],
    '{"usage_count": 1, "deduplicated": false}',
    'tenant B''s first report of a run tenant A also reported counts for B'
);

RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
