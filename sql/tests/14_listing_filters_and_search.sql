-- list_cards' filters (API.md, "Card lifecycle"; CONVENTIONS.md, "Representation
-- choices"): the tenant's live cards, newest first (ties by id, descending), filtered by
-- kind, tags (all must match), metadata containment and full text (the english
-- configuration over the title and the string values of the content, websearch syntax),
-- alone or together. Pages: 15_listing_pages.sql; bad input: 16_listing_bad_input.sql.
BEGIN;
SELECT plan(38);

-- Test-only helpers, rolled back with the transaction.
-- A tenant's listing, as the gateway asks for it (query values as text).
CREATE FUNCTION pg_temp.list(
    p_kind text DEFAULT NULL, p_tags text[] DEFAULT NULL, p_contains text DEFAULT NULL, p_q text DEFAULT NULL,
    p_limit text DEFAULT NULL, p_cursor text DEFAULT NULL, p_tenant text DEFAULT 'tenant_a'
) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT cards.list_cards(
        current_setting('tap.' || p_tenant)::uuid, p_kind, p_tags, p_contains, p_q, p_limit, p_cursor
    )::jsonb
$$;
-- The cards of a listing page as fixture names (l1…l8, b1, fresh), else their ids.
CREATE FUNCTION pg_temp.names(p_page jsonb) RETURNS text[]
LANGUAGE sql STABLE AS $$
    SELECT coalesce(array_agg(
        coalesce(
            (
                SELECT f.name
                FROM unnest(ARRAY['l1', 'l2', 'l3', 'l4', 'l5', 'l6', 'l7', 'l8', 'b1', 'fresh']) AS f (name)
                WHERE current_setting('tap.' || f.name, TRUE) = c.card ->> 'id'
            ),
            c.card ->> 'id'
        )
        ORDER BY c.ord
    ), '{}')
    FROM jsonb_array_elements(p_page -> 'cards') WITH ORDINALITY AS c (card, ord)
$$;
-- The names tenant A's listing answers for some filters, on one large page.
CREATE FUNCTION pg_temp.found(
    p_kind text DEFAULT NULL, p_tags text[] DEFAULT NULL, p_contains text DEFAULT NULL, p_q text DEFAULT NULL
) RETURNS text[]
LANGUAGE sql AS $$ SELECT pg_temp.names(pg_temp.list(p_kind, p_tags, p_contains, p_q, '200')) $$;

SELECT test.remember('tenant_a', cards.create_tenant('Tenant A')::text);
SELECT test.remember('tenant_b', cards.create_tenant('Tenant B')::text);

SELECT count(*) FROM cards.batch_create(test.id('tenant_a'), $$[
    {"title": "Brand voice", "content": {"tone": "Warm and friendly"}, "tags": ["brand", "tone"],
     "metadata": {"source": "onboarding", "team": {"name": "marketing", "size": 3}}},
    {"title": "Shipping times", "kind": "faq", "content": {"answer": "Orders ship within two days"},
     "tags": ["shipping", "support", "staff"], "metadata": {"source": "helpdesk", "regions": ["eu", "us"]}},
    {"title": "Returns", "kind": "faq", "content": {"answer": "Returned items are refunded", "pricing": "free",
     "code": 12345}, "tags": ["support", "returns"], "metadata": {"source": "helpdesk", "lang": "en"}},
    {"title": "Launch checklist", "content": ["Book the venue", {"step": "Email the press"}], "tags": ["launch"],
     "metadata": {"source": "onboarding", "lang": "en"}},
    {"title": "Summarise", "kind": "prompt", "content": "Summarise the customer's running notes", "tags": ["sport"]},
    {"title": "Tone check", "kind": "prompt", "content": {"text": "Check the tone of a draft before it ships"},
     "tags": ["tone"], "metadata": {"source": "helpdesk"}},
    {"title": "Running the support desk", "content": {"body": "Who answers which queue"},
     "tags": ["support", "staff"], "metadata": {"source": "helpdesk", "lang": "en"}},
    {"title": "Shipping to the moon", "kind": "faq", "content": "Deleted orders ship nowhere",
     "tags": ["shipping", "support"], "metadata": {"source": "helpdesk"}}
]$$);
-- Fixed ids and creation times, so that the expected order is written out: l4, l5 and
-- l6 are created at the same time, and their ids order them l4, l6, l5, which is
-- neither the order they were inserted in nor its reverse. l8 is deleted.
UPDATE cards.cards AS c SET card_id = f.card_id, created_at = f.created_at, updated_at = f.created_at
FROM (
    VALUES
    ('Brand voice', '00000000-0000-4000-8000-000000000001'::uuid, '2024-03-01 03:00:00+00'::timestamptz),
    ('Shipping times', '00000000-0000-4000-8000-000000000002', '2024-03-01 04:00:00+00'),
    ('Returns', '00000000-0000-4000-8000-000000000003', '2024-03-01 05:00:00+00'),
    ('Launch checklist', '00000000-0000-4000-8000-000000000006', '2024-03-01 06:00:00+00'),
    ('Summarise', '00000000-0000-4000-8000-000000000004', '2024-03-01 06:00:00+00'),
    ('Tone check', '00000000-0000-4000-8000-000000000005', '2024-03-01 06:00:00+00'),
    ('Running the support desk', '00000000-0000-4000-8000-000000000007', '2024-03-01 07:00:00+00'),
    ('Shipping to the moon', '00000000-0000-4000-8000-000000000008', '2024-03-01 11:00:00+00')
) AS f (title, card_id, created_at)
WHERE c.tenant_id = test.id('tenant_a') AND c.title = f.title;
UPDATE cards.cards SET deleted_at = '2024-03-01 11:30:00+00'
WHERE card_id = '00000000-0000-4000-8000-000000000008';
SELECT
    test.remember('l1', '00000000-0000-4000-8000-000000000001') AS l1,
    test.remember('l2', '00000000-0000-4000-8000-000000000002') AS l2,
    test.remember('l3', '00000000-0000-4000-8000-000000000003') AS l3,
    test.remember('l4', '00000000-0000-4000-8000-000000000006') AS l4,
    test.remember('l5', '00000000-0000-4000-8000-000000000004') AS l5,
    test.remember('l6', '00000000-0000-4000-8000-000000000005') AS l6,
    test.remember('l7', '00000000-0000-4000-8000-000000000007') AS l7,
    test.remember('l8', '00000000-0000-4000-8000-000000000008') AS l8;
SELECT cards.track_usage(test.id('tenant_a'), test.id('l1'), 'wf', 'run-1');

-- Tenant B holds a copy of l2, the newest of all cards: any filter that finds l2 would
-- find it too if the wall between tenants leaked.
SELECT test.remember('b1', b.response -> 'cards' -> 0 ->> 'id')
FROM cards.batch_create(test.id('tenant_b'), $$[
    {"title": "Shipping times", "kind": "faq", "content": {"answer": "Orders ship within two days"},
     "tags": ["shipping", "support", "staff"], "metadata": {"source": "helpdesk", "regions": ["eu", "us"]}}
]$$) AS b;
UPDATE cards.cards SET created_at = '2024-03-01 12:00:00+00'
WHERE card_id = test.id('b1');

-- ---------------------------------------------------------------------------------
-- Persona: tenant A, through the gateway role — order and the answer
-- ---------------------------------------------------------------------------------

SET LOCAL ROLE cards_gateway;

SELECT is(
    pg_temp.names(pg_temp.list()),
    ARRAY['l7', 'l4', 'l6', 'l5', 'l3', 'l2', 'l1'],
    'the live cards of the tenant come newest first; cards created at the same time by id, descending'
);
SELECT is(
    pg_temp.list() -> 'next_cursor',
    'null',
    'when every card fits on the page, next_cursor is null'
);
SELECT is(
    (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(pg_temp.list()) AS k),
    ARRAY['cards', 'next_cursor'],
    'the answer holds exactly cards and next_cursor'
);
SELECT is(
    (
        SELECT c.card FROM jsonb_array_elements(pg_temp.list() -> 'cards') AS c (card)
        WHERE c.card ->> 'id' = test.id('l1')::text
    ),
    (SELECT g.card::jsonb FROM cards.get_card(test.id('tenant_a'), test.id('l1')::text) AS g),
    'a listed card is the card as get_card answers it, usage included'
);
SELECT is(
    (
        SELECT c.card -> 'usage_count' FROM jsonb_array_elements(pg_temp.list() -> 'cards') AS c (card)
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
    pg_temp.list(p_kind => 'memo'),
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

SELECT is(pg_temp.names(pg_temp.list(p_tenant => 'tenant_b')), ARRAY['b1'], 'tenant B lists only its own card');
SELECT is(
    pg_temp.names(pg_temp.list(
        p_kind => 'faq', p_tags => '{support}', p_contains => '{"source": "helpdesk"}', p_q => 'ship',
        p_tenant => 'tenant_b'
    )),
    ARRAY['b1'],
    'and with filters that match tenant A''s cards too, still only its own'
);

RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
