-- Each card's full-text search moves from the column cards.cards.search to a narrow table
-- of its own, cards.card_search (one row per card, deleted cards too: a restored card is
-- found again). Indexing a card after its batch commits (0009) then rewrites a ~100-byte
-- row instead of the whole ~2.6 KB card: no second version of the card, no new entries in
-- every index of cards.cards, no rendering recomputed (0010), no dead card for vacuum.
-- batch_create adds a pending row (search NULL) per card it inserts, the indexer fills it
-- in, update_card writes it at once (sql/functions/16_card_search.sql, 23_search_index.sql).
--
-- No foreign key to cards.cards: its check probes cards.cards and locks the card just
-- inserted, for every card of every batch (measured: 2-5 us of PostgreSQL CPU per card of
-- a batch of 1000, about 3%), to guard against what nothing does (no function deletes a
-- card or changes its id). Whoever removes a card by hand removes its card_search row too.
--
-- A gateway of the previous version keeps working on this schema: it calls the same
-- functions, which this run replaces. Writes to cards.cards wait while the rows are copied
-- (LOCK ... SHARE below).

SET LOCAL ROLE cards_owner;

CREATE TABLE cards.card_search (
    tenant_id uuid NOT NULL,
    card_id uuid NOT NULL,
    -- The card's: the indexer takes the oldest pending cards first.
    created_at timestamptz NOT NULL,
    -- cards.search_vector(title, content); NULL while the card waits for the indexer.
    search tsvector,
    PRIMARY KEY (tenant_id, card_id)
);
COMMENT ON TABLE cards.card_search IS
'What q= matches, one row per card (cards.search_vector); search NULL until the card is indexed.';

RESET ROLE;

-- On a Citus cluster already distributed, the table is distributed before it is filled, so
-- that the copy runs on each worker (a co-located INSERT ... SELECT); a database that is not
-- distributed yet gets it distributed by sql/citus/10_distribute.sql with the rest.
-- As the superuser running the migration, whom row-level security does not restrict.
DO $$
DECLARE
    v_distributed boolean := false;
BEGIN
    IF to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL THEN  -- Citus (a query naming it would not parse without)
        EXECUTE 'SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_partition WHERE logicalrelid = ''cards.cards''::regclass)'
        INTO v_distributed;
    END IF;
    IF v_distributed THEN
        PERFORM pg_catalog.create_distributed_table('cards.card_search', 'tenant_id', colocate_with => 'cards.cards');
    ELSE
        -- The copy must not miss a card committed meanwhile. (On Citus this lock would not
        -- reach the shards: the copy below is completed after the column is gone instead.)
        LOCK TABLE cards.cards IN SHARE MODE;
    END IF;
END
$$;

INSERT INTO cards.card_search (tenant_id, card_id, created_at, search)
SELECT
    c.tenant_id,
    c.card_id,
    c.created_at,
    c.search
FROM cards.cards AS c;

-- The policy of the indexer's backlog moves to cards.card_search (sql/policies/).
DROP POLICY IF EXISTS cards_search_pending_maintenance ON cards.cards;
-- Its two indexes (cards_live_search, cards_search_pending) go with it.
ALTER TABLE cards.cards DROP COLUMN search;

-- A card committed on a Citus worker between the copy and the DROP COLUMN (which then
-- waits for it) gets its row here, pending; on one node the lock above leaves none.
INSERT INTO cards.card_search (tenant_id, card_id, created_at)
SELECT
    c.tenant_id,
    c.card_id,
    c.created_at
FROM cards.cards AS c
WHERE NOT EXISTS (
    SELECT FROM cards.card_search AS s
    WHERE s.tenant_id = c.tenant_id AND s.card_id = c.card_id
);

SET LOCAL ROLE cards_owner;

-- q=. Not partial as cards_live_search was (deleted_at is not here): a deleted card's
-- entries stay, and the listing's join to the live card drops them.
CREATE INDEX card_search_terms
ON cards.card_search USING gin (tenant_id, search);

-- The cards waiting for the indexer, oldest first per tenant. Small: a card leaves it as
-- soon as it is indexed.
CREATE INDEX card_search_pending
ON cards.card_search (tenant_id, created_at) WHERE search IS NULL;

RESET ROLE;
ANALYZE cards.card_search;
