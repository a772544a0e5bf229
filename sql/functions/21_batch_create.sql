-- Batch creation: atomic, content-deduplicated, idempotent by key (API.md,
-- "POST /api/v1/cards/batch").

-- Claims an idempotency key for this transaction (returns NULL), or returns the answer
-- committed under it before. A concurrent claim of the same key waits for the first
-- transaction, at most cards.idempotency_wait (default 5 s), and then sees its outcome:
-- committed (an answer to replay) or rolled back (the key is free again). An expired
-- key is taken over as if new.
CREATE OR REPLACE FUNCTION cards._claim_idempotency_key(
    p_tenant_id uuid, p_key text, p_request_hash bytea
)
RETURNS cards.idempotency_keys
LANGUAGE plpgsql
VOLATILE
AS $$
DECLARE
    v_claimed boolean;
    v_stored cards.idempotency_keys;
    v_lock_timeout text := current_setting('lock_timeout');
    -- A value, not now() in the statement: Citus takes no function in ON CONFLICT's WHERE.
    v_now timestamptz := now();
    v_ttl interval := greatest(
        coalesce(nullif(current_setting('cards.idempotency_ttl', true), ''), '24 hours')::interval,
        interval '24 hours'
    );
BEGIN
    PERFORM set_config(
        'lock_timeout', coalesce(nullif(current_setting('cards.idempotency_wait', true), ''), '5s'), true
    );
    BEGIN
        INSERT INTO cards.idempotency_keys AS k (tenant_id, idempotency_key, request_hash, expires_at)
        VALUES (p_tenant_id, p_key, p_request_hash, v_now + v_ttl)
        ON CONFLICT (tenant_id, idempotency_key) DO UPDATE
        SET
            request_hash = excluded.request_hash,
            response_status = NULL,
            response_body = NULL,
            created_at = excluded.created_at,
            expires_at = excluded.expires_at
        WHERE k.expires_at <= v_now
        RETURNING true INTO v_claimed;
    EXCEPTION WHEN lock_not_available THEN
        RAISE EXCEPTION USING
            ERRCODE = 'CKIKU',
            MESSAGE = 'A request with this Idempotency-Key is still being processed; retry shortly.';
    END;
    PERFORM set_config('lock_timeout', v_lock_timeout, true);
    IF v_claimed THEN
        RETURN NULL;
    END IF;
    SELECT * INTO v_stored FROM cards.idempotency_keys AS k
    WHERE k.tenant_id = p_tenant_id AND k.idempotency_key = p_key;
    RETURN v_stored;
END
$$;

-- The whole of batch creation, for batch_create and batch_create_request, which have
-- entered the tenant. `p_errors` holds errors the caller found in the raw request (unknown
-- envelope fields, NULs), so that every error is reported together.
CREATE OR REPLACE FUNCTION cards._batch_create(
    p_tenant_id uuid, p_cards jsonb, p_idempotency_key text, p_errors jsonb
)
RETURNS TABLE (response json, replayed boolean, created integer, duplicates integer)
LANGUAGE plpgsql
VOLATILE
AS $$
DECLARE
    v_errors jsonb;
    v_request_hash bytea;
    v_stored cards.idempotency_keys;
    v_hashes bytea [];
    v_created bytea [];
    v_created_ids uuid [];
    v_existing bytea [];
    v_body text;
    v_unresolved bigint;
BEGIN
    IF p_idempotency_key !~ '^[\x20-\x7e]{1,255}$' THEN
        RAISE EXCEPTION USING
            ERRCODE = 'CKIKI',
            MESSAGE = 'The Idempotency-Key must be 1 to 255 printable ASCII characters.';
    END IF;
    v_errors := p_errors || cards._batch_input_errors(p_cards);
    IF jsonb_array_length(v_errors) > 0 THEN
        PERFORM cards._raise_invalid(v_errors);
    END IF;

    IF p_idempotency_key IS NOT NULL THEN
        v_request_hash := sha256(convert_to(p_cards::text, 'UTF8'));
        v_stored := cards._claim_idempotency_key(p_tenant_id, p_idempotency_key, v_request_hash);
        IF v_stored.request_hash <> v_request_hash THEN
            RAISE EXCEPTION USING
                ERRCODE = 'CKIKR',
                MESSAGE = 'This Idempotency-Key was already used with a different request.';
        ELSIF v_stored.request_hash IS NOT NULL THEN
            RETURN QUERY SELECT v_stored.response_body::json, true, NULL::integer, NULL::integer;
            RETURN;
        END IF;
    END IF;

    SELECT array_agg(
        cards._content_hash(coalesce(c.card -> 'kind', '"note"'), c.card -> 'title', c.card -> 'content')
        ORDER BY c.ord
    )
    INTO v_hashes
    FROM jsonb_array_elements(p_cards) WITH ORDINALITY AS c (card, ord);

    -- One set-based insert of the first item of each hash. Rows go in in hash order, so
    -- two concurrent batches that share cards take their locks in the same order.
    WITH inserted AS (
        INSERT INTO cards.cards (tenant_id, kind, title, content, tags, metadata, content_hash)
        SELECT DISTINCT ON (h.content_hash)
            p_tenant_id,
            coalesce(c.card ->> 'kind', 'note'),
            c.card ->> 'title',
            c.card -> 'content',
            coalesce(ARRAY(SELECT jsonb_array_elements_text(c.card -> 'tags')), '{}'),
            coalesce(c.card -> 'metadata', '{}'),
            h.content_hash
        FROM jsonb_array_elements(p_cards) WITH ORDINALITY AS c (card, ord)
        INNER JOIN unnest(v_hashes) WITH ORDINALITY AS h (content_hash, ord) USING (ord)
        ORDER BY h.content_hash, c.ord
        ON CONFLICT (tenant_id, content_hash) WHERE deleted_at IS NULL DO NOTHING
        RETURNING card_id, content_hash
    )
    SELECT coalesce(array_agg(i.content_hash), '{}'), coalesce(array_agg(i.card_id), '{}')
    INTO v_created, v_created_ids
    FROM inserted AS i;
    PERFORM cards._add_card_tags(p_tenant_id, v_created_ids);  -- their cards.card_tags rows
    PERFORM cards._add_card_search(p_tenant_id, v_created_ids);  -- pending until indexed

    -- Duplicates are looked up in a new statement, so with a new snapshot: it also sees
    -- the cards that a concurrent batch committed while this one waited on their hashes.
    -- Only the hashes this batch did not insert are looked up: the planner joins the lookup
    -- rather than running it per item, and then fetched every card just created.
    v_existing := ARRAY(SELECT unnest(v_hashes) EXCEPT SELECT unnest(v_created));
    SELECT
        json_build_object(
            'cards', json_agg(json_build_object(
                'index', h.ord - 1,
                'id', coalesce(n.card_id, d.card_id),
                'status', CASE WHEN n.card_id IS NOT NULL AND h.ord = h.first_ord THEN 'created' ELSE 'duplicate' END,
                'content_hash', encode(h.content_hash, 'hex')
            ) ORDER BY h.ord),
            'created', cardinality(v_created),
            'duplicates', count(*) - cardinality(v_created)
        )::text,
        count(*) FILTER (WHERE coalesce(n.card_id, d.card_id) IS NULL)
    INTO v_body, v_unresolved
    FROM (
        SELECT u.content_hash, u.ord, min(u.ord) OVER (PARTITION BY u.content_hash) AS first_ord
        FROM unnest(v_hashes) WITH ORDINALITY AS u (content_hash, ord)
    ) AS h
    LEFT JOIN unnest(v_created, v_created_ids) AS n (content_hash, card_id) ON n.content_hash = h.content_hash
    -- `content_hash = ANY(v_existing)` keeps an index condition on the hashes even when the planner
    -- flattens this lookup into a join: with a new tenant's cards not yet in the statistics it
    -- otherwise read every card of the tenant, for every batch (found by make soak).
    LEFT JOIN LATERAL (
        SELECT c.card_id FROM cards.cards AS c
        WHERE
            n.card_id IS NULL
            AND c.tenant_id = p_tenant_id AND c.content_hash = h.content_hash
            AND c.content_hash = ANY(v_existing) AND c.deleted_at IS NULL
    ) AS d ON true;

    IF v_unresolved > 0 THEN
        -- A card this batch deduplicated against was deleted in between: retry.
        RAISE EXCEPTION USING
            ERRCODE = 'serialization_failure',
            MESSAGE = 'A card this batch matched was deleted concurrently; retry the request.';
    END IF;
    PERFORM cards._count_live_cards(p_tenant_id, cardinality(v_created));
    -- No NOTIFY for the search indexer, which looks for new cards a few times a second: a
    -- transaction that notifies holds a lock of the whole database through its commit, so
    -- concurrent batches committed one after another (bench/ANALYSIS.md).

    IF p_idempotency_key IS NOT NULL THEN
        UPDATE cards.idempotency_keys AS k SET response_status = 201, response_body = v_body
        WHERE k.tenant_id = p_tenant_id AND k.idempotency_key = p_idempotency_key;
    END IF;
    RETURN QUERY SELECT
        v_body::json, false, cardinality(v_created), jsonb_array_length(p_cards) - cardinality(v_created);
END
$$;

-- Creates a batch of cards for a tenant (the endpoint's document, and whether it was a
-- replay of an earlier request with the same idempotency key).
CREATE OR REPLACE FUNCTION cards.batch_create(
    p_tenant_id uuid, p_cards jsonb, p_idempotency_key text DEFAULT NULL
)
RETURNS TABLE (response json, replayed boolean)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM cards._enter_tenant(p_tenant_id);
    RETURN QUERY
    SELECT b.response, b.replayed FROM cards._batch_create(p_tenant_id, p_cards, p_idempotency_key, '[]') AS b;
END
$$;
COMMENT ON FUNCTION cards.batch_create(uuid, jsonb, text) IS
'Create cards atomically with content dedupe; replays the answer for a repeated idempotency key.';
GRANT EXECUTE ON FUNCTION cards.batch_create(uuid, jsonb, text) TO cards_gateway, cards_admin;

-- The HTTP form of batch_create: the raw request body ({"cards": [...]}), validated here
-- so that the gateway never parses it. Also answers the counts for the gateway's metrics.
CREATE OR REPLACE FUNCTION cards.batch_create_request(
    p_tenant_id uuid, p_body bytea, p_idempotency_key text
)
RETURNS TABLE (response json, replayed boolean, created integer, duplicates integer)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_cards jsonb;
    v_errors jsonb;
BEGIN
    PERFORM cards._enter_tenant(p_tenant_id);
    SELECT r.body -> 'cards', r.errors INTO v_cards, v_errors FROM cards._request_object(p_body, '{cards}') AS r;
    -- Only a body with a \u0000 escape in it can hold a NUL (_mark_nul_escapes).
    IF jsonb_typeof(v_cards) = 'array' AND jsonb_array_length(v_cards) <= 1000
        AND position('\x5c7530303030'::bytea IN p_body) > 0 THEN
        v_errors := v_errors || (
            SELECT coalesce(jsonb_agg(e.error ORDER BY e.n) FILTER (WHERE e.n <= 100), '[]') || cards._omitted(count(*))
            FROM (
                SELECT jsonb_build_object('index', c.ord - 1) || x.error AS error, row_number() OVER (ORDER BY c.ord, x.n) AS n
                FROM jsonb_array_elements(v_cards) WITH ORDINALITY AS c (card, ord),
                    LATERAL jsonb_array_elements(cards._nul_errors(c.card, '{content,kind,metadata,tags,title}'))
                    WITH ORDINALITY AS x (error, n)
            ) AS e
        );
    END IF;
    RETURN QUERY SELECT * FROM cards._batch_create(p_tenant_id, v_cards, p_idempotency_key, v_errors);
END
$$;
COMMENT ON FUNCTION cards.batch_create_request(uuid, bytea, text) IS
'Gateway: batch_create from the raw HTTP body, with the created and duplicate counts.';
GRANT EXECUTE ON FUNCTION cards.batch_create_request(uuid, bytea, text) TO cards_gateway, cards_admin;
