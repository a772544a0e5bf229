-- cards.card_search, what q= matches (sql/schema/0011_search_in_its_own_table.sql): every
-- card has its row, added when the card is inserted, pending (search NULL) until the
-- indexer (23_search_index.sql) or update_card fills it in. Its own file, below the batch
-- (21_) that adds the rows. (A card inserted other than by batch_create gets its row from
-- whoever inserts it.)

-- The pending rows of a tenant's new cards: one INSERT for a whole batch.
CREATE OR REPLACE FUNCTION cards._add_card_search(p_tenant_id uuid, p_card_ids uuid[])
RETURNS void
LANGUAGE plpgsql  -- not sql: Citus cannot plan a SQL function's statement with its parameters
VOLATILE
AS $$
BEGIN
    INSERT INTO cards.card_search (tenant_id, card_id, created_at)
    SELECT c.tenant_id, c.card_id, c.created_at
    FROM cards.cards AS c
    WHERE c.tenant_id = p_tenant_id AND c.card_id = ANY(p_card_ids);
END
$$;
