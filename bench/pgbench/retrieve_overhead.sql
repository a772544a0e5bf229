-- Calibration, not a benchmark: what retrieve.sql costs besides cards.retrieve_request (picking
-- 50 ids from bench.ids and building the body), to read pgbench's numbers against the gateway's.
\set t random(1, :tenants)
SELECT octet_length(convert_to(json_build_object('ids', ARRAY(
    SELECT i.card_id
    FROM (SELECT 1 + floor(random() * :per_tenant)::integer AS n FROM generate_series(1, 50)) AS r
    INNER JOIN bench.ids AS i ON i.tenant_no = :t AND i.n = r.n
))::text, 'UTF8')) AS body_bytes, t.tenant_id
FROM bench.tenants AS t
WHERE t.tenant_no = :t;
