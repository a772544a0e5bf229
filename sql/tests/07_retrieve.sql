-- retrieve (API.md, "POST /api/v1/cards/retrieve"): 1 to 1000 ids; the tenant's live
-- cards in order of first appearance, each once; every other id (unknown, soft-deleted,
-- another tenant's) under "missing", indistinguishably. The card representation.
BEGIN;
SELECT plan(28);

-- Test-only helpers, rolled back with the transaction.
-- Tenant A's retrieve of the named fixtures (or literal UUIDs), as jsonb.
CREATE FUNCTION pg_temp.retrieve_a(VARIADIC p_names text[]) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT cards.retrieve(
        current_setting('tap.tenant_a')::uuid,
        ARRAY(SELECT coalesce(current_setting('tap.' || n, TRUE), n)::uuid FROM unnest(p_names) AS n)
    )::jsonb
$$;
-- The ids of a retrieve answer's cards, and its missing ids, as fixture names.
CREATE FUNCTION pg_temp.names(p_ids jsonb) RETURNS text[]
LANGUAGE sql STABLE AS $$
    SELECT coalesce(array_agg(
        coalesce(
            (
                SELECT f.name FROM unnest(ARRAY['c1', 'c2', 'c3', 'c4', 'b1', 'unknown']) AS f (name)
                WHERE current_setting('tap.' || f.name) = i.id ->> 0
            ),
            i.id ->> 0
        )
        ORDER BY i.ord
    ), '{}')
    FROM jsonb_array_elements(p_ids) WITH ORDINALITY AS i (id, ord)
$$;
CREATE FUNCTION pg_temp.card_names(p_doc jsonb) RETURNS text[]
LANGUAGE sql STABLE AS $$
    SELECT pg_temp.names(coalesce(
        (
            SELECT jsonb_agg(c.card -> 'id' ORDER BY c.ord)
            FROM jsonb_array_elements(p_doc -> 'cards') WITH ORDINALITY AS c (card, ord)
        ),
        '[]'
    ))
$$;

SELECT test.remember('tenant_a', cards.create_tenant('Tenant A')::text);
SELECT test.remember('tenant_b', cards.create_tenant('Tenant B')::text);
SELECT test.remember('unknown', 'a0000000-0000-4000-8000-00000000000a');

SELECT
    test.remember('c1', b.response -> 'cards' -> 0 ->> 'id') AS c1,
    test.remember('c2', b.response -> 'cards' -> 1 ->> 'id') AS c2,
    test.remember('c3', b.response -> 'cards' -> 2 ->> 'id') AS c3,
    test.remember('c4', b.response -> 'cards' -> 3 ->> 'id') AS c4,
    test.remember('c1_hash', b.response -> 'cards' -> 0 ->> 'content_hash') AS c1_hash
FROM cards.batch_create(test.id('tenant_a'), $$[
    {"title": "Brand voice", "content": {"tone": "warm", "list": [1, 2.50, "x"]}, "kind": "brand",
     "tags": ["brand", "tone"], "metadata": {"source": "onboarding"}},
    {"title": "Two", "content": "two"},
    {"title": "Three", "content": 3},
    {"title": "Four, to be deleted", "content": 4}
]$$) AS b;
SELECT test.remember('b1', b.response -> 'cards' -> 0 ->> 'id')
FROM cards.batch_create(test.id('tenant_b'), '[{"title": "B one", "content": "b"}]') AS b;

-- Soft delete directly, as the superuser, so that this file depends on no other endpoint.
UPDATE cards.cards SET deleted_at = now()
WHERE card_id = test.id('c4');

-- ---------------------------------------------------------------------------------
-- Persona: tenant A, through the gateway role — order and missing ids
-- ---------------------------------------------------------------------------------

SET LOCAL ROLE cards_gateway;

SELECT is(
    pg_temp.card_names(pg_temp.retrieve_a('c3', 'c1', 'c3', 'c2', 'c1')),
    ARRAY['c3', 'c1', 'c2'],
    'cards come in the order of their first appearance in ids, each once'
);
SELECT is(
    pg_temp.retrieve_a('c3', 'c1', 'c3', 'c2', 'c1') -> 'missing',
    '[]',
    'nothing is missing when every id is a live card of the tenant'
);
SELECT test.remember('mixed', pg_temp.retrieve_a('unknown', 'c2', 'c4', 'b1', 'unknown', 'c4', 'c1')::text);
SELECT is(
    pg_temp.card_names(current_setting('tap.mixed')::jsonb),
    ARRAY['c2', 'c1'],
    'only the tenant''s live cards are answered'
);
SELECT is(
    pg_temp.names(current_setting('tap.mixed')::jsonb -> 'missing'),
    ARRAY['unknown', 'c4', 'b1'],
    'unknown, soft-deleted and another tenant''s ids are all listed as missing, in order, each once'
);
SELECT is(
    pg_temp.retrieve_a('unknown', 'b1'),
    jsonb_build_object('cards', '[]'::jsonb, 'missing', jsonb_build_array(test.id('unknown'), test.id('b1'))),
    'with no card found, the answer is an empty cards list and every id missing'
);
SELECT is(
    (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(current_setting('tap.mixed')::jsonb) AS k),
    ARRAY['cards', 'missing'],
    'the answer holds exactly cards and missing'
);

-- ---------------------------------------------------------------------------------
-- Persona: tenant A — the card representation
-- ---------------------------------------------------------------------------------

SELECT test.remember('c1_doc', (pg_temp.retrieve_a('c1') -> 'cards' -> 0)::text);

SELECT is(
    (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(current_setting('tap.c1_doc')::jsonb) AS k),
    ARRAY[
        'content', 'content_hash', 'created_at', 'id', 'kind', 'last_used_at', 'metadata', 'tags', 'title',
        'updated_at', 'usage_count'
    ],
    'a card holds exactly the fields of the contract'
);
SELECT is(
    current_setting('tap.c1_doc')::jsonb - '{created_at,updated_at}'::text[],
    jsonb_build_object(
        'id', test.id('c1'),
        'kind', 'brand',
        'title', 'Brand voice',
        'content', '{"tone": "warm", "list": [1, 2.50, "x"]}'::jsonb,
        'tags', '["brand", "tone"]'::jsonb,
        'metadata', '{"source": "onboarding"}'::jsonb,
        'content_hash', current_setting('tap.c1_hash'),
        'usage_count', 0,
        'last_used_at', NULL
    ),
    'a card answers what was stored, its batch''s content_hash, no usage yet'
);
SELECT is(
    cards.retrieve(test.id('tenant_a'), ARRAY[test.id('c1')])::json -> 'cards' -> 0 ->> 'content',
    '{"list": [1, 2.50, "x"], "tone": "warm"}',
    'content comes back in its canonical jsonb form (keys ordered, white space normalised), numbers as written'
);
SELECT matches(
    current_setting('tap.c1_doc')::jsonb ->> 'created_at',
    '^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$',
    'created_at is RFC 3339 in UTC, with microseconds'
);
SELECT is(
    current_setting('tap.c1_doc')::jsonb ->> 'created_at',
    to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    'created_at is the creating transaction''s time'
);
SELECT is(
    current_setting('tap.c1_doc')::jsonb ->> 'updated_at',
    current_setting('tap.c1_doc')::jsonb ->> 'created_at',
    'a new card''s updated_at is its created_at'
);
SET LOCAL timezone = 'Pacific/Chatham';
SELECT is(
    pg_temp.retrieve_a('c1') -> 'cards' -> 0 ->> 'created_at',
    current_setting('tap.c1_doc')::jsonb ->> 'created_at',
    'timestamps are answered in UTC whatever the session''s time zone'
);
RESET timezone;
SELECT ok(
    (
        SELECT bool_and(i.id ->> 0 = lower(i.id ->> 0))
        FROM jsonb_array_elements(
            (
                SELECT jsonb_agg(c.card -> 'id')
                FROM jsonb_array_elements(current_setting('tap.mixed')::jsonb -> 'cards') AS c (card)
            )
            || (current_setting('tap.mixed')::jsonb -> 'missing')
        ) AS i (id)
    ),
    'ids are answered in lowercase'
);

-- The answer's static part is stored with the card (sql/schema/0010): a write of any kind
-- renders it again, in UTC whatever the writer's time zone.
RESET ROLE;
SET LOCAL timezone = 'Pacific/Chatham';
UPDATE cards.cards SET title = 'Two, "renamed" ✓', updated_at = now() + interval '1 hour'
WHERE card_id = test.id('c2');
RESET timezone;
SET LOCAL ROLE cards_gateway;
SELECT is(
    pg_temp.retrieve_a('c2') -> 'cards' -> 0 ->> 'title',
    'Two, "renamed" ✓',
    'a card changed by any writer is answered as it now is'
);
SELECT is(
    pg_temp.retrieve_a('c2') -> 'cards' -> 0 ->> 'updated_at',
    to_char((now() + interval '1 hour') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    'its stored timestamps are in UTC whatever the writer''s time zone'
);

-- ---------------------------------------------------------------------------------
-- Persona: tenant A — the number of ids
-- ---------------------------------------------------------------------------------

SELECT throws_ok(
    format('SELECT cards.retrieve(%L, ARRAY[]::uuid[])', test.id('tenant_a')),
    'CKVAL',
    'The request is invalid: 1 error(s), listed in "errors".',
    'no ids is a validation error'
);
SELECT is(
    test.error_detail(format('SELECT cards.retrieve(%L, ARRAY[]::uuid[])', test.id('tenant_a'))),
    '[{"field": "ids", "message": "must hold 1 to 1000 ids"}]',
    'the error names ids and the rule'
);
SELECT is(
    test.error_detail(format('SELECT cards.retrieve(%L, NULL)', test.id('tenant_a'))),
    '[{"field": "ids", "message": "must hold 1 to 1000 ids"}]',
    'a NULL array of ids is refused the same way'
);
SELECT is(
    test.error_detail(format(
        'SELECT cards.retrieve(%L, ARRAY(SELECT gen_random_uuid() FROM generate_series(1, 1001)))',
        test.id('tenant_a')
    )),
    '[{"field": "ids", "message": "must hold 1 to 1000 ids"}]',
    '1001 ids are refused'
);
SELECT is(
    (
        SELECT jsonb_array_length(d -> 'cards') || '/' || jsonb_array_length(d -> 'missing')
        FROM (
            SELECT cards.retrieve(
                test.id('tenant_a'),
                ARRAY[test.id('c1')] || (SELECT array_agg(gen_random_uuid()) FROM generate_series(1, 999))
            )::jsonb AS d
        ) AS r
    ),
    '1/999',
    '1000 ids are accepted'
);
SELECT is(
    test.error_detail(
        format(
            'SELECT cards.retrieve(%L, ARRAY[%L, %L, NULL]::uuid[])',
            test.id('tenant_a'), test.id('c1'), test.id('c2')
        )
    ),
    '[{"index": 2, "field": "ids", "message": "must not be null"}]',
    'a NULL id is refused with its index'
);
SELECT is(
    test.error_detail(format(
        'SELECT cards.retrieve(%L, ARRAY(SELECT NULL::uuid FROM generate_series(1, 1001)))', test.id('tenant_a')
    )),
    '[{"field": "ids", "message": "must hold 1 to 1000 ids"}]',
    'the count is checked first'
);

RESET ROLE;

-- ---------------------------------------------------------------------------------
-- Persona: tenant B, through the gateway role
-- ---------------------------------------------------------------------------------

SET LOCAL ROLE cards_gateway;

SELECT test.remember(
    'b_view', cards.retrieve(test.id('tenant_b'), ARRAY[test.id('c1'), test.id('b1')])::text
);
SELECT is(
    pg_temp.card_names(current_setting('tap.b_view')::jsonb),
    ARRAY['b1'],
    'tenant B sees its own card'
);
SELECT is(
    pg_temp.names(current_setting('tap.b_view')::jsonb -> 'missing'),
    ARRAY['c1'],
    'and tenant A''s card as missing, like an unknown id'
);

RESET ROLE;

-- ---------------------------------------------------------------------------------
-- Persona: admin (a trusted job calling retrieve directly)
-- ---------------------------------------------------------------------------------

SET LOCAL ROLE cards_admin;

SELECT is(
    pg_temp.card_names(pg_temp.retrieve_a('c2', 'c4')),
    ARRAY['c2'],
    'a trusted job gets the same answer'
);

RESET ROLE;

-- ---------------------------------------------------------------------------------
-- Persona: superuser — retrieve wrote nothing
-- ---------------------------------------------------------------------------------

SELECT is(
    (SELECT count(*) FROM cards.card_usage),
    0::bigint,
    'retrieving cards records no usage'
);
SELECT ok(
    (
        SELECT c.deleted_at IS NOT NULL FROM cards.cards AS c
        WHERE c.card_id = test.id('c4')
    ),
    'retrieving a deleted card does not restore it'
);

SELECT * FROM finish();
ROLLBACK;
