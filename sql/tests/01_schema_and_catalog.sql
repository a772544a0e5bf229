-- The shape of schema `cards`, proven from the catalogs: every table is tenant-scoped,
-- row-level secured (enabled and forced) and documented; every key leads with tenant_id;
-- no foreign key can join two tenants; functions declare a volatility that fits them.
-- Privileges and roles are in 02_rls_and_privileges.sql.
BEGIN;
SELECT plan(22);

-- ---------------------------------------------------------------------------------
-- Inventory
-- ---------------------------------------------------------------------------------

SELECT tables_are(
    'cards',
    ARRAY[
        'tenants', 'api_keys', 'cards', 'card_tags', 'card_search', 'card_usage', 'card_usage_counters',
        'idempotency_keys', 'rate_limits', 'tenant_card_counts', 'audit_log', 'sessions'
    ],
    'schema cards holds exactly the twelve tables of the design'
);

SELECT is_empty(
    $$
        SELECT c.relname, c.relkind FROM pg_catalog.pg_class AS c
        WHERE c.relnamespace = 'cards'::regnamespace AND c.relkind IN ('v', 'm', 'f', 'S')
    $$,
    'schema cards holds no views, foreign tables or sequences that could bypass its tables'' policies'
);

SELECT set_eq(
    $$
        SELECT p.proname::text FROM pg_catalog.pg_proc AS p
        WHERE p.pronamespace = 'cards'::regnamespace AND p.proname !~ '^_'
    $$,
    ARRAY[
        'batch_create', 'batch_create_request', 'retrieve', 'retrieve_request', 'track_usage',
        'track_usage_request', 'get_card', 'list_cards', 'update_card', 'delete_card', 'restore_card',
        'card_usage_history', 'usage_summary', 'authenticate_api_key', 'schema_version',
        'create_tenant', 'create_api_key', 'revoke_api_key', 'set_tenant_active',
        'purge_expired_idempotency_keys', 'purge_usage_events',
        'index_pending_search', 'search_index_backlog',
        'list_api_keys', 'set_tenant_limits', 'audit_events', 'api_key_grant', 'take_request_tokens',
        'start_session', 'session_principal', 'end_session', 'purge_expired_sessions',
        'current_tenant_id', 'in_maintenance_scope', 'search_vector', 'card_rendering'
    ],
    'the functions of schema cards without a leading _ are the documented ones, the two policy '
    || 'helpers, the full-text expression and the stored rendering''s'
);

SELECT is(
    cards.schema_version(),
    (SELECT max(m.version) FROM cards_meta.schema_migrations AS m),
    'schema_version() answers the highest applied migration'
);

-- ---------------------------------------------------------------------------------
-- Row-level security
-- ---------------------------------------------------------------------------------

SELECT is_empty(
    $$
        SELECT c.relname FROM pg_catalog.pg_class AS c
        WHERE c.relnamespace = 'cards'::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relrowsecurity
    $$,
    'every table in schema cards has row-level security enabled'
);

SELECT is_empty(
    $$
        SELECT c.relname FROM pg_catalog.pg_class AS c
        WHERE c.relnamespace = 'cards'::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relforcerowsecurity
    $$,
    'every table in schema cards forces row-level security, on its owner too'
);

SELECT is_empty(
    $$
        SELECT c.relname FROM pg_catalog.pg_class AS c
        WHERE
            c.relnamespace = 'cards'::regnamespace AND c.relkind IN ('r', 'p') AND c.relname <> 'audit_log'
            AND NOT EXISTS (
                SELECT FROM pg_catalog.pg_policies AS p
                WHERE
                    p.schemaname = 'cards' AND p.tablename = c.relname
                    AND p.policyname = c.relname || '_tenant_isolation'
                    AND p.cmd = 'ALL' AND p.permissive = 'PERMISSIVE'
                    AND p.qual = '(tenant_id = cards.current_tenant_id())'
                    AND p.with_check = '(tenant_id = cards.current_tenant_id())'
            )
    $$,
    'every table has a <table>_tenant_isolation policy admitting only the transaction''s tenant'
);
-- The audit log is the exception: its isolation policy reads, and a second one appends.
SELECT set_eq(
    $$
        SELECT p.policyname::text, p.cmd, p.qual, p.with_check FROM pg_catalog.pg_policies AS p
        WHERE p.schemaname = 'cards' AND p.tablename = 'audit_log'
    $$,
    $$
        VALUES
        ('audit_log_tenant_isolation', 'SELECT', '(tenant_id = cards.current_tenant_id())', NULL),
        ('audit_log_append', 'INSERT', NULL, '((tenant_id = cards.current_tenant_id()) OR cards.in_maintenance_scope())')
    $$,
    'the audit log admits only reading and appending rows of the transaction''s tenant, for its owner too'
);

SELECT set_eq(
    $$
        SELECT p.tablename::text, p.policyname::text, p.cmd, p.qual FROM pg_catalog.pg_policies AS p
        WHERE p.schemaname = 'cards' AND p.policyname NOT LIKE '%\_tenant\_isolation' AND p.tablename <> 'audit_log'
    $$,
    $$
        VALUES
        ('api_keys', 'api_keys_maintenance', 'ALL', 'cards.in_maintenance_scope()'),
        ('idempotency_keys', 'idempotency_keys_maintenance', 'ALL', 'cards.in_maintenance_scope()'),
        ('card_usage', 'card_usage_maintenance', 'ALL', 'cards.in_maintenance_scope()'),
        ('sessions', 'sessions_maintenance', 'ALL', 'cards.in_maintenance_scope()'),
        ('tenants', 'tenants_maintenance', 'SELECT', 'cards.in_maintenance_scope()'),
        (
            'card_search', 'card_search_pending_maintenance', 'SELECT',
            '(cards.in_maintenance_scope() AND (search IS NULL))'
        )
    $$,
    'the maintenance scope is admitted only where a cross-tenant admin function needs it '
    || '(keys, idempotency keys, usage events, sessions; tenants read-only; search rows not yet indexed, read-only)'
);

-- ---------------------------------------------------------------------------------
-- Keys: everything unique leads with tenant_id, no foreign key crosses tenants
-- ---------------------------------------------------------------------------------

SELECT is_empty(
    $$
        SELECT c.relname FROM pg_catalog.pg_class AS c
        WHERE
            c.relnamespace = 'cards'::regnamespace AND c.relkind IN ('r', 'p')
            AND NOT EXISTS (
                SELECT FROM pg_catalog.pg_attribute AS a
                WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND a.attnotnull AND NOT a.attisdropped
            )
    $$,
    'every table has a NOT NULL tenant_id column'
);

SELECT is_empty(
    $$
        SELECT c.relname FROM pg_catalog.pg_class AS c
        WHERE
            c.relnamespace = 'cards'::regnamespace AND c.relkind IN ('r', 'p')
            AND NOT EXISTS (SELECT FROM pg_catalog.pg_index AS i WHERE i.indrelid = c.oid AND i.indisprimary)
    $$,
    'every table has a primary key'
);

SELECT is_empty(
    $$
        SELECT i.indexrelid::regclass::text FROM pg_catalog.pg_index AS i
        INNER JOIN pg_catalog.pg_class AS c ON c.oid = i.indrelid
        WHERE
            c.relnamespace = 'cards'::regnamespace AND i.indisunique
            AND pg_catalog.pg_get_indexdef(i.indexrelid, 1, true) <> 'tenant_id'
    $$,
    'every unique index, primary keys included, leads with tenant_id'
);

SELECT is(
    pg_catalog.pg_get_indexdef('cards.cards_live_content_hash'::regclass),
    'CREATE UNIQUE INDEX cards_live_content_hash ON cards.cards USING btree (tenant_id, content_hash) '
    || 'WHERE (deleted_at IS NULL)',
    'content dedupe is enforced by a unique index on (tenant_id, content_hash) over live cards only'
);

SELECT is_empty(
    $$
        SELECT k.conrelid::regclass::text, k.conname FROM pg_catalog.pg_constraint AS k
        WHERE
            k.connamespace = 'cards'::regnamespace AND k.contype = 'f'
            AND (
                (
                    SELECT a.attname FROM pg_catalog.pg_attribute AS a
                    WHERE a.attrelid = k.conrelid AND a.attnum = k.conkey[1]
                ) IS DISTINCT FROM 'tenant_id'
                OR (
                    SELECT a.attname FROM pg_catalog.pg_attribute AS a
                    WHERE a.attrelid = k.confrelid AND a.attnum = k.confkey[1]
                ) IS DISTINCT FROM 'tenant_id'
            )
    $$,
    'no foreign key crosses tenants: each one pairs tenant_id with tenant_id first'
);

SELECT fk_ok(
    'cards', 'card_usage', ARRAY['tenant_id', 'card_id'], 'cards', 'cards', ARRAY['tenant_id', 'card_id'],
    'a usage event belongs to a card of its own tenant'
);

SELECT fk_ok(
    'cards', 'card_usage_counters', ARRAY['tenant_id', 'card_id'], 'cards', 'cards', ARRAY['tenant_id', 'card_id'],
    'a usage counter belongs to a card of its own tenant'
);

-- ---------------------------------------------------------------------------------
-- Documentation and function declarations
-- ---------------------------------------------------------------------------------

SELECT is_empty(
    $$
        SELECT c.relname FROM pg_catalog.pg_class AS c
        WHERE
            c.relnamespace = 'cards'::regnamespace AND c.relkind IN ('r', 'p')
            AND coalesce(pg_catalog.obj_description(c.oid, 'pg_class'), '') = ''
    $$,
    'every table has a comment'
);

SELECT is_empty(
    $$
        SELECT p.oid::regprocedure::text FROM pg_catalog.pg_proc AS p
        WHERE
            p.pronamespace = 'cards'::regnamespace AND p.prosecdef
            AND coalesce(pg_catalog.obj_description(p.oid, 'pg_proc'), '') = ''
    $$,
    'every function a caller can reach (SECURITY DEFINER) has a comment'
);

SELECT is_empty(
    $$
        SELECT p.oid::regprocedure::text FROM pg_catalog.pg_proc AS p
        WHERE
            p.pronamespace = 'cards'::regnamespace AND p.provolatile <> 'v'
            AND p.prosrc ~* '\m(insert\s+into|update\s+cards\.|delete\s+from|set_config)\M'
    $$,
    'no STABLE or IMMUTABLE function writes a table or sets a setting'
);

SELECT is_empty(
    $$
        SELECT p.oid::regprocedure::text FROM pg_catalog.pg_proc AS p
        WHERE
            p.pronamespace = 'cards'::regnamespace AND p.provolatile = 'i'
            AND p.prosrc ~ '\mcards\.(tenants|api_keys|cards|card_tags|card_search|card_usage|card_usage_counters|idempotency_keys)\M'
    $$,
    'no IMMUTABLE function reads a table'
);

SELECT is_empty(
    $$
        SELECT p.oid::regprocedure::text FROM pg_catalog.pg_proc AS p
        WHERE
            p.pronamespace = 'cards'::regnamespace AND p.proparallel = 's' AND p.provolatile = 'v'
    $$,
    'no VOLATILE function claims to be PARALLEL SAFE'
);

-- Lost by a restore into a new cluster or pg_upgrade; see sql/schema/0004.
SELECT results_eq(
    $$
        SELECT p.proname::text COLLATE "default" FROM pg_catalog.pg_proc AS p
        WHERE p.oid IN (
            'pg_catalog.arraycontains(anyarray, anyarray)'::regprocedure,
            'pg_catalog.jsonb_contains(jsonb, jsonb)'::regprocedure,
            'pg_catalog.ts_match_vq(tsvector, tsquery)'::regprocedure
        ) AND p.proleakproof
        ORDER BY 1
    $$,
    $$ VALUES ('arraycontains'), ('jsonb_contains'), ('ts_match_vq') $$,
    'the operators of the contains and q filters (and tags @>) are LEAKPROOF: their GIN indexes serve them under RLS'
);

SELECT * FROM finish();
ROLLBACK;
