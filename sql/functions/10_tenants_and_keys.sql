-- Tenants and API keys: the admin functions, and the key lookup the gateway
-- authenticates with.

-- Creates an active tenant and returns its id.
CREATE OR REPLACE FUNCTION cards.create_tenant(p_name text)
RETURNS uuid
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_tenant_id uuid := gen_random_uuid();
BEGIN
    IF p_name IS NULL OR char_length(p_name) NOT BETWEEN 1 AND 200 THEN
        PERFORM cards._raise_invalid('[{"field": "name", "message": "must be 1 to 200 characters"}]');
    END IF;
    PERFORM cards._scope_transaction(v_tenant_id, '');
    INSERT INTO cards.tenants (tenant_id, name) VALUES (v_tenant_id, p_name);
    RETURN v_tenant_id;
END
$$;
COMMENT ON FUNCTION cards.create_tenant(text) IS 'Admin: create an active tenant; returns its id.';
GRANT EXECUTE ON FUNCTION cards.create_tenant(text) TO cards_admin;

-- Issues an API key for a tenant. The plaintext is returned once and never stored.
CREATE OR REPLACE FUNCTION cards.create_api_key(p_tenant_id uuid, p_label text DEFAULT NULL)
RETURNS TABLE (key_id uuid, api_key text)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_key text;
BEGIN
    IF char_length(p_label) > 200 THEN
        PERFORM cards._raise_invalid('[{"field": "label", "message": "must be at most 200 characters"}]');
    END IF;
    PERFORM cards._scope_transaction(p_tenant_id, '');
    IF NOT EXISTS (SELECT FROM cards.tenants AS t WHERE t.tenant_id = p_tenant_id) THEN
        RAISE EXCEPTION USING ERRCODE = 'CKNFD', MESSAGE = 'No such tenant.';
    END IF;
    -- ck_<tenant id in hex>_<secret>: the tenant prefix keeps the lookup on an index that
    -- leads with tenant_id. The secret is two v4 UUIDs from the server's strong random
    -- source, 244 random bits, in base64url.
    v_key := 'ck_' || replace(p_tenant_id::text, '-', '') || '_' || rtrim(translate(encode(decode(
        replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex'
    ), 'base64'), '+/', '-_'), '=');
    RETURN QUERY
    INSERT INTO cards.api_keys AS k (tenant_id, key_hash, label)
    VALUES (p_tenant_id, sha256(convert_to(v_key, 'UTF8')), p_label)
    RETURNING k.key_id, v_key;
END
$$;
COMMENT ON FUNCTION cards.create_api_key(uuid, text) IS 'Admin: issue an API key; the plaintext is shown once.';
GRANT EXECUTE ON FUNCTION cards.create_api_key(uuid, text) TO cards_admin;

-- Revokes a key by id: true if it was live, false if unknown or already revoked.
-- Cross-tenant by design (the contract names only the key), hence maintenance scope.
CREATE OR REPLACE FUNCTION cards.revoke_api_key(p_key_id uuid)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM cards._enter_maintenance();
    UPDATE cards.api_keys AS k SET revoked_at = now()
    WHERE k.key_id = p_key_id AND k.revoked_at IS NULL;
    RETURN FOUND;
END
$$;
COMMENT ON FUNCTION cards.revoke_api_key(uuid) IS 'Admin: revoke a key; the gateway stops accepting it within 5 s.';
GRANT EXECUTE ON FUNCTION cards.revoke_api_key(uuid) TO cards_admin;

-- Suspends or reactivates a tenant: true if the tenant exists, false otherwise.
CREATE OR REPLACE FUNCTION cards.set_tenant_active(p_tenant_id uuid, p_active boolean)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
STRICT
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM cards._scope_transaction(p_tenant_id, '');
    UPDATE cards.tenants AS t SET active = p_active WHERE t.tenant_id = p_tenant_id;
    RETURN FOUND;
END
$$;
COMMENT ON FUNCTION cards.set_tenant_active(uuid, boolean) IS 'Admin: suspend (false) or reactivate (true) a tenant.';
GRANT EXECUTE ON FUNCTION cards.set_tenant_active(uuid, boolean) TO cards_admin;

-- Whether the tenant has a live API key with this SHA-256. The gateway reads the tenant
-- from the key (ck_<tenant>_<secret>) and sends only the hash, so that the plaintext key
-- never reaches the database, nor its logs. Whether the tenant is active is checked by
-- each endpoint function, not here.
CREATE OR REPLACE FUNCTION cards.authenticate_api_key(p_tenant_id uuid, p_key_hash bytea)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM cards._scope_transaction(p_tenant_id, '');
    RETURN EXISTS (
        SELECT FROM cards.api_keys AS k
        WHERE k.tenant_id = p_tenant_id AND k.key_hash = p_key_hash AND k.revoked_at IS NULL
    );
END
$$;
COMMENT ON FUNCTION cards.authenticate_api_key(uuid, bytea) IS
'Gateway: whether the tenant has a live API key with this SHA-256.';
GRANT EXECUTE ON FUNCTION cards.authenticate_api_key(uuid, bytea) TO cards_gateway, cards_admin;

-- The applied schema version, which the gateway's /ready compares with its own.
CREATE OR REPLACE FUNCTION cards.schema_version()
RETURNS integer
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT max(m.version) FROM cards_meta.schema_migrations AS m
$$;
COMMENT ON FUNCTION cards.schema_version() IS 'The highest applied migration number.';
GRANT EXECUTE ON FUNCTION cards.schema_version() TO cards_gateway, cards_admin;
