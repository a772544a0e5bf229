-- Card Center sessions: a session begun for a live key is found by its hash until it
-- expires, is ended, its key is revoked or its tenant suspended; then it is gone from the
-- table. A key revoked before the session begins opens none; another tenant never finds
-- it; a JWT session (no key) needs only its tenant; the purge removes only expired ones.
BEGIN;
SELECT plan(16);

SELECT test.remember('tenant_a', cards.create_tenant('Tenant A')::text);
SELECT test.remember('tenant_b', cards.create_tenant('Tenant B')::text);
SELECT test.remember('key_a', k.api_key) FROM cards.create_api_key(test.id('tenant_a')) AS k;
SELECT test.remember('key_a2', k.api_key) FROM cards.create_api_key(test.id('tenant_a')) AS k;

-- The hash of a made-up cookie value, and of a key remembered above.
CREATE FUNCTION pg_temp.h(p_text text) RETURNS bytea
LANGUAGE sql IMMUTABLE AS $$ SELECT sha256(convert_to(p_text, 'UTF8')) $$;
CREATE FUNCTION pg_temp.key_hash(p_name text) RETURNS bytea
LANGUAGE sql STABLE AS $$ SELECT sha256(convert_to(test.val(p_name), 'UTF8')) $$;
CREATE FUNCTION pg_temp.start(p_tenant text, p_cookie text, p_key text, p_lifetime interval DEFAULT '1 hour')
RETURNS timestamptz
LANGUAGE sql AS $$
    SELECT cards.start_session(
        test.id(p_tenant), pg_temp.h(p_cookie), CASE WHEN p_key IS NOT NULL THEN pg_temp.key_hash(p_key) END,
        '{cards:read,cards:write,usage:write}', p_lifetime
    )
$$;
CREATE FUNCTION pg_temp.live(p_tenant text, p_cookie text) RETURNS boolean
LANGUAGE sql AS $$
    SELECT EXISTS (SELECT FROM cards.session_principal(test.id(p_tenant), pg_temp.h(p_cookie)))
$$;
CREATE FUNCTION pg_temp.stored(p_cookie text) RETURNS boolean
LANGUAGE sql AS $$ SELECT EXISTS (SELECT FROM cards.sessions AS s WHERE s.session_hash = pg_temp.h(p_cookie)) $$;

SELECT test.remember('expires_s1', pg_temp.start('tenant_a', 's1', 'key_a')::text);
SELECT is(
    test.val('expires_s1')::timestamptz, now() + interval '1 hour',
    'a session begun for a live key answers its expiry, the lifetime from now'
);
SELECT is(
    (SELECT to_jsonb(p) - 'expires_at' FROM cards.session_principal(test.id('tenant_a'), pg_temp.h('s1')) AS p),
    jsonb_build_object(
        'key_id', (
            SELECT k.key_id FROM cards.api_keys AS k
            WHERE k.key_hash = pg_temp.key_hash('key_a')
        ),
        'scopes', ARRAY['cards:read', 'cards:write', 'usage:write']
    ),
    'the session is found by its hash, with the key it was begun with and its scopes'
);
SELECT ok(
    (
        SELECT s.session_hash = pg_temp.h('s1') FROM cards.sessions AS s
        WHERE s.tenant_id = test.id('tenant_a')
    ),
    'only the SHA-256 of the cookie value is stored'
);
SELECT ok(NOT pg_temp.live('tenant_b', 's1'), 'another tenant does not find the session');
SELECT ok(NOT pg_temp.live('tenant_a', 'nothing'), 'an unknown hash finds nothing');

-- Revocation ends the sessions of that key only.
SELECT pg_temp.start('tenant_a', 's2', 'key_a2');
SELECT cards.revoke_api_key(k.key_id) FROM cards.api_keys AS k
WHERE k.key_hash = pg_temp.key_hash('key_a');
SELECT ok(NOT pg_temp.live('tenant_a', 's1'), 'a session whose key was revoked is not found');
SELECT ok(NOT pg_temp.stored('s1'), 'and it is ended: its row is gone');
SELECT ok(pg_temp.live('tenant_a', 's2'), 'a session of another key of the tenant goes on');
SELECT is(pg_temp.start('tenant_a', 's3', 'key_a'), NULL, 'a revoked key begins no session');
SELECT ok(NOT pg_temp.stored('s3'), 'and stores nothing');

-- Expiry.
SELECT pg_temp.start('tenant_a', 's4', 'key_a2', '-1 second');
SELECT ok(NOT pg_temp.live('tenant_a', 's4'), 'an expired session is not found');

-- Sign-out.
SELECT pg_temp.start('tenant_a', 's5', NULL);
SELECT ok(pg_temp.live('tenant_a', 's5'), 'a JWT session (no key) is found');
SELECT ok(
    cards.end_session(test.id('tenant_a'), pg_temp.h('s5')) AND NOT pg_temp.stored('s5'),
    'ending a session deletes it'
);

-- Suspension.
SELECT cards.set_tenant_active(test.id('tenant_a'), FALSE);
SELECT ok(NOT pg_temp.live('tenant_a', 's2'), 'a suspended tenant''s session is not found');
SELECT cards.set_tenant_active(test.id('tenant_a'), TRUE);
SELECT ok(NOT pg_temp.live('tenant_a', 's2'), 'and stays ended when the tenant is reactivated');

-- Purge.
SELECT pg_temp.start('tenant_b', 'b1', NULL);
SELECT pg_temp.start('tenant_b', 'b2', NULL, '-1 second');
SELECT cards.purge_expired_sessions();
SELECT ok(pg_temp.stored('b1') AND NOT pg_temp.stored('b2'), 'the purge removes expired sessions only');

SELECT * FROM finish();
ROLLBACK;
