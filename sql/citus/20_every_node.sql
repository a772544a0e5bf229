-- On a Citus coordinator, after every migration run: what Citus does not propagate,
-- applied on every worker (run_command_on_workers commits on each worker by itself, so
-- this runs after the migration's commit). Idempotent; fails naming the worker that
-- refused.
--   * the LEAKPROOF marks of pg_catalog functions (migration 0004): catalog changes to
--     built-in functions are local to a node, and a delegated listing runs on a worker,
--     where without them `contains=` and `q=` cannot use their indexes;
--   * the default privileges of 0001 (no PUBLIC execute on cards_owner's functions), so
--     that a function created on a worker later starts without it too.
DO $$
DECLARE
    v_marks text;
    v_failed text;
BEGIN
    SELECT string_agg(format('%L', p.oid::regprocedure::text), ', ' ORDER BY p.oid)
    INTO v_marks
    FROM pg_catalog.pg_proc AS p
    WHERE p.pronamespace = 'pg_catalog'::regnamespace AND p.proleakproof;

    SELECT string_agg(format('%s:%s: %s', r.nodename, r.nodeport, r.result), '; ')
    INTO v_failed
    FROM pg_catalog.run_command_on_workers(format(
        $worker$
        DO $marks$
        DECLARE
            v_function regprocedure;
        BEGIN
            SET LOCAL citus.enable_ddl_propagation = off;
            FOR v_function IN
                SELECT p.oid FROM pg_catalog.pg_proc AS p
                WHERE p.oid = ANY(ARRAY[%s]::regprocedure[]) AND NOT p.proleakproof
            LOOP
                EXECUTE pg_catalog.format('ALTER FUNCTION %%s LEAKPROOF', v_function);
            END LOOP;
            ALTER DEFAULT PRIVILEGES FOR ROLE cards_owner REVOKE EXECUTE ON FUNCTIONS FROM public;
        END
        $marks$
        $worker$,
        v_marks
    )) AS r
    WHERE NOT r.success;
    IF v_failed IS NOT NULL THEN
        RAISE EXCEPTION 'could not apply the per-node settings on every worker: %', v_failed;
    END IF;
END
$$;
