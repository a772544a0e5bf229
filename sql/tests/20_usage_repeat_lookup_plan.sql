-- A repeated usage report finds its first report through the primary key, also when the
-- statistics were taken while every card had one event and one card has since become
-- hot: the card's history index would then read every event of that card (found by the
-- benchmark's hot-card run).
BEGIN;
SELECT plan(1);

-- The indexes the plan of a statement scans, as the table owner in the tenant's scope.
CREATE FUNCTION pg_temp.indexes_scanned(p_sql text) RETURNS text[]
LANGUAGE plpgsql AS $$
DECLARE
    v_plan jsonb;
BEGIN
    EXECUTE 'EXPLAIN (FORMAT JSON) ' || p_sql INTO v_plan;
    RETURN ARRAY(SELECT jsonb_path_query(v_plan, 'strict $.**."Index Name"') #>> '{}');
END
$$;

SELECT test.remember('tenant', cards.create_tenant('hot card')::text);
SELECT count(*) FROM cards.batch_create(
    test.id('tenant'),
    (SELECT jsonb_agg(jsonb_build_object('title', 'card ' || g, 'content', g)) FROM generate_series(1, 1000) AS g)
);
SELECT count(cards.track_usage(test.id('tenant'), c.card_id, 'seed-workflow', 'seed'))
FROM cards.cards AS c
WHERE c.tenant_id = test.id('tenant');
ANALYZE cards.card_usage;
SELECT test.remember('hot', (
    SELECT min(c.card_id::text) FROM cards.cards AS c
    WHERE c.tenant_id = test.id('tenant')
));
SELECT count(cards.track_usage(test.id('tenant'), test.id('hot'), 'runs', 'run ' || g))
FROM generate_series(1, 3000) AS g;

SELECT set_config('cards.tenant_id', current_setting('tap.tenant'), TRUE);
SET LOCAL ROLE cards_owner;
SELECT is(
    pg_temp.indexes_scanned(format(
        $q$
            SELECT u.recorded_at FROM cards.card_usage AS u
            WHERE u.tenant_id = %L AND u.card_id = %L AND u.workflow_id = 'seed-workflow' AND u.run_id = 'seed'
        $q$,
        test.id('tenant'), test.id('hot')
    )),
    ARRAY['card_usage_pkey'],
    'the lookup of a repeated report probes the primary key, not the hot card''s history'
);
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
