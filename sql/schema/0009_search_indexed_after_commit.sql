-- Full-text indexing after the commit (bench/ANALYSIS.md: the stored `search` column was
-- about two thirds of a batch's PostgreSQL CPU). `search` stops being generated: it keeps
-- every value it holds, batch_create leaves it NULL ("not yet indexed"), and the indexer
-- (cards.index_pending_search, driven by the gateway) fills it in shortly after the
-- batch commits; update_card still fills it in itself. cards.search_vector moves to
-- sql/functions/60_search_index.sql: no column is generated from it any more.
--
-- A gateway of the previous version keeps working on this schema: its calls are
-- unchanged, only its new cards wait for an indexer (a gateway of this version) before
-- q= finds them.

SET LOCAL ROLE cards_owner;

ALTER TABLE cards.cards ALTER COLUMN search DROP EXPRESSION;
COMMENT ON COLUMN cards.cards.search IS
'What q= matches (cards.search_vector); NULL until the card is indexed after its batch commits.';

-- The cards waiting for the indexer, oldest first per tenant. Small: a card leaves it as
-- soon as it is indexed.
CREATE INDEX cards_search_pending
ON cards.cards (tenant_id, created_at) WHERE search IS NULL;
