-- The first page of a random tenant's cards whose metadata contains {"n": N} for a random
-- card number N (one card matches), through cards.list_cards with the arguments the gateway
-- passes for GET /api/v1/cards?contains={"n":N}.
\set t random(1, :tenants)
\set n random(1, :per_tenant)
SELECT cards.list_cards(
    t.tenant_id, NULL, NULL, '{"n": ' || :n || '}', NULL, NULL, NULL
) AS response
FROM bench.tenants AS t
WHERE t.tenant_no = :t;
