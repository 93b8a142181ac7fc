"""The audit log in jq_cli.client.Client: how an operator action is recorded with its change
(_audited), and the listing `jq audit` shows."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from jq_cli.errors import InvalidInput
from jq_cli.model.audit import ACTIONS, Actor
from jq_cli.ops.core import OperationsCore
from jq_cli.store import AuditEntry

AUDIT_LIMIT = 10_000


def audit_entry(
    actor: Actor,
    action: str,
    *,
    target: str | int | None = None,
    filter: dict[str, Any] | None = None,
) -> AuditEntry:
    """The audit row of an operator action as every front end records it (sync and async)."""
    assert action in ACTIONS, action  # a new action is named in jq_cli.model.audit.ACTIONS
    return AuditEntry(
        actor,
        action,
        None if target is None else str(target),
        {k: v for k, v in (filter or {}).items() if v is not None},
    )


class AuditOperations(OperationsCore):
    @contextmanager
    def _audited(
        self,
        action: str,
        *,
        target: str | int | None = None,
        filter: dict[str, Any] | None = None,
        entry: AuditEntry | None = None,
    ) -> Iterator[AuditEntry]:
        """One transaction for a change and its audit row, recorded as self.actor. Pass `entry`
        back to continue the row of an action that spans several transactions."""
        if entry is None:
            entry = audit_entry(self.actor, action, target=target, filter=filter)
        with self.store.audited(entry) as recorded:
            yield recorded

    def audit(
        self, *, since: float | None = None, action: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Operator actions, newest first: `since` seconds back, `action` a name (job.purge) or a
        group (job). Raises InvalidInput, ServiceUnavailable."""
        if action is not None:
            groups = {a.split(".")[0] for a in ACTIONS}
            if action not in ACTIONS and action not in groups:
                raise InvalidInput(
                    f"unknown audit action {action!r} (one of: {', '.join(sorted(groups))}, "
                    f"or {', '.join(ACTIONS)})"
                )
        if not 1 <= limit <= AUDIT_LIMIT:
            raise InvalidInput(f"limit must be between 1 and {AUDIT_LIMIT}, got {limit}")
        if since is not None and since <= 0:
            raise InvalidInput("since must be a positive duration")
        return [
            dict(r) for r in self.store.audit_list(since_seconds=since, action=action, limit=limit)
        ]
