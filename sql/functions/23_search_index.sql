-- Full-text search indexing (migrations 0009, 0011): a new card's row of cards.card_search
-- is filled in after its batch commits, within about a second while a gateway runs its
-- indexer, and an edited card's at once (update_card). What q= matches is
-- cards.search_vector.

-- What full-text search (`q`) matches: the title, weighted first, and the string values
-- of the content, with the 'english' configuration (stemming, stop words).
CREATE OR REPLACE FUNCTION cards.search_vector(p_title text, p_content jsonb)
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

-- Indexes up to `p_limit` of the tenant's cards that are not yet indexed, oldest first,
-- and returns how many. Cards another indexer is indexing are skipped, so indexers may
-- run side by side without doing a card twice. A suspended tenant's cards are indexed
-- too: they are its cards again when it is reactivated.
CREATE OR REPLACE FUNCTION cards.index_pending_search(p_tenant_id uuid, p_limit integer)
RETURNS integer
LANGUAGE plpgsql
VOLATILE
STRICT
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_indexed integer;
BEGIN
    PERFORM cards._scope_transaction(p_tenant_id, '');
    -- Only the narrow card_search row is rewritten; the card is only read.
    WITH pending AS (
        SELECT s.card_id FROM cards.card_search AS s
        WHERE s.tenant_id = p_tenant_id AND s.search IS NULL
        ORDER BY s.created_at
        LIMIT greatest(p_limit, 0)
        FOR UPDATE SKIP LOCKED
    )
    UPDATE cards.card_search AS s SET search = cards.search_vector(c.title, c.content)
    FROM pending AS p
    INNER JOIN cards.cards AS c ON c.tenant_id = p_tenant_id AND c.card_id = p.card_id
    WHERE s.tenant_id = p_tenant_id AND s.card_id = p.card_id AND s.search IS NULL;
    GET DIAGNOSTICS v_indexed = ROW_COUNT;
    RETURN v_indexed;
END
$$;
COMMENT ON FUNCTION cards.index_pending_search(uuid, integer) IS
'Indexer: fill in the full-text search of up to p_limit of the tenant''s new cards; returns the count.';
GRANT EXECUTE ON FUNCTION cards.index_pending_search(uuid, integer) TO cards_gateway, cards_admin;

-- The cards not yet indexed, per tenant that has any: how many, and how long the oldest
-- has waited (since its batch began) by the database's clock. Every tenant: maintenance
-- scope, whose policy on cards.card_search shows only the rows not yet indexed.
--
-- Read through card_search_pending, which holds exactly those rows, whatever the
-- statistics say: taken during an import (every card pending), they made the planner scan
-- the whole table, and an indexer's session kept that plan after the backlog was gone
-- (the benchmark measured 113 ms per call, once a second, at 100k cards). Without JIT,
-- which such an estimate would switch on for every call.
CREATE OR REPLACE FUNCTION cards.search_index_backlog()
RETURNS TABLE (tenant_id uuid, pending bigint, oldest_age_s double precision)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET enable_seqscan = off
SET jit = off
AS $$
BEGIN
    PERFORM cards._enter_maintenance();
    RETURN QUERY
    SELECT s.tenant_id, count(*), extract(EPOCH FROM now() - min(s.created_at))::double precision
    FROM cards.card_search AS s
    WHERE s.search IS NULL
    GROUP BY s.tenant_id;
END
$$;
COMMENT ON FUNCTION cards.search_index_backlog() IS
'Indexer: per tenant with cards not yet indexed, their count and the oldest one''s age in seconds.';
GRANT EXECUTE ON FUNCTION cards.search_index_backlog() TO cards_gateway, cards_admin;
