-- The maintenance jobs for one tenant: the same purges as 90_maintenance.sql, limited to
-- `p_tenant_id`. On a Citus cluster the cross-tenant forms cannot run (a row lock across
-- shards is refused), while these take the tenant first and are delegated whole to its
-- worker; scripts/retention calls them there, tenant by tenant. They work on one node too.

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
    v_cutoff timestamptz := now() - coalesce(
        p_older_than, nullif(current_setting('cards.usage_retention', true), '')::interval, interval '90 days'
    );
    v_deleted integer;
BEGIN
    IF v_cutoff > now() - interval '1 hour' OR p_limit IS NULL OR p_limit < 1 THEN
        PERFORM cards._raise_invalid(
            '[{"field": "p_older_than", "message": "must be at least 1 hour; p_limit at least 1"}]'
        );
    END IF;
    PERFORM cards._scope_transaction(p_tenant_id, '');
    WITH expired AS (
        SELECT u.card_id, u.workflow_id, u.run_id FROM cards.card_usage AS u
        WHERE u.tenant_id = p_tenant_id AND u.recorded_at < v_cutoff
        ORDER BY u.recorded_at
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    )
    DELETE FROM cards.card_usage AS u
    USING expired AS e
    WHERE
        u.tenant_id = p_tenant_id AND u.card_id = e.card_id
        AND u.workflow_id = e.workflow_id AND u.run_id = e.run_id;
    GET DIAGNOSTICS v_deleted = ROW_COUNT;
    RETURN v_deleted;
END
$$;
COMMENT ON FUNCTION cards.purge_usage_events(uuid, interval, integer) IS
'Admin: delete up to p_limit of one tenant''s usage events older than the retention window; returns the count.';
GRANT EXECUTE ON FUNCTION cards.purge_usage_events(uuid, interval, integer) TO cards_admin;
