"""The dashboard's (jq top) own queries."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jq_cli.store.base import StoreBase

CREATED_SCAN_FIRST = 1000  # rows read by the first step: enough for a quiet queue's whole window
CREATED_SCAN_LIMIT = 200_000  # never read more than this many rows per refresh, however busy


def job_count_created_per_second(
    store: StoreBase, first: int, last: int
) -> tuple[dict[int, int], int]:
    """Jobs created in each epoch second from `first` to `last` (inclusive), for the submitted rate.

    Submits are not counted in Redis (the submit path must not pay a round trip for telemetry), and
    jobs.created_at has no index, so this walks the primary key backwards (ids grow with
    created_at) in growing steps and stops at the first row older than the window or after
    CREATED_SCAN_LIMIT rows. Returns (counts, covered_from): seconds before covered_from were not
    reached within the limit and are unknown, not zero."""
    counts: dict[int, int] = {}
    before: int | None = None
    step, scanned = CREATED_SCAN_FIRST, 0
    while True:
        rows = store._all(
            # query: job_count_created_per_second. One step of the backward walk, aggregated here so
            # that a busy second costs one row on the wire, not thousands.
            """
            WITH step AS (
                SELECT id, created_at FROM jobs
                WHERE id < %(before)s::bigint
                ORDER BY id DESC LIMIT %(step)s
            )
            SELECT floor(extract(epoch FROM created_at))::bigint AS second, count(*) AS n, min(id) AS low
            FROM step GROUP BY 1
            """,
            # A bound past every id rather than `IS NULL OR`: a prepared statement's generic plan
            # then still starts the backward walk at the bound.
            {"before": before if before is not None else 2**63 - 1, "step": step},
        )
        read = sum(r["n"] for r in rows)
        scanned += read
        for r in rows:
            if first <= r["second"] <= last:
                counts[r["second"]] = counts.get(r["second"], 0) + r["n"]
        if read < step or not rows or min(r["second"] for r in rows) < first:
            return counts, first  # reached the table's start or the window's: every second is known
        if scanned >= CREATED_SCAN_LIMIT:
            oldest = min(r["second"] for r in rows)
            counts.pop(oldest, None)  # partly read: unknown rather than too low
            return counts, oldest + 1
        before = min(r["low"] for r in rows)
        step = min(step * 4, CREATED_SCAN_LIMIT - scanned)
