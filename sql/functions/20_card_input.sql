-- The input rules of a card (API.md, "Card representation"), checked in one place.

-- Every rule a batch of card inputs breaks, as a JSON array of {index?, field, message}
-- ordered by index and field (the first 100, then {"omitted": N}: see _raise_invalid);
-- [] when the batch is valid. Set-based passes over the items; content and metadata
-- are bounded (_json_bounds_error) before anything prints them.
CREATE OR REPLACE FUNCTION cards._batch_input_errors(p_cards jsonb)
RETURNS jsonb
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN p_cards IS NULL
            THEN '[{"field": "cards", "message": "is required"}]'
        WHEN jsonb_typeof(p_cards) <> 'array'
            THEN '[{"field": "cards", "message": "must be an array of cards"}]'
        WHEN jsonb_array_length(p_cards) NOT BETWEEN 1 AND 1000
            THEN '[{"field": "cards", "message": "must hold 1 to 1000 cards"}]'
        ELSE (
            -- Each item once, and the elements of every tags array once: the rules that look at
            -- several values (a repeated tag) are one grouping over the whole batch, not a sort
            -- per card (which cost about half of a valid batch's validation).
            WITH items AS (
                SELECT i.ord, i.card, jsonb_typeof(i.card) = 'object' AS is_object
                FROM jsonb_array_elements(p_cards) WITH ORDINALITY AS i (card, ord)
            ),

            tag_elements AS (
                SELECT i.ord, t.tag
                FROM items AS i
                CROSS JOIN LATERAL jsonb_array_elements(CASE
                    WHEN i.is_object AND jsonb_typeof(i.card -> 'tags') = 'array'
                        THEN CASE WHEN jsonb_array_length(i.card -> 'tags') <= 32 THEN i.card -> 'tags' END
                END) AS t (tag)
            ),

            tag_errors AS (
                SELECT
                    t.ord,
                    bool_or(jsonb_typeof(t.tag) <> 'string' OR char_length(t.tag #>> '{}') NOT BETWEEN 1 AND 64)
                        AS bad_element,
                    (array_agg(t.tag ORDER BY t.tag) FILTER (WHERE t.repeated))[1] AS first_repeated
                FROM (
                    SELECT e.ord, e.tag, count(*) > 1 AS repeated
                    FROM tag_elements AS e
                    GROUP BY e.ord, e.tag
                ) AS t
                GROUP BY t.ord
                HAVING bool_or(t.repeated) OR bool_or(
                    jsonb_typeof(t.tag) <> 'string' OR char_length(t.tag #>> '{}') NOT BETWEEN 1 AND 64
                )
            )

            SELECT
                coalesce(
                    jsonb_agg(
                        jsonb_build_object('index', e.ord - 1, 'field', e.field, 'message', e.message) ORDER BY e.n
                    ) FILTER (WHERE e.n <= 100),
                    '[]'
                )
                || cards._omitted(count(*))
            FROM (
                SELECT x.ord, x.field, x.message, row_number() OVER (ORDER BY x.ord, x.field) AS n
                FROM (
                SELECT i.ord, v.field, v.message
                FROM items AS i
                LEFT JOIN tag_errors AS g ON i.ord = g.ord
                -- Arrays, not VALUES: a VALUES list sets up its expressions again for every row,
                -- and so plans _json_bounds_error again for every card (~85 µs each).
                CROSS JOIN LATERAL unnest(
                    '{"(card)",title,content,kind,metadata,tags}'::text [],
                    ARRAY[
                        CASE WHEN NOT i.is_object THEN 'must be a JSON object' END,
                        CASE
                            WHEN NOT i.is_object THEN NULL
                            WHEN NOT i.card ? 'title' THEN 'is required'
                            WHEN jsonb_typeof(i.card -> 'title') <> 'string' THEN 'must be a string'
                            WHEN char_length(i.card ->> 'title') NOT BETWEEN 1 AND 500 THEN 'must be 1 to 500 characters'
                        END,
                        CASE
                            WHEN NOT i.is_object THEN NULL
                            WHEN NOT i.card ? 'content' THEN 'is required'
                            WHEN jsonb_typeof(i.card -> 'content') = 'null' THEN 'must not be null'
                            ELSE cards._json_bounds_error(i.card -> 'content', 262144, 'must be at most 256 KiB serialised')
                        END,
                        CASE
                            WHEN NOT i.is_object OR NOT i.card ? 'kind' THEN NULL
                            WHEN jsonb_typeof(i.card -> 'kind') <> 'string' THEN 'must be a string'
                            WHEN (i.card ->> 'kind') !~ '^[a-z0-9_.-]{1,64}$'
                                THEN 'must be 1 to 64 characters of a-z, 0-9, "_", "." and "-"'
                        END,
                        CASE
                            WHEN NOT i.is_object OR NOT i.card ? 'metadata' THEN NULL
                            WHEN jsonb_typeof(i.card -> 'metadata') <> 'object' THEN 'must be a JSON object'
                            ELSE cards._json_bounds_error(i.card -> 'metadata', 16384, 'must be at most 16 KiB serialised')
                        END,
                        CASE
                            WHEN NOT i.is_object OR NOT i.card ? 'tags' THEN NULL
                            WHEN jsonb_typeof(i.card -> 'tags') <> 'array' THEN 'must be an array of strings'
                            WHEN jsonb_array_length(i.card -> 'tags') > 32 THEN 'must hold at most 32 tags'
                            WHEN g.bad_element THEN 'must hold strings of 1 to 64 characters'
                            WHEN g.first_repeated IS NOT NULL THEN 'must not repeat a tag: ' || g.first_repeated::text
                        END
                    ]
                ) AS v (field, message)
                WHERE v.message IS NOT NULL
                UNION ALL
                -- Unknown fields: only an item with a field besides the five is taken apart.
                SELECT i.ord, left(k.key, 64), 'is not a known field'
                FROM items AS i
                CROSS JOIN LATERAL jsonb_object_keys(i.card - '{kind,title,content,tags,metadata}'::text []) AS k (key)
                WHERE i.is_object AND i.card - '{kind,title,content,tags,metadata}'::text [] <> '{}'
                ) AS x
            ) AS e
        )
    END
$$;

-- A card's content hash (CONVENTIONS.md, "Representation choices"): what dedupe and
-- update's CKDUP compare, so it is computed here only.
CREATE OR REPLACE FUNCTION cards._content_hash(p_kind jsonb, p_title jsonb, p_content jsonb)
RETURNS bytea
LANGUAGE sql
STABLE
PARALLEL SAFE
AS $$
    SELECT pg_catalog.sha256(pg_catalog.convert_to(
        pg_catalog.jsonb_build_array(p_kind, p_title, p_content)::text, 'UTF8'
    ))
$$;
