"""jq as a contestant: the bench's job type and its client calls (run in the project's venv).

`jq worker --import app` loads the handler; the driver submits through the Python API.
"""

from __future__ import annotations

from jq_cli import Client, job
from peerside import body


@job("bench_incr")
def bench_incr(payload: dict, ctx: object) -> None:
    body(payload["k"], payload.get("t"))


def open() -> Client:
    client = Client()  # settings from the environment the bench set (JQ_NAMESPACE, URLs)
    client.__enter__()
    return client


def submit(client: Client, k: str, t: float | None) -> None:
    client.submit("bench_incr", {"k": k, "t": t})


def submit_bulk(client: Client, k: str, n: int) -> None:
    client.submit_many([{"job_type": "bench_incr", "payload": {"k": k}}] * n)


def close(client: Client) -> None:
    client.close()
