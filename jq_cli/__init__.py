"""jq: a job queue with PostgreSQL as the truth and RabbitMQ as the transport.

from jq_cli import Client, job

@job("resize_image")
def resize(payload, ctx): ...

with Client() as client:
    job_id = client.submit("send_email", {"to": "a@example.com", "subject": "hi", "body": "..."})
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from jq_cli.client import Client
    from jq_cli.client_async import AsyncClient
    from jq_cli.handlers import (
        Cancelled,
        InvalidPayload,
        JobContext,
        PermanentError,
        Retry,
        Snooze,
        job,
    )
    from jq_cli.model.workflows import chain, group, step

__all__ = [
    "AsyncClient",
    "Cancelled",
    "Client",
    "InvalidPayload",
    "JobContext",
    "PermanentError",
    "Retry",
    "Snooze",
    "chain",
    "group",
    "job",
    "step",
]

_LAZY = {
    "Client": ("jq_cli.client", "Client"),
    "AsyncClient": ("jq_cli.client_async", "AsyncClient"),
    "chain": ("jq_cli.model.workflows", "chain"),
    "group": ("jq_cli.model.workflows", "group"),
    "step": ("jq_cli.model.workflows", "step"),
    "job": ("jq_cli.handlers", "job"),
    "JobContext": ("jq_cli.handlers", "JobContext"),
    "InvalidPayload": ("jq_cli.handlers", "InvalidPayload"),
    "PermanentError": ("jq_cli.handlers", "PermanentError"),
    "Cancelled": ("jq_cli.handlers", "Cancelled"),
    "Snooze": ("jq_cli.handlers", "Snooze"),
    "Retry": ("jq_cli.handlers", "Retry"),
}


def __getattr__(name: str) -> Any:
    # Lazy, so that `jq --help` does not pay for psycopg and pika.
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(name)
