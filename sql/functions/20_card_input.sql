-- The input rules of a card (API.md, "Card representation"), checked in one place.

-- Every rule one card input breaks, as (field, message) rows; none when it is valid.
CREATE OR REPLACE FUNCTION cards._card_input_errors(p_card jsonb)
RETURNS TABLE (field text, message text)
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
AS $$
    SELECT e.field, e.message
    FROM
        (SELECT CASE WHEN jsonb_typeof(p_card) = 'object' THEN p_card END AS card) AS c,
        LATERAL (
            SELECT '(card)', 'must be a JSON object' WHERE c.card IS NULL
            UNION ALL
            SELECT k.key, 'is not a known field'
            FROM jsonb_object_keys(coalesce(c.card, '{}')) AS k (key)
            WHERE k.key NOT IN ('kind', 'title', 'content', 'tags', 'metadata')
            UNION ALL
            SELECT 'title', CASE
                WHEN NOT c.card ? 'title' THEN 'is required'
                WHEN jsonb_typeof(c.card -> 'title') <> 'string' THEN 'must be a string'
                WHEN char_length(c.card ->> 'title') NOT BETWEEN 1 AND 500 THEN 'must be 1 to 500 characters'
            END
            UNION ALL
            SELECT 'content', CASE
                WHEN NOT c.card ? 'content' THEN 'is required'
                WHEN jsonb_typeof(c.card -> 'content') = 'null' THEN 'must not be null'
                WHEN octet_length((c.card -> 'content')::text) > 262144 THEN 'must be at most 256 KiB serialised'
            END
            UNION ALL
            SELECT 'kind', CASE
                WHEN NOT c.card ? 'kind' THEN NULL
                WHEN jsonb_typeof(c.card -> 'kind') <> 'string' THEN 'must be a string'
                WHEN (c.card ->> 'kind') !~ '^[a-z0-9_.-]{1,64}$'
                    THEN 'must be 1 to 64 characters of a-z, 0-9, "_", "." and "-"'
            END
            UNION ALL
            SELECT 'metadata', CASE
                WHEN NOT c.card ? 'metadata' THEN NULL
                WHEN jsonb_typeof(c.card -> 'metadata') <> 'object' THEN 'must be a JSON object'
                WHEN octet_length((c.card -> 'metadata')::text) > 16384 THEN 'must be at most 16 KiB serialised'
            END
            UNION ALL
            SELECT 'tags', CASE
                WHEN NOT c.card ? 'tags' THEN NULL
                WHEN jsonb_typeof(c.card -> 'tags') <> 'array' THEN 'must be an array of strings'
                WHEN jsonb_array_length(c.card -> 'tags') > 32 THEN 'must hold at most 32 tags'
                WHEN EXISTS (
                    SELECT FROM jsonb_array_elements(c.card -> 'tags') AS t (tag)
                    WHERE jsonb_typeof(t.tag) <> 'string' OR char_length(t.tag #>> '{}') NOT BETWEEN 1 AND 64
                ) THEN 'must hold strings of 1 to 64 characters'
                WHEN (
                    SELECT count(DISTINCT t.tag) <> count(*)
                    FROM jsonb_array_elements(c.card -> 'tags') AS t (tag)
                ) THEN 'must not repeat a tag'
            END
        ) AS e (field, message)
    WHERE e.message IS NOT NULL AND (c.card IS NOT NULL OR e.field = '(card)')
$$;

-- Every rule a batch breaks, as a JSON array of {index?, field, message}; [] when valid.
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
            SELECT coalesce(
                jsonb_agg(
                    jsonb_build_object('index', i.ord - 1, 'field', e.field, 'message', e.message)
                    ORDER BY i.ord, e.field
                ),
                '[]'
            )
            FROM jsonb_array_elements(p_cards) WITH ORDINALITY AS i (card, ord),
                LATERAL cards._card_input_errors(i.card) AS e
        )
    END
$$;
