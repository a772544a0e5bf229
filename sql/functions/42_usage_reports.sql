-- Usage history and summaries (API.md, "Card lifecycle").

-- The runs that used a live card, newest first, one page at a time:
-- {"usage": [{workflow_id, run_id, metadata, recorded_at}], "next_cursor"}.
CREATE OR REPLACE FUNCTION cards.card_usage_history(
    p_tenant_id uuid, p_card_id text, p_limit text DEFAULT NULL, p_cursor text DEFAULT NULL
)
RETURNS json
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_card_id uuid;
    v_limit integer;
    v_position jsonb;
    v_after_at timestamptz;
    v_result json;
BEGIN
    PERFORM cards._enter_tenant(p_tenant_id);
    v_card_id := cards._require_live_card(p_tenant_id, cards._card_id(p_card_id));
    v_limit := cards._page_limit(p_limit);
    v_position := cards._decode_cursor(p_cursor);
    IF v_position IS NOT NULL AND (
        jsonb_array_length(v_position) <> 3
        OR jsonb_typeof(v_position -> 1) <> 'string' OR jsonb_typeof(v_position -> 2) <> 'string'
    ) THEN
        PERFORM cards._raise_invalid('[{"field": "cursor", "message": "is not a cursor this API issued"}]');
    END IF;
    v_after_at := cards._parse_timestamp(v_position ->> 0, 'cursor');

    WITH page AS (
        SELECT u.workflow_id, u.run_id, u.metadata, u.recorded_at, row_number() OVER (
            ORDER BY u.recorded_at DESC, u.workflow_id DESC, u.run_id DESC
        ) AS n
        FROM cards.card_usage AS u
        WHERE
            u.tenant_id = p_tenant_id AND u.card_id = v_card_id
            AND u.recorded_at > '-infinity'  -- names card_usage_card_newest (sql/schema/0003)
            AND (
                v_position IS NULL
                OR (u.recorded_at, u.workflow_id, u.run_id) < (v_after_at, v_position ->> 1, v_position ->> 2)
            )
        ORDER BY u.recorded_at DESC, u.workflow_id DESC, u.run_id DESC
        LIMIT v_limit + 1
    )
    SELECT json_build_object(
        'usage', coalesce(json_agg(json_build_object(
            'workflow_id', p.workflow_id,
            'run_id', p.run_id,
            'metadata', p.metadata,
            'recorded_at', cards._rfc3339(p.recorded_at)
        ) ORDER BY p.n) FILTER (WHERE p.n <= v_limit), '[]'),
        'next_cursor', CASE WHEN count(*) > v_limit THEN cards._encode_cursor(jsonb_build_array(
            cards._rfc3339(max(p.recorded_at) FILTER (WHERE p.n = v_limit)),
            max(p.workflow_id) FILTER (WHERE p.n = v_limit),
            max(p.run_id) FILTER (WHERE p.n = v_limit)
        )) END
    )
    INTO v_result
    FROM page AS p;
    RETURN v_result;
END
$$;
COMMENT ON FUNCTION cards.card_usage_history(uuid, text, text, text) IS
'The runs that used a live card, newest first, paginated.';
GRANT EXECUTE ON FUNCTION cards.card_usage_history(uuid, text, text, text) TO cards_gateway, cards_admin;

-- Usage events of the tenant per hour or day (UTC) in [from, to), and the ten most used
-- cards of that window. Defaults: to = now, from = 24 hours (hour) or 30 days (day)
-- earlier. At most 1000 buckets.
CREATE OR REPLACE FUNCTION cards.usage_summary(
    p_tenant_id uuid, p_from text DEFAULT NULL, p_to text DEFAULT NULL, p_bucket text DEFAULT NULL
)
RETURNS json
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_bucket text := coalesce(p_bucket, 'hour');
    v_step interval;
    v_to timestamptz;
    v_from timestamptz;
    v_result json;
BEGIN
    PERFORM cards._enter_tenant(p_tenant_id);
    IF v_bucket NOT IN ('hour', 'day') THEN
        PERFORM cards._raise_invalid('[{"field": "bucket", "message": "must be hour or day"}]');
    END IF;
    v_step := ('1 ' || v_bucket)::interval;
    v_to := coalesce(cards._parse_timestamp(p_to, 'to'), now());
    v_from := coalesce(
        cards._parse_timestamp(p_from, 'from'),
        v_to - CASE v_bucket WHEN 'hour' THEN interval '24 hours' ELSE interval '30 days' END
    );
    IF v_from >= v_to THEN
        PERFORM cards._raise_invalid('[{"field": "from", "message": "must be before to"}]');
    -- Counted in whole buckets: a window off the hour (or day) touches one more bucket.
    ELSIF date_trunc(v_bucket, (v_to AT TIME ZONE 'UTC') - interval '1 microsecond')
        - date_trunc(v_bucket, v_from AT TIME ZONE 'UTC') >= v_step * 1000 THEN
        PERFORM cards._raise_invalid('[{"field": "to", "message": "the window spans more than 1000 buckets"}]');
    END IF;

    WITH events AS (
        SELECT u.card_id, date_trunc(v_bucket, u.recorded_at AT TIME ZONE 'UTC') AS bucket
        FROM cards.card_usage AS u
        WHERE u.tenant_id = p_tenant_id AND u.recorded_at >= v_from AND u.recorded_at < v_to
    ),

    buckets AS (
        SELECT s.bucket, count(e.bucket) AS events
        FROM generate_series(
            date_trunc(v_bucket, v_from AT TIME ZONE 'UTC'),
            (v_to AT TIME ZONE 'UTC') - interval '1 microsecond',
            v_step
        ) AS s (bucket)
        LEFT JOIN events AS e ON e.bucket = s.bucket
        GROUP BY s.bucket
    ),

    top_cards AS (
        SELECT e.card_id, count(*) AS events
        FROM events AS e
        GROUP BY e.card_id
        ORDER BY events DESC, e.card_id
        LIMIT 10
    )

    SELECT json_build_object(
        'from', cards._rfc3339(v_from),
        'to', cards._rfc3339(v_to),
        'bucket', v_bucket,
        'buckets', (
            SELECT coalesce(json_agg(json_build_object(
                'start', cards._rfc3339(b.bucket AT TIME ZONE 'UTC'), 'events', b.events
            ) ORDER BY b.bucket), '[]')
            FROM buckets AS b
        ),
        'top_cards', (
            SELECT coalesce(json_agg(json_build_object(
                'card_id', t.card_id, 'title', c.title, 'events', t.events
            ) ORDER BY t.events DESC, t.card_id), '[]')
            FROM top_cards AS t
            LEFT JOIN cards.cards AS c ON c.tenant_id = p_tenant_id AND c.card_id = t.card_id
        )
    )
    INTO v_result;
    RETURN v_result;
END
$$;
COMMENT ON FUNCTION cards.usage_summary(uuid, text, text, text) IS
'Usage events per hour or day in a window, and the most used cards.';
GRANT EXECUTE ON FUNCTION cards.usage_summary(uuid, text, text, text) TO cards_gateway, cards_admin;
