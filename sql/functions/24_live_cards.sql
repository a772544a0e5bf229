-- A live card of the tenant, or CKNFD: for any layer above the cards' that acts on one
-- card named by id (the lifecycle, usage history).

-- This id, when it names a live card of the tenant; else CKNFD. For callers that need
-- no more of the card than that it is there (usage reports, history).
CREATE OR REPLACE FUNCTION cards._require_live_card(p_tenant_id uuid, p_card_id uuid)
RETURNS uuid
LANGUAGE plpgsql
STABLE
AS $$
BEGIN
    PERFORM FROM cards.cards AS c
    WHERE c.tenant_id = p_tenant_id AND c.card_id = p_card_id AND c.deleted_at IS NULL;
    IF NOT FOUND THEN
        PERFORM cards._raise_not_found('card');
    END IF;
    RETURN p_card_id;
END
$$;

-- The live card with this id, locked for update when asked, or CKNFD.
CREATE OR REPLACE FUNCTION cards._live_card(p_tenant_id uuid, p_card_id uuid, p_lock boolean)
RETURNS cards.cards
LANGUAGE plpgsql
VOLATILE
AS $$
DECLARE
    v_card cards.cards;
BEGIN
    IF p_lock THEN
        SELECT * INTO v_card FROM cards.cards AS c
        WHERE c.tenant_id = p_tenant_id AND c.card_id = p_card_id AND c.deleted_at IS NULL
        FOR NO KEY UPDATE;
    ELSE
        SELECT * INTO v_card FROM cards.cards AS c
        WHERE c.tenant_id = p_tenant_id AND c.card_id = p_card_id AND c.deleted_at IS NULL;
    END IF;
    IF v_card.card_id IS NULL THEN
        PERFORM cards._raise_not_found('card');
    END IF;
    RETURN v_card;
END
$$;
