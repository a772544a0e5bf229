-- No request ever sees or touches another tenant's data (API.md, "Vocabulary"; "No
-- request with bad input ever yields ... another tenant's data"). Tenant B, through the
-- gateway role, aims every endpoint at tenant A's cards and keys; then does so again with
-- cards.scope = 'maintenance' and cards.tenant_id = A set by the caller, which the
-- endpoint functions must clear (_enter_tenant).
BEGIN;
SELECT plan(32);

-- Test-only helpers, rolled back with the transaction.
-- Rows as the superuser running the suite, whom row-level security does not restrict
-- (SECURITY DEFINER: whoever calls it).
CREATE FUNCTION pg_temp.rows_of(p_tenant text) RETURNS jsonb
LANGUAGE sql SECURITY DEFINER AS $$
    SELECT jsonb_build_object(
        'cards', (SELECT count(*) FROM cards.cards AS c WHERE c.tenant_id = current_setting('tap.' || p_tenant)::uuid),
        'usage', (
            SELECT count(*) FROM cards.card_usage AS u WHERE u.tenant_id = current_setting('tap.' || p_tenant)::uuid
        ),
        'keys', (
            SELECT count(*) FROM cards.idempotency_keys AS k
            WHERE k.tenant_id = current_setting('tap.' || p_tenant)::uuid
        )
    )
$$;

-- What a caller could do before calling an endpoint function: SET LOCAL cards.scope =
-- 'maintenance' and cards.tenant_id = tenant A, hoping to be let across tenants.
CREATE FUNCTION pg_temp.caller_sets_maintenance_scope() RETURNS void
LANGUAGE sql AS $$
    SELECT set_config('cards.scope', 'maintenance', TRUE);
    SELECT set_config('cards.tenant_id', current_setting('tap.tenant_a'), TRUE);
$$;

SELECT test.remember('tenant_a', cards.create_tenant('Tenant A')::text);
SELECT test.remember('tenant_b', cards.create_tenant('Tenant B')::text);
SELECT test.remember(
    'a_cards', '[{"title": "A secret", "content": {"plan": "world domination"}}, {"title": "A2", "content": 2}]'
);

-- ---------------------------------------------------------------------------------
-- Persona: tenant A, through the gateway role — what there is to protect
-- ---------------------------------------------------------------------------------

SET LOCAL ROLE cards_gateway;

SELECT test.remember('a_batch', b.response::text)
FROM cards.batch_create(test.id('tenant_a'), current_setting('tap.a_cards')::jsonb, 'shared-key') AS b;
SELECT
    test.remember('a1', test.doc('a_batch') -> 'cards' -> 0 ->> 'id') AS a1,
    test.remember('a2', test.doc('a_batch') -> 'cards' -> 1 ->> 'id') AS a2;
SELECT cards.track_usage(test.id('tenant_a'), test.id('a1'), 'wf', 'run-a');
SELECT test.remember('a_before', pg_temp.rows_of('tenant_a')::text);
SELECT test.remember('a1_before', cards.retrieve(test.id('tenant_a'), ARRAY[test.id('a1')])::text);

-- ---------------------------------------------------------------------------------
-- Persona: tenant B, through the gateway role — aiming at tenant A
-- ---------------------------------------------------------------------------------

SELECT test.remember('b_batch', b.response::text)
FROM cards.batch_create(test.id('tenant_b'), current_setting('tap.a_cards')::jsonb) AS b;
SELECT test.remember('b1', test.doc('b_batch') -> 'cards' -> 0 ->> 'id');

SELECT is(
    test.doc('b_batch') - 'cards',
    '{"created": 2, "duplicates": 0}',
    'tenant B''s cards with tenant A''s exact content are created: dedupe never matches another tenant''s card'
);
SELECT isnt(test.id('b1'), test.id('a1'), 'tenant B gets its own id, not tenant A''s');
SELECT is(
    test.doc('b_batch') -> 'cards' -> 0 ->> 'content_hash',
    test.doc('a_batch') -> 'cards' -> 0 ->> 'content_hash',
    'though the content hash is the same'
);
SELECT is(
    cards.retrieve(test.id('tenant_b'), ARRAY[test.id('a1'), test.id('b1'), test.id('a2')])::jsonb
    -> 'missing',
    jsonb_build_array(test.id('a1'), test.id('a2')),
    'tenant B retrieving tenant A''s ids finds them missing'
);
SELECT is(
    jsonb_array_length(
        cards.retrieve(test.id('tenant_b'), ARRAY[test.id('a1'), test.id('b1')])::jsonb -> 'cards'
    ),
    1,
    'and gets only its own card'
);
SELECT is(
    convert_from(cards.retrieve_request(
        test.id('tenant_b'), convert_to(format('{"ids": ["%s"]}', test.id('a1')), 'UTF8')
    ), 'UTF8')::jsonb,
    jsonb_build_object('cards', '[]'::jsonb, 'missing', jsonb_build_array(test.id('a1'))),
    'retrieve_request likewise'
);
SELECT throws_ok(
    format($$SELECT cards.track_usage(%L, %L, 'wf', 'run-b')$$, test.id('tenant_b'), test.id('a1')),
    'CKNFD',
    'No such card.',
    'tenant B cannot report usage of tenant A''s card'
);
SELECT throws_ok(
    format(
        $$SELECT * FROM cards.track_usage_request(
            %L, %L, convert_to('{"workflow_id": "wf", "run_id": "run-b"}', 'UTF8')
        )$$,
        test.id('tenant_b'), test.id('a1')
    ),
    'CKNFD',
    'No such card.',
    'nor through track_usage_request'
);
SELECT is(
    (
        SELECT b.replayed FROM cards.batch_create(
            test.id('tenant_b'), current_setting('tap.a_cards')::jsonb, 'shared-key'
        ) AS b
    ),
    FALSE,
    'tenant B''s request with tenant A''s idempotency key and body is not answered with A''s stored answer'
);

-- The lifecycle endpoints (second stage) are held to the same wall.
SELECT throws_ok(
    format('SELECT * FROM cards.get_card(%L, %L)', test.id('tenant_b'), test.id('a1')),
    'CKNFD',
    'No such card.',
    'tenant B cannot read tenant A''s card by id'
);
SELECT throws_ok(
    format(
        $$SELECT * FROM cards.update_card(%L, %L, '*', convert_to('{"title": "pwned"}', 'UTF8'))$$,
        test.id('tenant_b'), test.id('a1')
    ),
    'CKNFD',
    'No such card.',
    'tenant B cannot update tenant A''s card'
);
SELECT throws_ok(
    format('SELECT cards.delete_card(%L, %L)', test.id('tenant_b'), test.id('a1')),
    'CKNFD',
    'No such card.',
    'tenant B cannot delete tenant A''s card'
);
SELECT throws_ok(
    format('SELECT * FROM cards.restore_card(%L, %L)', test.id('tenant_b'), test.id('a1')),
    'CKNFD',
    'No such card.',
    'tenant B cannot restore tenant A''s card'
);
SELECT throws_ok(
    format('SELECT cards.card_usage_history(%L, %L)', test.id('tenant_b'), test.id('a1')),
    'CKNFD',
    'No such card.',
    'tenant B cannot read the usage history of tenant A''s card'
);
SELECT is_empty(
    format(
        $$SELECT c FROM json_array_elements(cards.list_cards(%L) -> 'cards') AS c WHERE c ->> 'id' IN (%L, %L)$$,
        test.id('tenant_b'), test.id('a1'), test.id('a2')
    ),
    'tenant B''s listing holds none of tenant A''s cards'
);
SELECT is(
    (
        SELECT sum((b.bucket ->> 'events')::integer)
        FROM json_array_elements(cards.usage_summary(test.id('tenant_b')) -> 'buckets') AS b (bucket)
    ),
    0::bigint,
    'tenant B''s usage summary counts none of tenant A''s usage'
);

-- ---------------------------------------------------------------------------------
-- Persona: tenant B — with the maintenance scope and tenant A's id set by the caller
-- ---------------------------------------------------------------------------------

SELECT pg_temp.caller_sets_maintenance_scope();

SELECT is(
    cards.retrieve(test.id('tenant_b'), ARRAY[test.id('a1')])::jsonb -> 'missing',
    jsonb_build_array(test.id('a1')),
    'a caller-set maintenance scope does not let retrieve cross tenants'
);
SELECT is(
    current_setting('cards.scope') || '/' || current_setting('cards.tenant_id'),
    '/' || current_setting('tap.tenant_b'),
    'the endpoint function cleared the scope and set its own tenant'
);

SELECT pg_temp.caller_sets_maintenance_scope();
SELECT throws_ok(
    format($$SELECT cards.track_usage(%L, %L, 'wf', 'run-m')$$, test.id('tenant_b'), test.id('a1')),
    'CKNFD',
    'No such card.',
    'a caller-set maintenance scope does not let track_usage reach another tenant''s card'
);

SELECT pg_temp.caller_sets_maintenance_scope();
SELECT is(
    (
        SELECT b.response::jsonb -> 'cards' -> 0 ->> 'status' FROM cards.batch_create(
            test.id('tenant_b'), '[{"title": "A2", "content": 2}, {"title": "new in B", "content": 3}]'
        ) AS b
    ),
    'duplicate',
    'a caller-set maintenance scope dedupes against the calling tenant''s own cards only'
);

SELECT pg_temp.caller_sets_maintenance_scope();
SELECT is(
    (
        SELECT b.replayed FROM cards.batch_create(
            test.id('tenant_b'), '[{"title": "B only", "content": 1}]', 'a-key-only'
        ) AS b
    ),
    FALSE,
    'a caller-set maintenance scope does not expose another tenant''s idempotency keys'
);

SELECT pg_temp.caller_sets_maintenance_scope();
SELECT throws_ok(
    format('SELECT * FROM cards.get_card(%L, %L)', test.id('tenant_b'), test.id('a1')),
    'CKNFD',
    'No such card.',
    'a caller-set maintenance scope does not let get_card cross tenants'
);

SELECT pg_temp.caller_sets_maintenance_scope();
SELECT ok(
    NOT cards.authenticate_api_key(test.id('tenant_b'), sha256('ck_unknown')),
    'a caller-set maintenance scope does not make an unknown key authenticate'
);
SELECT is(
    current_setting('cards.scope'),
    '',
    'authenticate_api_key cleared the caller''s scope too'
);

SELECT set_config('cards.scope', '', TRUE);
RESET ROLE;

-- ---------------------------------------------------------------------------------
-- Persona: admin — a cross-tenant admin function earlier in the same transaction
-- ---------------------------------------------------------------------------------

SET LOCAL ROLE cards_admin;

SELECT cards.purge_expired_idempotency_keys();
SELECT is(
    current_setting('cards.scope'),
    'maintenance',
    'purge_expired_idempotency_keys leaves its transaction in maintenance scope'
);
SELECT is(
    cards.retrieve(test.id('tenant_b'), ARRAY[test.id('a1')])::jsonb -> 'missing',
    jsonb_build_array(test.id('a1')),
    'an endpoint called after it in the same transaction still cannot cross tenants'
);
SELECT cards.revoke_api_key(gen_random_uuid());
SELECT throws_ok(
    format($$SELECT cards.track_usage(%L, %L, 'wf', 'run-p')$$, test.id('tenant_b'), test.id('a1')),
    'CKNFD',
    'No such card.',
    'nor after revoke_api_key, which looks the key up across tenants'
);

RESET ROLE;

-- ---------------------------------------------------------------------------------
-- Persona: tenant A — nothing changed
-- ---------------------------------------------------------------------------------

SET LOCAL ROLE cards_gateway;

SELECT is(
    cards.retrieve(test.id('tenant_a'), ARRAY[test.id('a1')])::jsonb,
    test.doc('a1_before'),
    'tenant A''s card is exactly as before: same title, content and usage'
);
SELECT is(
    (
        SELECT b.response::text FROM cards.batch_create(
            test.id('tenant_a'), current_setting('tap.a_cards')::jsonb, 'shared-key'
        ) AS b
    ),
    current_setting('tap.a_batch'),
    'tenant A''s idempotency key still replays tenant A''s answer'
);
SELECT is(
    pg_temp.rows_of('tenant_a'),
    test.doc('a_before'),
    'tenant B wrote no card, usage event or idempotency key under tenant A'
);
SELECT is(
    pg_temp.rows_of('tenant_b'),
    '{"cards": 4, "usage": 0, "keys": 2}',
    'everything tenant B wrote is under tenant B'
);

RESET ROLE;

SELECT is_empty(
    $$
        SELECT u.card_id FROM cards.card_usage AS u
        INNER JOIN cards.cards AS c ON c.card_id = u.card_id
        WHERE c.tenant_id <> u.tenant_id
    $$,
    'no usage event is recorded under a tenant other than its card''s'
);

SELECT * FROM finish();
ROLLBACK;
