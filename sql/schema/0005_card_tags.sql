-- The tag listing (tag=), newest first, in the cost of one page: one row per tag of each
-- live card, in a btree ordered by age within (tenant, tag). The GIN index it replaces
-- had to read every card carrying the tag (and step over other tenants' cards carrying
-- it) and sort them all before it could answer the first page: at 1M cards, 500 cards of
-- a topic tag cost ~5 ms where a page of this index costs ~0.3 ms (bench/ANALYSIS.md).
-- Kept equal to the live cards' tags by triggers (sql/functions/15_card_tags.sql), so any
-- write to cards.cards, a function's or an operator's, keeps it right.
--
-- Writes to cards.cards wait while this runs (LOCK ... SHARE below): the copy and the
-- triggers must not miss a card committed meanwhile. About 8 s per million cards.

SET LOCAL ROLE cards_owner;

CREATE TABLE cards.card_tags (
    tenant_id uuid NOT NULL,
    tag text NOT NULL,
    created_at timestamptz NOT NULL,
    card_id uuid NOT NULL,
    -- Read backwards: a tenant's cards with a tag, newest first (ties by id, descending).
    PRIMARY KEY (tenant_id, tag, created_at, card_id)
    -- No foreign key: the triggers are what keep it right, and a key's check would run
    -- before them when a card's id changes.
);
COMMENT ON TABLE cards.card_tags IS
'The tags of live cards, one row each, ordered by age within (tenant, tag): the index of tag=.';

RESET ROLE;

-- As the superuser running the migration, whom row-level security does not restrict.
LOCK TABLE cards.cards IN SHARE MODE;
INSERT INTO cards.card_tags (tenant_id, tag, created_at, card_id)
SELECT
    c.tenant_id,
    t.tag,
    c.created_at,
    c.card_id
FROM cards.cards AS c
CROSS JOIN LATERAL unnest(c.tags) AS t (tag)
WHERE c.deleted_at IS NULL;

ANALYZE cards.card_tags;

DROP INDEX cards.cards_live_tags;
