-- Calibration, not a benchmark: what batch.sql costs besides cards.batch_create_request
-- (building the body of :batch_size cards from the 1 KB content).
\set t random(1, :tenants)
SELECT t.tenant_id, octet_length(convert_to('{"cards": [' || (
    SELECT string_agg(format(
        '{"title": "pgbench %s %s", "tags": ["bench", "batch", "topic-%s"], "content": %s}',
        k.token, g, lpad((g % 500)::text, 3, '0'), :content::text
    ), ', ')
    FROM generate_series(1, :batch_size) AS g
) || ']}', 'UTF8')), 'pgbench-' || k.token
FROM bench.tenants AS t
CROSS JOIN LATERAL (SELECT gen_random_uuid()::text AS token) AS k
WHERE t.tenant_no = :t;
