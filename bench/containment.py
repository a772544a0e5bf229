"""What one card costs a `contains` listing: `metadata @> contains` in PostgreSQL, per card, for the
worst shapes of metadata (16 KiB) against `contains` values within the bounds (docs/SECURITY.md).

    .venv/bin/python -m bench.containment postgresql://postgres@127.0.0.1:54329/postgres

Each shape is checked against 200 rows of a temporary table (decompressed first), five times; the
fastest run, divided by the rows, is printed: CPU per card, without the listing's own work.
"""

from __future__ import annotations

import sys
import time

import psycopg

ROWS = 200
# The metadata shapes, as SQL building 16 KiB of jsonb.
REVIEW = "jsonb_build_object('a', (SELECT jsonb_agg('[1]'::jsonb) FROM generate_series(1, 3270)) || '[[2]]')"
OBJECTS = (
    "jsonb_build_object('a', (SELECT jsonb_agg(jsonb_build_object('x', 2)) FROM generate_series(1, 1800)))"
)
SCALARS = "jsonb_build_object('a', (SELECT jsonb_agg(i) FROM generate_series(1, 5400) AS i))"
# (name, metadata, contains); a contains of None is the review's own (refused now), on one row.
SHAPES = [
    ("review: [[1]x3270, [2]]", REVIEW, '{"a": [[2],[2],[2],[2]]}'),
    ("review: [[1]x3270, [2]]", REVIEW, '{"a": [[2],[2]]}'),
    ("review: [[1]x3270, [2]]", REVIEW, '{"a": [[2]]}'),
    ("[{x: 2} x 1800]", OBJECTS, '{"a": [{"x": 1}, {"x": 1}]}'),
    ("[1 .. 5400]", SCALARS, '{"a": [-1, -2, -3, -4, -5, -6, -7, -8]}'),
    ("review: [[1]x3270, [2]]", REVIEW, None),
]
REVIEW_CONTAINS = '{"a": [' + ",".join(["[2]"] * 4091) + "]}"


def main(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        print("| metadata (16 KiB) | contains | per card |\n|---|---|---|")
        for name, metadata, contains in SHAPES:
            rows = 1 if contains is None else ROWS
            contains = contains or REVIEW_CONTAINS
            conn.execute("DROP TABLE IF EXISTS pg_temp.shape")
            conn.execute(
                f"CREATE TEMP TABLE shape AS SELECT {metadata} AS metadata FROM generate_series(1, {rows})"
            )
            conn.execute("ALTER TABLE pg_temp.shape ALTER metadata SET STORAGE plain")
            best = float("inf")
            for _ in range(5 if rows > 1 else 1):
                started = time.perf_counter()
                conn.execute(
                    "SELECT count(*) FILTER (WHERE metadata @> %s::jsonb) FROM pg_temp.shape", (contains,)
                )
                best = min(best, time.perf_counter() - started)
            shown = contains if len(contains) < 60 else '{"a": [[2] x 4091]} (the review\'s, now refused)'
            print(f"| {name} | `{shown}` | {best / rows * 1000:.2f} ms |")


if __name__ == "__main__":
    main(sys.argv[1])
