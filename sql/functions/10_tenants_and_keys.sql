-- Tenants and API keys: the admin functions, and the key lookup the gateway
-- authenticates with.

-- Records an admin change of a tenant in the append-only audit log: who (the role
-- that logged in), what, when. Called by the admin functions, inside their transaction.
CREATE OR REPLACE FUNCTION cards._audit(p_tenant_id uuid, p_action text, p_detail jsonb)
RETURNS void
LANGUAGE plpgsql  -- not sql: Citus cannot plan a SQL function's statement with its parameters
VOLATILE
AS $$
BEGIN
    INSERT INTO cards.audit_log (tenant_id, actor, action, detail)
    VALUES (p_tenant_id, session_user, p_action, p_detail);
END
$$;

-- Whether an API key with these dates may be used now: not revoked, not expired. One
-- expression, so that it is inlined into the queries that call it.
CREATE OR REPLACE FUNCTION cards._key_is_live(p_revoked_at timestamptz, p_expires_at timestamptz)
RETURNS boolean
LANGUAGE sql
STABLE
PARALLEL SAFE
AS $$
    SELECT p_revoked_at IS NULL AND (p_expires_at IS NULL OR p_expires_at > pg_catalog.now())
$$;

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
    PERFORM cards._audit(v_tenant_id, 'create_tenant', jsonb_build_object('name', p_name));
    RETURN v_tenant_id;
END
$$;
COMMENT ON FUNCTION cards.create_tenant(text) IS 'Admin: create an active tenant; returns its id.';
GRANT EXECUTE ON FUNCTION cards.create_tenant(text) TO cards_admin;

-- Issues an API key for a tenant, limited to `p_scopes` and, when given, valid until
-- `p_expires_at`. The plaintext is returned once and never stored.
DROP FUNCTION IF EXISTS cards.create_api_key(uuid, text);
CREATE OR REPLACE FUNCTION cards.create_api_key(
    p_tenant_id uuid,
    p_label text DEFAULT NULL,
    p_scopes text[] DEFAULT '{cards:read,cards:write,usage:write}',
    p_expires_at timestamptz DEFAULT NULL
)
RETURNS TABLE (key_id uuid, api_key text)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_key text;
    v_errors jsonb := '[]'::jsonb;
    v_scopes text [];
    v_detail jsonb;
BEGIN
    IF char_length(p_label) > 200 THEN
        v_errors := v_errors || '[{"field": "label", "message": "must be at most 200 characters"}]';
    END IF;
    IF coalesce(cardinality(p_scopes), 0) = 0
        OR NOT p_scopes <@ '{cards:read,cards:write,usage:write}'::text []
        OR array_position(p_scopes, NULL) IS NOT NULL THEN
        v_errors := v_errors || '[{"field": "scopes", "message": "must be one or more of cards:read, cards:write, usage:write"}]';
    END IF;
    IF p_expires_at <= now() THEN
        v_errors := v_errors || '[{"field": "expires_at", "message": "must be in the future"}]';
    END IF;
    IF jsonb_array_length(v_errors) > 0 THEN
        PERFORM cards._raise_invalid(v_errors);
    END IF;
    PERFORM cards._scope_transaction(p_tenant_id, '');
    IF NOT EXISTS (SELECT FROM cards.tenants AS t WHERE t.tenant_id = p_tenant_id) THEN
        PERFORM cards._raise_not_found('tenant');
    END IF;
    -- ck_<tenant id in hex>_<secret>: the tenant prefix keeps the lookup on an index that
    -- leads with tenant_id. The secret is two v4 UUIDs from the server's strong random
    -- source, 244 random bits, in base64url.
    v_key := 'ck_' || replace(p_tenant_id::text, '-', '') || '_' || rtrim(translate(encode(decode(
        replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex'
    ), 'base64'), '+/', '-_'), '=');
    -- A value, not a subquery in the INSERT: Citus plans no subquery in VALUES.
    v_scopes := ARRAY(SELECT DISTINCT s.scope FROM unnest(p_scopes) AS s (scope) ORDER BY s.scope);
    RETURN QUERY
    INSERT INTO cards.api_keys AS k (tenant_id, key_hash, label, scopes, expires_at)
    VALUES (p_tenant_id, sha256(convert_to(v_key, 'UTF8')), p_label, v_scopes, p_expires_at)
    RETURNING k.key_id, v_key;
    -- Read first, then audited: on Citus a query on a shard may not start another distributed one.
    SELECT jsonb_build_object('key_id', k.key_id, 'label', k.label, 'scopes', k.scopes, 'expires_at', k.expires_at)
    INTO v_detail
    FROM cards.api_keys AS k
    WHERE k.tenant_id = p_tenant_id AND k.key_hash = sha256(convert_to(v_key, 'UTF8'));
    PERFORM cards._audit(p_tenant_id, 'create_api_key', v_detail);
END
$$;
COMMENT ON FUNCTION cards.create_api_key(uuid, text, text[], timestamptz) IS
'Admin: issue an API key with scopes and an optional expiry; the plaintext is shown once.';
GRANT EXECUTE ON FUNCTION cards.create_api_key(uuid, text, text[], timestamptz) TO cards_admin;

-- The tenant's API keys, newest first, without the keys or their hashes.
CREATE OR REPLACE FUNCTION cards.list_api_keys(p_tenant_id uuid)
RETURNS TABLE (
    key_id uuid, label text, scopes text[], created_at timestamptz, expires_at timestamptz,
    last_used_at timestamptz, revoked_at timestamptz
)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM cards._scope_transaction(p_tenant_id, '');
    IF NOT EXISTS (SELECT FROM cards.tenants AS t WHERE t.tenant_id = p_tenant_id) THEN
        PERFORM cards._raise_not_found('tenant');
    END IF;
    RETURN QUERY
    SELECT k.key_id, k.label, k.scopes, k.created_at, k.expires_at, k.last_used_at, k.revoked_at
    FROM cards.api_keys AS k
    WHERE k.tenant_id = p_tenant_id
    ORDER BY k.created_at DESC, k.key_id;
END
$$;
COMMENT ON FUNCTION cards.list_api_keys(uuid) IS 'Admin: the tenant''s keys (never the key or its hash).';
GRANT EXECUTE ON FUNCTION cards.list_api_keys(uuid) TO cards_admin;

-- Revokes a key by id: true if it was live, false if unknown or already revoked.
-- The contract names only the key, so it is found, changed and audited across tenants
-- (maintenance scope, admitted on api_keys and, for appending, audit_log).
CREATE OR REPLACE FUNCTION cards.revoke_api_key(p_key_id uuid)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_tenant_id uuid;
BEGIN
    PERFORM cards._enter_maintenance();
    UPDATE cards.api_keys AS k SET revoked_at = now()
    WHERE k.key_id = p_key_id AND k.revoked_at IS NULL
    RETURNING k.tenant_id INTO v_tenant_id;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM cards._audit(v_tenant_id, 'revoke_api_key', jsonb_build_object('key_id', p_key_id));
    RETURN true;
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
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM cards._audit(p_tenant_id, 'set_tenant_active', jsonb_build_object('active', p_active));
    RETURN true;
END
$$;
COMMENT ON FUNCTION cards.set_tenant_active(uuid, boolean) IS 'Admin: suspend (false) or reactivate (true) a tenant.';
GRANT EXECUTE ON FUNCTION cards.set_tenant_active(uuid, boolean) TO cards_admin;

-- Sets a tenant's rate limit (requests per second and burst) and card quota; NULL means
-- the gateway's configured default for the rate, and no quota for the cards. CKNFD for
-- an unknown tenant. Setting a quota counts the tenant's live cards afresh (batches
-- that commit while it runs may be missed: the quota may be passed by those), and the
-- functions keep the count from then on; an operator's direct change is counted at the
-- next call.
CREATE OR REPLACE FUNCTION cards.set_tenant_limits(
    p_tenant_id uuid,
    p_requests_per_second numeric DEFAULT NULL,
    p_burst integer DEFAULT NULL,
    p_max_cards bigint DEFAULT NULL
)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_errors jsonb := '[]'::jsonb;
    v_live bigint;
BEGIN
    IF p_requests_per_second <= 0 OR p_requests_per_second > 1000000 THEN
        v_errors := v_errors || '[{"field": "requests_per_second", "message": "must be above 0 and at most 1000000"}]';
    END IF;
    IF p_burst NOT BETWEEN 1 AND 10000000 THEN
        v_errors := v_errors || '[{"field": "burst", "message": "must be 1 to 10000000"}]';
    END IF;
    IF p_max_cards < 0 THEN
        v_errors := v_errors || '[{"field": "max_cards", "message": "must be 0 or more"}]';
    END IF;
    IF jsonb_array_length(v_errors) > 0 THEN
        PERFORM cards._raise_invalid(v_errors);
    END IF;
    PERFORM cards._scope_transaction(p_tenant_id, '');
    UPDATE cards.tenants AS t
    SET requests_per_second = p_requests_per_second, burst = p_burst, max_cards = p_max_cards
    WHERE t.tenant_id = p_tenant_id;
    IF NOT FOUND THEN
        PERFORM cards._raise_not_found('tenant');
    END IF;
    IF p_max_cards IS NOT NULL THEN
        -- The row lock orders this count with the batches that add to it.
        INSERT INTO cards.tenant_card_counts AS n (tenant_id, live_cards)
        VALUES (p_tenant_id, 0)
        ON CONFLICT (tenant_id) DO UPDATE SET live_cards = n.live_cards;
        SELECT count(*) INTO v_live FROM cards.cards AS c WHERE c.tenant_id = p_tenant_id AND c.deleted_at IS NULL;
        UPDATE cards.tenant_card_counts AS n SET live_cards = v_live WHERE n.tenant_id = p_tenant_id;
    END IF;
    PERFORM cards._audit(p_tenant_id, 'set_tenant_limits', jsonb_build_object(
        'requests_per_second', p_requests_per_second, 'burst', p_burst, 'max_cards', p_max_cards
    ));
END
$$;
COMMENT ON FUNCTION cards.set_tenant_limits(uuid, numeric, integer, bigint) IS
'Admin: a tenant''s rate limit and card quota (NULL: the default rate, no quota).';
GRANT EXECUTE ON FUNCTION cards.set_tenant_limits(uuid, numeric, integer, bigint) TO cards_admin;

-- The tenant's audit events, newest first (at most p_limit, 1 to 1000).
CREATE OR REPLACE FUNCTION cards.audit_events(p_tenant_id uuid, p_limit integer DEFAULT 100)
RETURNS TABLE (event_id uuid, at timestamptz, actor text, action text, detail jsonb)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_limit IS NULL OR p_limit NOT BETWEEN 1 AND 1000 THEN
        PERFORM cards._raise_invalid('[{"field": "p_limit", "message": "must be 1 to 1000"}]');
    END IF;
    PERFORM cards._scope_transaction(p_tenant_id, '');
    RETURN QUERY
    SELECT a.event_id, a.at, a.actor, a.action, a.detail
    FROM cards.audit_log AS a
    WHERE a.tenant_id = p_tenant_id
    ORDER BY a.at DESC, a.event_id
    LIMIT p_limit;
END
$$;
COMMENT ON FUNCTION cards.audit_events(uuid, integer) IS 'Admin: the tenant''s audit log, newest first.';
GRANT EXECUTE ON FUNCTION cards.audit_events(uuid, integer) TO cards_admin;

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
        WHERE
            k.tenant_id = p_tenant_id AND k.key_hash = p_key_hash AND cards._key_is_live(k.revoked_at, k.expires_at)
    );
END
$$;
COMMENT ON FUNCTION cards.authenticate_api_key(uuid, bytea) IS
'Whether the tenant has a live, unexpired API key with this SHA-256 (the gateway uses api_key_grant).';
GRANT EXECUTE ON FUNCTION cards.authenticate_api_key(uuid, bytea) TO cards_gateway, cards_admin;

-- What an API key of the tenant with this SHA-256 may do: its scopes and expiry, or no
-- row when there is no such key or it is revoked (an expired key is answered, so that
-- the gateway can say so). Marks the key used, at most once a minute. As with
-- authenticate_api_key, only the tenant and the hash ever reach the database.
CREATE OR REPLACE FUNCTION cards.api_key_grant(p_tenant_id uuid, p_key_hash bytea)
RETURNS TABLE (scopes text[], expires_at timestamptz)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM cards._scope_transaction(p_tenant_id, '');
    UPDATE cards.api_keys AS k SET last_used_at = now()
    WHERE
        k.tenant_id = p_tenant_id AND k.key_hash = p_key_hash AND cards._key_is_live(k.revoked_at, k.expires_at)
        AND (k.last_used_at IS NULL OR k.last_used_at < now() - interval '1 minute');
    RETURN QUERY
    SELECT k.scopes, k.expires_at FROM cards.api_keys AS k
    WHERE k.tenant_id = p_tenant_id AND k.key_hash = p_key_hash AND k.revoked_at IS NULL;
END
$$;
COMMENT ON FUNCTION cards.api_key_grant(uuid, bytea) IS
'Gateway: the scopes and expiry of the tenant''s live API key with this SHA-256.';
GRANT EXECUTE ON FUNCTION cards.api_key_grant(uuid, bytea) TO cards_gateway, cards_admin;

-- Takes up to p_wanted requests from the tenant's rate limit (GCRA: a rate per second
-- and a burst, the tenant's own or the defaults given) and answers how many were
-- granted, how many remain, the seconds until the burst is whole again, and, when none
-- was granted, the seconds until one would be. Shared by every gateway: each takes a
-- small lease of requests at a time (gateway/limits.py). CKFBD for a suspended or
-- unknown tenant.
CREATE OR REPLACE FUNCTION cards.take_request_tokens(
    p_tenant_id uuid, p_wanted integer, p_default_rps numeric, p_default_burst integer
)
RETURNS TABLE (
    granted integer, remaining integer, reset_s double precision, retry_after_s double precision,
    requests_per_second numeric, burst integer
)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_rps numeric;
    v_burst integer;
    v_interval double precision;  -- seconds between requests at the steady rate
    v_tolerance double precision;  -- how far ahead of now the arrival time may run
    v_tat timestamptz;
    v_ahead double precision;
    v_granted integer;
BEGIN
    PERFORM cards._enter_tenant(p_tenant_id);
    SELECT coalesce(t.requests_per_second, p_default_rps), coalesce(t.burst, p_default_burst)
    INTO v_rps, v_burst
    FROM cards.tenants AS t WHERE t.tenant_id = p_tenant_id;
    v_interval := 1 / v_rps::double precision;
    v_tolerance := v_burst * v_interval;

    SELECT r.tat INTO v_tat FROM cards.rate_limits AS r WHERE r.tenant_id = p_tenant_id FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO cards.rate_limits AS r (tenant_id, tat) VALUES (p_tenant_id, now())
        ON CONFLICT (tenant_id) DO UPDATE SET tat = r.tat
        RETURNING r.tat INTO v_tat;
    END IF;
    v_ahead := greatest(extract(EPOCH FROM v_tat - now())::double precision, 0);
    v_granted := least(greatest(p_wanted, 0), floor((v_tolerance - v_ahead) / v_interval + 1e-9)::integer);
    v_granted := greatest(v_granted, 0);
    IF v_granted > 0 THEN
        v_ahead := v_ahead + v_granted * v_interval;
        UPDATE cards.rate_limits AS r SET tat = now() + make_interval(secs => v_ahead)
        WHERE r.tenant_id = p_tenant_id;
    END IF;
    RETURN QUERY SELECT
        v_granted,
        greatest(floor((v_tolerance - v_ahead) / v_interval + 1e-9), 0)::integer,
        v_ahead,
        CASE WHEN v_granted = 0 THEN greatest(v_ahead + v_interval - v_tolerance, 0) END,
        v_rps,
        v_burst;
END
$$;
COMMENT ON FUNCTION cards.take_request_tokens(uuid, integer, numeric, integer) IS
'Gateway: take up to p_wanted requests from the tenant''s shared rate limit.';
GRANT EXECUTE ON FUNCTION cards.take_request_tokens(uuid, integer, numeric, integer) TO cards_gateway, cards_admin;

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
