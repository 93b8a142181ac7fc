"""The job types of the cluster bed, loaded into its workers with `--import cluster.jobs`."""

from __future__ import annotations

import time

from jq_cli import job

IO_SECONDS = 0.02  # an I/O-bound job: it waits, it does not compute


@job("cluster_io")
def cluster_io(payload: dict, ctx) -> dict:
    """Sleep 20 ms, as a call to another service would: the scaling figure's unit of work."""
    time.sleep(IO_SECONDS)
    return {}
