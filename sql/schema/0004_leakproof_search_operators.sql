-- Lets the listing filters tag=, contains= and q= use their GIN indexes under row-level
-- security. Every table forces RLS, so the policy's condition is a security barrier, and
-- PostgreSQL lets a query's own condition into an index scan beneath it only when the
-- condition's function is LEAKPROOF. These three compare values without raising an
-- error that depends on them or showing them anywhere, so they qualify; PostgreSQL
-- leaves them unmarked only because nobody has audited them for it.
--
-- Needs a superuser, like the migrations that create roles and extensions. pg_proc
-- lives in each database, so a restore into a new cluster or a pg_upgrade loses these
-- marks: run this file again afterwards (docs/OPERATIONS.md, "Backup and restore").
-- sql/tests proves the marks are set, and the listings stay correct (only slower)
-- without them.
ALTER FUNCTION pg_catalog.arraycontains(anyarray, anyarray) LEAKPROOF;
ALTER FUNCTION pg_catalog.jsonb_contains(jsonb, jsonb) LEAKPROOF;
ALTER FUNCTION pg_catalog.ts_match_vq(tsvector, tsquery) LEAKPROOF;
