-- cards.card_tags, the index of the tag listing (sql/schema/0005_card_tags.sql), kept
-- equal to the tags of the live cards by triggers on cards.cards, so that every write
-- keeps it right: the functions', a migration's or an operator's.

-- The tag rows of the cards one statement inserted: one INSERT for a whole batch (a
-- trigger per card cost a batch of 100 twice as much).
CREATE OR REPLACE FUNCTION cards._add_card_tags()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    INSERT INTO cards.card_tags (tenant_id, tag, created_at, card_id)
    SELECT n.tenant_id, t.tag, n.created_at, n.card_id
    FROM new_cards AS n
    CROSS JOIN LATERAL unnest(n.tags) AS t (tag)
    WHERE n.deleted_at IS NULL;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION cards._add_card_tags() IS 'Trigger: the card_tags rows of inserted cards.';

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

CREATE OR REPLACE TRIGGER card_tags_of_new_cards
AFTER INSERT ON cards.cards
REFERENCING NEW TABLE AS new_cards
FOR EACH STATEMENT
EXECUTE FUNCTION cards._add_card_tags();

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
