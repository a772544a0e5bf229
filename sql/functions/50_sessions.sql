-- Card Center sessions: begin one for a credential the gateway has verified, find the live
-- session a cookie names, end one, purge expired ones. A session lives until it expires,
-- is signed out, or its API key is revoked or its tenant suspended, whichever is first.

-- Begins a session for the tenant, signed in with the API key of this SHA-256 (NULL for a
-- JWT), and answers when it expires (never after the key does); NULL when the key is not a
-- live key of the tenant (it was revoked since the gateway checked it). A suspended or
-- unknown tenant is CKFBD.
CREATE OR REPLACE FUNCTION cards.start_session(
    p_tenant_id uuid, p_session_hash bytea, p_key_hash bytea, p_scopes text[], p_lifetime interval
)
RETURNS timestamptz
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_key_id uuid;
    v_expires_at timestamptz := now() + p_lifetime;
BEGIN
    PERFORM cards._enter_tenant(p_tenant_id);
    IF p_key_hash IS NOT NULL THEN
        SELECT k.key_id, least(v_expires_at, k.expires_at) INTO v_key_id, v_expires_at FROM cards.api_keys AS k
        WHERE
            k.tenant_id = p_tenant_id AND k.key_hash = p_key_hash AND cards._key_is_live(k.revoked_at, k.expires_at);
        IF NOT FOUND THEN
            RETURN NULL;
        END IF;
    END IF;
    INSERT INTO cards.sessions (tenant_id, session_hash, key_id, scopes, expires_at)
    VALUES (p_tenant_id, p_session_hash, v_key_id, p_scopes, v_expires_at);
    RETURN v_expires_at;
END
$$;
COMMENT ON FUNCTION cards.start_session(uuid, bytea, bytea, text[], interval) IS
'Gateway: begin a Card Center session for a verified credential; NULL if its key is no longer live.';
GRANT EXECUTE ON FUNCTION cards.start_session(uuid, bytea, bytea, text[], interval) TO cards_gateway, cards_admin;

-- The live session of this SHA-256: its key, scopes and expiry, or no row. A session that
-- expired, whose key was revoked or whose tenant is suspended is ended (deleted) here, so
-- that it stays ended even if the tenant is reactivated.
CREATE OR REPLACE FUNCTION cards.session_principal(p_tenant_id uuid, p_session_hash bytea)
RETURNS TABLE (key_id uuid, scopes text[], expires_at timestamptz)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_session cards.sessions;
BEGIN
    PERFORM cards._scope_transaction(p_tenant_id, '');
    SELECT s.* INTO v_session FROM cards.sessions AS s
    WHERE s.tenant_id = p_tenant_id AND s.session_hash = p_session_hash;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF
        v_session.expires_at <= now()
        OR NOT EXISTS (SELECT FROM cards.tenants AS t WHERE t.tenant_id = p_tenant_id AND t.active)
        OR (v_session.key_id IS NOT NULL AND NOT EXISTS (
            SELECT FROM cards.api_keys AS k
            WHERE
                k.tenant_id = p_tenant_id AND k.key_id = v_session.key_id AND cards._key_is_live(k.revoked_at, k.expires_at)
        ))
    THEN
        DELETE FROM cards.sessions AS s WHERE s.tenant_id = p_tenant_id AND s.session_hash = p_session_hash;
        RETURN;
    END IF;
    RETURN QUERY SELECT v_session.key_id, v_session.scopes, v_session.expires_at;
END
$$;
COMMENT ON FUNCTION cards.session_principal(uuid, bytea) IS
'Gateway: the live Card Center session of this hash (key, scopes, expiry), or no row.';
GRANT EXECUTE ON FUNCTION cards.session_principal(uuid, bytea) TO cards_gateway, cards_admin;

-- Ends (deletes) the session of this SHA-256: true if there was one.
CREATE OR REPLACE FUNCTION cards.end_session(p_tenant_id uuid, p_session_hash bytea)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM cards._scope_transaction(p_tenant_id, '');
    DELETE FROM cards.sessions AS s WHERE s.tenant_id = p_tenant_id AND s.session_hash = p_session_hash;
    RETURN FOUND;
END
$$;
COMMENT ON FUNCTION cards.end_session(uuid, bytea) IS 'Gateway: sign out; true if the session existed.';
GRANT EXECUTE ON FUNCTION cards.end_session(uuid, bytea) TO cards_gateway, cards_admin;

-- Deletes the expired sessions of tenant after tenant until at least p_limit are gone (or
-- none is left); returns how many. Tenant by tenant, so that each delete names its tenant
-- and runs on one node of a Citus cluster.
CREATE OR REPLACE FUNCTION cards.purge_expired_sessions(p_limit integer DEFAULT 10000)
RETURNS integer
LANGUAGE plpgsql
VOLATILE
STRICT
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_tenant_id uuid;
    v_deleted integer;
    v_total integer := 0;
BEGIN
    PERFORM cards._enter_maintenance();
    FOR v_tenant_id IN
        SELECT DISTINCT s.tenant_id FROM cards.sessions AS s WHERE s.expires_at <= now() ORDER BY 1
    LOOP
        EXIT WHEN v_total >= p_limit;
        DELETE FROM cards.sessions AS s WHERE s.tenant_id = v_tenant_id AND s.expires_at <= now();
        GET DIAGNOSTICS v_deleted = ROW_COUNT;
        v_total := v_total + v_deleted;
    END LOOP;
    RETURN v_total;
END
$$;
COMMENT ON FUNCTION cards.purge_expired_sessions(integer) IS
'Admin: delete expired Card Center sessions, tenant by tenant, until p_limit are gone; returns the count.';
GRANT EXECUTE ON FUNCTION cards.purge_expired_sessions(integer) TO cards_admin;
