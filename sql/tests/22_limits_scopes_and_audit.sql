-- Hardening in SQL: keys carry scopes and an expiry, a tenant's rate limit is one shared
-- budget (take_request_tokens), a card quota refuses what would pass it and counts only
-- live, new cards, and every admin change is in an append-only audit log.
BEGIN;
SELECT plan(36);

CREATE FUNCTION pg_temp.key_hash(p_name text) RETURNS bytea
LANGUAGE sql STABLE AS $$ SELECT sha256(convert_to(current_setting('tap.' || p_name), 'UTF8')) $$;

-- ---------------------------------------------------------------------------------
-- Persona: admin issues keys
-- ---------------------------------------------------------------------------------

SET LOCAL ROLE cards_admin;

SELECT test.remember('tenant', cards.create_tenant('Limits')::text);
SELECT test.remember('other', cards.create_tenant('Other')::text);
SELECT test.remember('full_key', (SELECT k.api_key FROM cards.create_api_key(test.id('tenant'), 'full') AS k));
SELECT test.remember('reader', (
    SELECT k.api_key FROM cards.create_api_key(test.id('tenant'), 'reader', '{cards:read}') AS k
));
SELECT test.remember('soon', (
    SELECT k.api_key FROM cards.create_api_key(
        test.id('tenant'), 'soon', '{usage:write}', now() + interval '1 hour'
    ) AS k
));

SELECT is(
    (
        SELECT k.scopes FROM cards.list_api_keys(test.id('tenant')) AS k
        WHERE k.label = 'full'
    ),
    '{cards:read,cards:write,usage:write}'::text[],
    'a key grants cards:read, cards:write and usage:write unless told otherwise'
);
SELECT is(
    (
        SELECT k.expires_at FROM cards.list_api_keys(test.id('tenant')) AS k
        WHERE k.label = 'soon'
    ),
    now() + interval '1 hour',
    'a key may be given an expiry'
);
SELECT is(
    (SELECT array_agg(a) FROM
        unnest((
            SELECT p.proargnames FROM pg_catalog.pg_proc AS p
            WHERE p.oid = 'cards.list_api_keys(uuid)'::regprocedure
        )) AS a
    WHERE a IN ('api_key', 'key_hash')),
    NULL,
    'list_api_keys never answers a key or its hash'
);
SELECT is(
    test.error_detail(format($$SELECT cards.create_api_key(%L, 'x', '{cards:admin}')$$, test.id('tenant'))),
    '[{"field": "scopes", "message": "must be one or more of cards:read, cards:write, usage:write"}]',
    'an unknown scope is a validation error'
);
SELECT is(
    test.error_detail(format($$SELECT cards.create_api_key(%L, 'x', '{}')$$, test.id('tenant'))),
    '[{"field": "scopes", "message": "must be one or more of cards:read, cards:write, usage:write"}]',
    'a key with no scope is a validation error'
);
SELECT is(
    test.error_detail(format(
        $$SELECT cards.create_api_key(%L, 'x', '{cards:read}', now() - interval '1 second')$$, test.id('tenant')
    )),
    '[{"field": "expires_at", "message": "must be in the future"}]',
    'a key cannot be issued already expired'
);
SELECT throws_ok(
    $$SELECT cards.list_api_keys(gen_random_uuid())$$,
    'CKNFD',
    'No such tenant.',
    'list_api_keys of an unknown tenant is CKNFD'
);

RESET ROLE;

-- ---------------------------------------------------------------------------------
-- Persona: gateway authenticates
-- ---------------------------------------------------------------------------------

SET LOCAL ROLE cards_gateway;

SELECT is(
    (SELECT g.scopes FROM cards.api_key_grant(test.id('tenant'), pg_temp.key_hash('reader')) AS g),
    '{cards:read}'::text[],
    'api_key_grant answers the key''s scopes'
);
SELECT is(
    (SELECT count(*)::integer FROM cards.api_key_grant(test.id('other'), pg_temp.key_hash('reader'))),
    0,
    'api_key_grant finds a key only under the tenant it names'
);
RESET ROLE;
SELECT isnt(
    (
        SELECT k.last_used_at FROM cards.api_keys AS k
        WHERE k.label = 'reader'
    ),
    NULL,
    'a key granted is marked used'
);
-- The key expires (as the superuser, who may move time for a row).
UPDATE cards.api_keys SET expires_at = now() - interval '1 second'
WHERE label = 'soon';
SET LOCAL ROLE cards_gateway;
SELECT cmp_ok(
    (SELECT g.expires_at FROM cards.api_key_grant(test.id('tenant'), pg_temp.key_hash('soon')) AS g),
    '<',
    now(),
    'an expired key is answered with its expiry, so the gateway can say it expired'
);
SELECT is(
    cards.authenticate_api_key(test.id('tenant'), pg_temp.key_hash('soon')),
    FALSE,
    'authenticate_api_key refuses an expired key'
);
RESET ROLE;

-- ---------------------------------------------------------------------------------
-- Rate limit: one budget per tenant, whoever takes from it
-- ---------------------------------------------------------------------------------

SET LOCAL ROLE cards_gateway;

SELECT is(
    (SELECT row(t.granted, t.remaining) FROM cards.take_request_tokens(test.id('tenant'), 3, 10, 5) AS t),
    row(3, 2),
    'a rested tenant is granted what it asks, up to its burst'
);
SELECT is(
    (SELECT row(t.granted, t.remaining) FROM cards.take_request_tokens(test.id('tenant'), 3, 10, 5) AS t),
    row(2, 0),
    'the rest of the burst is granted, and no more'
);
SELECT is(
    (SELECT t.granted FROM cards.take_request_tokens(test.id('tenant'), 1, 10, 5) AS t),
    0,
    'a spent budget grants nothing'
);
SELECT cmp_ok(
    (SELECT t.retry_after_s FROM cards.take_request_tokens(test.id('tenant'), 1, 10, 5) AS t),
    '<=',
    0.1::double precision,
    'a refusal says how long until one request fits (1/rate at most)'
);
SELECT is(
    (SELECT row(t.granted, t.burst) FROM cards.take_request_tokens(test.id('other'), 50, 10, 5) AS t),
    row(5, 5),
    'another tenant''s budget is its own'
);
SELECT throws_ok(
    format($$SELECT cards.take_request_tokens(%L, 1, 10, 5)$$, gen_random_uuid()),
    'CKFBD',
    'The tenant is unknown or suspended.',
    'an unknown tenant has no budget'
);
RESET ROLE;

SET LOCAL ROLE cards_admin;
SELECT cards.set_tenant_limits(test.id('other'), 1000, 100);
RESET ROLE;
SET LOCAL ROLE cards_gateway;
SELECT is(
    (
        SELECT row(t.requests_per_second, t.burst)
        FROM cards.take_request_tokens(test.id('other'), 1, 10, 5) AS t
    ),
    row(1000::numeric, 100),
    'a tenant''s own limits override the defaults the gateway passes'
);
RESET ROLE;

-- ---------------------------------------------------------------------------------
-- Quotas: live cards, new ones only
-- ---------------------------------------------------------------------------------

SET LOCAL ROLE cards_admin;

SELECT test.remember('card_a', (
    cards.batch_create(test.id('tenant'), '[{"title": "a", "content": 1}, {"title": "b", "content": 1}]')
).response::jsonb #>> '{cards,0,id}');
SELECT cards.set_tenant_limits(test.id('tenant'), NULL, NULL, 3);
SELECT throws_ok(
    format(
        $$SELECT cards.batch_create(%L, '[{"title": "c", "content": 1}, {"title": "d", "content": 1}]')$$,
        test.id('tenant')
    ),
    'CKQTA',
    'This would make 4 live cards; the tenant''s quota is 3.',
    'a batch that would pass the quota is refused'
);
SELECT is(
    (SELECT count(*)::integer FROM cards.list_cards(test.id('tenant')) AS l, json_array_elements(l -> 'cards')),
    2,
    'and writes nothing'
);
SELECT lives_ok(
    format(
        $$SELECT cards.batch_create(%L, '[{"title": "a", "content": 1}, {"title": "c", "content": 1}]')$$,
        test.id('tenant')
    ),
    'duplicates of existing cards do not count against the quota'
);
SELECT throws_ok(
    format($$SELECT cards.batch_create(%L, '[{"title": "d", "content": 1}]')$$, test.id('tenant')),
    'CKQTA',
    NULL,
    'a full quota refuses one more card'
);
SELECT lives_ok(
    format(
        $$SELECT cards.delete_card(%L, %L)$$, test.id('tenant'), test.val('card_a')
    ),
    'a deleted card frees its place'
);
SELECT lives_ok(
    format($$SELECT cards.batch_create(%L, '[{"title": "d", "content": 1}]')$$, test.id('tenant')),
    'so a new card fits again'
);
SELECT throws_ok(
    format(
        $$SELECT cards.restore_card(%L, %L)$$, test.id('tenant'), test.val('card_a')
    ),
    'CKQTA',
    NULL,
    'restoring a card counts against the quota too'
);
SELECT cards.set_tenant_limits(test.id('tenant'));
SELECT lives_ok(
    format($$SELECT cards.batch_create(%L, '[{"title": "e", "content": 1}]')$$, test.id('tenant')),
    'without a quota there is no limit'
);
SELECT is(
    test.error_detail(format($$SELECT cards.set_tenant_limits(%L, 0, 0, -1)$$, test.id('tenant'))),
    '[{"field": "requests_per_second", "message": "must be above 0 and at most 1000000"},
      {"field": "burst", "message": "must be 1 to 10000000"}, {"field": "max_cards", "message": "must be 0 or more"}]',
    'set_tenant_limits names every bad value'
);
SELECT throws_ok(
    $$SELECT cards.set_tenant_limits(gen_random_uuid(), 5)$$,
    'CKNFD',
    'No such tenant.',
    'set_tenant_limits of an unknown tenant is CKNFD'
);

-- ---------------------------------------------------------------------------------
-- Audit: who, what, when; append-only
-- ---------------------------------------------------------------------------------

SELECT cards.set_tenant_active(test.id('tenant'), FALSE);
SELECT cards.revoke_api_key((
    SELECT k.key_id FROM cards.list_api_keys(test.id('tenant')) AS k
    WHERE k.label = 'full'
));

SELECT is(
    (SELECT array_agg(a.action ORDER BY a.at) FROM cards.audit_events(test.id('tenant')) AS a),
    ARRAY[
        'create_tenant', 'create_api_key', 'create_api_key', 'create_api_key', 'set_tenant_limits',
        'set_tenant_limits', 'set_tenant_active', 'revoke_api_key'
    ],
    'every admin change of the tenant is in its audit log, in order'
);
SELECT is(
    (SELECT DISTINCT a.actor FROM cards.audit_events(test.id('tenant')) AS a),
    session_user::text,
    'the actor is the role that logged in, not the function''s owner'
);
SELECT is(
    (
        SELECT a.detail FROM cards.audit_events(test.id('tenant')) AS a
        WHERE a.action = 'set_tenant_active'
    ),
    '{"active": false}'::jsonb,
    'an event says what changed'
);
SELECT is(
    (SELECT count(*)::integer FROM cards.audit_events(test.id('other'))),
    2,
    'a tenant''s log holds only its own events'
);
RESET ROLE;

SET LOCAL ROLE cards_owner;
SELECT set_config('cards.tenant_id', test.val('tenant'), TRUE);
UPDATE cards.audit_log SET action = 'forged';
DELETE FROM cards.audit_log;
SELECT is(
    (
        SELECT count(*)::integer FROM cards.audit_log
        WHERE action <> 'forged'
    ),
    8,
    'not even the owner can change or delete an audit event'
);
SELECT throws_ok(
    'TRUNCATE cards.audit_log',
    '42501',
    NULL,
    'nor truncate the log'
);
RESET ROLE;

SELECT is(
    has_function_privilege('cards_gateway', 'cards.audit_events(uuid, integer)', 'EXECUTE'),
    FALSE,
    'the gateway cannot read the audit log'
);

SELECT * FROM finish();
ROLLBACK;
