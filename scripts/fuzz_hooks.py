"""Schemathesis hooks of our own, loaded by scripts/fuzz.toml (`hooks`) for `make fuzz` and the
short fuzz run of `make test`: two checks and one generation hook.

`positive_data_acceptance` (a request the spec allows must succeed) cannot know the rules that depend
on state or that JSON Schema cannot say; it is replaced here by `schema_valid_request_accepted`, which
lets a schema-valid request fail only for such a documented reason, named by its problem slug (and
for a validation error, by every error's field and message). Anything else a schema-valid request is
refused for means the spec is looser than the server: a spec defect.

`trace_id_echoed`: every response carries X-Trace-ID, the request's when it was valid, and a problem's
`trace_id` is that same value (docs/API.md, "Transport").

`filter_failure`: a failure caused by a known false alarm of a built-in check, or by a defect that is
known and still open (KNOWN_DEFECTS; an open defect also has an xfail(strict=True) regression test in
tests/test_fuzz.py and an entry in docs/FUZZING.md), does not fail the run; it is counted, one JSON
line per failure, in the file named by $CARDS_FUZZ_KNOWN_LOG. Once a defect is fixed its test
XPASSes, and its entry here goes with the xfail mark.

`flatmap_headers`: a generated Idempotency-Key is short ("0", "A") and so is reused by most batches
of a run, each with another body (422 idempotency-key-reused): few batches would ever be created and
the stateful phase would seldom start from one. Like a real job, two requests in three make a valid
key their own by appending a drawn UUID; the third keeps the key as drawn, so reuse, replays and the
invalid keys of negative cases are still exercised.
"""

from __future__ import annotations

import json
import os
import re

import schemathesis
from hypothesis import strategies as st

from gateway.openapi import PARAMETERS

# Refusals of a schema-valid request that the spec documents but JSON Schema cannot express.
# Each is keyed by problem slug; a validation error must consist of allowed (field, message) pairs.
_STATEFUL_SLUGS = {
    "not-found": "an id the spec allows but no live card of the tenant has",
    "precondition-failed": "an If-Match naming a version that is not the current one",
    "duplicate-card": "a change that would duplicate another live card",
    "idempotency-key-in-use": "a key whose first request is still running",
    "idempotency-key-reused": "a key used before with another body",
}
_VALIDATION_MESSAGES = [
    # cursors are opaque: only the API's own, for the same query, are valid
    ("cursor", re.compile(r"is not a cursor this API issued( for this query)?")),
    # cross-parameter rules of the usage summary window
    ("from", re.compile(r"must be before to")),
    ("to", re.compile(r"the window spans more than 1000 buckets")),
    # stated in the spec's descriptions: strings hold no NUL; sizes are of the serialised JSON
    (None, re.compile(r"must not contain NUL \((\\u0000|%00)\)")),
    ("content", re.compile(r"must be at most 256 KiB serialised")),
    ("metadata", re.compile(r"must be at most 16 KiB serialised")),
    ("contains", re.compile(r"must be at most 16 KiB")),
    # stated in the spec's descriptions: the bounds on hostile input (docs/SECURITY.md)
    (
        None,
        re.compile(
            r"must hold numbers that are 0 or of magnitude 1e-20 to 1e20, "
            r"with at most 20 digits after the point"
        ),
    ),
    (None, re.compile(r"must not nest deeper than 64 levels")),
    (
        "contains",
        re.compile(r"must hold at most 8 array elements in all, at most 2 of them arrays or objects"),
    ),
    ("(body)", re.compile(r"must hold at most 1,000,000 values and 100,000 arrays and objects")),
]
_TRACE_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
_IDEMPOTENCY_KEY = "Idempotency-Key"
_VALID_KEY = re.compile(PARAMETERS["IdempotencyKey"]["schema"]["pattern"])


def _problem(response) -> dict | None:
    if not response.headers.get("content-type", [""])[0].startswith("application/problem+json"):
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _allowed_validation_error(error: dict) -> bool:
    return any(
        (field is None or error.get("field") == field) and pattern.fullmatch(str(error.get("message", "")))
        for field, pattern in _VALIDATION_MESSAGES
    )


@schemathesis.check
def schema_valid_request_accepted(ctx, response, case) -> bool | None:
    """A request generated as valid succeeds, or fails for a documented reason the schema cannot carry."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code < 400:
        return None
    if response.status_code >= 500:
        return None  # not_a_server_error reports it
    problem = _problem(response) or {}
    slug = str(problem.get("type", "")).removeprefix("/problems/")
    if slug in _STATEFUL_SLUGS and (slug != "not-found" or "{id}" in case.path):
        return None
    errors = problem.get("errors")
    if slug == "validation-error" and errors and all(_allowed_validation_error(e) for e in errors):
        return None
    raise AssertionError(
        f"A request the spec allows was refused with {response.status_code} {slug or '(not a problem)'}"
        f" for a reason the spec does not give: {problem.get('detail')!r} {errors or ''}".rstrip()
    )


@schemathesis.check
def trace_id_echoed(ctx, response, case) -> bool | None:
    """Every response carries X-Trace-ID: the request's if valid; a problem's trace_id is the same."""
    echoed = response.headers.get("x-trace-id")
    if not echoed:
        raise AssertionError("The response has no X-Trace-ID header")
    echoed = echoed[0]
    sent = {k.lower(): v for k, v in (case.headers or {}).items()}.get("x-trace-id")
    if isinstance(sent, str) and _TRACE_ID.fullmatch(sent) and echoed != sent:
        raise AssertionError(f"X-Trace-ID {sent!r} was sent, {echoed!r} came back")
    if not _TRACE_ID.fullmatch(echoed):
        raise AssertionError(f"X-Trace-ID {echoed!r} does not match [A-Za-z0-9._-]{{1,128}}")
    problem = _problem(response)
    if problem is not None and problem.get("trace_id") != echoed:
        raise AssertionError(
            f"The problem's trace_id {problem.get('trace_id')!r} is not X-Trace-ID {echoed!r}"
        )
    return None


@schemathesis.hook
def flatmap_headers(ctx, headers):
    """Two valid Idempotency-Keys in three get a drawn UUID appended: mostly fresh keys, some reused."""
    key = (headers or {}).get(_IDEMPOTENCY_KEY)
    if not isinstance(key, str) or len(key) > 200 or not _VALID_KEY.search(key):
        return st.just(headers)
    fresh = st.uuids().map(lambda u: headers | {_IDEMPOTENCY_KEY: f"{key}-{u.hex}"})
    return st.one_of(st.just(headers), fresh, fresh)


# The last lifecycle change each card had in this run: "deleted" (DELETE answered 204) or "restored"
# (POST …/restore answered 200), recorded by after_call.
_lifecycle: dict[str, str] = {}


@schemathesis.hook
def after_call(ctx, case, response) -> None:
    card = (case.path_parameters or {}).get("id")
    if case.method.upper() == "DELETE" and response.status_code == 204:
        _lifecycle[str(card)] = "deleted"
    elif case.method.upper() == "POST" and case.path.endswith("/restore") and response.status_code == 200:
        _lifecycle[str(card)] = "restored"


def _restored_after_delete(case, response, failure) -> bool:
    """Not a defect: use_after_free (ST301) does not know that `POST …/restore` undoes a delete, and
    reports the card served again after a stateful run restored it."""
    card = (case.path_parameters or {}).get("id")
    return failure.code == "ST301" and _lifecycle.get(str(card)) == "restored"


KNOWN_DEFECTS = {
    # not a defect: a false alarm of a built-in check, set aside the same way and counted
    "restored-after-delete": _restored_after_delete,
}


@schemathesis.hook
def filter_failure(ctx, failure, case, response) -> bool:
    """Keep every failure but those of a known, open defect (or a known false alarm); count those in
    $CARDS_FUZZ_KNOWN_LOG."""
    for name, matches in KNOWN_DEFECTS.items():
        if response is not None and matches(case, response, failure):
            log = os.environ.get("CARDS_FUZZ_KNOWN_LOG")
            if log:
                with open(log, "a") as out:
                    out.write(
                        json.dumps(
                            {"defect": name, "operation": case.operation.label, "failure": failure.title}
                        )
                        + "\n"
                    )
            return False
    return True


# Hostile shapes (docs/SECURITY.md, "Hostile input"): valid JSON that once cost the server memory,
# time or a 500. About one body (or `contains`) in four gets one in place of a card's content or
# metadata value, a patch's content or a usage report's metadata value; the answer must be a success
# or a 422 naming the field (schema_valid_request_accepted allows the bounds' messages). json.dumps
# writes floats such as 1e300 with their exponent, so exponents reach the server as written.
def _nested(depth: int) -> list:
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


_HOSTILE = st.one_of(
    st.sampled_from([1e300, -1e300, 5e-324, 1e21, 1e-21, 0.1 + 0.2]),  # huge and tiny exponents, 17 digits
    st.integers(19, 3000).map(lambda digits: 10**digits - 1),  # long numbers (Python writes <= 4300 digits)
    st.integers(60, 400).map(_nested),  # nesting around and past 64 levels
    st.integers(100, 3000).map(lambda n: {f"k{i}": 0 for i in range(n)}),  # wide objects
    st.integers(1, 40).map(lambda n: [[1]] * n),  # containment work: arrays of arrays
)


@schemathesis.hook
def flatmap_body(ctx, body):
    """One body in four of a batch, a patch or a usage report carries a hostile shape."""
    operation = getattr(ctx, "operation", None)
    method, path = (operation.method.upper(), operation.path) if operation is not None else ("", "")
    if not isinstance(body, dict):
        return st.just(body)

    def hostile(value):
        if path.endswith("/batch") and isinstance(body.get("cards"), list) and body["cards"]:
            if isinstance(body["cards"][0], dict):
                return body | {"cards": [body["cards"][0] | {"content": value}, *body["cards"][1:]]}
        elif method == "POST" and path.endswith("/usage"):
            return body | {"metadata": {"x": value}}
        elif method == "PATCH":
            return body | {"content": value}
        return body

    return st.one_of(st.just(body), st.just(body), st.just(body), _HOSTILE.map(hostile))


@schemathesis.hook
def flatmap_query(ctx, query):
    """One listing in four filters by a hostile `contains`."""
    if not isinstance(query, dict) or "contains" not in query:
        return st.just(query)
    contains = _HOSTILE.map(lambda value: query | {"contains": json.dumps({"x": value})})
    return st.one_of(st.just(query), st.just(query), st.just(query), contains)
