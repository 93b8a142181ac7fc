"""The chaos job type, loaded into real workers with `jq worker --import chaos.jobs`.

`chaos_work` records every execution in the run's own table (chaos_exec), with no
deduplication, so that a handler run twice shows up twice. It writes through its own direct
connection (CHAOS_RECORD_URL), not through the fault proxy: the instrument must not be the
thing under test. While PostgreSQL is down it keeps retrying its record for a while.
"""

from __future__ import annotations

import os
import threading
import time

import psycopg
from jq_cli import Cancelled, job

_local = threading.local()
RECORD_PATIENCE = 45.0  # seconds a record waits for PostgreSQL before the handler gives up


def _execute(query: str, params: tuple) -> list[tuple]:
    deadline = time.monotonic() + RECORD_PATIENCE
    while True:
        conn = getattr(_local, "conn", None)
        try:
            if conn is None or conn.closed:
                conn = _local.conn = psycopg.connect(
                    os.environ.get("CHAOS_RECORD_URL") or os.environ["JQ_DATABASE_URL"],
                    autocommit=True,
                    connect_timeout=3,
                    options=f"-c search_path={os.environ['JQ_NAMESPACE']}",
                )
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []
        except psycopg.OperationalError:
            if conn is not None:
                conn.close()
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.5)


@job("chaos_work")
def chaos_work(payload: dict, ctx) -> dict:
    """Record the execution, sleep `sleep` seconds (watching for cancellation), record the end."""
    ((exec_id,),) = _execute(
        "INSERT INTO chaos_exec (job_id, attempt, pid) VALUES (%s, %s, %s) RETURNING id",
        (ctx.job_id, ctx.attempt, os.getpid()),
    )
    deadline = time.monotonic() + float(payload.get("sleep", 0.1))
    while time.monotonic() < deadline:
        if ctx.cancelled:
            _execute(
                "UPDATE chaos_exec SET finished_at = clock_timestamp(), outcome = 'cancelled' WHERE id = %s",
                (exec_id,),
            )
            raise Cancelled("asked to stop")
        time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
    _execute(
        "UPDATE chaos_exec SET finished_at = clock_timestamp(), outcome = 'completed' WHERE id = %s",
        (exec_id,),
    )
    return {"exec": exec_id}
