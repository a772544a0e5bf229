-- The card lifecycle (API.md, "Card lifecycle"): read one, update with ETags, soft delete
-- and restore (listing: 41_list_cards.sql). These functions take the HTTP-level inputs (ids and
-- query values as text, bodies as bytes), so that SQL and HTTP callers get the same
-- answers: a malformed id is CKNFD, a malformed filter CKVAL.

-- The ETag of a card version (a strong validator: any change bumps the version).
CREATE OR REPLACE FUNCTION cards._etag(p_card cards.cards)
RETURNS text
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
AS $$
    SELECT '"' || p_card.version || '"'
$$;

-- A card as answered by the single-card routes: the document and its ETag.
CREATE OR REPLACE FUNCTION cards._card_with_etag(p_card cards.cards)
RETURNS TABLE (card json, etag text)
LANGUAGE plpgsql  -- not sql: Citus cannot plan a SQL function's statement with its parameters
STABLE
AS $$
BEGIN
    RETURN QUERY
    SELECT cards._card_json(p_card, sum(n.usage_count), max(n.last_used_at)), cards._etag(p_card)
    FROM cards.card_usage_counters AS n
    WHERE n.tenant_id = p_card.tenant_id AND n.card_id = p_card.card_id;
END
$$;

-- One live card of the tenant, with its ETag; CKNFD for unknown, deleted or foreign ids.
CREATE OR REPLACE FUNCTION cards.get_card(p_tenant_id uuid, p_card_id text)
RETURNS TABLE (card json, etag text)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM cards._enter_tenant(p_tenant_id);
    RETURN QUERY SELECT * FROM cards._card_with_etag(
        cards._live_card(p_tenant_id, cards._card_id(p_card_id), false)
    );
END
$$;
COMMENT ON FUNCTION cards.get_card(uuid, text) IS 'Read one live card and its ETag.';
GRANT EXECUTE ON FUNCTION cards.get_card(uuid, text) TO cards_gateway, cards_admin;

-- Changes a live card's fields (a JSON object of the fields to replace), given the ETag
-- it was read with: CKPRQ without one, CKPFL when stale. A content change re-hashes the
-- card and is refused with CKDUP if it would duplicate another live card.
CREATE OR REPLACE FUNCTION cards.update_card(
    p_tenant_id uuid, p_card_id text, p_if_match text, p_body bytea
)
RETURNS TABLE (card json, etag text)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_patch jsonb;
    v_if_match text[];
    v_card cards.cards;
    v_merged jsonb;
    v_errors jsonb;
    v_hash bytea;
BEGIN
    -- The tenant, then the card, then If-Match, then the body: a precondition is checked
    -- before the content is processed (RFC 9110 13.2.1), so a stale ETag is a 412 whatever
    -- the body holds.
    PERFORM cards._enter_tenant(p_tenant_id);
    v_card := cards._live_card(p_tenant_id, cards._card_id(p_card_id), true);
    v_if_match := string_to_array(regexp_replace(p_if_match, '[ \t]', '', 'g'), ',');
    IF p_if_match IS NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = 'CKPRQ',
            MESSAGE = 'Send If-Match with the ETag of the card you read, so that no change is lost.';
    -- If-Match is "*" or a comma-separated list of ETags (RFC 9110 13.1.1); any one may match.
    ELSIF NOT (cards._etag(v_card) = ANY (v_if_match) OR '*' = ANY (v_if_match)) THEN
        RAISE EXCEPTION USING
            ERRCODE = 'CKPFL',
            MESSAGE = 'The card has changed since it was read; read it again and retry.';
    END IF;
    v_patch := cards._parse_body(p_body);

    v_errors := CASE WHEN jsonb_typeof(v_patch) <> 'object'
        THEN '[{"field": "(body)", "message": "must be a JSON object"}]'
        ELSE cards._nul_errors(v_patch, '{content,kind,metadata,tags,title}')
    END;
    IF jsonb_array_length(v_errors) = 0 THEN
        v_merged := jsonb_build_object(
            'kind', v_card.kind, 'title', v_card.title, 'content', v_card.content,
            'tags', to_jsonb(v_card.tags), 'metadata', v_card.metadata
        ) || v_patch;
        v_errors := (
            SELECT coalesce(jsonb_agg(e.error - 'index'), '[]')
            FROM jsonb_array_elements(cards._batch_input_errors(jsonb_build_array(v_merged))) AS e (error)
        );
    END IF;
    IF jsonb_array_length(v_errors) > 0 THEN
        PERFORM cards._raise_invalid(v_errors);
    END IF;

    v_hash := cards._content_hash(v_merged -> 'kind', v_merged -> 'title', v_merged -> 'content');
    IF v_hash = v_card.content_hash AND v_merged -> 'tags' = to_jsonb(v_card.tags)
        AND v_merged -> 'metadata' = v_card.metadata THEN
        RETURN QUERY SELECT * FROM cards._card_with_etag(v_card);  -- nothing changes
        RETURN;
    END IF;
    BEGIN
        UPDATE cards.cards AS c
        SET
            kind = v_merged ->> 'kind',
            title = v_merged ->> 'title',
            content = v_merged -> 'content',
            tags = ARRAY(SELECT jsonb_array_elements_text(v_merged -> 'tags')),
            metadata = v_merged -> 'metadata',
            content_hash = v_hash,
            version = c.version + 1,
            updated_at = now()
        WHERE c.tenant_id = p_tenant_id AND c.card_id = v_card.card_id
        RETURNING * INTO v_card;
    EXCEPTION WHEN unique_violation THEN
        RAISE EXCEPTION USING
            ERRCODE = 'CKDUP',
            MESSAGE = 'Another live card already has this kind, title and content.';
    END;
    -- Searchable as it now is at once, not after the indexer. An upsert: a card inserted
    -- other than by batch_create may have no row yet.
    INSERT INTO cards.card_search AS s (tenant_id, card_id, created_at, search)
    VALUES (p_tenant_id, v_card.card_id, v_card.created_at, cards.search_vector(v_card.title, v_card.content))
    ON CONFLICT (tenant_id, card_id) DO UPDATE SET search = excluded.search;
    RETURN QUERY SELECT * FROM cards._card_with_etag(v_card);
END
$$;
COMMENT ON FUNCTION cards.update_card(uuid, text, text, bytea) IS
'Replace fields of a live card, guarded by its ETag (If-Match).';
GRANT EXECUTE ON FUNCTION cards.update_card(uuid, text, text, bytea) TO cards_gateway, cards_admin;

-- Soft-deletes a live card: it leaves retrieve, listings, usage and dedupe. CKNFD if
-- there is no such live card.
CREATE OR REPLACE FUNCTION cards.delete_card(p_tenant_id uuid, p_card_id text)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_card_id uuid;
BEGIN
    PERFORM cards._enter_tenant(p_tenant_id);
    v_card_id := cards._card_id(p_card_id);
    UPDATE cards.cards AS c SET deleted_at = now(), updated_at = now(), version = c.version + 1
    WHERE c.tenant_id = p_tenant_id AND c.card_id = v_card_id AND c.deleted_at IS NULL;
    IF NOT FOUND THEN
        PERFORM cards._raise_not_found('card');
    END IF;
    PERFORM cards._count_live_cards(p_tenant_id, -1);
END
$$;
COMMENT ON FUNCTION cards.delete_card(uuid, text) IS 'Soft-delete a live card.';
GRANT EXECUTE ON FUNCTION cards.delete_card(uuid, text) TO cards_gateway, cards_admin;

-- Brings a soft-deleted card back (a live card is answered as it is). CKDUP when a live
-- card with the same content exists now; CKNFD when the tenant has no such card.
CREATE OR REPLACE FUNCTION cards.restore_card(p_tenant_id uuid, p_card_id text)
RETURNS TABLE (card json, etag text)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_card_id uuid;
    v_card cards.cards;
BEGIN
    PERFORM cards._enter_tenant(p_tenant_id);
    v_card_id := cards._card_id(p_card_id);
    BEGIN
        UPDATE cards.cards AS c SET deleted_at = NULL, updated_at = now(), version = c.version + 1
        WHERE c.tenant_id = p_tenant_id AND c.card_id = v_card_id AND c.deleted_at IS NOT NULL
        RETURNING * INTO v_card;
    EXCEPTION WHEN unique_violation THEN
        RAISE EXCEPTION USING
            ERRCODE = 'CKDUP',
            MESSAGE = 'A live card with the same kind, title and content exists; it cannot be restored.';
    END;
    IF v_card.card_id IS NULL THEN
        v_card := cards._live_card(p_tenant_id, v_card_id, false);
    ELSE
        PERFORM cards._count_live_cards(p_tenant_id, 1);  -- a restore may exceed the quota
    END IF;
    RETURN QUERY SELECT * FROM cards._card_with_etag(v_card);
END
$$;
COMMENT ON FUNCTION cards.restore_card(uuid, text) IS 'Undo a soft delete, unless a live duplicate exists.';
GRANT EXECUTE ON FUNCTION cards.restore_card(uuid, text) TO cards_gateway, cards_admin;
