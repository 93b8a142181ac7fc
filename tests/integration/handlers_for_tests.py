"""Job types for the worker and scheduler tests.

Imported by the tests themselves (so in-process workers, which use the global registry, know
them) and by real worker subprocesses through `jq worker --import handlers_for_tests` with
PYTHONPATH pointing at tests/.

Every handler takes a plain dict payload. With `"log": PATH` in it, each execution appends one
JSON line to PATH (O_APPEND, so several processes may share a file): duplicates and re-runs are
visible to the test.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from jq_cli import Cancelled, job


def record(payload: dict, ctx, event: str) -> None:
    path = payload.get("log")
    if not path:
        return
    line = json.dumps(
        {
            "job": ctx.job_id,
            "attempt": ctx.attempt,
            "pid": os.getpid(),
            "event": event,
            "t": time.time(),
        }
    )
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")


def read_log(path: str | Path) -> list[dict]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@job("t_record")
def t_record(payload: dict, ctx) -> dict:
    """Records its execution and completes."""
    record(payload, ctx, "start")
    return {"ran": True, "job": ctx.job_id}


@job("t_fail")
def t_fail(payload: dict, ctx) -> None:
    """Records its execution and always raises (a transient failure: retried)."""
    record(payload, ctx, "start")
    raise RuntimeError(payload.get("message", "t_fail always fails"))


@job("t_sleep")
def t_sleep(payload: dict, ctx) -> dict:
    """Sleeps `seconds` while watching ctx.cancelled. With `"slow_once": PATH` the first execution
    (the one that creates PATH) sleeps `first_seconds` instead. On cancellation it raises
    Cancelled, or RuntimeError with `"on_cancel": "raise"` (a handler that fails when stopped)."""
    record(payload, ctx, "start")
    seconds = float(payload.get("seconds", 0.1))
    marker = payload.get("slow_once")
    if marker:
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            os.close(fd)
            seconds = float(payload.get("first_seconds", 30))
        except FileExistsError:
            pass
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        if ctx.wait_cancelled(min(left, 0.05)):
            record(payload, ctx, "cancelled")
            if payload.get("on_cancel") == "raise":
                raise RuntimeError("stopped half way")
            raise Cancelled("saw ctx.cancelled")
        ctx.progress(
            100 * (1 - max(0.0, deadline - time.monotonic()) / seconds) if seconds else 100
        )
    record(payload, ctx, "done")
    return {"slept": seconds}


@job("t_kill")
def t_kill(payload: dict, ctx) -> None:
    """Kills its own worker process with SIGKILL, every time: a poison job. It refuses to kill
    the process whose pid is `spare_pid` (the test runner, should an in-process worker get it)."""
    record(payload, ctx, "start")
    if os.getpid() == payload.get("spare_pid"):
        raise RuntimeError("t_kill refuses to kill the test runner")
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(10)
