-- Usage on one hot card (tenant 1's first) from every client, with the same mix as usage.sql:
-- half repeats of the seeded run, half new runs. Measures contention on one card's rows.
\set repeat random(0, 1)
SELECT u.response, u.deduplicated
FROM bench.tenants AS t
INNER JOIN bench.ids AS i ON i.tenant_no = t.tenant_no AND i.n = 1
CROSS JOIN LATERAL cards.track_usage_request(
    t.tenant_id,
    i.card_id::text,
    convert_to(CASE WHEN :repeat = 1 THEN '{"workflow_id": "bench-repeat", "run_id": "seed"}'
        ELSE format('{"workflow_id": "bench", "run_id": "pgbench-%s"}', gen_random_uuid()) END, 'UTF8')
) AS u
WHERE t.tenant_no = 1;
