"""A small pool of Client objects: Client is not thread-safe, and the shim's routes run
on a thread pool, so each request borrows one for itself and gives it back when done."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass

from jq_cli.client import Client
from jq_cli.errors import JqError, ServiceUnavailable
from jq_cli.model.audit import Actor


class OpsPool:
    """Keeps up to `size` idle Client (with their open connections) between requests. One
    that met a service failure or an unexpected error is closed instead of kept: the next
    request starts from fresh connections."""

    def __init__(self, factory: Callable[[], Client], size: int = 16) -> None:
        self._factory = factory
        self._size = size
        self._idle: list[Client] = []
        self._lock = threading.Lock()

    @contextmanager
    def borrow(self, actor: Actor | None = None) -> Iterator[Client]:
        """An Client for one request, acting as `actor` (the audit log's who) until given
        back."""
        with self._lock:
            ops = self._idle.pop() if self._idle else None
        if ops is None:
            ops = self._factory()
        default_actor = ops.actor
        if actor is not None:
            ops.actor = actor
        healthy = False
        try:
            yield ops
            healthy = True
        except JqError as exc:
            healthy = not isinstance(exc, ServiceUnavailable)
            raise
        finally:
            # Reset before it goes back: the next borrower must never act as this request.
            ops.actor = default_actor
            self._give_back(ops, healthy=healthy)

    def _give_back(self, ops: Client, *, healthy: bool) -> None:
        if healthy:
            with self._lock:
                if len(self._idle) < self._size:
                    self._idle.append(ops)
                    return
        ops.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for ops in idle:
            ops.close()


@dataclass(frozen=True)
class ActingPool:
    """The pool as one request sees it: what it borrows acts as the request's Actor."""

    pool: OpsPool
    actor: Actor

    def borrow(self) -> AbstractContextManager[Client]:
        return self.pool.borrow(self.actor)
