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
