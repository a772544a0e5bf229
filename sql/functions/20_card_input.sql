-- The input rules of a card (API.md, "Card representation"), checked in one place.

-- Every rule a batch of card inputs breaks, as a JSON array of {index?, field, message}
-- ordered by index and field (the first 100, then {"omitted": N}: see _raise_invalid);
-- [] when the batch is valid. One set-based pass over the items; content and metadata
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
                FROM jsonb_array_elements(p_cards) WITH ORDINALITY AS i (card, ord)
                CROSS JOIN LATERAL (VALUES
                    ('(card)', CASE WHEN jsonb_typeof(i.card) <> 'object' THEN 'must be a JSON object' END),
                    ('title', CASE
                        WHEN jsonb_typeof(i.card) <> 'object' THEN NULL
                        WHEN NOT i.card ? 'title' THEN 'is required'
                        WHEN jsonb_typeof(i.card -> 'title') <> 'string' THEN 'must be a string'
                        WHEN char_length(i.card ->> 'title') NOT BETWEEN 1 AND 500 THEN 'must be 1 to 500 characters'
                    END),
                    ('content', CASE
                        WHEN jsonb_typeof(i.card) <> 'object' THEN NULL
                        WHEN NOT i.card ? 'content' THEN 'is required'
                        WHEN jsonb_typeof(i.card -> 'content') = 'null' THEN 'must not be null'
                        ELSE cards._json_bounds_error(i.card -> 'content', 262144, 'must be at most 256 KiB serialised')
                    END),
                    ('kind', CASE
                        WHEN jsonb_typeof(i.card) <> 'object' OR NOT i.card ? 'kind' THEN NULL
                        WHEN jsonb_typeof(i.card -> 'kind') <> 'string' THEN 'must be a string'
                        WHEN (i.card ->> 'kind') !~ '^[a-z0-9_.-]{1,64}$'
                            THEN 'must be 1 to 64 characters of a-z, 0-9, "_", "." and "-"'
                    END),
                    ('metadata', CASE
                        WHEN jsonb_typeof(i.card) <> 'object' OR NOT i.card ? 'metadata' THEN NULL
                        WHEN jsonb_typeof(i.card -> 'metadata') <> 'object' THEN 'must be a JSON object'
                        ELSE cards._json_bounds_error(i.card -> 'metadata', 16384, 'must be at most 16 KiB serialised')
                    END),
                    ('tags', CASE
                        WHEN jsonb_typeof(i.card) <> 'object' OR NOT i.card ? 'tags' THEN NULL
                        WHEN jsonb_typeof(i.card -> 'tags') <> 'array' THEN 'must be an array of strings'
                        WHEN jsonb_array_length(i.card -> 'tags') > 32 THEN 'must hold at most 32 tags'
                        WHEN EXISTS (
                            SELECT FROM jsonb_array_elements(i.card -> 'tags') AS t (tag)
                            WHERE jsonb_typeof(t.tag) <> 'string' OR char_length(t.tag #>> '{}') NOT BETWEEN 1 AND 64
                        ) THEN 'must hold strings of 1 to 64 characters'
                        WHEN (
                            SELECT count(DISTINCT t.tag) <> count(*) FROM jsonb_array_elements(i.card -> 'tags') AS t (tag)
                        ) THEN 'must not repeat a tag: ' || (
                            SELECT t.tag FROM jsonb_array_elements(i.card -> 'tags') AS t (tag)
                            GROUP BY t.tag HAVING count(*) > 1 ORDER BY t.tag LIMIT 1
                        )::text
                    END)
                ) AS v (field, message)
                WHERE v.message IS NOT NULL
                UNION ALL
                SELECT i.ord, left(k.key, 64), 'is not a known field'
                FROM jsonb_array_elements(p_cards) WITH ORDINALITY AS i (card, ord)
                CROSS JOIN LATERAL jsonb_object_keys(
                    CASE WHEN jsonb_typeof(i.card) = 'object' THEN i.card ELSE '{}' END
                ) AS k (key)
                WHERE k.key NOT IN ('kind', 'title', 'content', 'tags', 'metadata')
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
