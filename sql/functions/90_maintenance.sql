-- Maintenance jobs (docs/OPERATIONS.md shows how to schedule them).

-- Deletes up to `p_limit` expired idempotency keys, oldest first, and returns how many.
-- Small batches keep each transaction short; call it until it returns less than the
-- limit (`make retention` does). Rows locked by a running request are skipped.
CREATE OR REPLACE FUNCTION cards.purge_expired_idempotency_keys(p_limit integer DEFAULT 10000)
RETURNS integer
LANGUAGE plpgsql
VOLATILE
STRICT
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_deleted integer;
BEGIN
    PERFORM cards._enter_maintenance();
    WITH expired AS (
        SELECT k.tenant_id, k.idempotency_key FROM cards.idempotency_keys AS k
        WHERE k.expires_at <= now()
        ORDER BY k.expires_at
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    )
    DELETE FROM cards.idempotency_keys AS k
    USING expired AS e
    WHERE k.tenant_id = e.tenant_id AND k.idempotency_key = e.idempotency_key;
    GET DIAGNOSTICS v_deleted = ROW_COUNT;
    RETURN v_deleted;
END
$$;
COMMENT ON FUNCTION cards.purge_expired_idempotency_keys(integer) IS
'Admin: delete up to p_limit expired idempotency keys; returns the count.';
GRANT EXECUTE ON FUNCTION cards.purge_expired_idempotency_keys(integer) TO cards_admin;

-- The cutoff of a usage purge: `p_older_than` ago (NULL: the setting
-- cards.usage_retention, else 90 days). CKVAL unless that is at least 1 hour and `p_limit`
-- at least 1.
CREATE OR REPLACE FUNCTION cards._usage_retention_cutoff(p_older_than interval, p_limit integer)
RETURNS timestamptz
LANGUAGE plpgsql
STABLE
AS $$
DECLARE
    v_cutoff timestamptz := now() - coalesce(
        p_older_than, nullif(current_setting('cards.usage_retention', true), '')::interval, interval '90 days'
    );
BEGIN
    IF v_cutoff > now() - interval '1 hour' OR p_limit IS NULL OR p_limit < 1 THEN
        PERFORM cards._raise_invalid(
            '[{"field": "p_older_than", "message": "must be at least 1 hour; p_limit at least 1"}]'
        );
    END IF;
    RETURN v_cutoff;
END
$$;

-- Deletes up to `p_limit` of one tenant's usage events recorded before `p_cutoff`, oldest
-- first, and returns how many. Rows locked by a running request are skipped. The caller
-- scopes the transaction (to the tenant, or to maintenance).
CREATE OR REPLACE FUNCTION cards._purge_tenant_usage_events(p_tenant_id uuid, p_cutoff timestamptz, p_limit integer)
RETURNS integer
LANGUAGE plpgsql
VOLATILE
AS $$
DECLARE
    v_deleted integer;
BEGIN
    WITH expired AS (
        SELECT u.card_id, u.workflow_id, u.run_id FROM cards.card_usage AS u
        WHERE u.tenant_id = p_tenant_id AND u.recorded_at < p_cutoff
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

-- Deletes up to `p_limit` usage events older than `p_older_than` (default: the setting
-- cards.usage_retention, else 90 days), oldest first, tenant by tenant, and returns how
-- many. Usage counts are kept apart and do not change. A report repeated after its
-- event is gone counts again: the dedupe window is the retention window.
CREATE OR REPLACE FUNCTION cards.purge_usage_events(
    p_older_than interval DEFAULT NULL, p_limit integer DEFAULT 10000
)
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_cutoff timestamptz := cards._usage_retention_cutoff(p_older_than, p_limit);
    v_tenant_id uuid;
    v_total integer := 0;
BEGIN
    PERFORM cards._enter_maintenance();
    FOR v_tenant_id IN SELECT t.tenant_id FROM cards.tenants AS t ORDER BY t.tenant_id LOOP
        EXIT WHEN v_total >= p_limit;
        v_total := v_total + cards._purge_tenant_usage_events(v_tenant_id, v_cutoff, p_limit - v_total);
    END LOOP;
    RETURN v_total;
END
$$;
COMMENT ON FUNCTION cards.purge_usage_events(interval, integer) IS
'Admin: delete up to p_limit usage events older than the retention window; returns the count.';
GRANT EXECUTE ON FUNCTION cards.purge_usage_events(interval, integer) TO cards_admin;
