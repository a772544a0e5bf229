-- Maintenance jobs (admin only, cross-tenant by design): purge_expired_idempotency_keys
-- deletes expired keys of every tenant, oldest first, up to a limit, and returns how many;
-- purge_usage_events deletes usage events older than the retention window, leaving the
-- usage counts as they are.
BEGIN;
SELECT plan(24);

-- Test-only helpers, rolled back with the transaction.
-- Rows as the superuser running the suite, whom row-level security does not restrict
-- (SECURITY DEFINER: whoever calls them).
CREATE FUNCTION pg_temp.stored_keys() RETURNS text[]
LANGUAGE sql SECURITY DEFINER AS $$
    SELECT coalesce(array_agg(k.idempotency_key ORDER BY k.idempotency_key), '{}') FROM cards.idempotency_keys AS k
$$;
CREATE FUNCTION pg_temp.usage_runs() RETURNS text[]
LANGUAGE sql SECURITY DEFINER AS $$
    SELECT coalesce(array_agg(u.run_id ORDER BY u.run_id), '{}') FROM cards.card_usage AS u
$$;
CREATE FUNCTION pg_temp.card_count() RETURNS bigint
LANGUAGE sql SECURITY DEFINER AS $$ SELECT count(*) FROM cards.cards $$;

SELECT test.remember('tenant_a', cards.create_tenant('Tenant A')::text);
SELECT test.remember('tenant_b', cards.create_tenant('Tenant B')::text);

SELECT count(*) FROM (
    SELECT b.replayed
    FROM (
        VALUES
        ('tenant_a', 'a-old-1'), ('tenant_a', 'a-old-2'), ('tenant_a', 'a-at-now'), ('tenant_a', 'a-live'),
        ('tenant_b', 'b-old'), ('tenant_b', 'b-soon')
    ) AS k (tenant, idempotency_key)
    CROSS JOIN LATERAL cards.batch_create(
        current_setting('tap.' || k.tenant)::uuid,
        jsonb_build_array(jsonb_build_object('title', k.idempotency_key, 'content', 1)),
        k.idempotency_key
    ) AS b
) AS created;

-- Age the keys (the suite runs in one transaction: now() stands still).
UPDATE cards.idempotency_keys SET expires_at = now() - interval '3 days'
WHERE idempotency_key = 'a-old-1';
UPDATE cards.idempotency_keys SET expires_at = now() - interval '2 days'
WHERE idempotency_key = 'b-old';
UPDATE cards.idempotency_keys SET expires_at = now() - interval '1 day'
WHERE idempotency_key = 'a-old-2';
UPDATE cards.idempotency_keys SET expires_at = now()
WHERE idempotency_key = 'a-at-now';
UPDATE cards.idempotency_keys SET expires_at = now() + interval '1 second'
WHERE idempotency_key = 'b-soon';
SELECT test.remember('cards_before', pg_temp.card_count()::text);

-- ---------------------------------------------------------------------------------
-- Persona: the gateway role may not run maintenance
-- ---------------------------------------------------------------------------------

SET LOCAL ROLE cards_gateway;

SELECT throws_ok(
    'SELECT cards.purge_expired_idempotency_keys()',
    '42501',
    'permission denied for function purge_expired_idempotency_keys',
    'the gateway cannot purge idempotency keys'
);
SELECT throws_ok(
    'SELECT cards.purge_usage_events()',
    '42501',
    'permission denied for function purge_usage_events',
    'the gateway cannot purge usage events'
);

RESET ROLE;

-- ---------------------------------------------------------------------------------
-- Persona: admin — purge_expired_idempotency_keys
-- ---------------------------------------------------------------------------------

SET LOCAL ROLE cards_admin;

SELECT is(cards.purge_expired_idempotency_keys(2), 2, 'with a limit of 2, two expired keys are purged');
SELECT is(
    pg_temp.stored_keys(),
    ARRAY['a-at-now', 'a-live', 'a-old-2', 'b-soon'],
    'the oldest expired keys go first, whichever tenant they belong to'
);
SELECT is(cards.purge_expired_idempotency_keys(), 2, 'without a limit, the remaining expired keys are purged');
SELECT is(
    pg_temp.stored_keys(),
    ARRAY['a-live', 'b-soon'],
    'only live keys remain, of every tenant (one expiring in a second too); a key expiring now counts as expired'
);
SELECT is(cards.purge_expired_idempotency_keys(), 0, 'a purge with nothing expired purges nothing');
SELECT is(cards.purge_expired_idempotency_keys(NULL), NULL, 'a NULL limit purges nothing');
SELECT is(pg_temp.stored_keys(), ARRAY['a-live', 'b-soon'], 'and leaves the live keys');
SELECT is(pg_temp.card_count(), current_setting('tap.cards_before')::bigint, 'purging keys deletes no card');

RESET ROLE;
SET LOCAL ROLE cards_gateway;

SELECT is(
    (
        SELECT b.replayed FROM cards.batch_create(
            test.id('tenant_b'), '[{"title": "b-soon", "content": 1}]', 'b-soon'
        ) AS b
    ),
    TRUE,
    'a live key still replays after a purge'
);
SELECT is(
    (
        SELECT b.replayed FROM cards.batch_create(
            test.id('tenant_a'), '[{"title": "other cards", "content": 1}]', 'a-old-1'
        ) AS b
    ),
    FALSE,
    'a purged key is free: other cards with it run afresh'
);

RESET ROLE;

-- ---------------------------------------------------------------------------------
-- Persona: admin — purge_usage_events
-- ---------------------------------------------------------------------------------

SELECT test.remember('card_a', b.response -> 'cards' -> 0 ->> 'id')
FROM cards.batch_create(test.id('tenant_a'), '[{"title": "used", "content": 1}]') AS b;
SELECT test.remember('card_b', b.response -> 'cards' -> 0 ->> 'id')
FROM cards.batch_create(test.id('tenant_b'), '[{"title": "used", "content": 1}]') AS b;
SELECT count(*) FROM (
    SELECT cards.track_usage(current_setting('tap.' || u.tenant)::uuid, test.id(u.card), 'wf', u.run_id)
    FROM (
        VALUES
        ('tenant_a', 'card_a', 'a-100-days'), ('tenant_a', 'card_a', 'a-10-days'), ('tenant_a', 'card_a', 'a-now'),
        ('tenant_b', 'card_b', 'b-200-days')
    ) AS u (tenant, card, run_id)
) AS reported;

-- Age the events (the suite runs in one transaction: now() stands still).
UPDATE cards.card_usage SET recorded_at = now() - interval '100 days'
WHERE run_id = 'a-100-days';
UPDATE cards.card_usage SET recorded_at = now() - interval '10 days'
WHERE run_id = 'a-10-days';
UPDATE cards.card_usage SET recorded_at = now() - interval '200 days'
WHERE run_id = 'b-200-days';

SET LOCAL ROLE cards_admin;

SELECT is(
    test.error_detail('SELECT cards.purge_usage_events(interval ''10 minutes'')'),
    '[{"field": "p_older_than", "message": "must be at least 1 hour; p_limit at least 1"}]',
    'a retention window under an hour is refused'
);
SELECT is(
    test.error_detail('SELECT cards.purge_usage_events(interval ''1 day'', 0)'),
    '[{"field": "p_older_than", "message": "must be at least 1 hour; p_limit at least 1"}]',
    'a limit under 1 is refused'
);
SELECT is(
    pg_temp.usage_runs(), ARRAY['a-10-days', 'a-100-days', 'a-now', 'b-200-days'], 'a refused purge deletes nothing'
);
SELECT is(cards.purge_usage_events(), 2, 'by default, events older than 90 days are purged, of every tenant');
SELECT is(pg_temp.usage_runs(), ARRAY['a-10-days', 'a-now'], 'only the younger events remain');
SELECT is(cards.purge_usage_events(interval '5 days'), 1, 'a shorter window purges more');
SELECT is(pg_temp.usage_runs(), ARRAY['a-now'], 'leaving the events inside it');
-- An event 3 hours old, on a card of its own (the usage counts below stay card_a's): inside
-- the default window, outside the one set.
RESET ROLE;
SELECT test.remember('card_c', b.response -> 'cards' -> 0 ->> 'id')
FROM cards.batch_create(test.id('tenant_a'), '[{"title": "used once", "content": 2}]') AS b;
SELECT cards.track_usage(test.id('tenant_a'), test.id('card_c'), 'wf', 'a-3-hours') IS NOT NULL AS reported;
UPDATE cards.card_usage SET recorded_at = now() - interval '3 hours'
WHERE run_id = 'a-3-hours';
SET LOCAL ROLE cards_admin;
SELECT set_config('cards.usage_retention', '2 hours', TRUE);
SELECT is(cards.purge_usage_events(), 1, 'cards.usage_retention sets the default window');
SELECT set_config('cards.usage_retention', '', TRUE);

RESET ROLE;
SET LOCAL ROLE cards_gateway;

SELECT is(
    cards.retrieve(test.id('tenant_a'), ARRAY[test.id('card_a')])::jsonb -> 'cards' -> 0 -> 'usage_count',
    '3',
    'purging usage events leaves the usage count as it was'
);
SELECT is(
    cards.retrieve(test.id('tenant_b'), ARRAY[test.id('card_b')])::jsonb -> 'cards' -> 0 -> 'usage_count',
    '1',
    'for every tenant'
);
SELECT is(
    cards.track_usage(test.id('tenant_a'), test.id('card_a'), 'wf', 'a-now')::jsonb -> 'deduplicated',
    'true',
    'a run whose event is kept is still deduplicated'
);
SELECT is(
    cards.track_usage(test.id('tenant_a'), test.id('card_a'), 'wf', 'a-10-days')::jsonb
    - '{card_id,recorded_at}'::text[],
    '{"usage_count": 4, "deduplicated": false}',
    'a run reported again after its event was purged counts again: the dedupe window is the retention window'
);

RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
