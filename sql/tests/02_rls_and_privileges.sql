-- Who may do what. The owner is an ordinary role held by the row-level security of its
-- own tables; cards_gateway and cards_admin hold no privilege on any table and may
-- execute exactly the functions the contract names; PUBLIC may execute nothing.
BEGIN;
SELECT plan(41);

-- Test-only helpers, rolled back with the transaction.
-- How many rows the statement touched.
CREATE FUNCTION pg_temp.row_count(p_sql text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_count bigint;
BEGIN
    EXECUTE p_sql;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END
$$;
-- 'SQLSTATE: message' of the error the statement raises, or 'no error'.
CREATE FUNCTION pg_temp.error_of(p_sql text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_state text;
    v_message text;
BEGIN
    EXECUTE p_sql;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT;
    RETURN v_state || ': ' || v_message;
END
$$;

-- The documented surface (API.md, "SQL interface"; CONVENTIONS.md, "Trust model").
SELECT test.remember(
    'gateway_functions',
    'batch_create batch_create_request retrieve retrieve_request track_usage track_usage_request '
    || 'get_card list_cards update_card delete_card restore_card card_usage_history usage_summary '
    || 'authenticate_api_key api_key_grant take_request_tokens schema_version start_session'
    || ' session_principal end_session index_pending_search search_index_backlog'
);
SELECT test.remember(
    'admin_functions',
    current_setting('tap.gateway_functions')
    || ' create_tenant create_api_key revoke_api_key set_tenant_active purge_expired_idempotency_keys'
    || ' purge_usage_events list_api_keys set_tenant_limits audit_events purge_expired_sessions'
);

-- ---------------------------------------------------------------------------------
-- Roles
-- ---------------------------------------------------------------------------------

SELECT is(
    (
        SELECT r.rolsuper FROM pg_catalog.pg_roles AS r
        WHERE r.rolname = 'cards_owner'
    ),
    FALSE,
    'the owner cards_owner is not a superuser'
);
SELECT is(
    (
        SELECT r.rolbypassrls FROM pg_catalog.pg_roles AS r
        WHERE r.rolname = 'cards_owner'
    ),
    FALSE,
    'the owner cards_owner does not bypass row-level security'
);
SELECT is(
    (
        SELECT r.rolcanlogin FROM pg_catalog.pg_roles AS r
        WHERE r.rolname = 'cards_owner'
    ),
    FALSE,
    'the owner cards_owner cannot log in'
);
SELECT is_empty(
    $$
        SELECT r.rolname FROM pg_catalog.pg_roles AS r
        WHERE r.rolname IN ('cards_gateway', 'cards_admin') AND (r.rolsuper OR r.rolbypassrls)
    $$,
    'cards_gateway and cards_admin are neither superusers nor bypass row-level security'
);
SELECT is_empty(
    $$
        SELECT r.rolname FROM pg_catalog.pg_roles AS r
        WHERE r.rolname IN ('cards_gateway', 'cards_admin') AND pg_catalog.pg_has_role(r.oid, 'cards_owner', 'MEMBER')
    $$,
    'neither cards_gateway nor cards_admin can become the owner'
);

-- ---------------------------------------------------------------------------------
-- Tables: nobody but the owner holds any privilege
-- ---------------------------------------------------------------------------------

SELECT is_empty(
    $$
        SELECT c.relname, c.relowner::regrole::text FROM pg_catalog.pg_class AS c
        WHERE c.relnamespace = 'cards'::regnamespace AND c.relowner <> 'cards_owner'::regrole
    $$,
    'every relation in schema cards is owned by cards_owner'
);

SELECT is_empty(
    $$
        SELECT r.role, c.relname, p.privilege
        FROM pg_catalog.pg_class AS c
        CROSS JOIN (VALUES ('cards_gateway'), ('cards_admin')) AS r (role)
        CROSS JOIN
            (VALUES ('SELECT'), ('INSERT'), ('UPDATE'), ('DELETE'), ('TRUNCATE'), ('REFERENCES'), ('TRIGGER'))
            AS p (privilege)
        WHERE
            c.relnamespace = 'cards'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
            AND pg_catalog.has_table_privilege(r.role, c.oid, p.privilege)
    $$,
    'cards_gateway and cards_admin hold no table privilege of any kind on any table'
);

SELECT is_empty(
    $$
        SELECT r.role, c.relname
        FROM pg_catalog.pg_class AS c
        CROSS JOIN (VALUES ('cards_gateway'), ('cards_admin')) AS r (role)
        WHERE
            c.relnamespace = 'cards'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
            AND pg_catalog.has_any_column_privilege(r.role, c.oid, 'SELECT, INSERT, UPDATE, REFERENCES')
    $$,
    'cards_gateway and cards_admin hold no column privilege either'
);

SELECT is_empty(
    $$
        SELECT r.role, c.relname
        FROM pg_catalog.pg_class AS c
        CROSS JOIN (VALUES ('cards_gateway'), ('cards_admin')) AS r (role)
        WHERE
            c.relnamespace = 'cards'::regnamespace AND c.relkind = 'S'
            AND pg_catalog.has_sequence_privilege(r.role, c.oid, 'USAGE, SELECT, UPDATE')
    $$,
    'cards_gateway and cards_admin hold no sequence privilege'
);

SELECT is_empty(
    $$
        SELECT c.relname, a.grantee::regrole::text, a.privilege_type
        FROM pg_catalog.pg_class AS c
        CROSS JOIN LATERAL pg_catalog.aclexplode(c.relacl) AS a
        WHERE c.relnamespace = 'cards'::regnamespace AND a.grantee <> 'cards_owner'::regrole
    $$,
    'the ACL of every relation in schema cards names nobody but the owner (not PUBLIC either)'
);

SELECT is_empty(
    $$
        SELECT p.grantee, p.table_name, p.privilege_type FROM information_schema.table_privileges AS p
        WHERE p.table_schema = 'cards' AND p.grantee <> 'cards_owner'
    $$,
    'information_schema agrees: no table privilege in schema cards is granted to anyone'
);

SELECT ok(
    pg_catalog.has_schema_privilege('cards_gateway', 'cards', 'USAGE')
    AND pg_catalog.has_schema_privilege('cards_admin', 'cards', 'USAGE'),
    'cards_gateway and cards_admin may look up names in schema cards'
);

SELECT is_empty(
    $$
        SELECT r.role FROM (VALUES ('cards_gateway'), ('cards_admin')) AS r (role)
        WHERE pg_catalog.has_schema_privilege(r.role, 'cards', 'CREATE')
    $$,
    'cards_gateway and cards_admin cannot create objects in schema cards'
);

SELECT is_empty(
    $$
        SELECT a.privilege_type
        FROM pg_catalog.pg_namespace AS n
        CROSS JOIN LATERAL pg_catalog.aclexplode(n.nspacl) AS a
        WHERE n.nspname = 'cards' AND a.grantee = 0
    $$,
    'PUBLIC holds no privilege on schema cards'
);

-- ---------------------------------------------------------------------------------
-- Functions: exactly the documented ones, each pinned and owned by cards_owner
-- ---------------------------------------------------------------------------------

SELECT set_eq(
    $$
        SELECT p.proname::text FROM pg_catalog.pg_proc AS p
        WHERE
            p.pronamespace = 'cards'::regnamespace
            AND pg_catalog.has_function_privilege('cards_gateway', p.oid, 'EXECUTE')
    $$,
    string_to_array(current_setting('tap.gateway_functions'), ' '),
    'cards_gateway may execute exactly the endpoint functions, authenticate_api_key and schema_version'
);

SELECT set_eq(
    $$
        SELECT p.proname::text FROM pg_catalog.pg_proc AS p
        WHERE
            p.pronamespace = 'cards'::regnamespace
            AND pg_catalog.has_function_privilege('cards_admin', p.oid, 'EXECUTE')
    $$,
    string_to_array(current_setting('tap.admin_functions'), ' '),
    'cards_admin may execute what cards_gateway may, plus the admin and maintenance functions'
);

SELECT is_empty(
    $$
        SELECT p.oid::regprocedure::text FROM pg_catalog.pg_proc AS p
        WHERE
            p.pronamespace = 'cards'::regnamespace
            AND (p.proacl IS NULL OR EXISTS (SELECT FROM pg_catalog.aclexplode(p.proacl) AS a WHERE a.grantee = 0))
    $$,
    'PUBLIC may execute none of the cards functions (no default ACL, no PUBLIC entry)'
);

CREATE ROLE cards_tap_nobody NOLOGIN;
SELECT is_empty(
    $$
        SELECT p.oid::regprocedure::text FROM pg_catalog.pg_proc AS p
        WHERE
            p.pronamespace = 'cards'::regnamespace
            AND pg_catalog.has_function_privilege('cards_tap_nobody', p.oid, 'EXECUTE')
    $$,
    'a role granted nothing may execute no cards function'
);

SELECT ok(
    EXISTS (
        SELECT FROM pg_catalog.pg_default_acl AS d
        WHERE
            d.defaclrole = 'cards_owner'::regrole AND d.defaclnamespace = 0 AND d.defaclobjtype = 'f'
            AND NOT EXISTS (
                SELECT FROM pg_catalog.aclexplode(d.defaclacl) AS a
                WHERE a.grantee = 0
            )
    ),
    'functions cards_owner creates later are not executable by PUBLIC by default'
);

SELECT is_empty(
    $$
        SELECT p.oid::regprocedure::text FROM pg_catalog.pg_proc AS p
        WHERE p.pronamespace = 'cards'::regnamespace AND p.proowner <> 'cards_owner'::regrole
    $$,
    'every function in schema cards is owned by cards_owner'
);

SELECT is_empty(
    $$
        SELECT p.oid::regprocedure::text, p.proconfig FROM pg_catalog.pg_proc AS p
        WHERE
            p.pronamespace = 'cards'::regnamespace AND p.prosecdef
            AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY(p.proconfig), false)
    $$,
    'every SECURITY DEFINER function pins search_path = pg_catalog, pg_temp'
);

SELECT set_eq(
    $$
        SELECT p.proname::text FROM pg_catalog.pg_proc AS p
        WHERE p.pronamespace = 'cards'::regnamespace AND p.prosecdef
    $$,
    string_to_array(current_setting('tap.admin_functions'), ' '),
    'exactly the functions granted to a role run with definer rights; private helpers do not'
);

-- ---------------------------------------------------------------------------------
-- Persona: the gateway role, trying the tables and helpers directly
-- ---------------------------------------------------------------------------------

SET LOCAL ROLE cards_gateway;

SELECT matches(
    pg_temp.error_of('SELECT count(*) FROM cards.cards'),
    '^42501: permission denied for ',
    'the gateway cannot read cards.cards'
);
SELECT matches(
    pg_temp.error_of('SELECT count(*) FROM cards.api_keys'),
    '^42501: permission denied for ',
    'the gateway cannot read cards.api_keys'
);
SELECT matches(
    pg_temp.error_of($$INSERT INTO cards.tenants (name) VALUES ('intruder')$$),
    '^42501: permission denied for ',
    'the gateway cannot insert a tenant'
);
SELECT throws_ok(
    'TRUNCATE cards.cards',
    '42501',
    'permission denied for table cards',
    'the gateway cannot truncate cards.cards'
);
SELECT throws_ok(
    'SELECT cards._enter_tenant(NULL)',
    '42501',
    'permission denied for function _enter_tenant',
    'the gateway cannot call a private helper'
);
SELECT throws_ok(
    $$SELECT cards.create_tenant('gateway tenant')$$,
    '42501',
    'permission denied for function create_tenant',
    'the gateway cannot call an admin function'
);
SELECT throws_ok(
    'SELECT count(*) FROM cards_meta.schema_migrations',
    '42501',
    'permission denied for schema cards_meta',
    'the gateway cannot read the migration bookkeeping (schema_version answers for it)'
);

RESET ROLE;

-- ---------------------------------------------------------------------------------
-- Persona: the admin role, trying the tables directly
-- ---------------------------------------------------------------------------------

SET LOCAL ROLE cards_admin;

SELECT matches(
    pg_temp.error_of('SELECT count(*) FROM cards.idempotency_keys'),
    '^42501: permission denied for ',
    'the admin role cannot read cards.idempotency_keys'
);
SELECT throws_ok(
    'SELECT cards._enter_maintenance()',
    '42501',
    'permission denied for function _enter_maintenance',
    'the admin role cannot enter maintenance scope by itself'
);

-- Fixtures for the owner section: two tenants, each with a key, a card, a usage event
-- and an idempotency key (created through the functions, as the admin role).
SELECT test.remember('tenant_a', cards.create_tenant('Tenant A')::text);
SELECT test.remember('tenant_b', cards.create_tenant('Tenant B')::text);
SELECT cards.create_api_key(test.id('tenant_a'), 'key of A');
SELECT cards.create_api_key(test.id('tenant_b'), 'key of B');
SELECT test.remember('card_a', b.response -> 'cards' -> 0 ->> 'id')
FROM cards.batch_create(test.id('tenant_a'), '[{"title": "A", "content": "a", "tags": ["t"]}]', 'key-1') AS b;
SELECT test.remember('card_b', b.response -> 'cards' -> 0 ->> 'id')
FROM cards.batch_create(test.id('tenant_b'), '[{"title": "B", "content": "b", "tags": ["t"]}]', 'key-1') AS b;
SELECT cards.track_usage(test.id('tenant_a'), test.id('card_a'), 'wf', 'run-1');
SELECT cards.track_usage(test.id('tenant_b'), test.id('card_b'), 'wf', 'run-1');

RESET ROLE;

-- ---------------------------------------------------------------------------------
-- Persona: the owner itself is held by row-level security
-- ---------------------------------------------------------------------------------

-- Every row of every table, as the querying role may see it (security_invoker: the
-- view applies the caller's privileges and policies, not its creator's).
CREATE TEMPORARY VIEW tap_all_rows WITH (security_invoker = TRUE) AS
SELECT
    'tenants' AS tbl,
    t.tenant_id
FROM cards.tenants AS t
UNION ALL
SELECT
    'api_keys' AS tbl,
    k.tenant_id
FROM cards.api_keys AS k
UNION ALL
SELECT
    'cards' AS tbl,
    c.tenant_id
FROM cards.cards AS c
UNION ALL
SELECT
    'card_tags' AS tbl,
    g.tenant_id
FROM cards.card_tags AS g
UNION ALL
SELECT
    'card_search' AS tbl,
    s.tenant_id
FROM cards.card_search AS s
UNION ALL
SELECT
    'card_usage' AS tbl,
    u.tenant_id
FROM cards.card_usage AS u
UNION ALL
SELECT
    'card_usage_counters' AS tbl,
    n.tenant_id
FROM cards.card_usage_counters AS n
UNION ALL
SELECT
    'idempotency_keys' AS tbl,
    i.tenant_id
FROM cards.idempotency_keys AS i;
GRANT SELECT ON tap_all_rows TO cards_owner;

SELECT pg_catalog.set_config('cards.tenant_id', '', TRUE);
SELECT pg_catalog.set_config('cards.scope', '', TRUE);
SET LOCAL ROLE cards_owner;

SELECT is_empty(
    'SELECT * FROM tap_all_rows',
    'with no tenant set, the owner sees no row of any table'
);

SELECT pg_catalog.set_config('cards.tenant_id', test.id('tenant_a')::text, TRUE);

SELECT set_eq(
    'SELECT DISTINCT tbl, tenant_id FROM tap_all_rows',
    $$
        SELECT t.tbl, current_setting('tap.tenant_a')::uuid
        FROM unnest(ARRAY[
            'tenants', 'api_keys', 'cards', 'card_tags', 'card_search', 'card_usage', 'card_usage_counters',
            'idempotency_keys'
        ]) AS t (tbl)
    $$,
    'scoped to tenant A, the owner sees tenant A''s rows in every table and no other tenant''s'
);

SELECT throws_ok(
    format(
        $$INSERT INTO cards.cards (tenant_id, kind, title, content, content_hash)
        VALUES (%L, 'note', 'smuggled', '1', sha256('x'))$$,
        test.id('tenant_b')
    ),
    '42501',
    'new row violates row-level security policy for table "cards"',
    'scoped to tenant A, the owner cannot write a card for tenant B'
);

SELECT throws_ok(
    format($$UPDATE cards.cards SET tenant_id = %L$$, test.id('tenant_b')),
    '42501',
    'new row violates row-level security policy for table "cards"',
    'scoped to tenant A, the owner cannot move a card to tenant B'
);

SELECT is(
    pg_temp.row_count(
        format($$UPDATE cards.cards SET title = 'overwritten' WHERE tenant_id = %L$$, test.id('tenant_b'))
    ),
    0::bigint,
    'scoped to tenant A, the owner cannot update tenant B''s cards: it does not see them'
);

SELECT pg_catalog.set_config('cards.tenant_id', '', TRUE);
SELECT pg_catalog.set_config('cards.scope', 'maintenance', TRUE);

SELECT set_eq(
    'SELECT DISTINCT tbl, tenant_id FROM tap_all_rows',
    $$
        SELECT t.tbl, n.tenant_id
        FROM unnest(ARRAY['tenants', 'api_keys', 'card_usage', 'idempotency_keys', 'card_search']) AS t (tbl)
        CROSS JOIN unnest(ARRAY[current_setting('tap.tenant_a')::uuid, current_setting('tap.tenant_b')::uuid])
            AS n (tenant_id)
    $$,
    'in maintenance scope the owner sees tenants, keys, usage events, idempotency keys and the search rows '
    || 'not yet indexed (the indexer''s backlog) of every tenant, and no card, tag or counter'
);
SELECT is(
    pg_temp.row_count($$UPDATE cards.tenants SET name = 'renamed'$$),
    0::bigint,
    'in maintenance scope the owner may read tenants but not change them'
);
SELECT is(
    pg_temp.row_count($$UPDATE cards.card_search SET search = ''::tsvector$$),
    0::bigint,
    'in maintenance scope the owner may not change the search rows it sees'
);

RESET ROLE;
SELECT cards.index_pending_search(test.id('tenant_a'), 10) + cards.index_pending_search(test.id('tenant_b'), 10);
SELECT pg_catalog.set_config('cards.tenant_id', '', TRUE);
SELECT pg_catalog.set_config('cards.scope', 'maintenance', TRUE);
SET LOCAL ROLE cards_owner;
SELECT is_empty(
    $$SELECT * FROM tap_all_rows WHERE tbl = 'card_search'$$,
    'in maintenance scope the owner sees no search row once it is indexed'
);

RESET ROLE;

SELECT is(
    (
        SELECT c.title FROM cards.cards AS c
        WHERE c.card_id = test.id('card_b')
    ),
    'B',
    'tenant B''s card is untouched by everything tried under tenant A''s scope'
);

SELECT * FROM finish();
ROLLBACK;
