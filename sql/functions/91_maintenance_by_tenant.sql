-- The maintenance jobs for one tenant: the same purges as 90_maintenance.sql, limited to
-- `p_tenant_id`. On a Citus cluster the cross-tenant forms cannot run (a row lock across
-- shards is refused), while these take the tenant first and are delegated whole to its
-- worker; scripts/retention calls them there, tenant by tenant. They work on one node too.
-- The usage purge shares its rules with the cross-tenant one (_usage_retention_cutoff,
-- _purge_tenant_usage_events); the key purge is a statement of its own, because the
-- cross-tenant one takes the oldest keys of all tenants in one statement.

-- Deletes up to `p_limit` of the tenant's expired idempotency keys, oldest first; returns
-- how many. Rows locked by a running request are skipped.
CREATE OR REPLACE FUNCTION cards.purge_expired_idempotency_keys(p_tenant_id uuid, p_limit integer)
RETURNS integer
LANGUAGE plpgsql
VOLATILE
STRICT
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_deleted integer;
    v_now timestamptz := now();  -- a value: Citus plans no function in a locking subquery
BEGIN
    -- Scoped to the tenant (not _enter_tenant: a suspended tenant's keys expire too).
    PERFORM cards._scope_transaction(p_tenant_id, '');
    WITH expired AS (
        SELECT k.tenant_id, k.idempotency_key FROM cards.idempotency_keys AS k
        WHERE k.tenant_id = p_tenant_id AND k.expires_at <= v_now
        ORDER BY k.expires_at
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    )
    DELETE FROM cards.idempotency_keys AS k
    USING expired AS e
    WHERE k.tenant_id = p_tenant_id AND k.idempotency_key = e.idempotency_key;
    GET DIAGNOSTICS v_deleted = ROW_COUNT;
    RETURN v_deleted;
END
$$;
COMMENT ON FUNCTION cards.purge_expired_idempotency_keys(uuid, integer) IS
'Admin: delete up to p_limit of one tenant''s expired idempotency keys; returns the count.';
GRANT EXECUTE ON FUNCTION cards.purge_expired_idempotency_keys(uuid, integer) TO cards_admin;

-- Deletes up to `p_limit` of the tenant's usage events older than `p_older_than` (NULL:
-- the setting cards.usage_retention, else 90 days), oldest first; returns how many.
-- Usage counts do not change.
CREATE OR REPLACE FUNCTION cards.purge_usage_events(
    p_tenant_id uuid, p_older_than interval, p_limit integer
)
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_cutoff timestamptz := cards._usage_retention_cutoff(p_older_than, p_limit);
BEGIN
    PERFORM cards._scope_transaction(p_tenant_id, '');
    RETURN cards._purge_tenant_usage_events(p_tenant_id, v_cutoff, p_limit);
END
$$;
COMMENT ON FUNCTION cards.purge_usage_events(uuid, interval, integer) IS
'Admin: delete up to p_limit of one tenant''s usage events older than the retention window; returns the count.';
GRANT EXECUTE ON FUNCTION cards.purge_usage_events(uuid, interval, integer) TO cards_admin;
