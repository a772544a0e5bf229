-- list_cards' filters (API.md, "Card lifecycle"; CONVENTIONS.md, "Representation
-- choices"): the tenant's live cards, newest first (ties by id, descending), filtered by
-- kind, tags (all must match), metadata containment and full text (the english
-- configuration over the title and the string values of the content, websearch syntax),
-- alone or together. Pages: 15_listing_pages.sql; bad input: 16_listing_bad_input.sql.
BEGIN;
SELECT plan(38);

-- Test-only helpers, rolled back with the transaction.
-- The names tenant A's listing answers for some filters, on one large page.
CREATE FUNCTION pg_temp.found(
    p_kind text DEFAULT NULL, p_tags text[] DEFAULT NULL, p_contains text DEFAULT NULL, p_q text DEFAULT NULL
) RETURNS text[]
LANGUAGE sql AS $$ SELECT test.listing_names(test.list(p_kind, p_tags, p_contains, p_q, '200')) $$;

SELECT test.make_listing_cards();

-- ---------------------------------------------------------------------------------
-- Persona: tenant A, through the gateway role — order and the answer
-- ---------------------------------------------------------------------------------

SET LOCAL ROLE cards_gateway;

SELECT is(
    test.listing_names(test.list()),
    ARRAY['l7', 'l4', 'l6', 'l5', 'l3', 'l2', 'l1'],
    'the live cards of the tenant come newest first; cards created at the same time by id, descending'
);
SELECT is(
    test.list() -> 'next_cursor',
    'null',
    'when every card fits on the page, next_cursor is null'
);
SELECT is(
    (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(test.list()) AS k),
    ARRAY['cards', 'next_cursor'],
    'the answer holds exactly cards and next_cursor'
);
SELECT is(
    (
        SELECT c.card FROM jsonb_array_elements(test.list() -> 'cards') AS c (card)
        WHERE c.card ->> 'id' = test.id('l1')::text
    ),
    (SELECT g.card::jsonb FROM cards.get_card(test.id('tenant_a'), test.id('l1')::text) AS g),
    'a listed card is the card as get_card answers it, usage included'
);
SELECT is(
    (
        SELECT c.card -> 'usage_count' FROM jsonb_array_elements(test.list() -> 'cards') AS c (card)
        WHERE c.card ->> 'id' = test.id('l1')::text
    ),
    '1',
    'with its usage count'
);

-- ---------------------------------------------------------------------------------
-- Persona: tenant A — filters: kind, tag, contains
-- ---------------------------------------------------------------------------------

SELECT is(pg_temp.found(p_kind => 'faq'), ARRAY['l3', 'l2'], 'kind= lists the live cards of that kind');
SELECT is(
    test.list(p_kind => 'memo'),
    '{"cards": [], "next_cursor": null}',
    'a kind no card has lists nothing'
);
SELECT is(pg_temp.found(p_tags => '{support}'), ARRAY['l7', 'l3', 'l2'], 'tag= lists the cards carrying the tag');
SELECT is(
    pg_temp.found(p_tags => '{support,returns}'),
    ARRAY['l3'],
    'a repeated tag= lists the cards carrying all of them'
);
SELECT is(
    pg_temp.found(p_tags => '{returns,support}'),
    ARRAY['l3'],
    'in any order'
);
SELECT is(pg_temp.found(p_tags => '{support,moon}'), '{}', 'one tag no card carries lists nothing');
SELECT is(
    pg_temp.found(p_contains => '{"source": "helpdesk"}'),
    ARRAY['l7', 'l6', 'l3', 'l2'],
    'contains= lists the cards whose metadata contains the object'
);
SELECT is(
    pg_temp.found(p_contains => '{"lang": "en", "source": "onboarding"}'),
    ARRAY['l4'],
    'every key of the object must be contained'
);
SELECT is(
    pg_temp.found(p_contains => '{"team": {"name": "marketing"}}'),
    ARRAY['l1'],
    'containment reaches into nested objects'
);
SELECT is(
    pg_temp.found(p_contains => '{"regions": ["us"]}'),
    ARRAY['l2'],
    'and into arrays: an array contains the arrays of its elements'
);
SELECT is(
    pg_temp.found(p_contains => '{"team": {"size": "3"}}'),
    '{}',
    'containment compares JSON values: the string "3" is not the number 3'
);
SELECT is(
    pg_temp.found(p_contains => '{}'),
    ARRAY['l7', 'l4', 'l6', 'l5', 'l3', 'l2', 'l1'],
    'every card''s metadata contains the empty object'
);

-- ---------------------------------------------------------------------------------
-- Persona: tenant A — full text (q=)
-- ---------------------------------------------------------------------------------

SELECT is(pg_temp.found(p_q => 'shipping'), ARRAY['l6', 'l2'], 'q= matches the title and the content''s strings');
SELECT is(
    pg_temp.found(p_q => 'runs'),
    ARRAY['l7', 'l5'],
    'with english stemming: runs finds Running in a title and running in the content'
);
SELECT is(pg_temp.found(p_q => 'refund'), ARRAY['l3'], 'refund finds refunded');
SELECT is(
    pg_temp.found(p_q => 'press'),
    ARRAY['l4'],
    'a string nested in the content''s arrays and objects is searched'
);
SELECT is(pg_temp.found(p_q => 'pricing'), '{}', 'the content''s keys are not searched');
SELECT is(pg_temp.found(p_q => 'tone'), ARRAY['l6'], 'nor are tags (l1 has tone as a key and a tag only)');
SELECT is(pg_temp.found(p_q => '12345'), '{}', 'nor the content''s numbers');
SELECT is(pg_temp.found(p_q => 'helpdesk'), '{}', 'nor metadata');
SELECT is(pg_temp.found(p_q => 'prompt'), '{}', 'nor the kind');
SELECT is(pg_temp.found(p_q => 'nowhere'), '{}', 'nor deleted cards');
SELECT is(pg_temp.found(p_q => '"two days"'), ARRAY['l2'], 'a quoted phrase matches the words in sequence');
SELECT is(pg_temp.found(p_q => '"days two"'), '{}', 'and not in another order');
SELECT is(pg_temp.found(p_q => 'refunded or press'), ARRAY['l4', 'l3'], 'or matches either word');
SELECT is(pg_temp.found(p_q => 'ship -orders'), ARRAY['l6'], '-word excludes the cards that have it');
SELECT is(pg_temp.found(p_q => 'ship orders'), ARRAY['l2'], 'several words must all match');

-- ---------------------------------------------------------------------------------
-- Persona: tenant A — filters together
-- ---------------------------------------------------------------------------------

SELECT is(pg_temp.found(p_kind => 'faq', p_q => 'ship'), ARRAY['l2'], 'kind= and q= together: both must match');
SELECT is(
    pg_temp.found(p_kind => 'faq', p_tags => '{support}', p_contains => '{"lang": "en"}', p_q => 'refund'),
    ARRAY['l3'],
    'all four filters together select the card matching each'
);
SELECT is(
    pg_temp.found(p_kind => 'note', p_tags => '{support}', p_contains => '{"lang": "en"}', p_q => 'refund'),
    '{}',
    'and nothing when one of them does not match'
);
SELECT is(
    pg_temp.found(p_tags => '{support}', p_contains => '{"source": "helpdesk"}'),
    ARRAY['l7', 'l3', 'l2'],
    'tag= and contains= together'
);

RESET ROLE;

-- ---------------------------------------------------------------------------------
-- Persona: tenant B, through the gateway role
-- ---------------------------------------------------------------------------------

SET LOCAL ROLE cards_gateway;

SELECT is(test.listing_names(test.list(p_tenant => 'tenant_b')), ARRAY['b1'], 'tenant B lists only its own card');
SELECT is(
    test.listing_names(test.list(
        p_kind => 'faq', p_tags => '{support}', p_contains => '{"source": "helpdesk"}', p_q => 'ship',
        p_tenant => 'tenant_b'
    )),
    ARRAY['b1'],
    'and with filters that match tenant A''s cards too, still only its own'
);

RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
