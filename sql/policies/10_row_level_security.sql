-- Row-level security: enabled and forced on every table, so that even cards_owner (who
-- runs every SECURITY DEFINER function) sees only the rows of the transaction's tenant.
-- Each policy is one indexable predicate: cards.current_tenant_id() is STABLE, so it is
-- evaluated once and compared with the leading tenant_id column of every index.

ALTER TABLE cards.tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE cards.tenants FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenants_tenant_isolation ON cards.tenants;
CREATE POLICY tenants_tenant_isolation ON cards.tenants
USING (tenant_id = cards.current_tenant_id())
WITH CHECK (tenant_id = cards.current_tenant_id());

ALTER TABLE cards.api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE cards.api_keys FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS api_keys_tenant_isolation ON cards.api_keys;
CREATE POLICY api_keys_tenant_isolation ON cards.api_keys
USING (tenant_id = cards.current_tenant_id())
WITH CHECK (tenant_id = cards.current_tenant_id());
-- revoke_api_key names only the key, so it must find it across tenants.
DROP POLICY IF EXISTS api_keys_maintenance ON cards.api_keys;
CREATE POLICY api_keys_maintenance ON cards.api_keys
FOR ALL
USING (cards.in_maintenance_scope());

ALTER TABLE cards.cards ENABLE ROW LEVEL SECURITY;
ALTER TABLE cards.cards FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS cards_tenant_isolation ON cards.cards;
CREATE POLICY cards_tenant_isolation ON cards.cards
USING (tenant_id = cards.current_tenant_id())
WITH CHECK (tenant_id = cards.current_tenant_id());

ALTER TABLE cards.card_search ENABLE ROW LEVEL SECURITY;
ALTER TABLE cards.card_search FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS card_search_tenant_isolation ON cards.card_search;
CREATE POLICY card_search_tenant_isolation ON cards.card_search
USING (tenant_id = cards.current_tenant_id())
WITH CHECK (tenant_id = cards.current_tenant_id());
-- The search indexer's backlog (search_index_backlog) counts every tenant's cards not yet
-- indexed: maintenance scope reads those rows, and no other.
DROP POLICY IF EXISTS card_search_pending_maintenance ON cards.card_search;
CREATE POLICY card_search_pending_maintenance ON cards.card_search
FOR SELECT
USING (cards.in_maintenance_scope() AND search IS NULL);

ALTER TABLE cards.card_tags ENABLE ROW LEVEL SECURITY;
ALTER TABLE cards.card_tags FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS card_tags_tenant_isolation ON cards.card_tags;
CREATE POLICY card_tags_tenant_isolation ON cards.card_tags
USING (tenant_id = cards.current_tenant_id())
WITH CHECK (tenant_id = cards.current_tenant_id());

ALTER TABLE cards.card_usage ENABLE ROW LEVEL SECURITY;
ALTER TABLE cards.card_usage FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS card_usage_tenant_isolation ON cards.card_usage;
CREATE POLICY card_usage_tenant_isolation ON cards.card_usage
USING (tenant_id = cards.current_tenant_id())
WITH CHECK (tenant_id = cards.current_tenant_id());

-- Retention (purge_usage_events) walks tenants and deletes old events.
DROP POLICY IF EXISTS tenants_maintenance ON cards.tenants;
CREATE POLICY tenants_maintenance ON cards.tenants
FOR SELECT
USING (cards.in_maintenance_scope());
DROP POLICY IF EXISTS card_usage_maintenance ON cards.card_usage;
CREATE POLICY card_usage_maintenance ON cards.card_usage
FOR ALL
USING (cards.in_maintenance_scope());

ALTER TABLE cards.card_usage_counters ENABLE ROW LEVEL SECURITY;
ALTER TABLE cards.card_usage_counters FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS card_usage_counters_tenant_isolation ON cards.card_usage_counters;
CREATE POLICY card_usage_counters_tenant_isolation ON cards.card_usage_counters
USING (tenant_id = cards.current_tenant_id())
WITH CHECK (tenant_id = cards.current_tenant_id());

ALTER TABLE cards.idempotency_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE cards.idempotency_keys FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS idempotency_keys_tenant_isolation ON cards.idempotency_keys;
CREATE POLICY idempotency_keys_tenant_isolation ON cards.idempotency_keys
USING (tenant_id = cards.current_tenant_id())
WITH CHECK (tenant_id = cards.current_tenant_id());
-- The purge of expired keys crosses tenants.
DROP POLICY IF EXISTS idempotency_keys_maintenance ON cards.idempotency_keys;
CREATE POLICY idempotency_keys_maintenance ON cards.idempotency_keys
FOR ALL
USING (cards.in_maintenance_scope());

ALTER TABLE cards.rate_limits ENABLE ROW LEVEL SECURITY;
ALTER TABLE cards.rate_limits FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS rate_limits_tenant_isolation ON cards.rate_limits;
CREATE POLICY rate_limits_tenant_isolation ON cards.rate_limits
USING (tenant_id = cards.current_tenant_id())
WITH CHECK (tenant_id = cards.current_tenant_id());

ALTER TABLE cards.tenant_card_counts ENABLE ROW LEVEL SECURITY;
ALTER TABLE cards.tenant_card_counts FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_card_counts_tenant_isolation ON cards.tenant_card_counts;
CREATE POLICY tenant_card_counts_tenant_isolation ON cards.tenant_card_counts
USING (tenant_id = cards.current_tenant_id())
WITH CHECK (tenant_id = cards.current_tenant_id());

-- Append-only, for its owner too: a row may be read and added, and no policy admits an
-- UPDATE or a DELETE, so they change nothing (TRUNCATE is revoked in migration 0006).
-- revoke_api_key, which names only the key, appends in maintenance scope.
ALTER TABLE cards.audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE cards.audit_log FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS audit_log_tenant_isolation ON cards.audit_log;
CREATE POLICY audit_log_tenant_isolation ON cards.audit_log
FOR SELECT
USING (tenant_id = cards.current_tenant_id());
DROP POLICY IF EXISTS audit_log_append ON cards.audit_log;
CREATE POLICY audit_log_append ON cards.audit_log
FOR INSERT
WITH CHECK (tenant_id = cards.current_tenant_id() OR cards.in_maintenance_scope());
