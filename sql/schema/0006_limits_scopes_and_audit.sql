-- Hardening (API.md, "Hardening"): per-tenant limits, scoped and expiring API keys, and
-- an append-only audit log of admin changes. Every new table leads with tenant_id, so
-- it distributes with the cards (docs/SCALING.md).
SET LOCAL ROLE cards_owner;

-- A tenant's overrides of the gateway's default rate limit, and its card quota. NULL
-- means the configured default (rate) or no quota (cards).
ALTER TABLE cards.tenants
ADD COLUMN requests_per_second numeric CHECK (requests_per_second > 0),
ADD COLUMN burst integer CHECK (burst >= 1),
ADD COLUMN max_cards bigint CHECK (max_cards >= 0);

-- What a key may do (API.md, "Credentials") and until when; when it was last used
-- (written at most once a minute, so authenticating stays a read).
ALTER TABLE cards.api_keys
ADD COLUMN scopes text[] NOT NULL DEFAULT '{cards:read,cards:write,usage:write}'
CHECK (
    cardinality(scopes) >= 1
    AND scopes <@ '{cards:read,cards:write,usage:write}'::text[]
),
ADD COLUMN expires_at timestamptz,
ADD COLUMN last_used_at timestamptz;

-- The shared state of each tenant's rate limit (GCRA): the theoretical arrival time of
-- the next request. Gateways take tokens from it in small leases, so it is written a
-- few times a second per busy tenant, not per request. Logged (not UNLOGGED): an
-- unlogged table in the cards' co-location group would block Citus shard moves.
CREATE TABLE cards.rate_limits (
    tenant_id uuid PRIMARY KEY REFERENCES cards.tenants (tenant_id),
    tat timestamptz NOT NULL
);
COMMENT ON TABLE cards.rate_limits IS 'Per-tenant rate limit state (GCRA), leased to gateways.';

-- Live cards of each tenant that has a quota, kept by the functions that create, delete
-- and restore cards, so that the quota is checked without counting; counted afresh by
-- set_tenant_limits whenever a quota is set. Tenants without a quota pay nothing.
CREATE TABLE cards.tenant_card_counts (
    tenant_id uuid PRIMARY KEY REFERENCES cards.tenants (tenant_id),
    live_cards bigint NOT NULL CHECK (live_cards >= 0)
);
COMMENT ON TABLE cards.tenant_card_counts IS 'Live cards per tenant, for quotas.';

-- Admin changes (tenants, keys, limits), written by the admin functions themselves.
-- Append-only: its policies admit only SELECT and INSERT, even for the owner.
CREATE TABLE cards.audit_log (
    tenant_id uuid NOT NULL,
    event_id uuid NOT NULL DEFAULT gen_random_uuid(),
    at timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- The role that logged in (session_user), not the definer the function runs as.
    actor text NOT NULL,
    action text NOT NULL,
    detail jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (tenant_id, event_id)
);
COMMENT ON TABLE cards.audit_log IS 'Append-only log of admin changes: who, what, when.';
CREATE INDEX audit_log_newest ON cards.audit_log (tenant_id, at DESC);

RESET ROLE;

-- Nobody truncates the audit log (TRUNCATE is not subject to row-level security).
REVOKE TRUNCATE ON cards.audit_log FROM cards_owner;
