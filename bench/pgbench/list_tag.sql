-- The first page (50 cards, newest first) of a random tenant's cards that carry one random
-- topic tag (1 card in :topics has each), through cards.list_cards with the arguments the
-- gateway passes for GET /api/v1/cards?tag=topic-NNN.
\set t random(1, :tenants)
\set topic random(0, :topics - 1)
SELECT cards.list_cards(
    t.tenant_id, NULL, ARRAY['topic-' || lpad(:topic::text, 3, '0')], NULL, NULL, NULL, NULL
) AS response
FROM bench.tenants AS t
WHERE t.tenant_no = :t;
