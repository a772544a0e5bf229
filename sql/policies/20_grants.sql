-- Privileges beyond the per-function grants: none on tables to anyone but the owner.
-- Re-stated here so that a table added later without thought is caught by the tests
-- rather than by a caller.
REVOKE ALL ON ALL TABLES IN SCHEMA cards FROM public, cards_gateway, cards_admin;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA cards FROM public, cards_gateway, cards_admin;
-- The policies call these two as whoever queries the tables (only the owner can).
REVOKE ALL ON FUNCTION cards.current_tenant_id() FROM public;
REVOKE ALL ON FUNCTION cards.in_maintenance_scope() FROM public;
