"""The one check of a reused idempotency key, for every insert path (plain, bulk, unique,
dependant, sync and async): the same request again returns its job, another request is a
conflict."""

from __future__ import annotations

from typing import Any

from jq_cli.errors import Conflict
from jq_cli.store.records import Inserted, NewJob

# query: job_by_key. The payloads are compared as jsonb: key order and spacing aside. Qualified by
# the namespace's schema: an application's connection has its own search_path.
JOB_BY_KEY = """
    SELECT id, state, queue, priority, job_type, payload = %(payload)s::jsonb AS same_payload
    FROM {ns}.jobs WHERE idempotency_key = %(key)s
"""


def by_key_params(job: NewJob) -> dict[str, Any]:
    return {"payload": job.payload_json, "key": job.idempotency_key}


def check_same_request(job: NewJob, existing: dict[str, Any]) -> Inserted:
    """The job an idempotency key already names, when `job` is the same request again (same type
    and payload); raises Conflict otherwise: returning someone else's job would report a submit
    that never happened. `existing` is a JOB_BY_KEY row (or one with its columns)."""
    if existing["job_type"] != job.job_type or not existing["same_payload"]:
        differs = "type" if existing["job_type"] != job.job_type else "payload"
        raise Conflict(
            f"idempotency key {job.idempotency_key!r} is already job {existing['id']} "
            f"({existing['job_type']}, {existing['state']}) with another {differs}"
        )
    return Inserted(
        existing["id"], existing["state"], existing["queue"], existing["priority"], False
    )
