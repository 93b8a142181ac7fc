"""The audit log's SQL: an operator action and its record in one transaction, the listing
(`jq audit`) and the retention prune."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypedDict, cast

from jq_cli.model.audit import Actor
from jq_cli.store.base import StoreBase


@dataclass
class AuditEntry:
    """One operator action being recorded. The caller fills `jobs` (and `detail`) inside
    Store.audited(); `id` is set once the row exists, so that a bulk action done in several
    transactions (a purge in batches) keeps one row whose count grows with each batch."""

    actor: Actor
    action: str
    target: str | None = None
    filter: dict[str, Any] = field(default_factory=dict)
    jobs: int = 0
    detail: dict[str, Any] = field(default_factory=dict)
    id: int | None = None


class AuditRow(TypedDict):
    """One row of `audit_log`."""

    id: int
    at: datetime
    actor_kind: str
    actor: str
    host: str | None
    action: str
    target: str | None
    filter: dict[str, Any]
    jobs: int
    detail: dict[str, Any]


# query: audit_insert
AUDIT_INSERT = """
    INSERT INTO audit_log (actor_kind, actor, host, action, target, filter, jobs, detail)
    VALUES (%(kind)s, %(actor)s, %(host)s, %(action)s, %(target)s,
            %(filter)s::jsonb, %(jobs)s, %(detail)s::jsonb)
    RETURNING id
"""
# query: audit_update. A later batch of the same action: its count grows in the batch's own
# transaction.
AUDIT_UPDATE = "UPDATE audit_log SET jobs = %(jobs)s, detail = %(detail)s::jsonb WHERE id = %(id)s"


def audit_statement(entry: AuditEntry) -> tuple[str, dict[str, Any]]:
    """The statement that records `entry` (a new row, or a later batch's count) and its
    parameters: run last in the change's transaction, by the sync and the async store alike."""
    params = {
        "kind": entry.actor.kind,
        "actor": entry.actor.name,
        "host": entry.actor.host,
        "action": entry.action,
        "target": entry.target,
        "filter": json.dumps(entry.filter, default=str),
        "jobs": entry.jobs,
        "detail": json.dumps(entry.detail, default=str),
        "id": entry.id,
    }
    return (AUDIT_INSERT if entry.id is None else AUDIT_UPDATE), params


class AuditQueries(StoreBase):
    @contextmanager
    def audited(self, entry: AuditEntry) -> Iterator[AuditEntry]:
        """A transaction holding the change made inside and its audit row: both commit, or an
        error inside rolls both back. Store calls made inside join it (psycopg nests them as
        savepoints). The row is written last, with the count the caller set."""
        with self._errors(), self.conn.transaction():
            yield entry
            query, params = audit_statement(entry)
            cur = self.conn.execute(query, params)
            if entry.id is None:
                row = cur.fetchone()
                assert row is not None  # INSERT ... RETURNING returns its row
                entry.id = int(row["id"])

    def audit_list(
        self,
        *,
        since_seconds: float | None = None,
        action: str | None = None,
        limit: int = 100,
    ) -> list[AuditRow]:
        """Newest first; `action` matches a name (job.retry) or a group (job)."""
        rows = self._all(
            # query: audit_list. Fixed SQL with optional filters; audit_log_at serves the window.
            """
            SELECT id, at, actor_kind, actor, host, action, target, filter, jobs, detail
            FROM audit_log
            WHERE (%(since)s::float8 IS NULL OR at >= now() - make_interval(secs => %(since)s::float8))
              AND (%(action)s::text IS NULL OR action = %(action)s OR action LIKE %(action)s || '.%%')
            ORDER BY at DESC, id DESC
            LIMIT %(limit)s
            """,
            {"since": since_seconds, "action": action, "limit": limit},
        )
        return cast(list[AuditRow], rows)

    def audit_for_target(self, target: str, limit: int = 100) -> list[AuditRow]:
        """The actions on one target (a job's id), oldest first, along audit_log_target. An
        action by filter names its jobs in no row, so it is not listed here."""
        rows = self._all(
            # query: audit_for_target
            """
            SELECT id, at, actor_kind, actor, host, action, target, filter, jobs, detail
            FROM audit_log WHERE target = %(target)s ORDER BY at, id LIMIT %(limit)s
            """,
            {"target": target, "limit": limit},
        )
        return cast(list[AuditRow], rows)

    def audit_prune(self, older_than: float, limit: int) -> int:
        """Delete up to `limit` audit rows older than `older_than` seconds, oldest first."""
        return self._run(
            # query: audit_prune. Small batches along audit_log_at, like job_prune.
            """
            DELETE FROM audit_log WHERE id IN (
                SELECT id FROM audit_log WHERE at < now() - make_interval(secs => %(age)s)
                ORDER BY at LIMIT %(limit)s
            )
            """,
            {"age": older_than, "limit": limit},
        )
