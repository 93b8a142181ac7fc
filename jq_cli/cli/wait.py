"""`jq submit --wait`: following a job until it ends, its state on one terminal line."""

import sys
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from jq_cli.client import Client


def follow(ops: "Client", job_id: int, timeout: float | None, quiet: bool) -> dict[str, Any]:
    """Wait for a job to end, showing its state and progress on a terminal (stderr). Ctrl-C and
    a timeout leave the job running and say so; a timeout exits with its own code."""
    import time

    from jq_cli.errors import EXIT_WAIT_TIMEOUT
    from jq_cli.model.states import TERMINAL_STATES, JobState

    live = sys.stderr.isatty() and not quiet
    if not quiet:
        sys.stderr.write(f"job {job_id} submitted; waiting (Ctrl-C stops waiting, not the job)\n")
    deadline = None if timeout is None else time.monotonic() + timeout
    shown = ""
    try:
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            job = ops.wait(job_id, timeout=0.5 if left is None else min(0.5, left))
            if JobState(job["state"]) in TERMINAL_STATES:
                break
            if live:
                line = _wait_line(job)
                if line != shown:
                    sys.stderr.write("\r\x1b[2K" + line)
                    sys.stderr.flush()
                    shown = line
            if deadline is not None and time.monotonic() >= deadline:
                if shown:
                    sys.stderr.write("\n")
                sys.stderr.write(
                    f"jq: error: gave up waiting after {timeout:g}s: job {job_id} is "
                    f"{job['state']} and goes on (jq show {job_id})\n"
                )
                raise typer.Exit(EXIT_WAIT_TIMEOUT)
    except KeyboardInterrupt:
        if shown:
            sys.stderr.write("\n")
        sys.stderr.write(
            f"jq: interrupted: job {job_id} goes on (jq show {job_id}; jq cancel {job_id} stops it)\n"
        )
        raise typer.Exit(130) from None
    if shown:
        sys.stderr.write("\r\x1b[2K")
    return job


def _wait_line(job: dict[str, Any]) -> str:
    """`job 7 running 40% encoding (attempt 1 of 4)`: one terminal line, rewritten in place."""
    parts = [f"job {job['id']} {job['state']}"]
    if job["state"] == "running" and job.get("progress") is not None:
        parts.append(f"{job['progress']:.0f}%")
        if job.get("progress_message"):
            parts.append(str(job["progress_message"]))
    parts.append(f"(attempt {max(job['attempts'], 1)} of {job['max_retries'] + 1})")
    return " ".join(parts)
