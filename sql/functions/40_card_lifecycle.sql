-- The card lifecycle (API.md, "Card lifecycle"): read one, list and search, update with
-- ETags, soft delete and restore. These functions take the HTTP-level inputs (ids and
-- query values as text, bodies as bytes), so that SQL and HTTP callers get the same
-- answers: a malformed id is CKNFD, a malformed filter CKVAL.

-- The ETag of a card version (a strong validator: any change bumps the version).
CREATE OR REPLACE FUNCTION cards._etag(p_card cards.cards)
RETURNS text
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
AS $$
    SELECT '"' || p_card.version || '"'
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

-- This id, when it names a live card of the tenant; else CKNFD. For callers that need
-- no more of the card than that it is there (usage reports, history).
CREATE OR REPLACE FUNCTION cards._require_live_card(p_tenant_id uuid, p_card_id uuid)
RETURNS uuid
LANGUAGE plpgsql
STABLE
AS $$
BEGIN
    PERFORM FROM cards.cards AS c
    WHERE c.tenant_id = p_tenant_id AND c.card_id = p_card_id AND c.deleted_at IS NULL;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'CKNFD', MESSAGE = 'No such card.';
    END IF;
    RETURN p_card_id;
END
$$;

-- The live card with this id, locked for update when asked, or CKNFD.
CREATE OR REPLACE FUNCTION cards._live_card(p_tenant_id uuid, p_card_id uuid, p_lock boolean)
RETURNS cards.cards
LANGUAGE plpgsql
VOLATILE
AS $$
DECLARE
    v_card cards.cards;
BEGIN
    IF p_lock THEN
        SELECT * INTO v_card FROM cards.cards AS c
        WHERE c.tenant_id = p_tenant_id AND c.card_id = p_card_id AND c.deleted_at IS NULL
        FOR NO KEY UPDATE;
    ELSE
        SELECT * INTO v_card FROM cards.cards AS c
        WHERE c.tenant_id = p_tenant_id AND c.card_id = p_card_id AND c.deleted_at IS NULL;
    END IF;
    IF v_card.card_id IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'CKNFD', MESSAGE = 'No such card.';
    END IF;
    RETURN v_card;
END
$$;

-- A card as answered by the single-card routes: the document and its ETag.
CREATE OR REPLACE FUNCTION cards._card_with_etag(p_card cards.cards)
RETURNS TABLE (card json, etag text)
LANGUAGE plpgsql  -- not sql: Citus cannot plan a SQL function's statement with its parameters
STABLE
AS $$
BEGIN
    RETURN QUERY
    SELECT cards._card_json(p_card, sum(n.usage_count), max(n.last_used_at)), cards._etag(p_card)
    FROM cards.card_usage_counters AS n
    WHERE n.tenant_id = p_card.tenant_id AND n.card_id = p_card.card_id;
END
$$;

-- One live card of the tenant, with its ETag; CKNFD for unknown, deleted or foreign ids.
CREATE OR REPLACE FUNCTION cards.get_card(p_tenant_id uuid, p_card_id text)
RETURNS TABLE (card json, etag text)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM cards._enter_tenant(p_tenant_id);
    RETURN QUERY SELECT * FROM cards._card_with_etag(
        cards._live_card(p_tenant_id, cards._card_id(p_card_id), false)
    );
END
$$;
COMMENT ON FUNCTION cards.get_card(uuid, text) IS 'Read one live card and its ETag.';
GRANT EXECUTE ON FUNCTION cards.get_card(uuid, text) TO cards_gateway, cards_admin;

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
    v_sql := 'SELECT ROW(c.*)::cards.cards AS c FROM '
        || CASE
            WHEN v_tag IS NOT NULL THEN
                'cards.card_tags AS t INNER JOIN cards.cards AS c ON c.tenant_id = t.tenant_id'
                || ' AND c.card_id = t.card_id AND c.created_at = t.created_at'
                || ' WHERE t.tenant_id = $1 AND t.tag = $10 AND '
            ELSE 'cards.cards AS c WHERE '
        END
        || 'c.tenant_id = $1 AND c.deleted_at IS NULL'
        || CASE WHEN p_kind IS NOT NULL THEN ' AND c.kind = $2' ELSE '' END
        || CASE WHEN cardinality(p_tags) > 1 THEN ' AND c.tags @> $3' ELSE '' END
        || CASE WHEN v_contains IS NOT NULL THEN ' AND c.metadata @> $4' ELSE '' END
        || CASE WHEN v_query IS NOT NULL THEN ' AND c.search @@ $5' ELSE '' END
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

-- Changes a live card's fields (a JSON object of the fields to replace), given the ETag
-- it was read with: CKPRQ without one, CKPFL when stale. A content change re-hashes the
-- card and is refused with CKDUP if it would duplicate another live card.
CREATE OR REPLACE FUNCTION cards.update_card(
    p_tenant_id uuid, p_card_id text, p_if_match text, p_body bytea
)
RETURNS TABLE (card json, etag text)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_patch jsonb;
    v_if_match text[];
    v_card cards.cards;
    v_merged jsonb;
    v_errors jsonb;
    v_hash bytea;
BEGIN
    -- The tenant, then the card, then If-Match, then the body: a precondition is checked
    -- before the content is processed (RFC 9110 13.2.1), so a stale ETag is a 412 whatever
    -- the body holds.
    PERFORM cards._enter_tenant(p_tenant_id);
    v_card := cards._live_card(p_tenant_id, cards._card_id(p_card_id), true);
    v_if_match := string_to_array(regexp_replace(p_if_match, '[ \t]', '', 'g'), ',');
    IF p_if_match IS NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = 'CKPRQ',
            MESSAGE = 'Send If-Match with the ETag of the card you read, so that no change is lost.';
    -- If-Match is "*" or a comma-separated list of ETags (RFC 9110 13.1.1); any one may match.
    ELSIF NOT (cards._etag(v_card) = ANY (v_if_match) OR '*' = ANY (v_if_match)) THEN
        RAISE EXCEPTION USING
            ERRCODE = 'CKPFL',
            MESSAGE = 'The card has changed since it was read; read it again and retry.';
    END IF;
    v_patch := cards._parse_body(p_body);

    v_errors := CASE WHEN jsonb_typeof(v_patch) <> 'object'
        THEN '[{"field": "(body)", "message": "must be a JSON object"}]'
        ELSE cards._nul_errors(v_patch, '{content,kind,metadata,tags,title}')
    END;
    IF jsonb_array_length(v_errors) = 0 THEN
        v_merged := jsonb_build_object(
            'kind', v_card.kind, 'title', v_card.title, 'content', v_card.content,
            'tags', to_jsonb(v_card.tags), 'metadata', v_card.metadata
        ) || v_patch;
        v_errors := (
            SELECT coalesce(jsonb_agg(e.error - 'index'), '[]')
            FROM jsonb_array_elements(cards._batch_input_errors(jsonb_build_array(v_merged))) AS e (error)
        );
    END IF;
    IF jsonb_array_length(v_errors) > 0 THEN
        PERFORM cards._raise_invalid(v_errors);
    END IF;

    v_hash := cards._content_hash(v_merged -> 'kind', v_merged -> 'title', v_merged -> 'content');
    IF v_hash = v_card.content_hash AND v_merged -> 'tags' = to_jsonb(v_card.tags)
        AND v_merged -> 'metadata' = v_card.metadata THEN
        RETURN QUERY SELECT * FROM cards._card_with_etag(v_card);  -- nothing changes
        RETURN;
    END IF;
    BEGIN
        UPDATE cards.cards AS c
        SET
            kind = v_merged ->> 'kind',
            title = v_merged ->> 'title',
            content = v_merged -> 'content',
            tags = ARRAY(SELECT jsonb_array_elements_text(v_merged -> 'tags')),
            metadata = v_merged -> 'metadata',
            content_hash = v_hash,
            search = cards.search_vector(v_merged ->> 'title', v_merged -> 'content'),
            version = c.version + 1,
            updated_at = now()
        WHERE c.tenant_id = p_tenant_id AND c.card_id = v_card.card_id
        RETURNING * INTO v_card;
    EXCEPTION WHEN unique_violation THEN
        RAISE EXCEPTION USING
            ERRCODE = 'CKDUP',
            MESSAGE = 'Another live card already has this kind, title and content.';
    END;
    RETURN QUERY SELECT * FROM cards._card_with_etag(v_card);
END
$$;
COMMENT ON FUNCTION cards.update_card(uuid, text, text, bytea) IS
'Replace fields of a live card, guarded by its ETag (If-Match).';
GRANT EXECUTE ON FUNCTION cards.update_card(uuid, text, text, bytea) TO cards_gateway, cards_admin;

-- Soft-deletes a live card: it leaves retrieve, listings, usage and dedupe. CKNFD if
-- there is no such live card.
CREATE OR REPLACE FUNCTION cards.delete_card(p_tenant_id uuid, p_card_id text)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_card_id uuid;
BEGIN
    PERFORM cards._enter_tenant(p_tenant_id);
    v_card_id := cards._card_id(p_card_id);
    UPDATE cards.cards AS c SET deleted_at = now(), updated_at = now(), version = c.version + 1
    WHERE c.tenant_id = p_tenant_id AND c.card_id = v_card_id AND c.deleted_at IS NULL;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'CKNFD', MESSAGE = 'No such card.';
    END IF;
    PERFORM cards._count_live_cards(p_tenant_id, -1);
END
$$;
COMMENT ON FUNCTION cards.delete_card(uuid, text) IS 'Soft-delete a live card.';
GRANT EXECUTE ON FUNCTION cards.delete_card(uuid, text) TO cards_gateway, cards_admin;

-- Brings a soft-deleted card back (a live card is answered as it is). CKDUP when a live
-- card with the same content exists now; CKNFD when the tenant has no such card.
CREATE OR REPLACE FUNCTION cards.restore_card(p_tenant_id uuid, p_card_id text)
RETURNS TABLE (card json, etag text)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_card_id uuid;
    v_card cards.cards;
BEGIN
    PERFORM cards._enter_tenant(p_tenant_id);
    v_card_id := cards._card_id(p_card_id);
    BEGIN
        UPDATE cards.cards AS c SET deleted_at = NULL, updated_at = now(), version = c.version + 1
        WHERE c.tenant_id = p_tenant_id AND c.card_id = v_card_id AND c.deleted_at IS NOT NULL
        RETURNING * INTO v_card;
    EXCEPTION WHEN unique_violation THEN
        RAISE EXCEPTION USING
            ERRCODE = 'CKDUP',
            MESSAGE = 'A live card with the same kind, title and content exists; it cannot be restored.';
    END;
    IF v_card.card_id IS NULL THEN
        v_card := cards._live_card(p_tenant_id, v_card_id, false);
    ELSE
        PERFORM cards._count_live_cards(p_tenant_id, 1);  -- a restore may exceed the quota
    END IF;
    RETURN QUERY SELECT * FROM cards._card_with_etag(v_card);
END
$$;
COMMENT ON FUNCTION cards.restore_card(uuid, text) IS 'Undo a soft delete, unless a live duplicate exists.';
GRANT EXECUTE ON FUNCTION cards.restore_card(uuid, text) TO cards_gateway, cards_admin;
