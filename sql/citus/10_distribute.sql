-- On a Citus coordinator, the last step of every migration run, in its transaction: the
-- schema owned as on a single node, with no PUBLIC execute, and distributed by tenant.
-- Catalog-driven, so a table or function that a migration or function file adds is
-- distributed without being named here:
--   * every table in schema cards with a tenant_id column: distributed on tenant_id,
--     co-located with cards.cards (one co-location group: a tenant's rows, whatever the
--     table, live on one worker);
--   * every cards function whose first argument is `p_tenant_id uuid`: distributed on it,
--     so a call is sent whole to the worker holding that tenant (delegation);
--   * every other cards function: created on every node (helpers that delegated
--     functions and policies call, admin functions), not delegated.
-- Idempotent: what is already distributed is left as it is. Runs as the superuser that
-- runs the migrations (see gateway/migrate.py).
DO $$
DECLARE
    v_owner CONSTANT regrole := 'cards_owner';
    v_relation regclass;
    v_function regprocedure;
    v_tenant_first boolean;
    v_delegated boolean;
BEGIN
    -- Ownership. The runner applies the files as the superuser on Citus (no role switch),
    -- so what they created is handed to cards_owner here, as 0001 makes it on one node.
    FOR v_relation IN
        SELECT c.oid FROM pg_catalog.pg_class AS c
        WHERE c.relnamespace = 'cards'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
          AND c.relowner <> v_owner
        ORDER BY c.oid
    LOOP
        EXECUTE format('ALTER TABLE %s OWNER TO cards_owner', v_relation);
    END LOOP;
    FOR v_function IN
        SELECT p.oid FROM pg_catalog.pg_proc AS p
        WHERE p.pronamespace = 'cards'::regnamespace AND p.proowner <> v_owner
          AND NOT EXISTS (
              SELECT FROM pg_catalog.pg_depend AS d
              WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
          )
        ORDER BY p.oid
    LOOP
        EXECUTE format('ALTER ROUTINE %s OWNER TO cards_owner', v_function);
    END LOOP;

    -- First the functions that do not take the tenant and depend on no table of the schema:
    -- the policies call two of them (current_tenant_id, in_maintenance_scope), which must
    -- exist on the workers before a table with policies is distributed.
    FOR v_function IN
        SELECT p.oid FROM pg_catalog.pg_proc AS p
        WHERE p.pronamespace = 'cards'::regnamespace
          AND NOT (p.pronargs >= 1 AND p.proargtypes[0] = 'uuid'::regtype AND p.proargnames[1] = 'p_tenant_id')
          AND p.prosrc !~ 'cards_meta\.'  -- schema_version(): the coordinator's bookkeeping stays there
          AND NOT EXISTS (
              SELECT FROM pg_catalog.pg_depend AS d
              WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid
                AND (
                    d.deptype = 'e'
                    OR d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid IN (
                        SELECT c.oid FROM pg_catalog.pg_class AS c WHERE c.relnamespace = 'cards'::regnamespace
                    )
                    OR d.refclassid = 'pg_catalog.pg_type'::regclass AND d.refobjid IN (
                        SELECT c.reltype FROM pg_catalog.pg_class AS c WHERE c.relnamespace = 'cards'::regnamespace
                    )
                )
          )
          AND NOT EXISTS (
              SELECT FROM pg_catalog.pg_dist_object AS o
              WHERE o.classid = 'pg_catalog.pg_proc'::regclass AND o.objid = p.oid
          )
        ORDER BY p.oid
    LOOP
        PERFORM pg_catalog.create_distributed_function(v_function);
    END LOOP;

    -- Tables: cards.cards anchors the co-location group; then every other table with a
    -- tenant_id, each once every table it references is distributed (a foreign key
    -- between distributed tables must stay within one co-location group).
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition WHERE logicalrelid = 'cards.cards'::regclass) THEN
        PERFORM pg_catalog.create_distributed_table('cards.cards', 'tenant_id');
    END IF;
    LOOP
        SELECT c.oid INTO v_relation
        FROM pg_catalog.pg_class AS c
        JOIN pg_catalog.pg_attribute AS a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
        WHERE c.relnamespace = 'cards'::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
          AND NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition AS dp WHERE dp.logicalrelid = c.oid)
          AND NOT EXISTS (
              SELECT FROM pg_catalog.pg_constraint AS k
              WHERE k.conrelid = c.oid AND k.contype = 'f' AND k.confrelid <> c.oid
                AND NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition AS dp WHERE dp.logicalrelid = k.confrelid)
          )
        ORDER BY c.relname
        LIMIT 1;
        EXIT WHEN NOT FOUND;
        PERFORM pg_catalog.create_distributed_table(v_relation, 'tenant_id', colocate_with => 'cards.cards');
    END LOOP;
    IF EXISTS (
        SELECT FROM pg_catalog.pg_class AS c
        JOIN pg_catalog.pg_attribute AS a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
        WHERE c.relnamespace = 'cards'::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
          AND NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition AS dp WHERE dp.logicalrelid = c.oid)
    ) THEN
        RAISE EXCEPTION 'a table with tenant_id references a table that cannot be distributed';
    END IF;

    -- The other functions, once the tables they read are distributed (Citus refuses a
    -- function whose SQL body or row type depends on a local table). Those that take the tenant
    -- first are delegated; every other one is created on every node, not delegated:
    -- delegated functions and the policies call the private helpers, and Citus does not
    -- propagate what a function body calls.
    FOR v_function, v_tenant_first IN
        SELECT p.oid, p.pronargs >= 1 AND p.proargtypes[0] = 'uuid'::regtype AND p.proargnames[1] = 'p_tenant_id'
        FROM pg_catalog.pg_proc AS p
        WHERE p.pronamespace = 'cards'::regnamespace AND p.prosrc !~ 'cards_meta\.'
          AND NOT EXISTS (
              SELECT FROM pg_catalog.pg_depend AS d
              WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
          )
        ORDER BY p.oid
    LOOP
        SELECT o.distribution_argument_index = 0 AND o.colocationid = (
            SELECT dp.colocationid FROM pg_catalog.pg_dist_partition AS dp
            WHERE dp.logicalrelid = 'cards.cards'::regclass
        )
        INTO v_delegated
        FROM pg_catalog.pg_dist_object AS o
        WHERE o.classid = 'pg_catalog.pg_proc'::regclass AND o.objid = v_function;
        IF v_tenant_first AND v_delegated IS NOT TRUE THEN
            PERFORM pg_catalog.create_distributed_function(
                v_function, 'p_tenant_id', colocate_with => 'cards.cards'
            );
        ELSIF NOT v_tenant_first AND NOT FOUND THEN
            PERFORM pg_catalog.create_distributed_function(v_function);
        END IF;
    END LOOP;

    -- Sessions on the coordinator send their SET LOCAL commands (the tenant and scope of
    -- cards._scope_transaction) to the workers a transaction block reaches: what lets a
    -- call that is not delegated (inside BEGIN … COMMIT, a cross-tenant admin function)
    -- meet the policies on the shards with its tenant.
    EXECUTE format('ALTER DATABASE %I SET citus.propagate_set_commands = local', current_database());

    -- No PUBLIC execute anywhere. The default privileges that take it away on one node
    -- (0001) do not reach the workers, and functions the superuser created never had
    -- them; a REVOKE on a distributed function is run on every node.
    FOR v_function IN
        SELECT p.oid FROM pg_catalog.pg_proc AS p
        WHERE p.pronamespace = 'cards'::regnamespace
          AND NOT EXISTS (
              SELECT FROM pg_catalog.pg_depend AS d
              WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
          )
        ORDER BY p.oid
    LOOP
        EXECUTE format('REVOKE EXECUTE ON ROUTINE %s FROM PUBLIC', v_function);
    END LOOP;
END
$$;
