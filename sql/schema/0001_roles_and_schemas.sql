-- Roles and schemas. Roles are cluster-wide, so they are created only when missing: a
-- second database in the same cluster (tests, staging) reuses them.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'cards_owner') THEN
        -- Owns every table and SECURITY DEFINER function. It cannot log in and, having no
        -- BYPASSRLS, is itself held by the forced row-level security of its tables.
        CREATE ROLE cards_owner NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'cards_gateway') THEN
        -- What the HTTP gateway runs as: EXECUTE on the endpoint functions, nothing else.
        CREATE ROLE cards_gateway NOLOGIN NOSUPERUSER NOBYPASSRLS;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'cards_admin') THEN
        -- Trusted jobs and operators: the endpoint functions plus the admin functions.
        CREATE ROLE cards_admin NOLOGIN NOSUPERUSER NOBYPASSRLS;
    END IF;
END
$$;

CREATE SCHEMA cards AUTHORIZATION cards_owner;
COMMENT ON SCHEMA cards IS 'Cards API: tables (owner only) and the functions callers use.';
REVOKE ALL ON SCHEMA cards FROM public;
GRANT USAGE ON SCHEMA cards TO cards_gateway, cards_admin;

-- Nothing is reachable by accident: every function is granted explicitly after it.
ALTER DEFAULT PRIVILEGES FOR ROLE cards_owner REVOKE EXECUTE ON FUNCTIONS FROM public;

-- cards.schema_version() (owned by cards_owner) reads the migration bookkeeping.
GRANT USAGE ON SCHEMA cards_meta TO cards_owner;
GRANT SELECT ON cards_meta.schema_migrations TO cards_owner;
