-- The card lifecycle (API.md, "Card lifecycle"): versions for ETags, and one index per
-- filter of the listing. Each index slows the batch insert (bench/REPORT.md measures
-- by how much), so each serves a filter the listing offers and nothing else.

-- GIN indexes that lead with tenant_id need btree_gin's operator classes for uuid.
CREATE SCHEMA IF NOT EXISTS cards_ext;
CREATE EXTENSION IF NOT EXISTS btree_gin SCHEMA cards_ext;

SET LOCAL ROLE cards_owner;

-- Bumped by every change; the ETag is derived from it.
ALTER TABLE cards.cards ADD COLUMN version integer NOT NULL DEFAULT 1;

-- What full-text search (`q`) matches: the title, weighted first, and the string values
-- of the content, with the 'english' configuration (stemming, stop words).
CREATE FUNCTION cards.search_vector(p_title text, p_content jsonb)
RETURNS tsvector
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
AS $$
    SELECT
        pg_catalog.setweight(pg_catalog.to_tsvector('english'::regconfig, p_title), 'A')
        || pg_catalog.jsonb_to_tsvector('english'::regconfig, p_content, '["string"]')
$$;
COMMENT ON FUNCTION cards.search_vector(text, jsonb) IS 'The text that q= searches: title and content strings.';
REVOKE ALL ON FUNCTION cards.search_vector(text, jsonb) FROM public;

-- Listing, newest first, with no filter or only a cursor; also the fallback that scans
-- newest first when a filter matches most cards.
CREATE INDEX cards_live_newest
ON cards.cards (tenant_id, created_at DESC, card_id DESC) WHERE deleted_at IS NULL;

-- kind=
CREATE INDEX cards_live_kind_newest
ON cards.cards (tenant_id, kind, created_at DESC, card_id DESC) WHERE deleted_at IS NULL;

-- tag= (all must match: tags @> array)
CREATE INDEX cards_live_tags
ON cards.cards USING gin (tenant_id, tags) WHERE deleted_at IS NULL;

-- contains= (metadata @> object)
CREATE INDEX cards_live_metadata
ON cards.cards USING gin (tenant_id, metadata jsonb_path_ops) WHERE deleted_at IS NULL;

-- q= (full text). A stored column rather than an expression index: under row-level
-- security only a LEAKPROOF condition can use an index (0004), and `search @@ query`
-- needs just one such function where the expression would need five.
ALTER TABLE cards.cards
ADD COLUMN search tsvector GENERATED ALWAYS AS (cards.search_vector(title, content)) STORED;
CREATE INDEX cards_live_search
ON cards.cards USING gin (tenant_id, search) WHERE deleted_at IS NULL;

-- A card's usage history, newest first. Partial on a condition that is always true but
-- that only the history query states: otherwise, when the statistics think every card has
-- one event, the planner ties this index with the primary key for the lookup of a repeated
-- report, and on a hot card it then reads every event of the card (sql/tests/20_…).
CREATE INDEX card_usage_card_newest
ON cards.card_usage (tenant_id, card_id, recorded_at DESC) WHERE recorded_at > '-infinity';

-- The usage summary of a window, and retention (oldest first, tenant by tenant).
CREATE INDEX card_usage_recorded_at
ON cards.card_usage (tenant_id, recorded_at);
