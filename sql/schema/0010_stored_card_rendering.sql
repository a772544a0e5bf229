-- Each card keeps its answer's static part as JSON text, so that retrieve concatenates
-- stored text instead of rendering every card's jsonb content and metadata on each call
-- (bench/ANALYSIS.md: ~¾ of retrieve's CPU). A generated column: whatever writes a card,
-- a function or an operator, writes its rendering too, and no writer needs to know.
-- The price: more bytes per card and a rendering per card written (bench/ANALYSIS.md).
--
-- Adding the column rewrites cards.cards under an exclusive lock (~18 s per 100k cards
-- on the bench machine, so minutes at a million): reads and writes of cards wait meanwhile.

SET LOCAL ROLE cards_owner;

-- The card as the API answers it, without usage_count and last_used_at and without the
-- closing brace: `rendering || ', "usage_count" : …, "last_used_at" : …}'` is the card.
-- Keys and spacing as json_build_object writes them. IMMUTABLE, as a generated column
-- needs: the values are text, jsonb, uuid and text[], whose text forms depend on no setting,
-- and the timestamps are formatted in UTC explicitly (as cards._rfc3339 does).
CREATE FUNCTION cards.card_rendering(
    p_card_id uuid,
    p_kind text,
    p_title text,
    p_content jsonb,
    p_tags text[],
    p_metadata jsonb,
    p_content_hash bytea,
    p_created_at timestamptz,
    p_updated_at timestamptz
)
RETURNS text
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
AS $$
    SELECT pg_catalog.left(pg_catalog.json_build_object(
        'id', p_card_id,
        'kind', p_kind,
        'title', p_title,
        'content', p_content,
        'tags', p_tags,
        'metadata', p_metadata,
        'content_hash', pg_catalog.encode(p_content_hash, 'hex'),
        'created_at', pg_catalog.to_char(p_created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'updated_at', pg_catalog.to_char(p_updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
    )::text, -1)
$$;
COMMENT ON FUNCTION cards.card_rendering(uuid, text, text, jsonb, text[], jsonb, bytea, timestamptz, timestamptz) IS
'A card as the API answers it, less its usage and closing brace (column cards.cards.rendering).';
REVOKE ALL ON FUNCTION cards.card_rendering(uuid, text, text, jsonb, text[], jsonb, bytea, timestamptz, timestamptz)
FROM public;

-- Kept in the row uncompressed (STORAGE MAIN): a row over ~2 KB then moves its content and
-- search columns to the TOAST table first, and retrieve reads the rendering without a
-- TOAST lookup or a decompression (in the default EXTENDED storage about half of the 1 KB
-- cards had their rendering moved out of the row). In the same statement as the column,
-- so that the rewrite already stores it so.
ALTER TABLE cards.cards
ADD COLUMN rendering text GENERATED ALWAYS AS (
    cards.card_rendering(card_id, kind, title, content, tags, metadata, content_hash, created_at, updated_at)
) STORED;


-- Kept in the row uncompressed (bench/ANALYSIS.md: read from TOAST it saved nothing).
-- Citus refuses SET STORAGE on a distributed table, and its shard-by-shard helpers would
-- wait on the shard locks that the ADD COLUMN above holds in this transaction: a cluster
-- distributed before this migration keeps the default storage until an operator runs the
-- step in docs/SCALING.md ("Upgrading a distributed cluster"). Correct either way; only
-- retrieve's speed differs. A database distributed later takes the setting with the table.
DO $$
DECLARE
    v_distributed boolean := false;
BEGIN
    IF to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL THEN  -- Citus (a query naming it would not parse without)
        EXECUTE 'SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_partition WHERE logicalrelid = ''cards.cards''::regclass)'
        INTO v_distributed;
    END IF;
    IF v_distributed THEN
        RAISE NOTICE 'cards.cards is distributed: rendering keeps the default storage (docs/SCALING.md)';
    ELSE
        ALTER TABLE cards.cards ALTER COLUMN rendering SET STORAGE MAIN;
    END IF;
END
$$;
