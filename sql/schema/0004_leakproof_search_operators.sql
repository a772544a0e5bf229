-- Lets the listing filters tag=, contains= and q= use their GIN indexes under row-level
-- security. Every table forces RLS, so the policy's condition is a security barrier, and
-- PostgreSQL lets a query's own condition into an index scan beneath it only when the
-- condition's function is LEAKPROOF. These three show no value anywhere; they raise no
-- error that depends on the values only within the input bounds of docs/SECURITY.md
-- ("Hostile input"): jsonb_contains recurses as deep as its template, which a listing's
-- contains bounds to 64 levels (unbounded, ~8,000 levels raised stack depth exceeded);
-- ts_match_vq's tsquery comes from at most 500 characters of q; arraycontains compares
-- text[] with texteq. sql/CONVENTIONS.md ("Listing plans") has the reasoning in full.
--
-- Needs a superuser, like the migrations that create roles and extensions. pg_proc
-- lives in each database, so a restore into a new cluster or a pg_upgrade loses these
-- marks: run this file again afterwards (docs/OPERATIONS.md, "Backup and restore").
-- sql/tests proves the marks are set, and the listings stay correct (only slower)
-- without them.
ALTER FUNCTION pg_catalog.arraycontains(anyarray, anyarray) LEAKPROOF;
ALTER FUNCTION pg_catalog.jsonb_contains(jsonb, jsonb) LEAKPROOF;
ALTER FUNCTION pg_catalog.ts_match_vq(tsvector, tsquery) LEAKPROOF;
