-- cards.card_tags, the index of the tag listing (sql/schema/0005_card_tags.sql), kept
-- equal to the tags of the live cards: batch_create adds the rows of the cards it inserts,
-- and a row trigger on cards.cards moves them for every change, so that any update keeps
-- them right: the functions', a migration's or an operator's. (A statement trigger used
-- to add them; its transition table does not reach a Citus shard, docs/SCALING.md. A
-- card inserted other than by batch_create gets its rows from whoever inserts it.)

-- The tag rows of a tenant's new cards: one INSERT for a whole batch.
CREATE OR REPLACE FUNCTION cards._add_card_tags(p_tenant_id uuid, p_card_ids uuid[])
RETURNS void
LANGUAGE plpgsql  -- not sql: Citus cannot plan a SQL function's statement with its parameters
VOLATILE
AS $$
BEGIN
    INSERT INTO cards.card_tags (tenant_id, tag, created_at, card_id)
    SELECT c.tenant_id, t.tag, c.created_at, c.card_id
    FROM cards.cards AS c
    CROSS JOIN LATERAL unnest(c.tags) AS t (tag)
    WHERE c.tenant_id = p_tenant_id AND c.card_id = ANY(p_card_ids) AND c.deleted_at IS NULL;
END
$$;

-- A changed card's tag rows: they go when it is deleted, come back when it is restored,
-- and follow a change of its tags (or of its creation time, their order, or of its id).
CREATE OR REPLACE FUNCTION cards._move_card_tags()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF OLD.deleted_at IS NULL THEN
        DELETE FROM cards.card_tags AS t
        WHERE
            t.tenant_id = OLD.tenant_id AND t.tag = ANY(OLD.tags)
            AND t.created_at = OLD.created_at AND t.card_id = OLD.card_id;
    END IF;
    IF NEW.deleted_at IS NULL THEN
        INSERT INTO cards.card_tags (tenant_id, tag, created_at, card_id)
        SELECT NEW.tenant_id, t.tag, NEW.created_at, NEW.card_id
        FROM unnest(NEW.tags) AS t (tag);
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION cards._move_card_tags() IS 'Trigger: the card_tags rows of a changed card.';

DROP TRIGGER IF EXISTS card_tags_of_new_cards ON cards.cards;

CREATE OR REPLACE TRIGGER card_tags_of_changed_cards
AFTER UPDATE OF tenant_id, card_id, tags, created_at, deleted_at ON cards.cards
FOR EACH ROW
WHEN (
    old.tenant_id IS DISTINCT FROM new.tenant_id
    OR old.card_id IS DISTINCT FROM new.card_id
    OR old.tags IS DISTINCT FROM new.tags
    OR old.created_at IS DISTINCT FROM new.created_at
    OR old.deleted_at IS DISTINCT FROM new.deleted_at
)
EXECUTE FUNCTION cards._move_card_tags();
