-- Helpers shared by the pgTAP files, installed once into the test database by
-- scripts/test-sql (schema "test"; never part of a migration).
CREATE SCHEMA test;
GRANT USAGE ON SCHEMA test TO public;

-- Keeps a value for the rest of the transaction under a name (tap.<name>).
CREATE FUNCTION test.remember(p_name text, p_value text) RETURNS text
LANGUAGE sql AS $$ SELECT set_config('tap.' || p_name, p_value, TRUE) $$;

-- A remembered uuid.
CREATE FUNCTION test.id(p_name text) RETURNS uuid
LANGUAGE sql STABLE AS $$ SELECT current_setting('tap.' || p_name)::uuid $$;

-- The DETAIL of the CKVAL error the statement raises (the problem's "errors"), the
-- string "no error" when it succeeds, or "SQLSTATE: message" for any other error.
CREATE FUNCTION test.error_detail(p_sql text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_state text;
    v_message text;
    v_detail text;
BEGIN
    EXECUTE p_sql;
    RETURN '"no error"';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT, v_detail = PG_EXCEPTION_DETAIL;
    IF v_state <> 'CKVAL' THEN
        RETURN to_jsonb(v_state || ': ' || v_message);
    END IF;
    RETURN v_detail::jsonb;
END
$$;

-- A remembered JSON document.
CREATE FUNCTION test.doc(p_name text) RETURNS jsonb
LANGUAGE sql STABLE AS $$ SELECT current_setting('tap.' || p_name)::jsonb $$;

GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA test TO public;
