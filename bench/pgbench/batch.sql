-- A batch of :batch_size new cards for a random tenant, with a fresh idempotency key,
-- through cards.batch_create_request, the gateway's call. Each card is the fixed ~1 KB
-- content of bench/payloads/content-1k.json (passed as :content) under a unique title, so
-- nothing deduplicates, with three tags like the loaded cards'. Building the body here
-- costs a little of the measured time.
\set t random(1, :tenants)
SELECT b.response, b.replayed, b.created, b.duplicates
FROM bench.tenants AS t
CROSS JOIN LATERAL (SELECT gen_random_uuid()::text AS token) AS k
CROSS JOIN LATERAL cards.batch_create_request(
    t.tenant_id,
    convert_to('{"cards": [' || (
        SELECT string_agg(format(
            '{"title": "pgbench %s %s", "tags": ["bench", "batch", "topic-%s"], "content": %s}',
            k.token, g, lpad((g % 500)::text, 3, '0'), :content::text
        ), ', ')
        FROM generate_series(1, :batch_size) AS g
    ) || ']}', 'UTF8'),
    'pgbench-' || k.token
) AS b
WHERE t.tenant_no = :t;
