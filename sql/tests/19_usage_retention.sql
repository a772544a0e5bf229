-- Retention and the lifecycle's reports (CONVENTIONS.md, "Representation choices"; issue
-- 6: "the usage counter of a card is not changed by retention"): purge_usage_events takes
-- a window of at least an hour; the events it purges leave the card's usage history and
-- the usage summary, while get_card and the listing answer the same usage_count and
-- last_used_at. The purge itself (limits, defaults, the setting, dedupe after a purge) is
-- in 11_maintenance.sql.
BEGIN;
SELECT plan(15);

-- Test-only helpers, rolled back with the transaction.
-- What a tenant's gateway answers about a named card: the card (get_card), the card as
-- listed, the runs of its usage history, and the events of the last 24 hours (summary).
CREATE FUNCTION pg_temp.card(p_tenant text, p_card text) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT g.card::jsonb
    FROM cards.get_card(current_setting('tap.' || p_tenant)::uuid, current_setting('tap.' || p_card)) AS g
$$;
CREATE FUNCTION pg_temp.listed(p_tenant text, p_card text) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT c.card
    FROM jsonb_array_elements(cards.list_cards(current_setting('tap.' || p_tenant)::uuid)::jsonb -> 'cards') AS c (card)
    WHERE c.card ->> 'id' = current_setting('tap.' || p_card)
$$;
CREATE FUNCTION pg_temp.runs(p_tenant text, p_card text) RETURNS text[]
LANGUAGE sql AS $$
    SELECT coalesce(array_agg(u.usage ->> 'run_id' ORDER BY u.ord), '{}')
    FROM jsonb_array_elements(
        cards.card_usage_history(current_setting('tap.' || p_tenant)::uuid, current_setting('tap.' || p_card))::jsonb
        -> 'usage'
    ) WITH ORDINALITY AS u (usage, ord)
$$;
CREATE FUNCTION pg_temp.last_day_events(p_tenant text) RETURNS bigint
LANGUAGE sql AS $$
    SELECT sum((b.bucket ->> 'events')::integer)
    FROM jsonb_array_elements(cards.usage_summary(current_setting('tap.' || p_tenant)::uuid)::jsonb -> 'buckets') AS b (
        bucket
    )
$$;
-- The usage events stored, read as the superuser running the suite, whom row-level
-- security does not restrict (SECURITY DEFINER: whoever calls it).
CREATE FUNCTION pg_temp.stored_runs() RETURNS text[]
LANGUAGE sql SECURITY DEFINER AS $$
    SELECT coalesce(array_agg(u.run_id ORDER BY u.run_id), '{}') FROM cards.card_usage AS u
$$;

SELECT test.remember('tenant_a', cards.create_tenant('Tenant A')::text);
SELECT test.remember('tenant_b', cards.create_tenant('Tenant B')::text);
SELECT test.remember('a1', b.response -> 'cards' -> 0 ->> 'id') AS a1
FROM cards.batch_create(test.id('tenant_a'), '[{"title": "Used for a long time", "content": 1}]') AS b;
SELECT test.remember('b1', b.response -> 'cards' -> 0 ->> 'id') AS b1
FROM cards.batch_create(test.id('tenant_b'), '[{"title": "Used long ago", "content": 1}]') AS b;
SELECT count(*) FROM (
    SELECT cards.track_usage(current_setting('tap.' || u.tenant)::uuid, test.id(u.card), 'wf', u.run_id)
    FROM (
        VALUES
        ('tenant_a', 'a1', 'a-100-days'), ('tenant_a', 'a1', 'a-61-minutes'), ('tenant_a', 'a1', 'a-59-minutes'),
        ('tenant_a', 'a1', 'a-1-minute'), ('tenant_b', 'b1', 'b-100-days')
    ) AS u (tenant, card, run_id)
) AS reported;

-- Age the events (the suite runs in one transaction: now() stands still).
UPDATE cards.card_usage SET recorded_at = now() - interval '100 days'
WHERE run_id IN ('a-100-days', 'b-100-days');
UPDATE cards.card_usage SET recorded_at = now() - interval '61 minutes'
WHERE run_id = 'a-61-minutes';
UPDATE cards.card_usage SET recorded_at = now() - interval '59 minutes'
WHERE run_id = 'a-59-minutes';
UPDATE cards.card_usage SET recorded_at = now() - interval '1 minute'
WHERE run_id = 'a-1-minute';

-- ---------------------------------------------------------------------------------
-- Persona: tenant A, through the gateway role — before the purge
-- ---------------------------------------------------------------------------------

SET LOCAL ROLE cards_gateway;

SELECT test.remember('a1_card', pg_temp.card('tenant_a', 'a1')::text);
SELECT test.remember('b1_card', pg_temp.card('tenant_b', 'b1')::text);

SELECT is(
    pg_temp.runs('tenant_a', 'a1'),
    ARRAY['a-1-minute', 'a-59-minutes', 'a-61-minutes', 'a-100-days'],
    'before the purge, the history holds every run'
);
SELECT is(pg_temp.last_day_events('tenant_a'), 3::bigint, 'and the summary of the last 24 hours three of them');
SELECT is(test.doc('a1_card') -> 'usage_count', '4', 'the card counts four runs');

RESET ROLE;

-- ---------------------------------------------------------------------------------
-- Persona: admin — the window's lower bound
-- ---------------------------------------------------------------------------------

SET LOCAL ROLE cards_admin;

SELECT is(
    test.error_detail('SELECT cards.purge_usage_events(interval ''59 minutes 59 seconds'')'),
    '[{"field": "p_older_than", "message": "must be at least 1 hour; p_limit at least 1"}]',
    'a retention window just under an hour is refused'
);
SELECT is(
    test.error_detail('SELECT cards.purge_usage_events(interval ''-1 day'')'),
    '[{"field": "p_older_than", "message": "must be at least 1 hour; p_limit at least 1"}]',
    'a negative retention window is refused'
);
SELECT is(
    test.error_detail('SELECT cards.purge_usage_events(interval ''1 day'', NULL)'),
    '[{"field": "p_older_than", "message": "must be at least 1 hour; p_limit at least 1"}]',
    'a NULL limit is refused'
);
SELECT is(
    pg_temp.stored_runs(),
    ARRAY['a-1-minute', 'a-100-days', 'a-59-minutes', 'a-61-minutes', 'b-100-days'],
    'a refused purge deletes nothing'
);
SELECT is(
    cards.purge_usage_events(interval '1 hour'),
    3,
    'a window of exactly one hour is accepted: the events older than an hour are purged, of every tenant'
);
SELECT is(pg_temp.stored_runs(), ARRAY['a-1-minute', 'a-59-minutes'], 'the events of the last hour remain');

RESET ROLE;

-- ---------------------------------------------------------------------------------
-- Persona: tenant A, through the gateway role — after the purge
-- ---------------------------------------------------------------------------------

SET LOCAL ROLE cards_gateway;

SELECT is(
    pg_temp.card('tenant_a', 'a1'),
    test.doc('a1_card'),
    'get_card answers the same usage_count and last_used_at after the purge'
);
SELECT is(pg_temp.listed('tenant_a', 'a1'), test.doc('a1_card'), 'and so does the listing');
SELECT is(
    pg_temp.runs('tenant_a', 'a1'),
    ARRAY['a-1-minute', 'a-59-minutes'],
    'the purged runs leave the usage history'
);
SELECT is(pg_temp.last_day_events('tenant_a'), 2::bigint, 'and the usage summary');

RESET ROLE;

-- ---------------------------------------------------------------------------------
-- Persona: tenant B, through the gateway role — after the purge
-- ---------------------------------------------------------------------------------

SET LOCAL ROLE cards_gateway;

SELECT is(
    pg_temp.card('tenant_b', 'b1'),
    test.doc('b1_card'),
    'tenant B''s card keeps its usage_count and last_used_at too'
);
SELECT is(pg_temp.runs('tenant_b', 'b1'), '{}', 'while its purged run has left its history');

RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
