"""The leases part (issue 12, "holding long jobs is cheap"): 1,000 jobs held running on two
`jq worker --concurrency 500` for a while, at the default lease (JQ_LEASE_TTL, 30 s). Measured:
what holding them writes into `jobs` (row versions, HOT or not, the index entries the non-HOT ones
add, the growth of the indexes), and how long a cancel takes to reach a running handler (cancel
committed → the handler sees ctx.cancelled), over cancels sent one at a time."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.harness import JQ, LOG_DIR, Sandbox, spawn
from bench.workloads import percentile

ROOT = Path(__file__).resolve().parent.parent  # for `--import bench.hold_handler` in the workers


@dataclass(frozen=True)
class LeaseSizes:
    workers: int = 2
    concurrency: int = 500  # per worker: 1,000 running jobs in all
    hold_s: float = 30.0  # the window the write rates are measured over
    cancels: int = 50
    cancel_gap_s: float = 0.2  # between two cancels, one job each


QUICK_LEASES = LeaseSizes(concurrency=50, hold_s=8.0, cancels=10)


def _table_stats(sb: Sandbox) -> dict[str, int]:
    row = sb.sql(
        "SELECT n_tup_upd, n_tup_hot_upd, pg_indexes_size(relid) AS index_bytes"
        " FROM pg_stat_user_tables WHERE schemaname = %s AND relname = 'jobs'",
        (sb.namespace,),
    )[0]
    return {k: int(v) for k, v in row.items()}


def _indexes_of_a_running_row(sb: Sandbox) -> list[str]:
    """The indexes of jobs that hold an entry for a held (running) row: a non-HOT update of it
    adds one entry to each (a partial index whose predicate the row fails gets none)."""
    found = []
    for ix in sb.sql(
        "SELECT c.relname AS name, pg_get_expr(i.indpred, i.indrelid) AS pred FROM pg_index i"
        " JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = 'jobs'::regclass"
    ):
        where = f" AND ({ix['pred']})" if ix["pred"] else ""
        held = sb.sql(f"SELECT count(*) AS n FROM jobs WHERE state = 'running'{where}")[0]["n"]
        if held:
            found.append(ix["name"])
    return sorted(found)


def _shortest_renewal_gap(sb: Sandbox, sample: list[int], until: float) -> float | None:
    """Watch the leases of `sample` until `until` (perf_counter time), every 0.25 s: the shortest
    time between two renewals of one job (a renewal moves its lease_expires_at), or None if no job
    was renewed twice."""
    last: dict[int, Any] = {}
    renewed: dict[int, list[float]] = {}
    while time.perf_counter() < until:
        now = time.perf_counter()
        for row in sb.sql("SELECT id, lease_expires_at FROM jobs WHERE id = ANY(%s)", (sample,)):
            seen = last.get(row["id"])
            if seen is not None and row["lease_expires_at"] != seen:
                renewed.setdefault(row["id"], []).append(now)
            last[row["id"]] = row["lease_expires_at"]
        time.sleep(0.25)
    gaps = [b - a for times in renewed.values() for a, b in itertools.pairwise(times)]
    return min(gaps) if gaps else None


def measure(sb: Sandbox, sizes: LeaseSizes) -> dict[str, Any]:
    held = sizes.workers * sizes.concurrency
    log = LOG_DIR / f"{sb.namespace}-cancels.log"
    env = {**sb.env, "PYTHONPATH": str(ROOT)}
    for n in range(sizes.workers):
        sb.procs.append(
            spawn(
                [JQ, "worker", "--import", "bench.hold_handler", "--concurrency",
                 str(sizes.concurrency)],
                env,
                f"{sb.namespace}-worker{n}",
            )
        )  # fmt: skip
    sb.wait_consuming(sizes.workers, timeout=60)
    long_enough = sizes.hold_s + sizes.cancels * sizes.cancel_gap_s + 120
    with sb.client() as client:
        ids = client.submit_many(
            [
                {"job_type": "bench_hold", "payload": {"seconds": long_enough, "log": str(log)}}
                for _ in range(held)
            ]
        )
        deadline = time.monotonic() + 120
        while sb.count("running") < held:
            sb.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"only {sb.count('running')} of {held} jobs running; see {LOG_DIR}"
                )
            time.sleep(0.2)
        # Past the claims, and past the statistics' flush of them: a backend sends its counts at
        # most once a second, and an idle one up to 10 s later. The window sees holding only.
        time.sleep(12.0)
        before, t0 = _table_stats(sb), time.perf_counter()
        gap = _shortest_renewal_gap(sb, ids[:: max(1, held // 20)], t0 + sizes.hold_s)
        after, span = _table_stats(sb), time.perf_counter() - t0
        running = sb.count("running")
        indexes = _indexes_of_a_running_row(sb)

        asked: dict[int, float] = {}
        for job_id in ids[: sizes.cancels]:
            start = time.time()  # before the statement: its own round trip counts against us
            client.cancel([job_id])
            asked[job_id] = start
            time.sleep(sizes.cancel_gap_s)
        deadline = time.monotonic() + 30
        seen: dict[int, float] = {}
        while len(seen) < len(asked) and time.monotonic() < deadline:
            if log.exists():
                for line in log.read_text().splitlines():
                    seen_id, at = line.split()
                    seen[int(seen_id)] = float(at)
            time.sleep(0.2)
    latencies = [(seen[i] - asked[i]) * 1000 for i in asked if i in seen]
    updates = after["n_tup_upd"] - before["n_tup_upd"]
    hot = after["n_tup_hot_upd"] - before["n_tup_hot_upd"]
    return {
        "held": held,
        "running_at_end_of_window": running,
        "window_s": round(span, 1),
        "lease_ttl_s": sb.settings.lease_ttl,
        "row_versions_per_s": updates / span,
        # Issue 12: a held job's lease renewed at most once per third of the lease: the shortest
        # gap seen between two renewals of a sampled job, in thirds of the lease (1.0 or more,
        # less the 0.25 s the sampling may miss by).
        "shortest_renewal_gap_s": gap,
        "renewal_gap_in_lease_thirds": None if gap is None else gap / (sb.settings.lease_ttl / 3),
        "hot_per_s": hot / span,
        "non_hot_per_s": (updates - hot) / span,
        "indexes_of_a_running_row": indexes,
        # Each non-HOT update adds an entry to every index that holds the row.
        "index_entries_per_s": (updates - hot) * len(indexes) / span,
        "index_growth_kb_per_s": (after["index_bytes"] - before["index_bytes"]) / 1024 / span,
        "cancels": len(asked),
        "cancels_seen": len(latencies),
        "cancel_p50_ms": percentile(latencies, 50) if latencies else None,
        "cancel_p99_ms": percentile(latencies, 99) if latencies else None,
        "cancel_max_ms": max(latencies) if latencies else None,
    }
