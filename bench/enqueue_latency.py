"""Commit-to-start latency of jobs enqueued in an application's transaction (issue 15): one
worker and one scheduler (whose doorbell publishes) idle in a namespace of their own; each job is
submitted in a psycopg transaction, committed, and timed from the commit to its started_at.

    .venv/bin/python -m bench.enqueue_latency [N]
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
import uuid
from datetime import datetime

import psycopg
from jq_cli.client import Client
from jq_cli.config import Settings
from jq_cli.handlers import load_builtins
from jq_cli.scheduler.daemon import Scheduler
from jq_cli.store import Store
from jq_cli.worker.daemon import Worker


def main(n: int = 200) -> None:
    ns = f"lat{uuid.uuid4().hex[:8]}"
    settings = Settings(_env_file=None, namespace=ns, scheduler_interval=0.5)
    store = Store(settings.database_url, ns)
    store.migrate()
    worker, scheduler = Worker(settings, load_builtins()), Scheduler(settings)
    threads = [threading.Thread(target=d.run, daemon=True) for d in (worker, scheduler)]
    for t in threads:
        t.start()
    time.sleep(2)  # a benchmark, not a test: let both daemons connect and go idle
    latencies: list[float] = []
    try:
        with Client(settings) as ops, psycopg.connect(settings.database_url) as conn:
            for _ in range(n):
                job_id = ops.submit("noop", {}, connection=conn)
                conn.commit()
                committed = time.time()
                job = ops.wait(job_id, timeout=10, poll=0.01)
                started: datetime | None = job["started_at"]
                if started is not None:
                    latencies.append((started.timestamp() - committed) * 1000)
    finally:
        worker.request_stop()
        scheduler.request_stop()
        for t in threads:
            t.join(30)
        store.drop_namespace()
        store.close()
    latencies.sort()
    p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]  # noqa: E731
    print(
        f"commit to start, {len(latencies)} jobs: median {statistics.median(latencies):.1f} ms, "
        f"p95 {p(0.95):.1f} ms, p99 {p(0.99):.1f} ms, max {latencies[-1]:.1f} ms"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
