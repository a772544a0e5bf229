-- Calibration, not a benchmark: what usage.sql costs besides cards.track_usage_request (picking
-- the card from bench.ids and building the body), read-only so nothing is committed to disk.
\set t random(1, :tenants)
\set repeat random(0, 1)
\set n CASE WHEN :repeat = 1 THEN random(1, :repeat_pool) ELSE random(1, :per_tenant) END
SELECT t.tenant_id, i.card_id::text,
    convert_to(CASE WHEN :repeat = 1 THEN '{"workflow_id": "bench-repeat", "run_id": "seed"}'
        ELSE format('{"workflow_id": "bench", "run_id": "pgbench-%s"}', gen_random_uuid()) END, 'UTF8')
FROM bench.tenants AS t
INNER JOIN bench.ids AS i ON i.tenant_no = t.tenant_no AND i.n = :n
WHERE t.tenant_no = :t;
