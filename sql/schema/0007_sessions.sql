-- Card Center sessions (gateway/center/): a person signs in with an API key or a JWT and
-- the browser gets a cookie naming a row here. Only the SHA-256 of the cookie's value is
-- stored; the value names its tenant (cs_<tenant hex>_<secret>, like an API key), so the
-- lookup is on the primary key. The key a session was opened with is referenced, so
-- revoking the key ends its sessions.
SET LOCAL ROLE cards_owner;

CREATE TABLE cards.sessions (
    tenant_id uuid NOT NULL REFERENCES cards.tenants (tenant_id),
    -- SHA-256 of the whole cookie value (244 random bits: a fast hash is enough).
    session_hash bytea NOT NULL CHECK (octet_length(session_hash) = 32),
    -- The API key the person signed in with; NULL for a JWT (which ends at its own exp).
    key_id uuid,
    -- The scopes the credential had when the session began.
    scopes text[] NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, session_hash),
    FOREIGN KEY (tenant_id, key_id) REFERENCES cards.api_keys (tenant_id, key_id)
);
COMMENT ON TABLE cards.sessions IS
'Card Center sign-ins, by the SHA-256 of their cookie; each ends at expires_at, sign-out or revocation.';

-- The purge of expired sessions walks this index oldest first.
CREATE INDEX sessions_expires_at ON cards.sessions (expires_at);
