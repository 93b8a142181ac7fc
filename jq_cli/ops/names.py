"""The names that exist (queues, job types), so that a front end can refuse a misspelt one with
a "did you mean" before anything is written: a job sent to a queue no worker reads waits forever,
and a filter on a type that does not exist answers with nothing."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from jq_cli.errors import InvalidInput, JqError, did_you_mean

if TYPE_CHECKING:
    from jq_cli.ops.core import OperationsCore

SHOWN_NAMES = 12  # an error lists at most these many of the names that exist


class UnknownName(InvalidInput):
    """A queue or job type that does not exist where one that exists was meant (exit 2)."""


def known_queues(client: OperationsCore, *, with_workers: bool = True) -> set[str]:
    """The queues that exist: in PostgreSQL (store.queue_names_known), the ones configured for
    workers here (JQ_WORKER_QUEUES), the defaults of the types this process knows, and, with
    `with_workers`, those live workers consume (Redis; left out, not an error, when telemetry
    is unavailable: PostgreSQL is the truth). Raises ServiceUnavailable (PostgreSQL)."""
    names = set(client.store.queue_names_known()) | set(client.settings.queue_names)
    for name in client.registry.names():
        handler = client.registry.get(name)
        if handler is not None and handler.defaults.queue:
            names.add(handler.defaults.queue)
    if with_workers:
        try:
            for worker in client.telemetry.workers():
                names.update(worker.get("queues") or [])
        except JqError:
            pass
    return names


def known_types(client: OperationsCore) -> set[str]:
    """The job types that exist: built in or imported here, or registered by a worker.
    Raises ServiceUnavailable."""
    return set(client.registry.names()) | set(client.store.job_type_names())


def unknown_name_error(kind: str, name: str, known: Iterable[str], escape: str = "") -> UnknownName:
    """ "unknown queue 'defualt' (did you mean 'default'?; queues: a, b)", plus `escape`, the
    way to use a new name on purpose where there is one."""
    names = sorted(known)
    shown = ", ".join(names[:SHOWN_NAMES]) + (" ..." if len(names) > SHOWN_NAMES else "")
    existing = f"{kind}s: {shown}" if names else f"no {kind} exists yet"
    hint = did_you_mean(name, names)
    return UnknownName(f"unknown {kind} {name!r}{hint} ({existing}){escape}")


def unknown_queues(client: OperationsCore, names: Iterable[str]) -> tuple[list[str], set[str]]:
    """(those of `names` that are no queue that exists, in order; the queues that exist). Redis
    is asked only when PostgreSQL did not know one of them. Raises ServiceUnavailable."""
    wanted = [n for n in names if n]
    if not wanted:
        return [], set()
    known = known_queues(client, with_workers=False)
    if any(n not in known for n in wanted):
        known = known_queues(client)
    return [n for n in wanted if n not in known], known


def check_queues(
    client: OperationsCore, names: Iterable[str], *, new_queue_flag: str | None = None
) -> None:
    """Raise UnknownName for the first of `names` that is not a queue that exists; `new_queue_flag`
    is the option that allows a new queue on purpose, named in the message. Raises InvalidInput
    for a name no queue can have, ServiceUnavailable."""
    from jq_cli.model.jobspec import check_name

    wanted = list(names)
    for name in wanted:
        check_name(name, "queue")  # a name no queue can have gets its own message first
    unknown, known = unknown_queues(client, wanted)
    if unknown:
        raise unknown_name_error("queue", unknown[0], known, new_queue_escape(new_queue_flag))


def new_queue_escape(flag: str | None) -> str:
    """The end of an unknown queue's message: how to use a new queue on purpose, if one can."""
    return f"; to start a new queue on purpose, add {flag}" if flag else ""


def check_types(client: OperationsCore, names: Iterable[str]) -> None:
    """Raise UnknownName for the first of `names` that is not a job type that exists."""
    wanted = [n for n in names if n]
    if not wanted:
        return
    known = known_types(client)
    for name in wanted:
        if name not in known:
            raise unknown_name_error("job type", name, known)
