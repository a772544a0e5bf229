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
    -- Leaving a scope that was never entered changes nothing: skipped (each EXECUTE costs).
    IF p_scope <> '' OR coalesce(pg_catalog.current_setting('cards.scope', true), '') <> '' THEN
        EXECUTE pg_catalog.format('SET LOCAL cards.scope = %L', p_scope);
    END IF;
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

-- Raises CKVAL with the errors (a JSON array of {index?, field, message}) as DETAIL: the
-- first 100, and {"errors_total": N} as HINT when there were more. An element
-- {"omitted": N} stands for N errors its producer found but did not list (each producer
-- lists at most 100). The server log gets the message only, never the list.
CREATE OR REPLACE FUNCTION cards._raise_invalid(p_errors jsonb)
RETURNS void
LANGUAGE plpgsql
VOLATILE
AS $$
DECLARE
    v_listed jsonb;
    v_total bigint;
BEGIN
    SELECT
        coalesce(jsonb_agg(e.error ORDER BY e.n) FILTER (WHERE e.listed <= 100), '[]'),
        coalesce(sum(coalesce((e.error ->> 'omitted')::bigint, 1)), 0)::bigint
    INTO v_listed, v_total
    FROM (
        SELECT
            x.error, x.n,
            CASE WHEN NOT x.error ? 'omitted' THEN count(*) FILTER (WHERE NOT x.error ? 'omitted') OVER (ORDER BY x.n) END
                AS listed
        FROM jsonb_array_elements(p_errors) WITH ORDINALITY AS x (error, n)
    ) AS e;
    -- DETAIL goes to the client, not to the server log (log_error_verbosity is SUSET:
    -- granted to cards_owner by migration 0008; rolled back with the failed transaction).
    IF has_parameter_privilege('log_error_verbosity', 'SET') THEN
        PERFORM set_config('log_error_verbosity', 'terse', true);
    END IF;
    IF v_total > 100 THEN
        RAISE EXCEPTION USING
            ERRCODE = 'CKVAL',
            MESSAGE = format('The request is invalid: %s errors, the first 100 listed in "errors".', v_total),
            DETAIL = v_listed::text,
            HINT = jsonb_build_object('errors_total', v_total)::text;
    END IF;
    RAISE EXCEPTION USING
        ERRCODE = 'CKVAL',
        MESSAGE = format('The request is invalid: %s error(s), listed in "errors".', v_total),
        DETAIL = v_listed::text;
END
$$;

-- The tail a producer of errors appends after listing the first 100 of `p_count`:
-- [{"omitted": p_count - 100}], or [] when it listed them all (see _raise_invalid).
CREATE OR REPLACE FUNCTION cards._omitted(p_count bigint)
RETURNS jsonb
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN p_count > 100 THEN pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object('omitted', p_count - 100))
        ELSE '[]'::jsonb
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

-- Whether a JSON text holds more than 1,000,000 values (commas) or 100,000 arrays and
-- objects: PostgreSQL's parser spends ~110 bytes of memory per value and up to ~700 per
-- object, so these bound what parsing an 8 MiB body may cost (docs/SECURITY.md).
-- Counted first with the strings, then, only when that is over, without them.
CREATE OR REPLACE FUNCTION cards._too_many_values(p_json text)
RETURNS boolean
LANGUAGE sql
IMMUTABLE
STRICT
PARALLEL SAFE
AS $$
    SELECT EXISTS (
        SELECT
        FROM (VALUES (p_json)) AS t (json)
        WHERE
            -- replace, not translate: it finds a one-byte string with memchr (1 ms a MB, not 15)
            octet_length(t.json) - octet_length(replace(t.json, ',', '')) > 1000000
            OR octet_length(t.json) - octet_length(replace(replace(t.json, '[', ''), '{', '')) > 100000
    ) AND EXISTS (
        SELECT
        FROM (VALUES (regexp_replace(p_json, '"(?:[^"\\]|\\.)*"', '""', 'g'))) AS s (skeleton)
        WHERE
            octet_length(s.skeleton) - octet_length(replace(s.skeleton, ',', '')) > 1000000
            OR octet_length(s.skeleton) - octet_length(replace(replace(s.skeleton, '[', ''), '{', '')) > 100000
    )
$$;

-- Parses an HTTP request body: UTF-8 JSON, or CKJSN. A \u0000 escape parses to the mark
-- _has_nul finds (_mark_nul_escapes). A missing (NULL) body is an empty one: not JSON.
-- A body over the bounds of _too_many_values, nested too deeply for the parser, or with
-- a number PostgreSQL cannot hold is CKVAL on "(body)": refused before or while parsing.
CREATE OR REPLACE FUNCTION cards._parse_body(p_body bytea)
RETURNS jsonb
LANGUAGE plpgsql
IMMUTABLE
AS $$
DECLARE
    v_text text;
BEGIN
    v_text := pg_catalog.convert_from(coalesce(p_body, '\x'::bytea), 'UTF8');
    -- Most bodies are too short to hold 100,000 of anything, or any \u0000: neither helper
    -- is called for them (each call of a SQL function is planned afresh).
    IF pg_catalog.octet_length(v_text) > 100000 AND cards._too_many_values(v_text) THEN
        PERFORM cards._raise_invalid(
            '[{"field": "(body)", "message": "must hold at most 1,000,000 values and 100,000 arrays and objects"}]'
        );
    END IF;
    IF pg_catalog.strpos(v_text, '\u0000') > 0 THEN
        v_text := cards._mark_nul_escapes(v_text);
    END IF;
    RETURN v_text::jsonb;
EXCEPTION
    WHEN character_not_in_repertoire OR untranslatable_character THEN
        RAISE EXCEPTION USING
            ERRCODE = 'CKJSN',
            MESSAGE = 'The request body is not valid UTF-8.';
    WHEN invalid_text_representation THEN
        RAISE EXCEPTION USING
            ERRCODE = 'CKJSN',
            MESSAGE = 'The request body is not valid JSON.';
    WHEN statement_too_complex THEN  -- deeper than the parser's stack: far over 64 levels
        PERFORM cards._raise_invalid('[{"field": "(body)", "message": "must not nest deeper than 64 levels"}]');
        RETURN NULL;
    WHEN numeric_value_out_of_range THEN  -- over 131,072 digits before the point or 16,383 after
        PERFORM cards._raise_invalid(
            '[{"field": "(body)", "message": "holds a number too long for the database (see the number bounds)"}]'
        );
        RETURN NULL;
END
$$;

-- Why a JSON value may not be stored, or NULL when it may: bigger than `p_max_bytes` of
-- canonical text (`p_size_message`), nested deeper than 64 levels, or holding a number
-- that is not 0 or of magnitude 1e-20 to 1e20, or has over 20 digits after the point.
-- Nothing is printed before the bounds that keep printing small hold: the binary size
-- first (never over 4 times the text size, plus a header: docs/SECURITY.md), then the
-- depth and the numbers, which jsonpath reads without printing; the text size last.
CREATE OR REPLACE FUNCTION cards._json_bounds_error(p_value jsonb, p_max_bytes integer, p_size_message text)
RETURNS text
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN p_value IS NULL THEN NULL
        WHEN pg_catalog.pg_column_size(p_value) > 4 * p_max_bytes + 64 THEN p_size_message
        WHEN pg_catalog.jsonb_path_exists(
            p_value, 'strict $.**{64 to last} ? (@.type() == "array" || @.type() == "object")'
        ) THEN 'must not nest deeper than 64 levels'
        WHEN (
            SELECT
                max(abs(n.number)) >= 1e20
                OR min(abs(n.number)) FILTER (WHERE n.number <> 0) < 1e-20
                OR max(scale(n.number)) > 20
            FROM pg_catalog.jsonb_array_elements(
                pg_catalog.jsonb_path_query_array(p_value, 'strict $.** ? (@.type() == "number")')
            ) AS e (value)
            CROSS JOIN LATERAL (SELECT e.value::numeric) AS n (number)
        ) THEN 'must hold numbers that are 0 or of magnitude 1e-20 to 1e20, with at most 20 digits after the point'
        WHEN pg_catalog.octet_length(p_value::text) > p_max_bytes THEN p_size_message
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

-- One error per field of `p_fields` that a request object holds with a \u0000 escape in
-- it, in field order; [] for anything that is not an object. A field that breaks
-- _json_bounds_error is not printed to look for one: its own error says why.
CREATE OR REPLACE FUNCTION cards._nul_errors(p_object jsonb, p_fields text[])
RETURNS jsonb
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
AS $$
    SELECT coalesce(pg_catalog.jsonb_agg(
        pg_catalog.jsonb_build_object('field', f.key, 'message', 'must not contain NUL (\u0000)') ORDER BY f.key
    ), '[]')
    FROM unnest(p_fields) AS f (key)
    WHERE
        pg_catalog.jsonb_typeof(p_object) = 'object'
        AND cards._json_bounds_error(p_object -> f.key, 262144, '') IS NULL
        AND cards._has_nul(p_object -> f.key)
$$;

-- Errors for the envelope of a request object: not an object, or an unknown field (the
-- first 100, names cut to 64 characters).
CREATE OR REPLACE FUNCTION cards._envelope_errors(p_body jsonb, p_fields text[])
RETURNS jsonb
LANGUAGE plpgsql
IMMUTABLE
PARALLEL SAFE
AS $$
BEGIN
    -- PL/pgSQL rather than SQL, for every request calls it: its plan is kept for the session,
    -- where a SQL function's query is planned at each call.
    IF pg_catalog.jsonb_typeof(p_body) <> 'object' THEN
        RETURN '[{"field": "(body)", "message": "must be a JSON object"}]'::jsonb;
    END IF;
    IF p_body IS NULL OR p_body - p_fields = '{}' THEN  -- no unknown field: the common case
        RETURN '[]'::jsonb;
    END IF;
    RETURN (
        SELECT
            coalesce(pg_catalog.jsonb_agg(
                pg_catalog.jsonb_build_object('field', left(k.key, 64), 'message', 'is not a known field') ORDER BY k.n
            ) FILTER (WHERE k.n <= 100), '[]')
            || cards._omitted(count(*))
        FROM (
            SELECT k.key, row_number() OVER (ORDER BY k.key) AS n
            FROM pg_catalog.jsonb_object_keys(p_body) AS k (key)
            WHERE NOT k.key = ANY(p_fields)
        ) AS k
    );
END
$$;

-- The JSON object of a request body whose fields are `p_fields`, and the envelope's errors
-- (_envelope_errors) for the caller to report together with its own. `body` is NULL when
-- the body is JSON but not an object; not JSON at all is CKJSN (_parse_body).
CREATE OR REPLACE FUNCTION cards._request_object(p_body bytea, p_fields text[], OUT body jsonb, OUT errors jsonb)
LANGUAGE plpgsql
IMMUTABLE
AS $$
BEGIN
    body := cards._parse_body(p_body);
    errors := cards._envelope_errors(body, p_fields);
    IF pg_catalog.jsonb_typeof(body) <> 'object' THEN
        body := NULL;
    END IF;
END
$$;

-- Raises CKNFD, "No such <what>.": the answer for an id that names nothing the tenant
-- may see (unknown, deleted and another tenant's are not told apart).
CREATE OR REPLACE FUNCTION cards._raise_not_found(p_what text)
RETURNS void
LANGUAGE plpgsql
VOLATILE
AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'CKNFD', MESSAGE = pg_catalog.format('No such %s.', p_what);
END
$$;

-- Whether a text is a UUID in the canonical 8-4-4-4-12 hex form, in any case. One
-- expression, so that it is inlined into the queries that call it.
CREATE OR REPLACE FUNCTION cards._is_uuid(p_text text)
RETURNS boolean
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
AS $$
    SELECT p_text ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
$$;

-- A card id from a URL path segment; a malformed one names no card, so it is CKNFD.
CREATE OR REPLACE FUNCTION cards._card_id(p_text text)
RETURNS uuid
LANGUAGE plpgsql
IMMUTABLE
AS $$
BEGIN
    IF p_text IS NULL OR NOT cards._is_uuid(p_text) THEN
        PERFORM cards._raise_not_found('card');
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

-- An opaque pagination cursor for a position (a JSON array), and its inverse. Decoding
-- raises CKVAL for anything this function did not encode.
CREATE OR REPLACE FUNCTION cards._encode_cursor(p_position jsonb)
RETURNS text
LANGUAGE sql
IMMUTABLE
STRICT
PARALLEL SAFE
AS $$
    SELECT rtrim(translate(encode(convert_to(p_position::text, 'UTF8'), 'base64'), E'+/\n', '-_'), '=')
$$;

CREATE OR REPLACE FUNCTION cards._decode_cursor(p_cursor text)
RETURNS jsonb
LANGUAGE plpgsql
IMMUTABLE
AS $$
DECLARE
    v_position jsonb;
BEGIN
    IF p_cursor IS NULL THEN
        RETURN NULL;
    ELSIF char_length(p_cursor) > 1000 THEN  -- refused before it is decoded and parsed
        PERFORM cards._raise_invalid('[{"field": "cursor", "message": "is not a cursor this API issued"}]');
    END IF;
    BEGIN
        v_position := convert_from(decode(
            rpad(translate(p_cursor, '-_', '+/'), ((char_length(p_cursor) + 3) / 4) * 4, '='), 'base64'
        ), 'UTF8')::jsonb;
    EXCEPTION WHEN OTHERS THEN
        v_position := NULL;
    END;
    IF jsonb_typeof(v_position) IS DISTINCT FROM 'array' THEN
        PERFORM cards._raise_invalid('[{"field": "cursor", "message": "is not a cursor this API issued"}]');
    END IF;
    RETURN v_position;
END
$$;

-- A text parsed as JSON, or NULL when it is not JSON (CKVAL is the caller's to raise).
-- JSON nested too deeply for the parser's stack (statement_too_complex), or with a number
-- too long for numeric, is not JSON here.
CREATE OR REPLACE FUNCTION cards._try_jsonb(p_text text)
RETURNS jsonb
LANGUAGE plpgsql
IMMUTABLE
STRICT
AS $$
BEGIN
    RETURN p_text::jsonb;
EXCEPTION WHEN invalid_text_representation OR untranslatable_character OR statement_too_complex
    OR numeric_value_out_of_range THEN
    RETURN NULL;
END
$$;

-- A page size from a query value: 1 to 200, 50 when absent.
CREATE OR REPLACE FUNCTION cards._page_limit(p_limit text)
RETURNS integer
LANGUAGE plpgsql
IMMUTABLE
AS $$
BEGIN
    IF p_limit IS NULL THEN
        RETURN 50;
    ELSIF p_limit !~ '^[0-9]{1,3}$' OR p_limit::integer NOT BETWEEN 1 AND 200 THEN
        PERFORM cards._raise_invalid('[{"field": "limit", "message": "must be an integer from 1 to 200"}]');
    END IF;
    RETURN p_limit::integer;
END
$$;

-- For a tenant with a card quota (tenants.max_cards): adds p_change to its count of live
-- cards (cards.tenant_card_counts) and raises CKQTA when that passes the quota, so the
-- whole change rolls back. A tenant without a quota pays one key lookup: its count is
-- taken afresh when a quota is set (set_tenant_limits). The counter row's lock, held to
-- the end of the transaction, orders concurrent batches of one such tenant only here, at
-- their last write.
CREATE OR REPLACE FUNCTION cards._count_live_cards(p_tenant_id uuid, p_change bigint)
RETURNS void
LANGUAGE plpgsql
VOLATILE
AS $$
DECLARE
    v_live bigint;
    v_max bigint;
BEGIN
    SELECT t.max_cards INTO v_max FROM cards.tenants AS t WHERE t.tenant_id = p_tenant_id;
    IF p_change = 0 OR v_max IS NULL THEN
        RETURN;
    END IF;
    INSERT INTO cards.tenant_card_counts AS n (tenant_id, live_cards)
    VALUES (p_tenant_id, greatest(p_change, 0))
    ON CONFLICT (tenant_id) DO UPDATE SET live_cards = greatest(n.live_cards + p_change, 0)
    RETURNING n.live_cards INTO v_live;
    IF p_change > 0 THEN
        IF v_live > v_max THEN
            RAISE EXCEPTION USING
                ERRCODE = 'CKQTA',
                MESSAGE = pg_catalog.format(
                    'This would make %s live cards; the tenant''s quota is %s.', v_live, v_max
                );
        END IF;
    END IF;
END
$$;
