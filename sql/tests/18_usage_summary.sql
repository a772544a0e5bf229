-- usage_summary (API.md, "Card lifecycle"; CONVENTIONS.md, "Representation choices"):
-- the tenant's usage events per UTC hour or day over [from, to), every bucket present,
-- and the ten most used cards of the window (by events, then id); defaults to = now,
-- from 24 hours (hour) or 30 days (day) earlier; at most 1000 buckets. A bad bucket,
-- time or window is CKVAL naming it.
BEGIN;
SELECT plan(32);

-- Test-only helpers, rolled back with the transaction.
-- A tenant's usage summary, and the statement for it.
CREATE FUNCTION pg_temp.summary(
    p_from text DEFAULT NULL, p_to text DEFAULT NULL, p_bucket text DEFAULT NULL, p_tenant text DEFAULT 'tenant_a'
) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT cards.usage_summary(current_setting('tap.' || p_tenant)::uuid, p_from, p_to, p_bucket)::jsonb
$$;
CREATE FUNCTION pg_temp.summary_sql(p_from text DEFAULT NULL, p_to text DEFAULT NULL, p_bucket text DEFAULT NULL)
RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT format('SELECT cards.usage_summary(%L, %L, %L, %L)', current_setting('tap.tenant_a'), p_from, p_to, p_bucket)
$$;
-- The buckets of a summary as [start, events] pairs.
CREATE FUNCTION pg_temp.counts(p_summary jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_array(b.bucket -> 'start', b.bucket -> 'events') ORDER BY b.ord), '[]')
    FROM jsonb_array_elements(p_summary -> 'buckets') WITH ORDINALITY AS b (bucket, ord)
$$;
-- The events a summary counts in all its buckets.
CREATE FUNCTION pg_temp.events(p_summary jsonb) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
    SELECT sum((b.bucket ->> 'events')::integer) FROM jsonb_array_elements(p_summary -> 'buckets') AS b (bucket)
$$;
-- The RFC 3339 form every timestamp is answered in.
CREATE FUNCTION pg_temp.rfc3339(p_at timestamptz) RETURNS text
LANGUAGE sql STABLE AS $$ SELECT to_char(p_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') $$;

SELECT test.remember('tenant_a', cards.create_tenant('Tenant A')::text);
SELECT test.remember('tenant_b', cards.create_tenant('Tenant B')::text);
SELECT test.remember('tenant_c', cards.create_tenant('Tenant C, never used a card')::text);
SELECT
    test.remember('hr', b.response -> 'cards' -> 0 ->> 'id') AS hr,
    test.remember('h2', b.response -> 'cards' -> 1 ->> 'id') AS h2
FROM cards.batch_create(
    test.id('tenant_a'),
    '[{"title": "Used a minute ago", "content": 1}, {"title": "Used two days ago", "content": 2}]'
) AS b;
SELECT test.remember('b1', b.response -> 'cards' -> 0 ->> 'id') AS b1
FROM cards.batch_create(test.id('tenant_b'), '[{"title": "Used by tenant B", "content": 1}]') AS b;

-- Twelve cards for the summary, with fixed ids (s01 … s12), so that the order of the
-- most used cards (events, then id) is written out.
SELECT count(*) FROM cards.batch_create(
    test.id('tenant_a'),
    (
        SELECT jsonb_agg(jsonb_build_object('title', 'Summary s' || lpad(n::text, 2, '0'), 'content', n))
        FROM generate_series(1, 12) AS n
    )
);
UPDATE cards.cards SET card_id = ('00000000-0000-4000-8000-0000000000' || right(title, 2))::uuid
WHERE tenant_id = test.id('tenant_a') AND title LIKE 'Summary s%';
SELECT count(test.remember(c.name, '00000000-0000-4000-8000-0000000000' || right(c.name, 2)))
FROM (SELECT 's' || lpad(n::text, 2, '0') AS name FROM generate_series(1, 12) AS n) AS c;

-- The usage events, [card, run, time], each reported through track_usage and then dated.
SELECT test.remember('events', $$[
    ["s02", "e01", "2024-03-01T00:00:00Z"], ["s04", "e02", "2024-03-01T00:15:00Z"],
    ["s03", "e03", "2024-03-01T00:30:00Z"], ["s12", "e04", "2024-03-01T02:00:00Z"],
    ["s05", "e05", "2024-03-01T02:05:00Z"], ["s06", "e06", "2024-03-01T02:06:00Z"],
    ["s07", "e07", "2024-03-01T02:07:00Z"], ["s02", "e08", "2024-03-01T02:10:00Z"],
    ["s02", "e09", "2024-03-01T02:20:00Z"], ["s12", "e10", "2024-03-01T02:30:00Z"],
    ["s03", "e11", "2024-03-01T02:40:00Z"], ["s04", "e12", "2024-03-01T02:50:00Z"],
    ["s02", "e13", "2024-03-01T04:00:00Z"], ["s01", "e14", "2024-03-01T04:01:00Z"],
    ["s08", "e15", "2024-03-01T04:02:00Z"], ["s09", "e16", "2024-03-01T04:03:00Z"],
    ["s10", "e17", "2024-03-01T04:04:00Z"], ["s11", "e18", "2024-03-01T04:05:00Z"],
    ["s12", "e19", "2024-03-01T04:30:00Z"], ["s03", "e20", "2024-03-01T04:40:00Z"],
    ["s04", "e21", "2024-03-01T04:50:00Z"], ["s12", "e22", "2024-03-01T05:00:00Z"],
    ["s05", "e23", "2024-03-01T05:10:00Z"], ["s06", "e24", "2024-03-01T05:20:00Z"],
    ["s07", "e25", "2024-03-01T05:30:00Z"], ["s02", "e26", "2024-03-01T05:59:59.999999Z"],
    ["s10", "e27", "2024-03-01T06:00:00Z"], ["s11", "e28", "2024-02-29T23:59:59.999999Z"],
    ["s01", "e29", "2024-03-01T20:00:00Z"]
]$$);
SELECT count(cards.track_usage(test.id('tenant_a'), test.id(e.event ->> 0), 's', e.event ->> 1))
FROM jsonb_array_elements(test.doc('events')) AS e (event);
UPDATE cards.card_usage AS u SET recorded_at = (e.event ->> 2)::timestamptz
FROM jsonb_array_elements(test.doc('events')) AS e (event)
WHERE u.card_id = test.id(e.event ->> 0) AND u.run_id = e.event ->> 1;
SELECT cards.track_usage(test.id('tenant_b'), test.id('b1'), 'wf-b', 'x1');
UPDATE cards.card_usage SET recorded_at = '2024-03-01 02:00:00+00'
WHERE card_id = test.id('b1');
-- h2: three runs two days ago; hr: one run a minute ago (now() is the transaction's start).
SELECT count(cards.track_usage(test.id('tenant_a'), test.id('h2'), 'wf-2', 'run-' || n))
FROM generate_series(1, 3) AS n;
UPDATE cards.card_usage SET recorded_at = now() - interval '2 days'
WHERE card_id = test.id('h2');
SELECT cards.track_usage(test.id('tenant_a'), test.id('hr'), 'wf-r', 'just now');
UPDATE cards.card_usage SET recorded_at = now() - interval '1 minute'
WHERE card_id = test.id('hr');

-- ---------------------------------------------------------------------------------
-- Persona: tenant A, through the gateway role — usage_summary of a window
-- ---------------------------------------------------------------------------------

SET LOCAL ROLE cards_gateway;

SELECT test.remember('hours', pg_temp.summary('2024-03-01T00:00:00Z', '2024-03-01T06:00:00Z', 'hour')::text);

SELECT is(
    (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(test.doc('hours')) AS k),
    ARRAY['bucket', 'buckets', 'from', 'to', 'top_cards'],
    'a summary holds exactly from, to, bucket, buckets and top_cards'
);
SELECT is(
    test.doc('hours') - '{buckets,top_cards}'::text[],
    '{"from": "2024-03-01T00:00:00.000000Z", "to": "2024-03-01T06:00:00.000000Z", "bucket": "hour"}',
    'it answers its window and bucket'
);
SELECT is(
    test.doc('hours') -> 'buckets',
    '[{"start": "2024-03-01T00:00:00.000000Z", "events": 3}, {"start": "2024-03-01T01:00:00.000000Z", "events": 0},
      {"start": "2024-03-01T02:00:00.000000Z", "events": 9}, {"start": "2024-03-01T03:00:00.000000Z", "events": 0},
      {"start": "2024-03-01T04:00:00.000000Z", "events": 9}, {"start": "2024-03-01T05:00:00.000000Z", "events": 5}]',
    'every hour of [from, to) has its bucket, empty ones too, counting the tenant''s events in it'
);
SELECT is(
    test.doc('hours') -> 'top_cards',
    (
        SELECT
            jsonb_agg(
                jsonb_build_object('card_id', test.id(t.name), 'title', 'Summary ' || t.name, 'events', t.events)
                ORDER BY t.ord
            )
        FROM (
            VALUES
            (1, 's02', 5), (2, 's12', 4), (3, 's03', 3), (4, 's04', 3), (5, 's05', 2), (6, 's06', 2), (7, 's07', 2),
            (8, 's01', 1), (9, 's08', 1), (10, 's09', 1)
        ) AS t (ord, name, events)
    ),
    'the ten most used cards of the window, by events then id, with title and events; s10 and s11 do not make it'
);
SELECT is(
    pg_temp.counts(pg_temp.summary('2024-02-28T00:00:00Z', '2024-03-03T00:00:00Z', 'day')),
    '[["2024-02-28T00:00:00.000000Z", 0], ["2024-02-29T00:00:00.000000Z", 1],
      ["2024-03-01T00:00:00.000000Z", 28], ["2024-03-02T00:00:00.000000Z", 0]]',
    'day buckets are UTC days, a leap day included'
);
SET LOCAL timezone = 'Asia/Kolkata';
SELECT is(
    pg_temp.counts(pg_temp.summary('2024-02-28T00:00:00Z', '2024-03-03T00:00:00Z', 'day')),
    '[["2024-02-28T00:00:00.000000Z", 0], ["2024-02-29T00:00:00.000000Z", 1],
      ["2024-03-01T00:00:00.000000Z", 28], ["2024-03-02T00:00:00.000000Z", 0]]',
    'whatever the session''s time zone (an event at 20:00 UTC stays on its UTC day)'
);
RESET timezone;
SELECT is(
    pg_temp.counts(pg_temp.summary('2024-03-01T00:30:00Z', '2024-03-01T02:30:00Z', 'hour')),
    '[["2024-03-01T00:00:00.000000Z", 1], ["2024-03-01T01:00:00.000000Z", 0], ["2024-03-01T02:00:00.000000Z", 6]]',
    'a window off the hour starts with its partial bucket and counts only the events inside [from, to)'
);
SELECT is(
    pg_temp.summary('2024-03-01T05:30:00+05:30', '2024-03-01T08:00:00+02:00') - '{buckets,top_cards}'::text[],
    '{"from": "2024-03-01T00:00:00.000000Z", "to": "2024-03-01T06:00:00.000000Z", "bucket": "hour"}',
    'from and to may carry any offset; they are answered in UTC, and the bucket defaults to hour'
);
SELECT is(
    pg_temp.summary('2024-03-01T00:00:00Z', '2024-03-01T06:00:00Z', 'hour', 'tenant_c') -> 'top_cards',
    '[]',
    'a window with no events has no top cards'
);
SELECT is(
    (
        SELECT jsonb_agg(DISTINCT b.bucket -> 'events')
        FROM jsonb_array_elements(
            pg_temp.summary('2024-03-01T00:00:00Z', '2024-03-01T06:00:00Z', 'hour', 'tenant_c') -> 'buckets'
        ) AS b (bucket)
    ),
    '[0]',
    'and all its buckets at 0'
);

-- ---------------------------------------------------------------------------------
-- Persona: tenant A — usage_summary defaults
-- ---------------------------------------------------------------------------------

SELECT is(
    pg_temp.summary() - '{buckets,top_cards}'::text[],
    jsonb_build_object(
        'from', pg_temp.rfc3339(now() - interval '24 hours'), 'to', pg_temp.rfc3339(now()), 'bucket', 'hour'
    ),
    'without parameters the window is the last 24 hours, by hour'
);
SELECT is(
    pg_temp.events(pg_temp.summary()),
    1::bigint,
    'and counts the run of a minute ago'
);
SELECT is(
    pg_temp.summary() -> 'top_cards',
    jsonb_build_array(jsonb_build_object('card_id', test.id('hr'), 'title', 'Used a minute ago', 'events', 1)),
    'whose card is the most used'
);
SELECT is(
    pg_temp.summary(p_bucket => 'day') - '{buckets,top_cards}'::text[],
    jsonb_build_object(
        'from', pg_temp.rfc3339(now() - interval '30 days'), 'to', pg_temp.rfc3339(now()), 'bucket', 'day'
    ),
    'by day, the default window is the last 30 days'
);
SELECT is(
    pg_temp.events(pg_temp.summary(p_bucket => 'day')),
    4::bigint,
    'and counts the runs of two days ago too'
);
SELECT is(
    pg_temp.summary(p_to => '2024-03-01T06:00:00Z') ->> 'from',
    '2024-02-29T06:00:00.000000Z',
    'with only to=, the window is the 24 hours before it'
);
SELECT is(
    pg_temp.summary(p_from => pg_temp.rfc3339(now() - interval '3 hours')) ->> 'to',
    pg_temp.rfc3339(now()),
    'with only from=, the window ends now'
);

-- ---------------------------------------------------------------------------------
-- Persona: tenant A — usage_summary refusals
-- ---------------------------------------------------------------------------------

SELECT throws_ok(
    pg_temp.summary_sql(p_bucket => 'week'),
    'CKVAL',
    'The request is invalid: 1 error(s), listed in "errors".',
    'an unknown bucket is a validation error'
);
SELECT is(
    (
        SELECT jsonb_agg(test.error_detail(pg_temp.summary_sql(p_bucket => b.value)))
        FROM unnest(ARRAY['week', 'HOUR', '', 'hours']) AS b (value)
    ),
    (SELECT jsonb_agg('[{"field": "bucket", "message": "must be hour or day"}]'::jsonb) FROM generate_series(1, 4)),
    'naming bucket: week, HOUR, empty and hours are refused'
);
SELECT is(
    (
        SELECT jsonb_agg(test.error_detail(pg_temp.summary_sql(p_from => f.value, p_to => '2024-03-02T00:00:00Z')))
        FROM unnest(ARRAY[
            'yesterday', '2024-03-01', '2024-03-01T00:00:00', '2024-02-30T00:00:00Z', '2024-03-01T25:00:00Z', ''
        ]) AS f (value)
    ),
    (
        SELECT jsonb_agg('[{"field": "from", "message": "must be an RFC 3339 timestamp with a time zone"}]'::jsonb)
        FROM generate_series(1, 6)
    ),
    'a from= that is not an RFC 3339 time with a zone is refused, naming from'
);
SELECT is(
    test.error_detail(pg_temp.summary_sql(p_from => '2024-03-01T00:00:00Z', p_to => 'now')),
    '[{"field": "to", "message": "must be an RFC 3339 timestamp with a time zone"}]',
    'a bad to= is refused, naming to'
);
SELECT is(
    test.error_detail(pg_temp.summary_sql('2024-03-01T06:00:00Z', '2024-03-01T06:00:00Z')),
    '[{"field": "from", "message": "must be before to"}]',
    'an empty window (from = to) is refused'
);
SELECT is(
    test.error_detail(pg_temp.summary_sql('2024-03-01T07:00:00Z', '2024-03-01T06:00:00Z')),
    '[{"field": "from", "message": "must be before to"}]',
    'a window that ends before it starts is refused'
);
SELECT is(
    jsonb_array_length(pg_temp.summary('2024-01-01T00:00:00Z', '2024-02-11T16:00:00Z', 'hour') -> 'buckets'),
    1000,
    'a window of 1000 hours is answered in 1000 buckets'
);
SELECT is(
    test.error_detail(pg_temp.summary_sql('2024-01-01T00:00:00Z', '2024-02-11T17:00:00Z', 'hour')),
    '[{"field": "to", "message": "the window spans more than 1000 buckets"}]',
    'a window of 1001 hours is refused'
);
SELECT is(
    test.error_detail(pg_temp.summary_sql('2024-01-01T00:30:00Z', '2024-02-11T16:30:00Z', 'hour')),
    '[{"field": "to", "message": "the window spans more than 1000 buckets"}]',
    'and so is a window of 1000 hours off the hour, which touches 1001 hour buckets'
);
SELECT is(
    jsonb_array_length(pg_temp.summary('2024-01-01T00:30:00Z', '2024-02-11T16:00:00Z', 'hour') -> 'buckets'),
    1000,
    'while one off the hour that touches 1000 buckets is answered'
);
SELECT is(
    jsonb_array_length(pg_temp.summary('2022-01-01T00:00:00Z', '2024-09-27T00:00:00Z', 'day') -> 'buckets'),
    1000,
    'a window of 1000 days is answered in 1000 day buckets'
);
SELECT is(
    test.error_detail(pg_temp.summary_sql('2022-01-01T00:00:00Z', '2024-09-28T00:00:00Z', 'day')),
    '[{"field": "to", "message": "the window spans more than 1000 buckets"}]',
    'a window of 1001 days is refused'
);

RESET ROLE;

-- ---------------------------------------------------------------------------------
-- Persona: tenant B, through the gateway role
-- ---------------------------------------------------------------------------------

SET LOCAL ROLE cards_gateway;

SELECT is(
    pg_temp.counts(pg_temp.summary('2024-03-01T00:00:00Z', '2024-03-01T06:00:00Z', p_tenant => 'tenant_b')),
    '[["2024-03-01T00:00:00.000000Z", 0], ["2024-03-01T01:00:00.000000Z", 0], ["2024-03-01T02:00:00.000000Z", 1],
      ["2024-03-01T03:00:00.000000Z", 0], ["2024-03-01T04:00:00.000000Z", 0], ["2024-03-01T05:00:00.000000Z", 0]]',
    'tenant B''s summary counts only its own events'
);
SELECT is(
    pg_temp.summary('2024-03-01T00:00:00Z', '2024-03-01T06:00:00Z', p_tenant => 'tenant_b') -> 'top_cards',
    jsonb_build_array(jsonb_build_object('card_id', test.id('b1'), 'title', 'Used by tenant B', 'events', 1)),
    'and names only its own cards'
);

RESET ROLE;

-- ---------------------------------------------------------------------------------
-- Persona: a suspended tenant
-- ---------------------------------------------------------------------------------

SELECT cards.set_tenant_active(test.id('tenant_a'), FALSE);
SET LOCAL ROLE cards_gateway;

SELECT throws_ok(
    pg_temp.summary_sql(p_bucket => 'week'),
    'CKFBD',
    'The tenant is unknown or suspended.',
    'a suspended tenant cannot read its usage summary, whatever it asks'
);

RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
