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
from pydantic import BaseModel, field_validator

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


# -- the poison classes of issue 11: each records its execution like chaos_work ----------------


def _started(ctx) -> int:
    ((exec_id,),) = _execute(
        "INSERT INTO chaos_exec (job_id, attempt, pid) VALUES (%s, %s, %s) RETURNING id",
        (ctx.job_id, ctx.attempt, os.getpid()),
    )
    return exec_id


@job("chaos_nan")
def chaos_nan(payload: dict, ctx) -> dict:
    """Returns NaN, which jsonb cannot store: its attempt must fail, nothing else."""
    exec_id = _started(ctx)
    _execute(
        "UPDATE chaos_exec SET finished_at = clock_timestamp(), outcome = 'nan' WHERE id = %s",
        (exec_id,),
    )
    return {"mean": float("nan")}


class PickyPayload(BaseModel):
    n: int

    @field_validator("n")
    @classmethod
    def _lookup(cls, value: int) -> int:
        if value < 0:
            raise KeyError(value)  # a validator's bug, not a validation error
        return value


@job("chaos_picky", payload=PickyPayload)
def chaos_picky(payload: PickyPayload, ctx) -> dict:
    exec_id = _started(ctx)
    _execute(
        "UPDATE chaos_exec SET finished_at = clock_timestamp(), outcome = 'completed' WHERE id = %s",
        (exec_id,),
    )
    return {"n": payload.n}


@job("chaos_ignore_cancel")
def chaos_ignore_cancel(payload: dict, ctx) -> dict:
    """Ignores ctx.cancelled (a loop that never looks): the worker must end it anyway."""
    _started(ctx)
    deadline = time.monotonic() + float(payload.get("seconds", 120))
    while time.monotonic() < deadline:
        time.sleep(0.02)
    return {"ignored": True}


@job("chaos_hang")
def chaos_hang(payload: dict, ctx) -> dict:
    """Blocks in one C call far past its time limit: its thread can only be abandoned."""
    _started(ctx)
    time.sleep(float(payload.get("seconds", 120)))
    return {"woke": True}
