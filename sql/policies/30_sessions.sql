-- Row-level security of the Card Center's sessions (table from sql/schema/0008): like
-- every table, enabled, forced and admitting only the transaction's tenant; the purge of
-- expired sessions crosses tenants.
ALTER TABLE cards.sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE cards.sessions FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS sessions_tenant_isolation ON cards.sessions;
CREATE POLICY sessions_tenant_isolation ON cards.sessions
USING (tenant_id = cards.current_tenant_id())
WITH CHECK (tenant_id = cards.current_tenant_id());
DROP POLICY IF EXISTS sessions_maintenance ON cards.sessions;
CREATE POLICY sessions_maintenance ON cards.sessions
FOR ALL
USING (cards.in_maintenance_scope());
REVOKE ALL ON cards.sessions FROM public, cards_gateway, cards_admin;
