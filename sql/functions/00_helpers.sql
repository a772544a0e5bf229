-- Private helpers shared by the public functions. None is granted to anyone: they run
-- inside the SECURITY DEFINER functions that call them, as cards_owner.

-- The tenant of the current transaction, as row-level security sees it (NULL if unset).
CREATE OR REPLACE FUNCTION cards.current_tenant_id()
RETURNS uuid
LANGUAGE sql
STABLE
PARALLEL SAFE
AS $$
    SELECT nullif(pg_catalog.current_setting('cards.tenant_id', true), '')::uuid
$$;

-- Whether the current transaction runs a cross-tenant maintenance function.
CREATE OR REPLACE FUNCTION cards.in_maintenance_scope()
RETURNS boolean
LANGUAGE sql
STABLE
PARALLEL SAFE
AS $$
    SELECT coalesce(pg_catalog.current_setting('cards.scope', true) = 'maintenance', false)
$$;

-- Sets what row-level security reads for the rest of the transaction: the tenant (NULL:
-- none) and the scope ('' or 'maintenance'). SET LOCAL rather than set_config(…, true),
-- which is the same on one node: on a Citus coordinator (citus.propagate_set_commands =
-- 'local') the statement also reaches every worker a transaction block touches, so a call
-- that is not delegated whole to one worker still meets the policies with its tenant.
CREATE OR REPLACE FUNCTION cards._scope_transaction(p_tenant uuid, p_scope text)
RETURNS void
LANGUAGE plpgsql
VOLATILE
AS $$
BEGIN
    EXECUTE pg_catalog.format('SET LOCAL cards.tenant_id = %L', coalesce(p_tenant::text, ''));
    EXECUTE pg_catalog.format('SET LOCAL cards.scope = %L', p_scope);
END
$$;

-- Scopes the transaction to one active tenant, or raises CKFBD. Leaves maintenance scope.
CREATE OR REPLACE FUNCTION cards._enter_tenant(p_tenant_id uuid)
RETURNS void
LANGUAGE plpgsql
VOLATILE
AS $$
BEGIN
    PERFORM cards._scope_transaction(p_tenant_id, '');
    IF NOT EXISTS (
        SELECT FROM cards.tenants AS t
        WHERE t.tenant_id = p_tenant_id AND t.active
    ) THEN
        RAISE EXCEPTION USING
            ERRCODE = 'CKFBD',
            MESSAGE = 'The tenant is unknown or suspended.';
    END IF;
END
$$;

-- Scopes the transaction to cross-tenant maintenance (admin functions only).
CREATE OR REPLACE FUNCTION cards._enter_maintenance()
RETURNS void
LANGUAGE sql
VOLATILE
AS $$
    SELECT cards._scope_transaction(NULL, 'maintenance');
$$;

-- RFC 3339 in UTC with microseconds, the form every timestamp is answered in. STABLE
-- like to_char, so that it is inlined into the queries that call it.
CREATE OR REPLACE FUNCTION cards._rfc3339(p_at timestamptz)
RETURNS text
LANGUAGE sql
STABLE
STRICT
PARALLEL SAFE
AS $$
    SELECT pg_catalog.to_char(p_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

-- Raises CKVAL with the errors (a JSON array of {index?, field, message}) as DETAIL.
CREATE OR REPLACE FUNCTION cards._raise_invalid(p_errors jsonb)
RETURNS void
LANGUAGE plpgsql
VOLATILE
AS $$
BEGIN
    RAISE EXCEPTION USING
        ERRCODE = 'CKVAL',
        MESSAGE = pg_catalog.format(
            'The request is invalid: %s error(s), listed in "errors".',
            pg_catalog.jsonb_array_length(p_errors)
        ),
        DETAIL = p_errors::text;
END
$$;

-- JSON text with each \u0000 escape replaced by the escape of U+10FFFF, a noncharacter
-- reserved for internal use: jsonb cannot hold NUL, and _has_nul finds the mark after
-- parsing, so a NUL is reported as a validation error of its field.
CREATE OR REPLACE FUNCTION cards._mark_nul_escapes(p_json text)
RETURNS text
LANGUAGE sql
IMMUTABLE
STRICT
PARALLEL SAFE
AS $$
    -- Only an escape preceded by an even run of backslashes is a NUL.
    SELECT CASE
        WHEN pg_catalog.strpos(p_json, '\u0000') = 0 THEN p_json
        ELSE pg_catalog.regexp_replace(p_json, '(?<!\\)((\\\\)*)\\u0000', '\1\\udbff\\udfff', 'g')
    END
$$;

-- Parses an HTTP request body: UTF-8 JSON, or CKJSN. A \u0000 escape parses to the mark
-- _has_nul finds (_mark_nul_escapes). A missing (NULL) body is an empty one: not JSON.
CREATE OR REPLACE FUNCTION cards._parse_body(p_body bytea)
RETURNS jsonb
LANGUAGE plpgsql
IMMUTABLE
AS $$
BEGIN
    RETURN cards._mark_nul_escapes(pg_catalog.convert_from(coalesce(p_body, '\x'::bytea), 'UTF8'))::jsonb;
EXCEPTION
    WHEN character_not_in_repertoire OR untranslatable_character THEN
        RAISE EXCEPTION USING
            ERRCODE = 'CKJSN',
            MESSAGE = 'The request body is not valid UTF-8.';
    WHEN invalid_text_representation THEN
        RAISE EXCEPTION USING
            ERRCODE = 'CKJSN',
            MESSAGE = 'The request body is not valid JSON.';
    WHEN statement_too_complex THEN
        RAISE EXCEPTION USING
            ERRCODE = 'CKJSN',
            MESSAGE = 'The request body is nested too deeply to parse.';
END
$$;

-- Whether a value parsed by _parse_body held a \u0000 escape anywhere.
CREATE OR REPLACE FUNCTION cards._has_nul(p_value jsonb)
RETURNS boolean
LANGUAGE sql
IMMUTABLE
STRICT
PARALLEL SAFE
AS $$
    SELECT pg_catalog.strpos(p_value::text, pg_catalog.chr(1114111)) > 0
$$;

-- One error per field of a request object that held a \u0000 escape, in field order;
-- [] for anything that is not an object.
CREATE OR REPLACE FUNCTION cards._nul_errors(p_object jsonb)
RETURNS jsonb
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
AS $$
    SELECT coalesce(pg_catalog.jsonb_agg(
        pg_catalog.jsonb_build_object('field', f.key, 'message', 'must not contain NUL (\u0000)') ORDER BY f.key
    ), '[]')
    FROM pg_catalog.jsonb_each(
        CASE WHEN pg_catalog.jsonb_typeof(p_object) = 'object' THEN p_object ELSE '{}' END
    ) AS f
    WHERE cards._has_nul(f.value)
$$;

-- Errors for the envelope of a request object: not an object, or an unknown field.
CREATE OR REPLACE FUNCTION cards._envelope_errors(p_body jsonb, p_fields text[])
RETURNS jsonb
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN pg_catalog.jsonb_typeof(p_body) <> 'object'
            THEN '[{"field": "(body)", "message": "must be a JSON object"}]'
        ELSE (
            SELECT coalesce(pg_catalog.jsonb_agg(
                pg_catalog.jsonb_build_object('field', k.key, 'message', 'is not a known field') ORDER BY k.key
            ), '[]')
            FROM pg_catalog.jsonb_object_keys(p_body) AS k (key)
            WHERE NOT k.key = ANY(p_fields)
        )
    END
$$;

-- A card id from a URL path segment; a malformed one names no card, so it is CKNFD.
CREATE OR REPLACE FUNCTION cards._card_id(p_text text)
RETURNS uuid
LANGUAGE plpgsql
IMMUTABLE
AS $$
BEGIN
    IF p_text IS NULL OR p_text !~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN
        RAISE EXCEPTION USING ERRCODE = 'CKNFD', MESSAGE = 'No such card.';
    END IF;
    RETURN p_text::uuid;
END
$$;

-- A timestamp from a query value in RFC 3339 form, or CKVAL naming the field.
CREATE OR REPLACE FUNCTION cards._parse_timestamp(p_value text, p_field text)
RETURNS timestamptz
LANGUAGE plpgsql
STABLE
AS $$
BEGIN
    IF p_value IS NULL THEN
        RETURN NULL;
    END IF;
    IF p_value ~ '^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?([Zz]|[+-]\d{2}:\d{2})$' THEN
        BEGIN
            RETURN p_value::timestamptz;
        EXCEPTION WHEN datetime_field_overflow OR invalid_datetime_format
            OR invalid_time_zone_displacement_value THEN  -- an offset past ±15:59
            NULL;  -- falls through to the validation error
        END;
    END IF;
    PERFORM cards._raise_invalid(jsonb_build_array(jsonb_build_object(
        'field', p_field, 'message', 'must be an RFC 3339 timestamp with a time zone'
    )));
    RETURN NULL;
END
$$;
