-- A usage report on a random card of a random tenant through cards.track_usage_request,
-- the gateway's call. Half the reports repeat (workflow "bench-repeat", run "seed") on a
-- card whose report the data generator seeded; the other half are new runs.
\set t random(1, :tenants)
\set repeat random(0, 1)
\set n CASE WHEN :repeat = 1 THEN random(1, :repeat_pool) ELSE random(1, :per_tenant) END
SELECT u.response, u.deduplicated
FROM bench.tenants AS t
INNER JOIN bench.ids AS i ON i.tenant_no = t.tenant_no AND i.n = :n
CROSS JOIN LATERAL cards.track_usage_request(
    t.tenant_id,
    i.card_id::text,
    convert_to(CASE WHEN :repeat = 1 THEN '{"workflow_id": "bench-repeat", "run_id": "seed"}'
        ELSE format('{"workflow_id": "bench", "run_id": "pgbench-%s"}', gen_random_uuid()) END, 'UTF8')
) AS u
WHERE t.tenant_no = :t;
