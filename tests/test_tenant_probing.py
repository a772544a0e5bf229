"""Tenant probing: tenant B replays tenant A's card ids, idempotency keys and usage targets against
every route, thousands of times with random variation, and learns nothing.

Each probe runs as a pair of twin tenants with identical histories: B sends A's identifiers, its
twin C sends the same requests with random unknown identifiers in their place (one per A
identifier, kept for the run). B's answers must hold nothing of A's, and must equal C's once ids,
times, cursors and trace ids are set aside: whatever B sees, it would have seen for an id nobody
has. Afterwards A's rows are exactly as they were."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import random
import re
import uuid
from urllib.parse import urlencode

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import init_app
from gateway.config import Config

from .conftest import JWT_SECRET, Admin, Tenant

PAIRS = 4
STEPS = 400  # per tenant: PAIRS * 2 * STEPS requests in all, plus the set-up
CARDS = "/api/v1/cards"
SECRET = uuid.uuid4().hex[:10]  # in every private field of A's: what must never come back to B
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)")
_COMPARED_HEADERS = (
    "Content-Type",
    "ETag",
    "Idempotent-Replayed",
    "Retry-After",
    "WWW-Authenticate",
    "Allow",
)


def _private(n: int) -> dict:
    return {
        "kind": "shared-kind",
        "title": f"A-private {n} {SECRET}",
        "content": {"text": f"A-content-{SECRET} number {n}"},
        "tags": ["shared-tag", f"a-tag-{SECRET}"],
        "metadata": {"shared": True, "owner": f"a-owner-{SECRET}"},
    }


def _shared(n: int) -> dict:
    """Content both A and the probes create: deduplication must not cross tenants."""
    return {"kind": "shared-kind", "title": f"shared {n}", "content": {"n": n}, "tags": ["shared-tag"]}


@dataclasses.dataclass
class Victim:
    tenant: Tenant
    bodies: dict[str, dict]  # A's idempotency keys and their batch bodies
    public: set[str]  # the keys whose bodies hold nothing private: B replays them as they are
    live: list[str]
    deleted: list[str]
    usage: list[tuple[str, str, str]]  # (card, workflow, run) A reported

    @property
    def ids(self) -> list[str]:
        return self.live + self.deleted

    @property
    def markers(self) -> list[str]:
        """What would show a leak in any answer to B."""
        return [SECRET, self.tenant.id, self.tenant.key, *self.ids]


async def _ok(response, status: int = 200) -> dict:
    assert response.status == status, await response.text()
    return await response.json() if status != 204 else {}


async def _make_victim(client, admin: Admin) -> Victim:
    tenant = admin.tenant("victim A")
    bodies = {
        f"onboarding-{n}": {"cards": [_private(10 * n + i) for i in range(5)] + [_shared(n)]}
        for n in range(4)
    }
    public = {f"import-{n}": {"cards": [_shared(n), _shared(10 + n)]} for n in range(3)}
    bodies |= public
    ids = []
    for key, body in bodies.items():
        answer = await _ok(
            await client.post(f"{CARDS}/batch", json=body, headers=tenant.auth | {"Idempotency-Key": key}),
            201,
        )
        ids += [card["id"] for card in answer["cards"]]
    usage = [(card, f"wf-{SECRET}", f"run-{SECRET}-{n}") for n, card in enumerate(ids[:12])]
    for card, workflow, run in usage:
        body = {"workflow_id": workflow, "run_id": run, "metadata": {"note": SECRET}}
        await _ok(await client.post(f"{CARDS}/{card}/usage", json=body, headers=tenant.auth))
    deleted = ids[-4:]
    for card in deleted:
        await _ok(await client.delete(f"{CARDS}/{card}", headers=tenant.auth), 204)
    admin.index_search(tenant)  # q= probes look for A's words in A's indexed cards
    return Victim(tenant, bodies, set(public), ids[:-4], deleted, usage)


def _snapshot(admin: Admin, tenant: Tenant) -> dict[str, list]:
    """Every row of the tenant, as the superuser sees it (row-level security does not hold it)."""
    tables = {
        "cards": "card_id",
        "card_usage": "card_id, workflow_id, run_id",
        "card_usage_counters": "card_id, slot",
        "idempotency_keys": "idempotency_key",
        "api_keys": "key_id",
        "tenants": "tenant_id",
    }
    return {
        table: admin.conn.execute(
            f"SELECT t::text FROM cards.{table} AS t WHERE tenant_id = %s ORDER BY {order}", (tenant.id,)
        ).fetchall()
        for table, order in tables.items()
    }


# --- the probe: one random script, played by B with A's identifiers and by C with unknown ones ---


@dataclasses.dataclass
class Player:
    tenant: Tenant
    card: dict[str, str]  # A's card id -> the id this player sends
    key: dict[str, str]  # A's idempotency key -> the key this player sends
    own: list[str] = dataclasses.field(default_factory=list)  # the player's own cards, in order
    cursor: dict[str, str | None] = dataclasses.field(default_factory=dict)  # route -> last next_cursor


def _script(rng: random.Random, victim: Victim) -> list[tuple]:
    """Steps as data: ('op', arguments…), A's identifiers as they are; each player maps them."""
    # The player's own cards, one batch each: cards of one batch share their creation time, and their
    # order in a listing would then depend on their (random) ids.
    steps: list[tuple] = [("batch", f"own-{n}", {"cards": [card]}) for n, card in enumerate(OWN)]
    keys = list(victim.bodies)
    for _ in range(STEPS - 1):
        card = rng.choice(victim.ids)
        own = rng.randrange(len(OWN))
        op = rng.choices(
            [
                "batch",
                "retrieve",
                "usage",
                "history",
                "get",
                "patch",
                "delete",
                "restore",
                "list",
                "summary",
                "own",
            ],
            weights=[2, 3, 2, 2, 2, 2, 1, 1, 4, 1, 2],
        )[0]
        if op == "batch":  # A's key with A's own body (a replay, if keys crossed tenants) or another
            key = rng.choice(keys)
            replay = key in victim.public and rng.random() < 0.6
            body = victim.bodies[key] if replay else {"cards": [_own(rng.randrange(20))]}
            steps.append(("batch", key, body))
        elif op == "retrieve":
            picks = [("a", rng.choice(victim.ids)) for _ in range(rng.randint(1, 6))]
            picks += [("own", rng.randrange(len(OWN))) for _ in range(rng.randint(0, 3))] + [
                ("unknown", None)
            ]
            rng.shuffle(picks)
            steps.append(("retrieve", picks))
        elif op == "usage":
            _, workflow, run = rng.choice(victim.usage)
            steps.append(("usage", card, workflow, run))
        elif op == "history":
            steps.append(("history", card, rng.choice([None, "1", "50"])))
        elif op in ("get", "delete", "restore"):
            steps.append((op, card))
        elif op == "patch":
            steps.append(
                ("patch", card, rng.choice([None, "*", '"1"', '"2"']), {"title": f"taken {rng.random()}"})
            )
        elif op == "list":
            filters = rng.choice(
                [
                    {"kind": "shared-kind"},
                    {"tag": "shared-tag"},
                    {"tag": f"a-tag-{SECRET}"},
                    {"contains": json.dumps({"owner": f"a-owner-{SECRET}"})},
                    {"contains": json.dumps({"shared": True})},
                    {"q": SECRET},
                    {"q": "A-private"},
                    {"q": "shared"},
                    {},
                ]
            )
            steps.append(("list", filters | {"limit": str(rng.randint(1, 4))}, rng.random() < 0.5))
        elif op == "summary":
            steps.append(("summary", rng.choice([{}, {"bucket": "day"}, {"bucket": "hour"}])))
        else:  # the player's own card is used
            steps.append(("own", own, "wf-own", f"run-{rng.randrange(5)}"))
    return steps


def _own(n: int) -> dict:
    return {"kind": "shared-kind", "title": f"own {n}", "content": {"own": n}, "tags": ["shared-tag"]}


OWN = [_shared(n) for n in range(3)] + [_own(n) for n in range(6)]


async def _play(client, player: Player, step: tuple) -> tuple[int, dict, bytes]:
    """Sends one step as this player; answers its status, compared headers and body."""
    auth = player.tenant.auth
    op, *args = step
    if op == "batch":
        key, body = args
        headers = auth | {"Idempotency-Key": player.key.get(key, key)}
        response = await client.post(f"{CARDS}/batch", json=body, headers=headers)
        if key.startswith("own-") and response.status == 201:
            player.own += [card["id"] for card in (await response.json())["cards"]]
    elif op == "retrieve":
        ids = [
            player.card[value] if kind == "a" else player.own[value] if kind == "own" else str(uuid.uuid4())
            for kind, value in args[0]
        ]
        response = await client.post(f"{CARDS}/retrieve", json={"ids": ids}, headers=auth)
    elif op == "usage":
        card, workflow, run = args
        body = {"workflow_id": workflow, "run_id": run}
        response = await client.post(f"{CARDS}/{player.card[card]}/usage", json=body, headers=auth)
    elif op == "history":
        card, limit = args
        query = f"?limit={limit}" if limit else ""
        response = await client.get(f"{CARDS}/{player.card[card]}/usage{query}", headers=auth)
    elif op == "get":
        response = await client.get(f"{CARDS}/{player.card[args[0]]}", headers=auth)
    elif op == "patch":
        card, if_match, body = args
        headers = auth | ({"If-Match": if_match} if if_match else {})
        response = await client.patch(f"{CARDS}/{player.card[card]}", json=body, headers=headers)
    elif op == "delete":
        response = await client.delete(f"{CARDS}/{player.card[args[0]]}", headers=auth)
    elif op == "restore":
        response = await client.post(f"{CARDS}/{player.card[args[0]]}/restore", headers=auth)
    elif op == "list":
        filters, next_page = args
        route = urlencode(filters)
        query = dict(filters)
        if next_page and player.cursor.get(route):
            query["cursor"] = player.cursor[route]
        response = await client.get(f"{CARDS}?{urlencode(query)}", headers=auth)
        if response.status == 200:
            player.cursor[route] = (await response.json())["next_cursor"]
    elif op == "summary":
        response = await client.get(f"/api/v1/usage/summary?{urlencode(args[0])}", headers=auth)
    else:
        own, workflow, run = args
        body = {"workflow_id": workflow, "run_id": run}
        response = await client.post(f"{CARDS}/{player.own[own]}/usage", json=body, headers=auth)
    body = await response.read()
    headers = {name: response.headers[name] for name in _COMPARED_HEADERS if name in response.headers}
    return response.status, headers, body


def _normalised(body: bytes) -> object:
    """The answer with what must differ between twins replaced: ids (by order of appearance), times,
    cursors, trace ids; and the summary's most used cards in an order that does not rest on ids."""
    if not body:
        return None
    document = json.loads(body)
    if isinstance(document, dict):
        document.pop("trace_id", None)
        if "top_cards" in document:  # cards used equally often come in the order of their (random) ids
            document["top_cards"].sort(key=lambda card: (-card["events"], card["title"]))
        if document.get("next_cursor"):
            document["next_cursor"] = "<cursor>"
    text = _TIME.sub("<time>", json.dumps(document))
    seen: dict[str, str] = {}
    return _UUID.sub(lambda m: seen.setdefault(m.group(0), f"<id {len(seen)}>"), text)


@dataclasses.dataclass
class Probe:
    requests: int
    leaks: list[tuple]
    differences: list[tuple]
    statuses: dict[int, int]


async def _probe_pair(client, admin: Admin, victim: Victim, seed: int) -> Probe:
    rng = random.Random(seed)
    b = Player(admin.tenant(f"probe B{seed}"), {i: i for i in victim.ids}, {k: k for k in victim.bodies})
    unknown = {i: str(uuid.uuid4()) for i in victim.ids}
    c = Player(admin.tenant(f"twin C{seed}"), unknown, {k: f"key-{uuid.uuid4()}" for k in victim.bodies})
    probe = Probe(0, [], [], {})
    for step in _script(rng, victim):
        (status, headers, body), twin = await asyncio.gather(_play(client, b, step), _play(client, c, step))
        probe.requests += 2
        probe.statuses[status] = probe.statuses.get(status, 0) + 1
        text = body.decode()
        sent = set(re.findall(_UUID, json.dumps(step)))  # A's ids B sent may come back (retrieve's missing)
        if any(marker in text for marker in victim.markers if marker not in sent):
            probe.leaks.append((step, status, text[:300]))
        if (status, headers, _normalised(body)) != (twin[0], twin[1], _normalised(twin[2])):
            probe.differences.append((step, _normalised(body), _normalised(twin[2])))
    return probe


async def _run_probe(config: Config, admin: Admin) -> Probing:
    async with TestClient(TestServer(init_app(config))) as client:
        victim = await _make_victim(client, admin)
        before = _snapshot(admin, victim.tenant)
        probes = await asyncio.gather(*(_probe_pair(client, admin, victim, seed) for seed in range(PAIRS)))
    return Probing(victim, probes, before, _snapshot(admin, victim.tenant))


@dataclasses.dataclass
class Probing:
    victim: Victim
    probes: list[Probe]
    before: dict[str, list]  # A's rows before the probes
    after: dict[str, list]

    def statuses(self) -> dict[int, int]:
        return dict(
            sum((collections.Counter(probe.statuses) for probe in self.probes), collections.Counter())
        )


@pytest.fixture(scope="module")
def probing(database, admin) -> Probing:
    # No search indexer: it would change A's rows (their `search`) while they are compared.
    config = Config(
        database_url=database, jwt_secret=JWT_SECRET, pool_min=1, pool_max=10, dev=True, search_indexer=False
    )
    return asyncio.run(_run_probe(config, admin))


def test_the_probes_sent_thousands_of_requests_over_every_route(probing):
    assert sum(probe.requests for probe in probing.probes) >= 3000
    assert {200, 201, 404, 422} <= set(probing.statuses()), probing.statuses()
    assert not {500, 503, 504} & set(probing.statuses())


def test_no_answer_to_tenant_b_holds_anything_of_tenant_as(probing):
    assert [leak for probe in probing.probes for leak in probe.leaks] == []


def test_answers_for_tenant_as_identifiers_equal_those_for_unknown_ones(probing):
    differences = [difference for probe in probing.probes for difference in probe.differences]
    assert differences[:3] == [], f"{len(differences)} answers differ"


def test_tenant_as_rows_are_unchanged_by_the_probes(probing):
    assert probing.after == probing.before
