"""The five workloads of issue 3. Each takes its sandbox and its sizes and returns its figures."""

from __future__ import annotations

import statistics
import subprocess
import time
from dataclasses import dataclass

from bench.harness import JQ, Sandbox, cpu_by_service, cpu_seconds, rss_kb

NOOP = {"job_type": "noop"}


@dataclass(frozen=True)
class Sizes:
    w1_jobs: int = 20_000
    w1_chunk: int = 5_000
    w2_jobs: int = 20_000
    w3_jobs: int = 500
    w3_rate: float = 50.0
    w4_runs: int = 7
    w5_jobs: int = 100_000
    chunk: int = 5_000
    workers: int = 2  # W2 and W3: worker processes in total
    concurrency: int = (
        64  # no-op jobs: bigger claim and finish batches (measured: 16 → 2,600/s, 64 → 6,500/s)
    )
    prefetch: int = 256


QUICK = Sizes(w1_jobs=2_000, w1_chunk=1_000, w2_jobs=2_000, w3_jobs=100, w4_runs=3, w5_jobs=5_000)


def _bulk_submit(client, total: int, chunk: int) -> float:
    """Submit `total` noop jobs through submit_many in chunks; returns the seconds it took."""
    start = time.perf_counter()
    left = total
    while left:
        n = min(chunk, left)
        client.submit_many([NOOP] * n)
        left -= n
    return time.perf_counter() - start


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (no interpolation: the value some job really had)."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))  # ceil
    return ordered[int(rank) - 1]


# -- W1 -----------------------------------------------------------------------------------------


def _bare_insert_per_s(sb: Sandbox, n: int) -> float:
    """The yardstick of issue 3: durable single-row inserts a second, one commit each, on this
    machine now (the target for one-by-one submits is 0.8 of it)."""
    import psycopg

    with psycopg.connect(sb.settings.database_url, autocommit=True) as conn:
        conn.execute(
            f"CREATE TABLE {sb.namespace}.bare_insert (id bigserial PRIMARY KEY, payload jsonb)"
        )
        start = time.perf_counter()
        for _ in range(n):
            conn.execute(
                f"INSERT INTO {sb.namespace}.bare_insert (payload) VALUES (%s::jsonb)", ("{}",)
            )
        seconds = time.perf_counter() - start
        conn.execute(f"DROP TABLE {sb.namespace}.bare_insert")
    return n / seconds


def w1_submit(sb: Sandbox, sizes: Sizes) -> dict:
    """Python API submit rates: one job per call, then submit_many in chunks."""
    n = sizes.w1_jobs
    baseline = _bare_insert_per_s(sb, min(n, 3_000))
    with sb.client() as client:
        client.submit("noop")  # opens the connections; not timed
        cpu_before = cpu_seconds()
        start = time.perf_counter()
        for _ in range(n):
            client.submit("noop")
        one_s = time.perf_counter() - start
        cpu_mid = cpu_seconds()
        bulk_s = _bulk_submit(client, n, sizes.w1_chunk)
        cpu_after = cpu_seconds()
    stored = sb.count("queued")
    if stored != 2 * n + 1:
        raise RuntimeError(f"W1: expected {2 * n + 1} queued jobs in Postgres, found {stored}")
    return {
        "jobs": n,
        "chunk": sizes.w1_chunk,
        "one_by_one_s": one_s,
        "one_by_one_per_s": n / one_s,
        "bare_insert_per_s": baseline,
        "one_by_one_vs_bare_insert": (n / one_s) / baseline,
        "one_by_one_ms_per_job": one_s * 1000 / n,
        "bulk_s": bulk_s,
        "bulk_per_s": n / bulk_s,
        "cpu_s_one_by_one": cpu_by_service(cpu_before, cpu_mid, []),
        "cpu_s_bulk": cpu_by_service(cpu_mid, cpu_after, []),
    }


# -- W2 -----------------------------------------------------------------------------------------


def w2_drain(sb: Sandbox, sizes: Sizes) -> dict:
    """Drain rate of real `jq worker` processes over a preloaded queue."""
    n = sizes.w2_jobs
    with sb.client() as client:
        submit_s = _bulk_submit(client, n, sizes.chunk)
    cpu_before = cpu_seconds()
    workers = sb.start_workers(sizes.workers, sizes.concurrency, sizes.prefetch)
    first, last = sb.wait_consuming(sizes.workers, timeout=60)
    end, done = sb.wait_completed(n, timeout=max(60.0, n / 200))
    cpu = cpu_by_service(cpu_before, cpu_seconds(), [w.pid for w in workers])
    if done < n:
        raise RuntimeError(f"W2: only {done} of {n} jobs completed before the timeout")
    span = sb.sql(
        # The database's own view of the drain: first claim to last finish.
        "SELECT extract(epoch FROM max(j.finished_at) - min(a.started_at))::float8 AS s "
        "FROM jobs j JOIN attempts a ON a.job_id = j.id"
    )[0]["s"]
    return {
        "jobs": n,
        "workers": sizes.workers,
        "concurrency": sizes.concurrency,
        "prefetch": sizes.prefetch,
        "mode": f"{n:,} jobs bulk-inserted and published first; then {sizes.workers} workers started; "
        "clock from the first worker's consumer registering at the broker to all completed",
        "preload_s": submit_s,
        "drain_s": end - first,
        "per_s": n / (end - first),
        "second_worker_lag_s": last - first,
        "per_s_from_all_consuming": n / (end - last),
        "db_span_s": span,
        "db_span_per_s": n / span if span else None,
        "cpu_s": cpu,  # includes the workers' start-up (imports, connections) before the clock
    }


# -- W3 -----------------------------------------------------------------------------------------


def w3_latency(sb: Sandbox, sizes: Sizes) -> dict:
    """Submit→start latency at a steady rate into idle workers, from Postgres timestamps."""
    sb.start_workers(sizes.workers, sizes.concurrency, sizes.prefetch)
    sb.wait_consuming(sizes.workers, timeout=60)
    time.sleep(1.0)  # idle: past start-up, nothing in flight
    ids = []
    interval = 1.0 / sizes.w3_rate
    with sb.client() as client:
        client.submit("noop")  # opens the connections; not counted
        start = time.perf_counter()
        for i in range(sizes.w3_jobs):
            pause = start + i * interval - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            ids.append(client.submit("noop"))
        sent_s = time.perf_counter() - start
    _, _done = sb.wait_completed(sizes.w3_jobs + 1, timeout=60)
    rows = sb.sql(
        # created_at is the insert's now(), started_at the claim's now(): one clock, the database's.
        "SELECT extract(epoch FROM a.started_at - j.created_at)::float8 * 1000 AS start_ms, "
        "       extract(epoch FROM j.finished_at - j.created_at)::float8 * 1000 AS done_ms "
        "FROM jobs j JOIN attempts a ON a.job_id = j.id AND a.number = 1 WHERE j.id = ANY(%s)",
        (ids,),
    )
    if len(rows) < len(ids):
        raise RuntimeError(f"W3: only {len(rows)} of {len(ids)} jobs started")
    start_ms = [r["start_ms"] for r in rows]
    done_ms = [r["done_ms"] for r in rows if r["done_ms"] is not None]
    return {
        "jobs": len(ids),
        "rate_per_s": sizes.w3_rate,
        "achieved_rate_per_s": len(ids) / sent_s,
        "workers": sizes.workers,
        "p50_ms": percentile(start_ms, 50),
        "p95_ms": percentile(start_ms, 95),
        "p99_ms": percentile(start_ms, 99),
        "max_ms": max(start_ms),
        "mean_ms": statistics.fmean(start_ms),
        "finish_p50_ms": percentile(done_ms, 50),
        "finish_p99_ms": percentile(done_ms, 99),
    }


# -- W4 -----------------------------------------------------------------------------------------


def _timed(args: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(args[1:])} exited {done.returncode}: {done.stderr.strip()[:300]}"
        )
    return elapsed * 1000, done.stdout


def w4_cli(sb: Sandbox, sizes: Sizes) -> dict:
    """Wall time of whole `jq` processes (one untimed warm-up run of each first)."""
    env = sb.env
    figures: dict = {"runs": sizes.w4_runs}
    _, out = _timed([JQ, "submit", "noop"], env)
    job_id = out.strip().split()[-1]
    cases = {"help": [JQ, "--help"], "submit": [JQ, "submit", "noop"], "show": [JQ, "show", job_id]}
    for name, args in cases.items():
        _timed(args, env)  # warm the page cache and the byte-code cache
        times = [_timed(args, env)[0] for _ in range(sizes.w4_runs)]
        figures[f"{name}_median_ms"] = statistics.median(times)
        figures[f"{name}_min_ms"] = min(times)
        figures[f"{name}_max_ms"] = max(times)
    return figures


# -- W5 -----------------------------------------------------------------------------------------


def w5_memory(sb: Sandbox, sizes: Sizes) -> dict:
    """A worker's resident memory idle and after many jobs (bulk-submitted while it runs)."""
    n = sizes.w5_jobs
    (worker,) = sb.start_workers(1, sizes.concurrency, sizes.prefetch)
    sb.wait_consuming(1, timeout=60)
    time.sleep(1.5)  # settle: first heartbeat sent, start-up garbage collected
    idle_kb = rss_kb(worker.pid)
    peak = [idle_kb]
    trail: list[tuple[int, float]] = [(0, idle_kb / 1024)]  # (jobs completed, RSS MB) every tenth

    def sample(done: int) -> None:
        kb = rss_kb(worker.pid)
        peak[0] = max(peak[0], kb)
        if done >= trail[-1][0] + n / 10:
            trail.append((done, round(kb / 1024, 1)))

    with sb.client() as client:
        start = time.perf_counter()
        left = n
        while left:
            batch = min(sizes.chunk, left)
            client.submit_many([NOOP] * batch)
            left -= batch
            sample(0)  # the peak only: completions are counted by the poll below
    end, done = sb.wait_completed(n, timeout=max(120.0, n / 100), poll=0.25, on_poll=sample)
    if done < n:
        raise RuntimeError(f"W5: only {done} of {n} jobs completed before the timeout")
    time.sleep(1.5)  # idle again: the same state as the first reading
    after_kb = rss_kb(worker.pid)
    return {
        "jobs": n,
        "concurrency": sizes.concurrency,
        "prefetch": sizes.prefetch,
        "idle_rss_mb": idle_kb / 1024,
        "after_rss_mb": after_kb / 1024,
        "peak_rss_mb": peak[0] / 1024,
        "growth_pct": (after_kb - idle_kb) * 100 / idle_kb,
        "drain_s": end - start,
        "per_s": n / (end - start),
        "rss_mb_by_jobs_completed": trail,
    }


WORKLOADS = {"W1": w1_submit, "W2": w2_drain, "W3": w3_latency, "W4": w4_cli, "W5": w5_memory}
