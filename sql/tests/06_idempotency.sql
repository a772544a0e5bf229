-- Idempotency keys of batch_create (API.md, "Idempotency"): scope tenant + key, kept at
-- least 24 hours. Same key and JSON-equal cards: the stored answer, byte for byte, and
-- nothing written. Same key, other cards: CKIKR. A malformed key: CKIKI. Only committed
-- successes are stored. Concurrent use of one key needs two sessions: see tests/ (pytest).
BEGIN;
SELECT plan(46);

-- Test-only helpers, rolled back with the transaction.
-- batch_create for a remembered tenant, the answer remembered under p_name as
-- {"response": <exact text>, "replayed": bool}; answers whether it was a replay.
CREATE FUNCTION pg_temp.batch(p_name text, p_tenant text, p_cards jsonb, p_key text) RETURNS boolean
LANGUAGE sql AS $$
    SELECT b.replayed
    FROM cards.batch_create(current_setting('tap.' || p_tenant)::uuid, p_cards, p_key) AS b,
        LATERAL test.remember(p_name || '.text', b.response::text) AS r1,
        LATERAL test.remember(p_name || '.ids', (
            SELECT string_agg(i.item ->> 'id', ',' ORDER BY i.ord)
            FROM json_array_elements(b.response -> 'cards') WITH ORDINALITY AS i (item, ord)
        )) AS r2
$$;
-- Stored rows, read as the superuser running the suite, whom row-level security does not
-- restrict (SECURITY DEFINER: whoever calls them).
CREATE FUNCTION pg_temp.card_count() RETURNS bigint
LANGUAGE sql SECURITY DEFINER AS $$ SELECT count(*) FROM cards.cards $$;
CREATE FUNCTION pg_temp.key_count() RETURNS bigint
LANGUAGE sql SECURITY DEFINER AS $$ SELECT count(*) FROM cards.idempotency_keys $$;
CREATE FUNCTION pg_temp.stored_key(p_tenant text, p_key text) RETURNS cards.idempotency_keys
LANGUAGE sql SECURITY DEFINER AS $$
    SELECT k FROM cards.idempotency_keys AS k
    WHERE k.tenant_id = current_setting('tap.' || p_tenant)::uuid AND k.idempotency_key = p_key
$$;

SELECT test.remember('tenant_a', cards.create_tenant('Tenant A')::text);
SELECT test.remember('tenant_b', cards.create_tenant('Tenant B')::text);
SELECT test.remember('cards_1', '[{"title": "One", "content": {"a": 1, "b": 2}}, {"title": "Two", "content": 2}]');
SELECT test.remember('cards_2', '[{"title": "Three", "content": 3}]');

-- ---------------------------------------------------------------------------------
-- Persona: tenant A, through the gateway role — replay
-- ---------------------------------------------------------------------------------

SET LOCAL ROLE cards_gateway;

SELECT is(
    pg_temp.batch('first', 'tenant_a', test.val('cards_1')::jsonb, 'order-42'),
    FALSE,
    'the first request with a key runs and is not a replay'
);
SELECT test.remember('count_after_first', pg_temp.card_count()::text);
SELECT test.remember('keys_after_first', pg_temp.key_count()::text);

SELECT is(
    pg_temp.batch('second', 'tenant_a', test.val('cards_1')::jsonb, 'order-42'),
    TRUE,
    'the same key with the same cards is a replay'
);
SELECT is(
    test.val('second.text'),
    test.val('first.text'),
    'the replay answers the first answer byte for byte'
);
SELECT is(pg_temp.card_count(), test.val('count_after_first')::bigint, 'a replay writes no card');
SELECT is(pg_temp.key_count(), test.val('keys_after_first')::bigint, 'a replay stores no second key');

SELECT results_eq(
    $$
        SELECT k.response_status, k.response_body, k.request_hash, k.expires_at - k.created_at
        FROM pg_temp.stored_key('tenant_a', 'order-42') AS k
    $$,
    $$
        VALUES (
            201::smallint,
            current_setting('tap.first.text'),
            sha256(convert_to(current_setting('tap.cards_1')::jsonb::text, 'UTF8')),
            interval '24 hours'
        )
    $$,
    'the key stores status 201, the answer as text, the fingerprint of the cards, and lives 24 hours'
);

SELECT results_eq(
    $$
        SELECT b.response::text, b.replayed, b.created, b.duplicates
        FROM cards.batch_create_request(
            current_setting('tap.tenant_a')::uuid,
            convert_to(
                E'{"cards":[ {"content": {"b":2,\n"a":1}, "title":"One"},{"title":"Two","content":2} ]}', 'UTF8'
            ),
            'order-42'
        ) AS b
    $$,
    $$ VALUES (current_setting('tap.first.text'), TRUE, NULL::integer, NULL::integer) $$,
    'a JSON-equal body (other key order and white space) through batch_create_request replays, counting nothing'
);
SELECT is(
    pg_temp.batch('quoted', 'tenant_a', test.val('cards_1')::jsonb, '"order-42"'),
    FALSE,
    'the key is taken as given: "order-42" quoted is another key (unquoting is the gateway''s job)'
);

-- ---------------------------------------------------------------------------------
-- Persona: tenant A — the key reused for other cards
-- ---------------------------------------------------------------------------------

SELECT test.remember('count_before', pg_temp.card_count()::text);

SELECT throws_ok(
    format('SELECT * FROM cards.batch_create(%L, %L, %L)', test.id('tenant_a'), test.val('cards_2'), 'order-42'),
    'CKIKR',
    'This Idempotency-Key was already used with a different request.',
    'the same key with other cards is refused as reused'
);
SELECT throws_ok(
    format(
        'SELECT * FROM cards.batch_create(%L, %L, %L)',
        test.id('tenant_a'),
        '[{"title": "Two", "content": 2}, {"title": "One", "content": {"a": 1, "b": 2}}]',
        'order-42'
    ),
    'CKIKR',
    'This Idempotency-Key was already used with a different request.',
    'the same cards in another order are another request'
);
SELECT throws_ok(
    format(
        'SELECT * FROM cards.batch_create(%L, %L, %L)',
        test.id('tenant_a'),
        '[{"title": "One", "content": {"a": 1, "b": 2}, "tags": ["x"]}, {"title": "Two", "content": 2}]',
        'order-42'
    ),
    'CKIKR',
    'This Idempotency-Key was already used with a different request.',
    'cards differing only in tags (same content hashes) are another request'
);
SELECT is(pg_temp.card_count(), test.val('count_before')::bigint, 'a refused reuse writes nothing');
SELECT is(
    (pg_temp.stored_key('tenant_a', 'order-42')).response_body,
    test.val('first.text'),
    'a refused reuse leaves the stored answer as it was'
);
SELECT is(
    pg_temp.batch('third', 'tenant_a', test.val('cards_1')::jsonb, 'order-42')
    AND test.val('third.text') = test.val('first.text'),
    TRUE,
    'the original request still replays after a refused reuse'
);

-- ---------------------------------------------------------------------------------
-- Persona: tenant A — malformed keys
-- ---------------------------------------------------------------------------------

SELECT test.remember('count_before', pg_temp.card_count()::text);
SELECT test.remember('keys_before', pg_temp.key_count()::text);

SELECT throws_ok(
    format('SELECT * FROM cards.batch_create(%L, %L, %L)', test.id('tenant_a'), test.val('cards_2'), ''),
    'CKIKI',
    'The Idempotency-Key must be 1 to 255 printable ASCII characters.',
    'an empty key is refused'
);
SELECT throws_ok(
    format(
        'SELECT * FROM cards.batch_create(%L, %L, %L)', test.id('tenant_a'), test.val('cards_2'), repeat('k', 256)
    ),
    'CKIKI',
    'The Idempotency-Key must be 1 to 255 printable ASCII characters.',
    'a key of 256 characters is refused'
);
SELECT throws_ok(
    format('SELECT * FROM cards.batch_create(%L, %L, %L)', test.id('tenant_a'), test.val('cards_2'), E'a\tb'),
    'CKIKI',
    'The Idempotency-Key must be 1 to 255 printable ASCII characters.',
    'a key with a tab is refused'
);
SELECT throws_ok(
    format('SELECT * FROM cards.batch_create(%L, %L, %L)', test.id('tenant_a'), test.val('cards_2'), E'key\n'),
    'CKIKI',
    'The Idempotency-Key must be 1 to 255 printable ASCII characters.',
    'a key with a trailing newline is refused'
);
SELECT throws_ok(
    format('SELECT * FROM cards.batch_create(%L, %L, %L)', test.id('tenant_a'), test.val('cards_2'), 'clé'),
    'CKIKI',
    'The Idempotency-Key must be 1 to 255 printable ASCII characters.',
    'a key with a non-ASCII character is refused'
);
SELECT throws_ok(
    format(
        'SELECT * FROM cards.batch_create(%L, %L, %L)',
        test.id('tenant_a'), test.val('cards_2'), 'del' || chr(127)
    ),
    'CKIKI',
    'The Idempotency-Key must be 1 to 255 printable ASCII characters.',
    'a key with DEL (0x7f) is refused'
);
SELECT throws_ok(
    format(
        $$SELECT * FROM cards.batch_create_request(%L, convert_to(%L, 'UTF8'), '')$$,
        test.id('tenant_a'), '{"cards": ' || test.val('cards_2') || '}'
    ),
    'CKIKI',
    'The Idempotency-Key must be 1 to 255 printable ASCII characters.',
    'batch_create_request refuses a malformed key too'
);
SELECT is(pg_temp.card_count(), test.val('count_before')::bigint, 'a malformed key writes no card');
SELECT is(pg_temp.key_count(), test.val('keys_before')::bigint, 'a malformed key stores nothing');

SELECT test.remember('printable', ' !"#$%&''()*+,-./09:;<=>?@AZ[\]^_`az{|}~');
SELECT is(
    pg_temp.batch('long', 'tenant_a', '[{"title": "long key", "content": 1}]', repeat('k', 255)),
    FALSE,
    'a key of 255 characters is accepted'
);
SELECT is(
    pg_temp.batch('printable', 'tenant_a', '[{"title": "printable key", "content": 1}]', test.val('printable')),
    FALSE,
    'every printable ASCII character, space included, is accepted in a key'
);
SELECT is(
    pg_temp.batch('printable_2', 'tenant_a', '[{"title": "printable key", "content": 1}]', test.val('printable')),
    TRUE,
    'and such a key replays like any other'
);

-- ---------------------------------------------------------------------------------
-- Persona: tenant A — only committed successes are stored
-- ---------------------------------------------------------------------------------

SELECT throws_ok(
    format('SELECT * FROM cards.batch_create(%L, %L, %L)', test.id('tenant_a'), '[{"title": ""}]', 'retry-me'),
    'CKVAL',
    'The request is invalid: 2 error(s), listed in "errors".',
    'a request that fails validation is refused'
);
SELECT is(
    pg_temp.stored_key('tenant_a', 'retry-me'),
    NULL,
    'a request that failed validation stores no key'
);
SELECT is(
    pg_temp.batch('retry', 'tenant_a', '[{"title": "fixed", "content": 1}]', 'retry-me'),
    FALSE,
    'so the key stays usable: a corrected request with it runs'
);

SET LOCAL ROLE cards_admin;
SELECT cards.set_tenant_active(test.id('tenant_a'), FALSE);
SET LOCAL ROLE cards_gateway;
SELECT throws_ok(
    format(
        'SELECT * FROM cards.batch_create(%L, %L, %L)',
        test.id('tenant_a'), test.val('cards_2'), 'while-suspended'
    ),
    'CKFBD',
    'The tenant is unknown or suspended.',
    'a suspended tenant''s request with a key is refused'
);
SET LOCAL ROLE cards_admin;
SELECT cards.set_tenant_active(test.id('tenant_a'), TRUE);
SET LOCAL ROLE cards_gateway;
SELECT is(
    pg_temp.stored_key('tenant_a', 'while-suspended'),
    NULL,
    'a refused (403) request stores no key'
);

-- ---------------------------------------------------------------------------------
-- Persona: tenant A — expiry
-- ---------------------------------------------------------------------------------

RESET ROLE;
-- Simulate the passing of 24 hours (the suite runs in one transaction: now() stands still).
UPDATE cards.idempotency_keys SET expires_at = now() - interval '1 second'
WHERE tenant_id = test.id('tenant_a') AND idempotency_key = 'order-42';
SET LOCAL ROLE cards_gateway;

SELECT is(
    pg_temp.batch('after_expiry', 'tenant_a', test.val('cards_2')::jsonb, 'order-42'),
    FALSE,
    'after expiry, the key runs afresh, even with other cards'
);
SELECT is(
    test.val('after_expiry.text')::jsonb - 'cards',
    '{"created": 1, "duplicates": 0}',
    'and really creates'
);
SELECT results_eq(
    $$
        SELECT k.response_body, k.request_hash, k.expires_at
        FROM pg_temp.stored_key('tenant_a', 'order-42') AS k
    $$,
    $$
        VALUES (
            current_setting('tap.after_expiry.text'),
            sha256(convert_to(current_setting('tap.cards_2')::jsonb::text, 'UTF8')),
            now() + interval '24 hours'
        )
    $$,
    'the key now holds the new answer and fingerprint, for another 24 hours'
);
SELECT is(
    pg_temp.batch('after_expiry_again', 'tenant_a', test.val('cards_2')::jsonb, 'order-42')
    AND test.val('after_expiry_again.text') = test.val('after_expiry.text'),
    TRUE,
    'and replays the new answer'
);

RESET ROLE;
UPDATE cards.idempotency_keys SET expires_at = now()
WHERE tenant_id = test.id('tenant_a') AND idempotency_key = 'order-42';
SET LOCAL ROLE cards_gateway;
SELECT is(
    pg_temp.batch('at_expiry', 'tenant_a', test.val('cards_2')::jsonb, 'order-42'),
    FALSE,
    'a key whose expiry is now has expired: the same request runs afresh'
);
SELECT is(
    test.val('at_expiry.text')::jsonb - 'cards',
    '{"created": 0, "duplicates": 1}',
    'and, run afresh, finds its card already there'
);

SELECT set_config('cards.idempotency_ttl', '1 hour', TRUE);
SELECT pg_temp.batch('short_ttl', 'tenant_a', '[{"title": "ttl", "content": 1}]', 'ttl-1h');
SELECT is(
    (pg_temp.stored_key('tenant_a', 'ttl-1h')).expires_at,
    now() + interval '24 hours',
    'cards.idempotency_ttl below 24 hours is raised to the contract''s minimum'
);
SELECT set_config('cards.idempotency_ttl', '48 hours', TRUE);
SELECT pg_temp.batch('long_ttl', 'tenant_a', '[{"title": "ttl", "content": 2}]', 'ttl-48h');
SELECT is(
    (pg_temp.stored_key('tenant_a', 'ttl-48h')).expires_at,
    now() + interval '48 hours',
    'a longer cards.idempotency_ttl is honoured'
);
SELECT set_config('cards.idempotency_ttl', '', TRUE);

-- ---------------------------------------------------------------------------------
-- Persona: tenant B — the same key as tenant A
-- ---------------------------------------------------------------------------------

SELECT pg_temp.batch('a_shared', 'tenant_a', test.val('cards_1')::jsonb, 'shared-key');

SELECT is(
    pg_temp.batch('b_shared', 'tenant_b', test.val('cards_1')::jsonb, 'shared-key'),
    FALSE,
    'tenant B''s first use of a key tenant A used, with the same cards, is not a replay'
);
SELECT ok(
    NOT string_to_array(test.val('b_shared.ids'), ',') && string_to_array(test.val('a_shared.ids'), ','),
    'tenant B gets its own cards, none of tenant A''s ids'
);
SELECT is(
    pg_temp.batch('b_other', 'tenant_b', test.val('cards_2')::jsonb, 'b-only-key'),
    FALSE,
    'tenant B uses a key of its own'
);
SELECT is(
    pg_temp.batch('a_other', 'tenant_a', '[{"title": "A only", "content": 1}]', 'b-only-key'),
    FALSE,
    'tenant A may use the same key with other cards: no reuse error across tenants'
);
SELECT is(
    pg_temp.batch('a_shared_again', 'tenant_a', test.val('cards_1')::jsonb, 'shared-key')
    AND test.val('a_shared_again.text') = test.val('a_shared.text'),
    TRUE,
    'tenant A''s key still replays tenant A''s answer'
);

RESET ROLE;

-- ---------------------------------------------------------------------------------
-- Persona: admin (a trusted job calling batch_create directly)
-- ---------------------------------------------------------------------------------

SET LOCAL ROLE cards_admin;

SELECT is(
    pg_temp.batch('admin_b', 'tenant_b', test.val('cards_1')::jsonb, 'shared-key')
    AND test.val('admin_b.text') = test.val('b_shared.text'),
    TRUE,
    'a trusted job calling batch_create directly replays the same stored answer'
);
SELECT throws_ok(
    format(
        'SELECT * FROM cards.batch_create(%L, %L, %L)', test.id('tenant_b'), test.val('cards_2'), 'shared-key'
    ),
    'CKIKR',
    'This Idempotency-Key was already used with a different request.',
    'and meets the same reuse rule'
);

RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
