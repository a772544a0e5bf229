-- Retrieval by id (API.md, "POST /api/v1/cards/retrieve").

-- A card as the API answers it, as JSON text, given its stored rendering (sql/schema/0010)
-- and its usage (summed over the counter slots by the caller). A single expression, so
-- that it is inlined into the calling query. concat, not ||: each || copies the text so far.
CREATE OR REPLACE FUNCTION cards._card_text(
    p_rendering text, p_usage_count numeric, p_last_used_at timestamptz
)
RETURNS text
LANGUAGE sql
STABLE
AS $$
    SELECT concat(
        p_rendering, ', "usage_count" : ', coalesce(p_usage_count, 0),
        ', "last_used_at" : ', coalesce('"' || cards._rfc3339(p_last_used_at) || '"', 'null'), '}'
    )
$$;

-- The same as json, for answers built with json functions (a card, a listing). The cast
-- parses the text once, still cheaper than rendering the card's jsonb again.
CREATE OR REPLACE FUNCTION cards._card_json(
    p_card cards.cards, p_usage_count numeric, p_last_used_at timestamptz
)
RETURNS json
LANGUAGE sql
STABLE
AS $$
    SELECT cards._card_text(p_card.rendering, p_usage_count, p_last_used_at)::json
$$;

-- _retrieve and retrieve_request answered json before migration 0010 (the stored
-- rendering): a return type cannot be replaced, so a database that has the json forms
-- drops them first, once.
DO $$
BEGIN
    IF EXISTS (
        SELECT FROM pg_catalog.pg_proc AS p
        WHERE p.oid = to_regprocedure('cards._retrieve(uuid, uuid[])') AND p.prorettype = 'json'::regtype
    ) THEN
        DROP FUNCTION cards._retrieve(uuid, uuid []);
    END IF;
    IF EXISTS (
        SELECT FROM pg_catalog.pg_proc AS p
        WHERE p.oid = to_regprocedure('cards.retrieve_request(uuid, bytea)') AND p.prorettype = 'json'::regtype
    ) THEN
        DROP FUNCTION cards.retrieve_request(uuid, bytea);
    END IF;
END
$$;

-- The whole of retrieve, for retrieve and retrieve_request, which have entered the tenant:
-- the answer as JSON text. Each card is its stored rendering (sql/schema/0010) and its
-- usage; the text is not parsed again here (casting it to json would validate it all).
CREATE OR REPLACE FUNCTION cards._retrieve(p_tenant_id uuid, p_ids uuid[])
RETURNS text
LANGUAGE plpgsql
VOLATILE
AS $$
DECLARE
    v_result text;
BEGIN
    IF coalesce(cardinality(p_ids), 0) NOT BETWEEN 1 AND 1000 THEN
        PERFORM cards._raise_invalid('[{"field": "ids", "message": "must hold 1 to 1000 ids"}]');
    END IF;
    IF array_position(p_ids, NULL) IS NOT NULL THEN
        PERFORM cards._raise_invalid(jsonb_build_array(jsonb_build_object(
            'index', array_position(p_ids, NULL) - 1, 'field', 'ids', 'message', 'must not be null'
        )));
    END IF;
    -- Each id by its own probe of the primary key, and the usage of each found card by its
    -- own probe: at most 1000 of each, whatever the statistics say. The card's LIMIT 1 (the
    -- key finds one at most) keeps its subquery from being flattened into a join, which read
    -- every card of a tenant not yet in the statistics (tests/test_fuzz.py). One scan of the
    -- key for all the ids, joined to them, compared every id with every card (+40 %); the
    -- generic plan of one usage scan for all the cards aggregated it again for each card.
    -- concat, not ||, around the cards: each || copies the whole text so far.
    SELECT concat(
        '{"cards" : [',
        string_agg(cards._card_text(c.rendering, u.usage_count, u.last_used_at), ', ' ORDER BY w.ord)
        FILTER (WHERE c.rendering IS NOT NULL),
        '], "missing" : [',
        string_agg('"' || w.id || '"', ', ' ORDER BY w.ord) FILTER (WHERE c.rendering IS NULL),
        ']}'
    )
    INTO v_result
    FROM (
        SELECT i.id, min(i.ord) AS ord FROM unnest(p_ids) WITH ORDINALITY AS i (id, ord) GROUP BY i.id
    ) AS w
    LEFT JOIN LATERAL (
        SELECT c.card_id, c.rendering FROM cards.cards AS c
        WHERE c.tenant_id = p_tenant_id AND c.card_id = w.id AND c.deleted_at IS NULL
        LIMIT 1
    ) AS c ON true
    LEFT JOIN LATERAL (
        SELECT sum(n.usage_count) AS usage_count, max(n.last_used_at) AS last_used_at
        FROM cards.card_usage_counters AS n
        WHERE n.tenant_id = p_tenant_id AND n.card_id = c.card_id
    ) AS u ON c.card_id IS NOT NULL;
    RETURN v_result;
END
$$;

-- The tenant's live cards among `p_ids`, in order of first appearance, each once; the
-- other ids (unknown, deleted, another tenant's: indistinguishable) under "missing".
CREATE OR REPLACE FUNCTION cards.retrieve(p_tenant_id uuid, p_ids uuid[])
RETURNS json
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM cards._enter_tenant(p_tenant_id);
    RETURN cards._retrieve(p_tenant_id, p_ids)::json;
END
$$;
COMMENT ON FUNCTION cards.retrieve(uuid, uuid[]) IS 'Read live cards by id; the rest are listed as missing.';
GRANT EXECUTE ON FUNCTION cards.retrieve(uuid, uuid[]) TO cards_gateway, cards_admin;

-- The HTTP form of retrieve: the raw request body ({"ids": [...]}), validated here. The
-- answer is retrieve's JSON as UTF-8 bytes, which the gateway sends as they are: as `json`
-- it would be parsed once more to be validated, which costs more than rendering saves.
CREATE OR REPLACE FUNCTION cards.retrieve_request(p_tenant_id uuid, p_body bytea)
RETURNS bytea
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_ids jsonb;
    v_errors jsonb;
    v_id_array uuid[];
    v_malformed bigint;
BEGIN
    PERFORM cards._enter_tenant(p_tenant_id);
    SELECT r.body -> 'ids', r.errors INTO v_ids, v_errors FROM cards._request_object(p_body, '{ids}') AS r;
    -- The count of ids is retrieve's rule, checked here too so that no more than 1000 ids
    -- are looked at; the form of each id is this body's.
    IF jsonb_typeof(v_ids) IS DISTINCT FROM 'array' THEN
        v_errors := v_errors || '[{"field": "ids", "message": "must be an array of ids"}]';
    ELSIF jsonb_array_length(v_ids) NOT BETWEEN 1 AND 1000 THEN
        v_errors := v_errors || '[{"field": "ids", "message": "must hold 1 to 1000 ids"}]';
    ELSE
        -- The ids in one pass, each checked by its shape (36 characters, hyphens where the
        -- canonical form has them) and then by the cast, which accepts the other 32 only if
        -- they are hex digits: cheaper than matching a pattern per id. Any other id makes the
        -- cast fail or fails the shape, and the pattern below names each such id.
        BEGIN
            SELECT
                array_agg((e.id #>> '{}')::uuid ORDER BY e.ord) FILTER (WHERE k.shaped),
                count(*) FILTER (WHERE NOT k.shaped)
            INTO v_id_array, v_malformed
            FROM jsonb_array_elements(v_ids) WITH ORDINALITY AS e (id, ord)
            CROSS JOIN LATERAL (
                SELECT
                    jsonb_typeof(e.id) = 'string' AND octet_length(e.id #>> '{}') = 36
                    AND (e.id #>> '{}') LIKE '________-____-____-____-____________' AS shaped
            ) AS k;
        EXCEPTION WHEN invalid_text_representation THEN
            v_malformed := 1;
        END;
        IF v_malformed > 0 THEN
            v_errors := v_errors || (
                SELECT
                    coalesce(jsonb_agg(
                        jsonb_build_object('index', i.ord - 1, 'field', 'ids', 'message', 'must be a UUID string')
                        ORDER BY i.ord
                    ) FILTER (WHERE i.n <= 100), '[]')
                    || cards._omitted(count(*))
                FROM (
                    SELECT e.ord, row_number() OVER (ORDER BY e.ord) AS n
                    FROM jsonb_array_elements(v_ids) WITH ORDINALITY AS e (id, ord)
                    WHERE
                        jsonb_typeof(e.id) <> 'string'
                        OR NOT cards._is_uuid(e.id #>> '{}')
                ) AS i
            );
        END IF;
    END IF;
    IF jsonb_array_length(v_errors) > 0 THEN
        PERFORM cards._raise_invalid(v_errors);
    END IF;
    RETURN convert_to(cards._retrieve(p_tenant_id, v_id_array), 'UTF8');
END
$$;
COMMENT ON FUNCTION cards.retrieve_request(uuid, bytea) IS 'Gateway: retrieve from the raw HTTP body.';
GRANT EXECUTE ON FUNCTION cards.retrieve_request(uuid, bytea) TO cards_gateway, cards_admin;
