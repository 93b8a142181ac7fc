"""jq's own workloads: W4 (whole CLI processes) and W5 (a worker's memory). W1–W3, which every
contestant runs alike, are in compete.py. Each takes its sandbox and its sizes."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

from bench.harness import JQ, Sandbox, rss_kb

NOOP = {"job_type": "noop"}


@dataclass(frozen=True)
class Sizes:
    w4_runs: int = 7
    # 100,000 (the count of issue 12's target) takes five minutes or more here, beyond the
    # full run's budget: `make bench-memory` runs W5 alone with it.
    w5_jobs: int = 20_000
    chunk: int = 5_000


QUICK = Sizes(w4_runs=3, w5_jobs=3_000)


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (no interpolation: the value some job really had)."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))  # ceil
    return ordered[int(rank) - 1]


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
    """Wall time of whole `jq` processes against `python -c pass` (one warm-up run of each)."""
    env = sb.env
    figures: dict = {"runs": sizes.w4_runs}
    _, out = _timed([JQ, "submit", "noop"], env)
    job_id = out.strip().split()[-1]
    cases = {
        "python": [sys.executable, "-c", "pass"],  # the yardstick: the same interpreter, bare
        "submit": [JQ, "submit", "noop"],
        "show": [JQ, "show", job_id],
        "list": [JQ, "list"],
        "help": [JQ, "--help"],
    }
    for name, args in cases.items():
        _timed(args, env)  # warm the page cache and the byte-code cache
        times = [_timed(args, env)[0] for _ in range(sizes.w4_runs)]
        figures[f"{name}_median_ms"] = statistics.median(times)
        figures[f"{name}_min_ms"] = min(times)
    return figures


# -- W5 -----------------------------------------------------------------------------------------


def w5_memory(sb: Sandbox, sizes: Sizes) -> dict:
    """One `jq worker` at its defaults: resident memory idle, and after many no-op jobs
    (bulk-submitted while it runs)."""
    n = sizes.w5_jobs
    (worker,) = sb.start_workers(1)
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
        "idle_rss_mb": idle_kb / 1024,
        "after_rss_mb": after_kb / 1024,
        "peak_rss_mb": peak[0] / 1024,
        "growth_pct": (after_kb - idle_kb) * 100 / idle_kb,
        "drain_s": end - start,
        "per_s": n / (end - start),
        "rss_mb_by_jobs_completed": trail,
    }


WORKLOADS = {"W4": w4_cli, "W5": w5_memory}
