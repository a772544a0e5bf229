-- Full-text indexing after the commit (bench/ANALYSIS.md: the stored `search` column was
-- about two thirds of a batch's PostgreSQL CPU). `search` stops being generated: it keeps
-- every value it holds, batch_create leaves it NULL ("not yet indexed"), and the indexer
-- (cards.index_pending_search, driven by the gateway) fills it in shortly after the
-- batch commits; update_card still fills it in itself. cards.search_vector moves to
-- sql/functions/23_search_index.sql: no column is generated from it any more.
--
-- A gateway of the previous version keeps working on this schema: its calls are
-- unchanged, only its new cards wait for an indexer (a gateway of this version) before
-- q= finds them.

SET LOCAL ROLE cards_owner;

-- DROP EXPRESSION changes the catalog only (no row is rewritten). Citus refuses it on a
-- distributed table ("alter table command is currently unsupported"), so on a cluster
-- already distributed it is applied to every shard and to each node's copy of the table
-- with Citus's own helpers. Those commit on their own: if the rest of this migration then
-- fails, the shards keep their values and lose only the expression, and a second run
-- completes it (IF EXISTS). A database that is not distributed yet takes the plain form.
DO $$
DECLARE
    v_distributed boolean := false;
    v_failed text;
BEGIN
    IF to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL THEN  -- Citus (a query naming it would not parse without)
        EXECUTE 'SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_partition WHERE logicalrelid = ''cards.cards''::regclass)'
        INTO v_distributed;
    END IF;
    IF v_distributed THEN
        SELECT string_agg(r.result, '; ') INTO v_failed
        FROM (
            SELECT s.success, s.result FROM run_command_on_shards(
                'cards.cards', 'ALTER TABLE %s ALTER COLUMN search DROP EXPRESSION IF EXISTS'
            ) AS s
            UNION ALL
            SELECT w.success, w.result FROM run_command_on_workers(
                'DO $w$ BEGIN PERFORM set_config(''citus.enable_ddl_propagation'', ''off'', true); '
                || 'ALTER TABLE cards.cards ALTER COLUMN search DROP EXPRESSION IF EXISTS; END $w$'
            ) AS w
        ) AS r
        WHERE NOT r.success;
        IF v_failed IS NOT NULL THEN
            RAISE EXCEPTION 'search DROP EXPRESSION failed on a node: %', v_failed;
        END IF;
        PERFORM set_config('citus.enable_ddl_propagation', 'off', true);
    END IF;
    ALTER TABLE cards.cards ALTER COLUMN search DROP EXPRESSION IF EXISTS;
    IF v_distributed THEN
        PERFORM set_config('citus.enable_ddl_propagation', 'on', true);
    END IF;
END
$$;
COMMENT ON COLUMN cards.cards.search IS
'What q= matches (cards.search_vector); NULL until the card is indexed after its batch commits.';

-- The cards waiting for the indexer, oldest first per tenant. Small: a card leaves it as
-- soon as it is indexed.
CREATE INDEX cards_search_pending
ON cards.cards (tenant_id, created_at) WHERE search IS NULL;
