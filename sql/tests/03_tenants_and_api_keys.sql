-- Tenants and API keys: the admin functions (create_tenant, create_api_key,
-- revoke_api_key, set_tenant_active) and the key lookup the gateway authenticates with.
-- A suspended or unknown tenant is refused by every endpoint with CKFBD.
BEGIN;
SELECT plan(54);

-- Test-only helpers, rolled back with the transaction.
-- What the gateway sends for a remembered key: its SHA-256.
CREATE FUNCTION pg_temp.hash_of(p_name text) RETURNS bytea
LANGUAGE sql STABLE AS $$ SELECT sha256(convert_to(current_setting('tap.' || p_name), 'UTF8')) $$;
-- The DETAIL of the CKVAL error the statement raises (the problem's "errors").
-- The tables of schema cards holding a row whose text contains p_needle (as superuser,
-- which row-level security does not restrict).
CREATE FUNCTION pg_temp.tables_containing(p_needle text) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    v_table regclass;
BEGIN
    FOR v_table IN
        SELECT c.oid::regclass FROM pg_catalog.pg_class AS c
        WHERE c.relnamespace = 'cards'::regnamespace AND c.relkind IN ('r', 'p')
    LOOP
        RETURN QUERY EXECUTE format(
            'SELECT %L::text FROM %s AS t WHERE strpos(t::text, $1) > 0 LIMIT 1', v_table, v_table
        ) USING p_needle;
    END LOOP;
END
$$;

-- ---------------------------------------------------------------------------------
-- Persona: admin creates tenants
-- ---------------------------------------------------------------------------------

SET LOCAL ROLE cards_admin;

SELECT test.remember('tenant_a', cards.create_tenant('Tenant A')::text);
SELECT test.remember('tenant_b', cards.create_tenant('Tenant B')::text);

RESET ROLE;

SELECT is(
    (
        SELECT t.name FROM cards.tenants AS t
        WHERE t.tenant_id = test.id('tenant_a') AND t.active
    ),
    'Tenant A',
    'create_tenant stores an active tenant with its name and returns its id'
);
SELECT isnt(test.id('tenant_a'), test.id('tenant_b'), 'each tenant gets its own id');
SELECT test.remember('tenants_before', (SELECT count(*) FROM cards.tenants)::text);

SET LOCAL ROLE cards_admin;

SELECT throws_ok(
    $$SELECT cards.create_tenant('')$$,
    'CKVAL',
    'The request is invalid: 1 error(s), listed in "errors".',
    'an empty tenant name is a validation error'
);
SELECT is(
    test.error_detail($$SELECT cards.create_tenant('')$$),
    '[{"field": "name", "message": "must be 1 to 200 characters"}]',
    'the error names the field and the rule'
);
SELECT is(
    test.error_detail(format('SELECT cards.create_tenant(%L)', repeat('n', 201))),
    '[{"field": "name", "message": "must be 1 to 200 characters"}]',
    'a tenant name of 201 characters is a validation error'
);
SELECT is(
    test.error_detail('SELECT cards.create_tenant(NULL)'),
    '[{"field": "name", "message": "must be 1 to 200 characters"}]',
    'a NULL tenant name is a validation error'
);
SELECT isnt(
    cards.create_tenant(repeat('é', 200)),
    NULL,
    'a tenant name of 200 characters (multi-byte) is accepted'
);

RESET ROLE;

SELECT is(
    (SELECT count(*) FROM cards.tenants),
    test.val('tenants_before')::bigint + 1,
    'the refused names wrote no tenant; the accepted one wrote one'
);

-- ---------------------------------------------------------------------------------
-- Persona: admin issues API keys
-- ---------------------------------------------------------------------------------

SET LOCAL ROLE cards_admin;

SELECT
    test.remember('key_a1', k.api_key) AS api_key,
    test.remember('key_a1_id', k.key_id::text) AS key_id
FROM cards.create_api_key(test.id('tenant_a'), 'first key of A') AS k;
SELECT
    test.remember('key_a2', k.api_key) AS api_key,
    test.remember('key_a2_id', k.key_id::text) AS key_id
FROM cards.create_api_key(test.id('tenant_a')) AS k;
SELECT
    test.remember('key_b1', k.api_key) AS api_key,
    test.remember('key_b1_id', k.key_id::text) AS key_id
FROM cards.create_api_key(test.id('tenant_b'), 'key of B') AS k;

SELECT matches(
    test.val('key_a1'),
    '^ck_[0-9a-f]{32}_[A-Za-z0-9_-]{43}$',
    'an API key is ck_, the tenant in hex and a base64url secret'
);
SELECT is(
    substr(test.val('key_a1'), 4, 32),
    replace(test.val('tenant_a'), '-', ''),
    'the key names its tenant'
);
SELECT isnt(test.val('key_a1'), test.val('key_a2'), 'two keys of one tenant differ');
SELECT isnt(
    substr(test.val('key_a1'), 37),
    substr(test.val('key_a2'), 37),
    'two keys of one tenant have different secrets'
);

SELECT throws_ok(
    format('SELECT * FROM cards.create_api_key(%L)', gen_random_uuid()),
    'CKNFD',
    'No such tenant.',
    'a key for an unknown tenant is refused as not found'
);
SELECT throws_ok(
    'SELECT * FROM cards.create_api_key(NULL)',
    'CKNFD',
    'No such tenant.',
    'a key for a NULL tenant is refused as not found'
);
SELECT is(
    test.error_detail(
        format('SELECT * FROM cards.create_api_key(%L, %L)', test.id('tenant_a'), repeat('l', 201))
    ),
    '[{"field": "label", "message": "must be at most 200 characters"}]',
    'a key label over 200 characters is a validation error'
);

RESET ROLE;

SELECT results_eq(
    $$
        SELECT k.tenant_id, k.label, k.key_hash, k.revoked_at FROM cards.api_keys AS k
        WHERE k.key_id = current_setting('tap.key_a1_id')::uuid
    $$,
    $$
        SELECT
            current_setting('tap.tenant_a')::uuid,
            'first key of A'::text,
            sha256(convert_to(current_setting('tap.key_a1'), 'UTF8')),
            NULL::timestamptz
    $$,
    'the key is stored as its SHA-256, with its tenant and label, live'
);
SELECT is(
    (SELECT count(*) FROM cards.api_keys),
    3::bigint,
    'the refused key requests wrote nothing'
);
SELECT is_empty(
    format('SELECT * FROM pg_temp.tables_containing(%L)', test.val('key_a1')),
    'the plaintext key appears in no table'
);
SELECT is_empty(
    format('SELECT * FROM pg_temp.tables_containing(%L)', substr(test.val('key_a1'), 37)),
    'the key''s secret appears in no table'
);
SELECT is_empty(
    format(
        'SELECT * FROM pg_temp.tables_containing(%L)',
        encode(convert_to(substr(test.val('key_a1'), 37), 'UTF8'), 'hex')
    ),
    'the key''s secret appears in no table in hex form either'
);

-- ---------------------------------------------------------------------------------
-- Persona: the gateway authenticates keys
-- ---------------------------------------------------------------------------------

SET LOCAL ROLE cards_gateway;

SELECT ok(
    cards.authenticate_api_key(test.id('tenant_a'), pg_temp.hash_of('key_a1')), 'a live key authenticates its tenant'
);
SELECT ok(
    cards.authenticate_api_key(test.id('tenant_b'), pg_temp.hash_of('key_b1')), 'tenant B''s key authenticates B'
);
SELECT ok(
    NOT cards.authenticate_api_key(test.id('tenant_b'), pg_temp.hash_of('key_a1')),
    'tenant A''s key does not authenticate tenant B'
);
SELECT ok(
    NOT cards.authenticate_api_key(test.id('tenant_a'), sha256('ck_unknown')), 'an unknown key authenticates nobody'
);
SELECT ok(
    NOT cards.authenticate_api_key(test.id('tenant_a'), NULL), 'a NULL hash authenticates nobody'
);
SELECT ok(
    NOT cards.authenticate_api_key(NULL, pg_temp.hash_of('key_a1')), 'a NULL tenant is authenticated by no key'
);

RESET ROLE;

-- ---------------------------------------------------------------------------------
-- Persona: admin revokes a key
-- ---------------------------------------------------------------------------------

SET LOCAL ROLE cards_admin;

SELECT is(cards.revoke_api_key(test.id('key_a1_id')), TRUE, 'revoking a live key answers true');
SELECT is(cards.revoke_api_key(test.id('key_a1_id')), FALSE, 'revoking it again answers false');
SELECT is(cards.revoke_api_key(gen_random_uuid()), FALSE, 'revoking an unknown key answers false');
SELECT is(cards.revoke_api_key(NULL), FALSE, 'revoking a NULL key id answers false');

SET LOCAL ROLE cards_gateway;

SELECT ok(
    NOT cards.authenticate_api_key(test.id('tenant_a'), pg_temp.hash_of('key_a1')), 'a revoked key authenticates nobody'
);
SELECT ok(
    cards.authenticate_api_key(test.id('tenant_a'), pg_temp.hash_of('key_a2')), 'the tenant''s other key still works'
);
SELECT ok(
    cards.authenticate_api_key(test.id('tenant_b'), pg_temp.hash_of('key_b1')), 'another tenant''s key still works'
);

RESET ROLE;

SELECT ok(
    (
        SELECT k.revoked_at IS NOT NULL FROM cards.api_keys AS k
        WHERE k.key_id = test.id('key_a1_id')
    ),
    'the revoked key stays, for audit, with its revocation time'
);

-- ---------------------------------------------------------------------------------
-- Persona: admin suspends tenant A; the gateway's every endpoint refuses it
-- ---------------------------------------------------------------------------------

SET LOCAL ROLE cards_gateway;
SELECT test.remember('card_a', b.response -> 'cards' -> 0 ->> 'id')
FROM cards.batch_create(test.id('tenant_a'), '[{"title": "A card", "content": "a"}]') AS b;

SET LOCAL ROLE cards_admin;
SELECT is(cards.set_tenant_active(test.id('tenant_a'), FALSE), TRUE, 'suspending an existing tenant answers true');
SELECT is(cards.set_tenant_active(gen_random_uuid(), FALSE), FALSE, 'suspending an unknown tenant answers false');

SET LOCAL ROLE cards_gateway;

SELECT throws_ok(
    format($$SELECT * FROM cards.batch_create(%L, '[{"title": "t", "content": 1}]')$$, test.id('tenant_a')),
    'CKFBD',
    'The tenant is unknown or suspended.',
    'a suspended tenant cannot batch_create'
);
SELECT throws_ok(
    format(
        $$SELECT * FROM cards.batch_create_request(
            %L, convert_to('{"cards": [{"title": "t", "content": 1}]}', 'UTF8'), NULL
        )$$,
        test.id('tenant_a')
    ),
    'CKFBD',
    'The tenant is unknown or suspended.',
    'a suspended tenant cannot batch_create_request'
);
SELECT throws_ok(
    format('SELECT cards.retrieve(%L, ARRAY[%L]::uuid[])', test.id('tenant_a'), test.id('card_a')),
    'CKFBD',
    'The tenant is unknown or suspended.',
    'a suspended tenant cannot retrieve, not even its own cards'
);
SELECT throws_ok(
    format(
        $$SELECT cards.retrieve_request(%L, convert_to(format('{"ids": ["%%s"]}', %L), 'UTF8'))$$,
        test.id('tenant_a'), test.id('card_a')
    ),
    'CKFBD',
    'The tenant is unknown or suspended.',
    'a suspended tenant cannot retrieve_request'
);
SELECT throws_ok(
    format($$SELECT cards.track_usage(%L, %L, 'wf', 'run')$$, test.id('tenant_a'), test.id('card_a')),
    'CKFBD',
    'The tenant is unknown or suspended.',
    'a suspended tenant cannot track_usage'
);
SELECT throws_ok(
    format(
        $$SELECT * FROM cards.track_usage_request(%L, %L, convert_to('{"workflow_id": "wf", "run_id": "r"}', 'UTF8'))$$,
        test.id('tenant_a'), test.id('card_a')
    ),
    'CKFBD',
    'The tenant is unknown or suspended.',
    'a suspended tenant cannot track_usage_request'
);
SELECT throws_ok(
    format($$SELECT * FROM cards.batch_create_request(%L, '\xff7b', NULL)$$, test.id('tenant_a')),
    'CKFBD',
    'The tenant is unknown or suspended.',
    'a suspended tenant is refused before its request body is read (batch)'
);
SELECT throws_ok(
    format($$SELECT cards.retrieve_request(%L, convert_to('{"ids": [', 'UTF8'))$$, test.id('tenant_a')),
    'CKFBD',
    'The tenant is unknown or suspended.',
    'a suspended tenant is refused before its request body is read (retrieve)'
);
SELECT throws_ok(
    format(
        $$SELECT * FROM cards.track_usage_request(%L, %L, convert_to('not json', 'UTF8'))$$,
        test.id('tenant_a'), test.id('card_a')
    ),
    'CKFBD',
    'The tenant is unknown or suspended.',
    'a suspended tenant is refused before its request body is read (usage)'
);
SELECT is(
    (
        SELECT b.response::jsonb -> 'created' FROM cards.batch_create(
            test.id('tenant_b'), '[{"title": "t", "content": 1}]'
        ) AS b
    ),
    '1',
    'suspending tenant A does not affect tenant B'
);

SET LOCAL ROLE cards_admin;
SELECT is(cards.set_tenant_active(test.id('tenant_a'), TRUE), TRUE, 'reactivating the tenant answers true');

SET LOCAL ROLE cards_gateway;
SELECT is(
    cards.retrieve(test.id('tenant_a'), ARRAY[test.id('card_a')])::jsonb -> 'cards' -> 0 ->> 'id',
    test.val('card_a'),
    'a reactivated tenant is served again, its cards intact'
);
SELECT is(
    (
        SELECT b.response::jsonb -> 'created' FROM cards.batch_create(
            test.id('tenant_a'), '[{"title": "after", "content": 2}]'
        ) AS b
    ),
    '1',
    'a reactivated tenant can write again'
);

-- ---------------------------------------------------------------------------------
-- Persona: the gateway names a tenant that does not exist
-- ---------------------------------------------------------------------------------

SELECT throws_ok(
    format($$SELECT * FROM cards.batch_create(%L, '[{"title": "t", "content": 1}]')$$, gen_random_uuid()),
    'CKFBD',
    'The tenant is unknown or suspended.',
    'an unknown tenant cannot batch_create'
);
SELECT throws_ok(
    format('SELECT cards.retrieve(%L, ARRAY[%L]::uuid[])', gen_random_uuid(), test.id('card_a')),
    'CKFBD',
    'The tenant is unknown or suspended.',
    'an unknown tenant cannot retrieve'
);
SELECT throws_ok(
    format($$SELECT cards.track_usage(%L, %L, 'wf', 'run')$$, gen_random_uuid(), test.id('card_a')),
    'CKFBD',
    'The tenant is unknown or suspended.',
    'an unknown tenant cannot track_usage'
);
SELECT throws_ok(
    $$SELECT * FROM cards.batch_create(NULL, '[{"title": "t", "content": 1}]')$$,
    'CKFBD',
    'The tenant is unknown or suspended.',
    'a NULL tenant is an unknown tenant'
);

RESET ROLE;

SELECT is(
    (
        SELECT count(*) FROM cards.cards AS c
        WHERE c.tenant_id = test.id('tenant_a')
    ),
    2::bigint,
    'the refused requests wrote no card'
);

SELECT * FROM finish();
ROLLBACK;
