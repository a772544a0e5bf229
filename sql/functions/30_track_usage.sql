-- Usage reporting (API.md, "POST /api/v1/cards/{id}/usage").

-- Every rule a usage report breaks, as a JSON array of {field, message}; [] when valid.
-- A NULL id stands for a missing or non-string one.
CREATE OR REPLACE FUNCTION cards._usage_input_errors(p_workflow_id text, p_run_id text, p_metadata jsonb)
RETURNS jsonb
LANGUAGE plpgsql  -- every report is checked: a SQL function's query is planned at each call
IMMUTABLE
PARALLEL SAFE
AS $$
DECLARE
    v_errors jsonb := '[]'::jsonb;
    v_bounds text;
BEGIN
    IF coalesce(char_length(p_workflow_id), 0) NOT BETWEEN 1 AND 255 THEN
        v_errors := v_errors || '[{"field": "workflow_id", "message": "must be a string of 1 to 255 characters"}]'::jsonb;
    END IF;
    IF coalesce(char_length(p_run_id), 0) NOT BETWEEN 1 AND 255 THEN
        v_errors := v_errors || '[{"field": "run_id", "message": "must be a string of 1 to 255 characters"}]'::jsonb;
    END IF;
    IF jsonb_typeof(p_metadata) IS DISTINCT FROM 'object' THEN
        v_errors := v_errors || '[{"field": "metadata", "message": "must be a JSON object"}]'::jsonb;
    ELSIF p_metadata <> '{}' THEN  -- an empty object is within every bound
        v_bounds := cards._json_bounds_error(p_metadata, 16384, 'must be at most 16 KiB serialised');
        IF v_bounds IS NOT NULL THEN
            v_errors := v_errors || jsonb_build_array(jsonb_build_object('field', 'metadata', 'message', v_bounds));
        END IF;
    END IF;
    RETURN v_errors;
END
$$;

-- Records a valid usage report; see track_usage. Answers the document and whether the
-- report was a repeat.
CREATE OR REPLACE FUNCTION cards._track_usage(
    p_tenant_id uuid, p_card_id uuid, p_workflow_id text, p_run_id text, p_metadata jsonb
)
RETURNS TABLE (response json, deduplicated boolean)
LANGUAGE plpgsql
VOLATILE
AS $$
DECLARE
    -- A card's count is split over 16 slot rows (sql/schema/0002_tables.sql).
    v_slot smallint := (hashtextextended(p_workflow_id || chr(31) || p_run_id, 0) & 15)::smallint;
    v_live boolean;
    v_recorded_at timestamptz;
    v_usage_count bigint;
BEGIN
    -- One statement for a new report: the card is live, the event is new (the primary key
    -- makes the dedupe exact: a concurrent identical report waits for this one's commit and
    -- then finds the conflict), its slot counts it (the last write, so the slot's row lock is
    -- held briefly), and the count is that slot's new value plus the others'.
    WITH live_card AS (
        SELECT c.card_id FROM cards.cards AS c
        WHERE c.tenant_id = p_tenant_id AND c.card_id = p_card_id AND c.deleted_at IS NULL
    ),

    recorded AS (
        INSERT INTO cards.card_usage (tenant_id, card_id, workflow_id, run_id, metadata)
        SELECT p_tenant_id, l.card_id, p_workflow_id, p_run_id, p_metadata FROM live_card AS l
        ON CONFLICT (tenant_id, card_id, workflow_id, run_id) DO NOTHING
        RETURNING recorded_at
    ),

    counted AS (
        INSERT INTO cards.card_usage_counters AS n (tenant_id, card_id, slot, usage_count, last_used_at)
        SELECT p_tenant_id, p_card_id, v_slot, 1, r.recorded_at FROM recorded AS r
        ON CONFLICT (tenant_id, card_id, slot) DO UPDATE
        SET usage_count = n.usage_count + 1, last_used_at = greatest(n.last_used_at, excluded.last_used_at)
        RETURNING n.usage_count
    )

    SELECT
        EXISTS (SELECT FROM live_card),
        (SELECT r.recorded_at FROM recorded AS r),
        (SELECT c.usage_count FROM counted AS c) + (
            SELECT coalesce(sum(o.usage_count), 0)::bigint FROM cards.card_usage_counters AS o
            WHERE o.tenant_id = p_tenant_id AND o.card_id = p_card_id AND o.slot <> v_slot
        )
    INTO v_live, v_recorded_at, v_usage_count;

    IF NOT v_live THEN
        RAISE EXCEPTION USING ERRCODE = 'CKNFD', MESSAGE = 'No such card.';
    END IF;
    IF v_recorded_at IS NULL THEN
        -- A repeat: its first report and the count, in a new statement, so with a new
        -- snapshot: it also sees a first report committed while this one waited for it.
        SELECT
            (
                SELECT u.recorded_at FROM cards.card_usage AS u
                WHERE
                    u.tenant_id = p_tenant_id AND u.card_id = p_card_id
                    AND u.workflow_id = p_workflow_id AND u.run_id = p_run_id
            ),
            (
                SELECT coalesce(sum(n.usage_count), 0)::bigint FROM cards.card_usage_counters AS n
                WHERE n.tenant_id = p_tenant_id AND n.card_id = p_card_id
            )
        INTO v_recorded_at, v_usage_count;
        deduplicated := true;
    ELSE
        deduplicated := false;
    END IF;
    response := json_build_object(
        'card_id', p_card_id,
        'usage_count', v_usage_count,
        'deduplicated', deduplicated,
        'recorded_at', cards._rfc3339(v_recorded_at)
    );
    RETURN NEXT;
END
$$;

-- Records that a workflow run used a card. The first report of a (card, workflow_id,
-- run_id) adds one to the card's usage; a repeat changes nothing and says so.
-- Unknown, deleted or another tenant's card: CKNFD.
CREATE OR REPLACE FUNCTION cards.track_usage(
    p_tenant_id uuid,
    p_card_id uuid,
    p_workflow_id text,
    p_run_id text,
    p_metadata jsonb DEFAULT '{}'
)
RETURNS json
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_errors jsonb := cards._usage_input_errors(p_workflow_id, p_run_id, p_metadata);
BEGIN
    PERFORM cards._enter_tenant(p_tenant_id);
    IF jsonb_array_length(v_errors) > 0 THEN
        PERFORM cards._raise_invalid(v_errors);
    END IF;
    RETURN (SELECT u.response FROM cards._track_usage(p_tenant_id, p_card_id, p_workflow_id, p_run_id, p_metadata) AS u);
END
$$;
COMMENT ON FUNCTION cards.track_usage(uuid, uuid, text, text, jsonb) IS
'Record that a workflow run used a card; repeats of the same run are deduplicated.';
GRANT EXECUTE ON FUNCTION cards.track_usage(uuid, uuid, text, text, jsonb) TO cards_gateway, cards_admin;

-- The HTTP form of track_usage: the raw path id and request body, validated here.
-- Also answers whether the report was a repeat, for the gateway's metrics.
CREATE OR REPLACE FUNCTION cards.track_usage_request(p_tenant_id uuid, p_card_id text, p_body bytea)
RETURNS TABLE (response json, deduplicated boolean)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_doc jsonb;
    v_errors jsonb;
    v_card_id uuid;
    v_workflow_id text;
    v_run_id text;
    v_metadata jsonb;
BEGIN
    PERFORM cards._enter_tenant(p_tenant_id);
    v_card_id := cards._card_id(p_card_id);
    SELECT r.body, r.errors INTO v_doc, v_errors
    FROM cards._request_object(p_body, '{workflow_id,run_id,metadata}') AS r;
    v_workflow_id := CASE WHEN jsonb_typeof(v_doc -> 'workflow_id') = 'string' THEN v_doc ->> 'workflow_id' END;
    v_run_id := CASE WHEN jsonb_typeof(v_doc -> 'run_id') = 'string' THEN v_doc ->> 'run_id' END;
    v_metadata := coalesce(v_doc -> 'metadata', '{}');
    IF v_doc IS NOT NULL THEN
        IF cards._has_nul(v_doc) THEN  -- only then can a field hold one (_parse_body)
            v_errors := v_errors || cards._nul_errors(v_doc, '{metadata,run_id,workflow_id}');
        END IF;
        v_errors := v_errors || cards._usage_input_errors(v_workflow_id, v_run_id, v_metadata);
    END IF;
    IF jsonb_array_length(v_errors) > 0 THEN
        PERFORM cards._raise_invalid(v_errors);
    END IF;
    RETURN QUERY SELECT * FROM cards._track_usage(p_tenant_id, v_card_id, v_workflow_id, v_run_id, v_metadata);
END
$$;
COMMENT ON FUNCTION cards.track_usage_request(uuid, text, bytea) IS
'Gateway: track_usage from the raw path id and HTTP body, and whether it was a repeat.';
GRANT EXECUTE ON FUNCTION cards.track_usage_request(uuid, text, bytea) TO cards_gateway, cards_admin;
