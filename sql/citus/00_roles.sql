-- On a Citus cluster: the roles exist on every node and can log in, before anything else.
-- Citus reaches the workers as the current role (a delegated call as its caller, DDL as
-- its issuer, a shard move as the table's owner), and a NOLOGIN role cannot connect. The
-- roles get no password: each node's pg_hba.conf admits them from the cluster's own
-- addresses only (docs/SCALING.md). Applied in a transaction of its own, committed before
-- the migrations, so that a worker connection opened as one of them finds it. Citus
-- propagates CREATE ROLE and ALTER ROLE to the workers and to workers added later.
DO $$
DECLARE
    v_role text;
BEGIN
    FOREACH v_role IN ARRAY ARRAY['cards_owner', 'cards_gateway', 'cards_admin'] LOOP
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles AS r WHERE r.rolname = v_role) THEN
            EXECUTE format('CREATE ROLE %I LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE', v_role);
        ELSIF NOT (SELECT r.rolcanlogin FROM pg_catalog.pg_roles AS r WHERE r.rolname = v_role) THEN
            EXECUTE format('ALTER ROLE %I LOGIN', v_role);
        END IF;
    END LOOP;
END
$$;
