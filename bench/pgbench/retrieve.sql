-- Retrieve 50 random cards of a random tenant through cards.retrieve_request, the gateway's
-- call, with the raw JSON body the gateway would pass. The ids are picked from bench.ids
-- inside the same statement (one round trip, like the gateway's). The answer's bytes are
-- sent as text: pgbench reads text only, and bytea's text form (hex) would double them,
-- where the gateway receives them as they are.
\set t random(1, :tenants)
SELECT convert_from(cards.retrieve_request(
    t.tenant_id,
    convert_to(json_build_object('ids', ARRAY(
        SELECT i.card_id
        FROM (SELECT 1 + floor(random() * :per_tenant)::integer AS n FROM generate_series(1, 50)) AS r
        INNER JOIN bench.ids AS i ON i.tenant_no = :t AND i.n = r.n
    ))::text, 'UTF8')
), 'UTF8') AS response
FROM bench.tenants AS t
WHERE t.tenant_no = :t;
