-- Tables and their indexes. Every primary key and unique constraint leads with
-- tenant_id, so the schema distributes by tenant (docs/SCALING.md) without redesign.
-- Each index serves a named access path of a function: every extra one slows the batch
-- insert, so none is here on speculation.
SET LOCAL ROLE cards_owner;

CREATE TABLE cards.tenants (
    tenant_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    active boolean NOT NULL DEFAULT TRUE,
    created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE cards.tenants IS 'Customers. A suspended (inactive) tenant is refused by every endpoint.';

CREATE TABLE cards.api_keys (
    tenant_id uuid NOT NULL REFERENCES cards.tenants (tenant_id),
    key_id uuid NOT NULL DEFAULT gen_random_uuid(),
    -- SHA-256 of the whole key. The key carries 244 random bits, so a fast hash is
    -- enough: there is nothing to brute-force that a slow hash would protect.
    key_hash bytea NOT NULL CHECK (octet_length(key_hash) = 32),
    label text CHECK (char_length(label) <= 200),
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,
    PRIMARY KEY (tenant_id, key_id),
    -- Authentication: the key names its tenant, so the lookup is (tenant_id, key_hash).
    UNIQUE (tenant_id, key_hash)
);
COMMENT ON TABLE cards.api_keys IS 'API keys, stored only as hashes. Revoked keys stay for audit.';

-- No foreign key to tenants here: it would cost a lookup per inserted card, and every
-- write path already checks the tenant (cards._enter_tenant); tenants are never deleted.
CREATE TABLE cards.cards (
    tenant_id uuid NOT NULL,
    card_id uuid NOT NULL DEFAULT gen_random_uuid(),
    kind text NOT NULL,
    title text NOT NULL,
    content jsonb NOT NULL,
    tags text[] NOT NULL DEFAULT '{}',
    metadata jsonb NOT NULL DEFAULT '{}',
    content_hash bytea NOT NULL CHECK (octet_length(content_hash) = 32),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz,
    -- Retrieve and usage look cards up by (tenant_id, card_id).
    PRIMARY KEY (tenant_id, card_id)
);
COMMENT ON TABLE cards.cards IS 'Reusable content. Usage counts live in cards.card_usage_counters.';

-- Content deduplication: at most one live card per hash; batch_create's ON CONFLICT.
CREATE UNIQUE INDEX cards_live_content_hash
ON cards.cards (tenant_id, content_hash) WHERE deleted_at IS NULL;

CREATE TABLE cards.card_usage (
    tenant_id uuid NOT NULL,
    card_id uuid NOT NULL,
    workflow_id text NOT NULL,
    run_id text NOT NULL,
    metadata jsonb NOT NULL DEFAULT '{}',
    recorded_at timestamptz NOT NULL DEFAULT now(),
    -- Usage dedupe: a run that uses a card twice counts once.
    PRIMARY KEY (tenant_id, card_id, workflow_id, run_id),
    FOREIGN KEY (tenant_id, card_id) REFERENCES cards.cards (tenant_id, card_id)
);
COMMENT ON TABLE cards.card_usage IS 'One row per (card, workflow, run): the usage events.';

-- A card's usage count is split over up to 16 slot rows, chosen by hashing the run, so
-- many runs reporting one popular card at once do not all queue on one row lock.
-- Readers add the slots up. Narrow rows with spare room keep the updates HOT.
CREATE TABLE cards.card_usage_counters (
    tenant_id uuid NOT NULL,
    card_id uuid NOT NULL,
    slot smallint NOT NULL CHECK (slot BETWEEN 0 AND 15),
    usage_count bigint NOT NULL CHECK (usage_count > 0),
    last_used_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, card_id, slot),
    FOREIGN KEY (tenant_id, card_id) REFERENCES cards.cards (tenant_id, card_id)
) WITH (fillfactor = 70);
COMMENT ON TABLE cards.card_usage_counters IS 'Per-card usage counts, split into slots to spread lock contention.';

CREATE TABLE cards.idempotency_keys (
    tenant_id uuid NOT NULL REFERENCES cards.tenants (tenant_id),
    idempotency_key text NOT NULL,
    -- SHA-256 of the request's canonical (jsonb) text: JSON-equal requests match.
    request_hash bytea NOT NULL,
    -- NULL only inside the transaction that claimed the key, which sets both before it
    -- commits; no other session ever sees them NULL. Kept as text so that a replay is
    -- byte-identical to the first answer.
    response_status smallint,
    response_body text,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, idempotency_key)
);
COMMENT ON TABLE cards.idempotency_keys IS 'Committed answers of batch_create by key, for replay.';

-- The purge of expired keys walks this index oldest first.
CREATE INDEX idempotency_keys_expires_at ON cards.idempotency_keys (expires_at);
