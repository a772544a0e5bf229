-- Listing and search (API.md, "Card lifecycle"); the plan of each filter is described in
-- sql/CONVENTIONS.md, "Listing plans".

-- The tenant's live cards, newest first, filtered by kind, tags (all must match),
-- metadata containment and full text, one page at a time:
-- {"cards": [...], "next_cursor": text or null}. A cursor is valid only with the filters
-- it was issued for.
CREATE OR REPLACE FUNCTION cards.list_cards(
    p_tenant_id uuid,
    p_kind text DEFAULT NULL,
    p_tags text[] DEFAULT NULL,
    p_contains text DEFAULT NULL,
    p_q text DEFAULT NULL,
    p_limit text DEFAULT NULL,
    p_cursor text DEFAULT NULL
)
RETURNS json
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_errors jsonb := '[]'::jsonb;
    v_contains jsonb;
    v_contains_error text;
    v_query tsquery;
    v_limit integer;
    v_filters text;
    v_position jsonb;
    v_after_at timestamptz;
    v_after_id uuid;
    v_sql text;
    v_cards json;
    v_more boolean;
    v_last_at timestamptz;
    v_last_id uuid;
    v_tag text;
    v_order text;
BEGIN
    PERFORM cards._enter_tenant(p_tenant_id);
    IF p_kind !~ '^[a-z0-9_.-]{1,64}$' THEN
        v_errors := v_errors || '[{"field": "kind", "message": "must be 1 to 64 characters of a-z, 0-9, \"_\", \".\" and \"-\""}]';
    END IF;
    IF cardinality(p_tags) > 32 OR EXISTS (
        SELECT FROM unnest(p_tags) AS t (tag) WHERE coalesce(char_length(t.tag), 0) NOT BETWEEN 1 AND 64
    ) THEN
        v_errors := v_errors || '[{"field": "tag", "message": "must be at most 32 tags of 1 to 64 characters"}]';
    END IF;
    -- No card's metadata is over 16 KiB, so no longer object could match one. Containment
    -- compares each array element of contains with each of the card's metadata at its
    -- place, recursively for arrays and objects: 8 elements, 2 of them arrays or objects,
    -- keep that to a few milliseconds per card (docs/SECURITY.md, bench/containment.py).
    IF octet_length(p_contains) > 16384 THEN
        v_errors := v_errors || '[{"field": "contains", "message": "must be at most 16 KiB"}]';
    ELSE
        v_contains := cards._try_jsonb(cards._mark_nul_escapes(p_contains));
        v_contains_error := CASE
            WHEN p_contains IS NOT NULL AND jsonb_typeof(v_contains) IS DISTINCT FROM 'object'
                THEN 'must be a JSON object'
            ELSE cards._json_bounds_error(v_contains, 65536, 'must be at most 16 KiB')
        END;
        IF v_contains_error IS NULL AND (
            jsonb_array_length(jsonb_path_query_array(v_contains, 'strict $.** ? (@.type() == "array")[*]')) > 8
            OR jsonb_array_length(jsonb_path_query_array(
                v_contains, 'strict $.** ? (@.type() == "array")[*] ? (@.type() == "array" || @.type() == "object")'
            )) > 2
        ) THEN
            v_contains_error := 'must hold at most 8 array elements in all, at most 2 of them arrays or objects';
        ELSIF v_contains_error IS NULL AND cards._has_nul(v_contains) THEN
            v_contains_error := 'must not contain NUL (\u0000)';
        END IF;
        IF v_contains_error IS NOT NULL THEN
            v_errors := v_errors || jsonb_build_array(jsonb_build_object('field', 'contains', 'message', v_contains_error));
            v_contains := NULL;
        END IF;
    END IF;
    IF char_length(p_q) NOT BETWEEN 1 AND 500 THEN
        v_errors := v_errors || '[{"field": "q", "message": "must be 1 to 500 characters"}]';
    END IF;
    IF jsonb_array_length(v_errors) > 0 THEN
        PERFORM cards._raise_invalid(v_errors);
    END IF;
    v_limit := cards._page_limit(p_limit);
    v_query := websearch_to_tsquery('english'::regconfig, p_q);

    -- The cursor carries a digest of the filters, so it cannot be replayed on another query.
    -- Each filter keeps its position (absent = null), so kind=x and q=x digest differently.
    v_filters := left(md5(jsonb_build_array(
        p_kind, (SELECT jsonb_agg(t ORDER BY t) FROM unnest(p_tags) AS t), v_contains, p_q
    )::text), 12);
    v_position := cards._decode_cursor(p_cursor);
    IF v_position IS NOT NULL THEN
        IF v_position ->> 2 IS DISTINCT FROM v_filters
            OR (v_position ->> 1) !~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN
            PERFORM cards._raise_invalid('[{"field": "cursor", "message": "is not a cursor this API issued for this query"}]');
        END IF;
        v_after_at := cards._parse_timestamp(v_position ->> 0, 'cursor');
        v_after_id := (v_position ->> 1)::uuid;
    END IF;

    -- A tag listing walks cards.card_tags newest first from one of its tags, the
    -- tenant's rarest (counted up to 1000 rows each); the card must carry the others.
    IF cardinality(p_tags) = 1 THEN
        v_tag := (SELECT t.tag FROM unnest(p_tags) AS t (tag));
    ELSIF cardinality(p_tags) > 1 THEN
        v_tag := (
            SELECT t.tag
            FROM unnest(p_tags) AS t (tag)
            ORDER BY
                (
                    SELECT count(*) FROM (
                        SELECT FROM cards.card_tags AS x
                        WHERE x.tenant_id = p_tenant_id AND x.tag = t.tag
                        LIMIT 1000
                    ) AS s
                ),
                t.tag
            LIMIT 1
        );
    END IF;
    v_order := CASE WHEN v_tag IS NOT NULL THEN 't' ELSE 'c' END;

    -- Only the filters given are in the statement, so each combination is planned on its
    -- own (and served by its index); values travel only as parameters.
    -- The row as cards.cards, for on a Citus shard `c` has the shard's own row type.
    -- q= joins the card's cards.card_search row (one per card: its key).
    v_sql := 'SELECT ROW(c.*)::cards.cards AS c FROM '
        || CASE
            WHEN v_tag IS NOT NULL THEN
                'cards.card_tags AS t INNER JOIN cards.cards AS c ON c.tenant_id = t.tenant_id'
                || ' AND c.card_id = t.card_id AND c.created_at = t.created_at'
            ELSE 'cards.cards AS c'
        END
        || CASE
            WHEN v_query IS NOT NULL THEN
                ' INNER JOIN cards.card_search AS s ON s.tenant_id = c.tenant_id AND s.card_id = c.card_id'
            ELSE ''
        END
        || ' WHERE '
        || CASE WHEN v_tag IS NOT NULL THEN 't.tenant_id = $1 AND t.tag = $10 AND ' ELSE '' END
        || 'c.tenant_id = $1 AND c.deleted_at IS NULL'
        || CASE WHEN p_kind IS NOT NULL THEN ' AND c.kind = $2' ELSE '' END
        || CASE WHEN cardinality(p_tags) > 1 THEN ' AND c.tags @> $3' ELSE '' END
        || CASE WHEN v_contains IS NOT NULL THEN ' AND c.metadata @> $4' ELSE '' END
        || CASE WHEN v_query IS NOT NULL THEN ' AND s.tenant_id = $1 AND s.search @@ $5' ELSE '' END
        || CASE
            WHEN v_position IS NOT NULL
                THEN format(' AND (%1$s.created_at, %1$s.card_id) < ($6, $7)', v_order)
            ELSE ''
        END
        || format(' ORDER BY %1$s.created_at DESC, %1$s.card_id DESC LIMIT $8', v_order);
    EXECUTE format(
        $q$
        SELECT
            coalesce(json_agg(cards._card_json(p.c, u.usage_count, u.last_used_at) ORDER BY p.n)
                FILTER (WHERE p.n <= $9), '[]'),
            count(*) > $9,
            max((p.c).created_at) FILTER (WHERE p.n = $9),
            max((p.c).card_id::text) FILTER (WHERE p.n = $9)::uuid
        FROM (SELECT page.c, row_number() OVER () AS n FROM (%s) AS page) AS p
        CROSS JOIN LATERAL (
            SELECT sum(n.usage_count) AS usage_count, max(n.last_used_at) AS last_used_at
            FROM cards.card_usage_counters AS n
            WHERE n.tenant_id = $1 AND n.card_id = (p.c).card_id
        ) AS u
        $q$,
        v_sql
    )
    INTO v_cards, v_more, v_last_at, v_last_id
    USING
        p_tenant_id, p_kind, p_tags, v_contains, v_query, v_after_at, v_after_id, v_limit + 1, v_limit, v_tag;

    RETURN json_build_object(
        'cards', v_cards,
        'next_cursor', CASE WHEN v_more THEN cards._encode_cursor(jsonb_build_array(
            cards._rfc3339(v_last_at), v_last_id, v_filters
        )) END
    );
END
$$;
COMMENT ON FUNCTION cards.list_cards(uuid, text, text[], text, text, text, text) IS
'List and search live cards, newest first, with keyset pagination.';
GRANT EXECUTE ON FUNCTION cards.list_cards(uuid, text, text[], text, text, text, text) TO cards_gateway, cards_admin;
