-- The plain peer's schema (bench/peer/app.py): the seed's tables, as a first version of
-- this service would have them, with the unique content-hash index and a usage count on
-- the card; no functions, no row-level security. Filled from the benchmark's own data
-- (bench/run.py), so that both serve the same cards.
DROP SCHEMA IF EXISTS peer CASCADE;
CREATE SCHEMA peer;

CREATE TABLE peer.api_keys (
    key_hash bytea PRIMARY KEY,
    tenant_id uuid NOT NULL
);

CREATE TABLE peer.cards (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    kind text NOT NULL,
    title text NOT NULL,
    content jsonb NOT NULL,
    tags text [] NOT NULL DEFAULT '{}',
    metadata jsonb NOT NULL DEFAULT '{}',
    content_hash text NOT NULL,
    usage_count bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX cards_content_hash ON peer.cards (tenant_id, content_hash);

CREATE TABLE peer.card_usage (
    tenant_id uuid NOT NULL,
    card_id uuid NOT NULL,
    workflow_id text NOT NULL,
    run_id text NOT NULL,
    metadata jsonb NOT NULL DEFAULT '{}',
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, card_id, workflow_id, run_id)
);

CREATE TABLE peer.idempotency_keys (
    tenant_id uuid NOT NULL,
    key text NOT NULL,
    request_hash text NOT NULL,
    response jsonb NOT NULL,
    PRIMARY KEY (tenant_id, key)
);

INSERT INTO peer.api_keys (key_hash, tenant_id)
SELECT k.key_hash, k.tenant_id FROM cards.api_keys AS k;

INSERT INTO peer.cards (
    tenant_id, id, kind, title, content, tags, metadata, content_hash, created_at, updated_at
)
SELECT
    c.tenant_id, c.card_id, c.kind, c.title, c.content, c.tags, c.metadata,
    encode(c.content_hash, 'hex'), c.created_at, c.updated_at
FROM cards.cards AS c
WHERE c.deleted_at IS NULL;

-- The repeated report of the usage runs (bench/lua/usage.lua).
INSERT INTO peer.card_usage (tenant_id, card_id, workflow_id, run_id)
SELECT u.tenant_id, u.card_id, u.workflow_id, u.run_id FROM cards.card_usage AS u
WHERE u.workflow_id = 'bench-repeat';
UPDATE peer.cards AS c SET usage_count = 1, last_used_at = now()
FROM peer.card_usage AS u
WHERE u.tenant_id = c.tenant_id AND u.card_id = c.id;

VACUUM ANALYZE peer.cards;
VACUUM ANALYZE peer.card_usage;
