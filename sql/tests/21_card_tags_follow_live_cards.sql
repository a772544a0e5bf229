-- cards.card_tags, the index of the tag listing, holds exactly one row per tag of each
-- live card, with the card's creation time: rows appear when a card is created or
-- restored, follow a change of its tags (or of its creation time or id, by an operator),
-- stay as they are for any other change, and go when the card is deleted.
BEGIN;
SELECT plan(11);

-- Test-only helpers, rolled back with the transaction.
-- What card_tags holds for a card, as "tag@creation time" (the superuser running the suite
-- sees every tenant's rows).
CREATE FUNCTION pg_temp.tag_rows(p_card text) RETURNS text[]
LANGUAGE sql AS $$
    SELECT coalesce(array_agg(t.tag || '@' || t.created_at::text ORDER BY t.tag), '{}')
    FROM cards.card_tags AS t
    WHERE t.card_id = test.card_ref(p_card)::uuid
$$;
-- What it should hold for the card: its tags if it is live, with its creation time.
CREATE FUNCTION pg_temp.expected_rows(p_card text) RETURNS text[]
LANGUAGE sql AS $$
    SELECT coalesce(array_agg(t.tag || '@' || c.created_at::text ORDER BY t.tag), '{}')
    FROM cards.cards AS c
    CROSS JOIN LATERAL unnest(c.tags) AS t (tag)
    WHERE c.card_id = test.card_ref(p_card)::uuid AND c.deleted_at IS NULL
$$;

SELECT test.remember('tenant_a', cards.create_tenant('Tenant A')::text);
SELECT test.remember('tenant_b', cards.create_tenant('Tenant B')::text);
SELECT
    test.remember('tagged', b.response -> 'cards' -> 0 ->> 'id') AS tagged,
    test.remember('untagged', b.response -> 'cards' -> 1 ->> 'id') AS untagged
FROM cards.batch_create(test.id('tenant_a'), $$[
    {"title": "Tagged", "content": "t", "tags": ["brand", "tone"]},
    {"title": "Untagged", "content": "u"}
]$$) AS b;
SELECT test.remember('theirs', b.response -> 'cards' -> 0 ->> 'id')
FROM cards.batch_create(test.id('tenant_b'), '[{"title": "Tagged", "content": "t", "tags": ["brand"]}]') AS b;

SELECT is(
    pg_temp.tag_rows('tagged'),
    ARRAY['brand@' || now()::text, 'tone@' || now()::text],
    'a new card has one row per tag, with its creation time'
);
SELECT is(pg_temp.tag_rows('untagged'), '{}', 'a card without tags has none');
SELECT is(
    pg_temp.tag_rows('theirs'),
    ARRAY['brand@' || now()::text],
    'each tenant''s card has its own rows, under its own tenant'
);
SELECT is(
    (
        SELECT array_agg(DISTINCT t.tenant_id) FROM cards.card_tags AS t
        WHERE t.card_id = test.id('theirs')
    ),
    ARRAY[test.id('tenant_b')],
    'a row carries the tenant of its card'
);

SELECT cards.batch_create(test.id('tenant_a'), '[{"title": "Tagged", "content": "t", "tags": ["other"]}]');
SELECT is(
    (
        SELECT count(*) FROM cards.card_tags AS t
        WHERE t.tag = 'other'
    ),
    0::bigint,
    'a duplicate of a live card adds no rows (it creates no card)'
);

SELECT test.patch_card('tagged', '*', '{"tags": ["tone", "voice"]}');
SELECT is(
    pg_temp.tag_rows('tagged'),
    pg_temp.expected_rows('tagged'),
    'a change of tags replaces the card''s rows'
);
SELECT is(
    pg_temp.tag_rows('tagged'),
    ARRAY['tone@' || now()::text, 'voice@' || now()::text],
    'the rows are those of the new tags'
);

SELECT test.patch_card('tagged', '*', '{"title": "Retitled"}');
SELECT is(pg_temp.tag_rows('tagged'), pg_temp.expected_rows('tagged'), 'another change leaves them as they are');

SELECT cards.delete_card(test.id('tenant_a'), test.card_ref('tagged'));
SELECT is(pg_temp.tag_rows('tagged'), '{}', 'a deleted card has no rows');

SELECT cards.restore_card(test.id('tenant_a'), test.card_ref('tagged'));
SELECT is(
    pg_temp.tag_rows('tagged'),
    ARRAY['tone@' || now()::text, 'voice@' || now()::text],
    'a restored card has its rows again'
);

-- An operator's direct change of the order (as the listing fixtures do).
UPDATE cards.cards SET created_at = '2024-01-01 00:00:00+00'
WHERE card_id = test.id('tagged');
SELECT is(
    pg_temp.tag_rows('tagged'),
    pg_temp.expected_rows('tagged'),
    'a change of a card''s creation time moves its rows, whoever makes it'
);

SELECT * FROM finish();
ROLLBACK;
