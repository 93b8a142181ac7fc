"""The job the leases part holds running (`jq worker --import bench.hold_handler`): it sleeps until
cancelled, and then notes when its handler saw the cancel (one line per job, appended to the file
its payload names), so the bench can time cancel → handler."""

from __future__ import annotations

import os
import time

from jq_cli import job
from jq_cli.handlers.registry import Cancelled, JobContext


@job("bench_hold")
def bench_hold(payload: dict, ctx: JobContext) -> None:
    if ctx.wait_cancelled(float(payload["seconds"])):
        seen = time.time()
        # One short write with O_APPEND: lines from both worker processes never interleave.
        fd = os.open(payload["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{ctx.job_id} {seen:.6f}\n".encode())
        finally:
            os.close(fd)
        raise Cancelled("bench: cancelled while held")
