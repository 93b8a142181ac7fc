"""The store on psycopg's async connections, for jq_cli.AsyncClient: reading jobs and types,
retry and cancel with their audit rows. The statements are those of store/bulk.py (same names), kept beside the sync ones' logic:
a state change is the same conditional UPDATE. What an async client queues goes to the outbox
with a NOTIFY, so that the doorbell publishes it and the event loop never blocks on AMQP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any, cast

import psycopg
from psycopg.rows import DictRow, dict_row

from jq_cli.errors import DatabaseUnavailable, NotFound, SchemaNotMigrated
from jq_cli.store.audit import AuditEntry, audit_statement
from jq_cli.store.base import SERVICE, _database_name, _first_line, latest_version, translate
from jq_cli.store.bulk import JOB_CANCEL, JOB_PARENTS_UNSETTLED, JOB_RETRY, parents_by_job
from jq_cli.store.cancels import cancel_channel
from jq_cli.store.enqueue import notify_channel
from jq_cli.store.jobs import JOB_TYPE_NAMES
from jq_cli.store.rows import AttemptRow, JobRef, JobRow
from jq_cli.store.work import JOB_TYPE_INFO, type_info


class AsyncStore:
    """One async connection (autocommit), opened on first use. Not safe for concurrent use from
    several tasks: give each task that needs one its own (or an AsyncClient each)."""

    def __init__(self, url: str, namespace: str, *, application_name: str = "jq-async") -> None:
        self.url = url
        self.namespace = namespace
        self.application_name = application_name
        self._conn: psycopg.AsyncConnection[DictRow] | None = None

    async def conn(self) -> psycopg.AsyncConnection[DictRow]:
        if self._conn is None or self._conn.closed:
            try:
                self._conn = await psycopg.AsyncConnection.connect(
                    self.url,
                    autocommit=True,
                    row_factory=dict_row,
                    connect_timeout=5,
                    application_name=self.application_name,
                    options=f"-c search_path={self.namespace}",
                )
            except psycopg.OperationalError as exc:
                detail = _first_line(exc)
                if "does not exist" in detail and "database" in detail:
                    raise SchemaNotMigrated(
                        f"{SERVICE} database {_database_name(self.url)!r} does not exist: run `jq db migrate`"
                    ) from exc
                raise DatabaseUnavailable(self.url, detail) from exc
        return self._conn

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except psycopg.Error as exc:
            raise translate(exc, self.url, self.namespace) from exc

    async def _all(self, query: str, params: Any = None) -> list[dict[str, Any]]:
        conn = await self.conn()
        with self._errors():
            cur = await conn.execute(query, params)
            return await cur.fetchall()

    async def require_schema(self) -> None:
        try:
            rows = await self._all("SELECT coalesce(max(version), 0) AS v FROM schema_migrations")
        except SchemaNotMigrated:
            rows = [{"v": 0}]
        have, want = int(rows[0]["v"]), latest_version()
        if have < want:
            raise SchemaNotMigrated(
                f"the database schema is at version {have}, this jq needs {want}: run `jq db migrate`"
            )

    async def job_type_info(self, name: str) -> tuple[bool, Any, dict[str, Any]]:
        """As Store.job_type_info: whether some worker registered `name`, its payload JSON Schema,
        its @job defaults."""
        rows = await self._all(JOB_TYPE_INFO, (name,))
        return type_info(rows[0] if rows else None)

    async def job_type_names(self) -> list[str]:
        """As Store.job_type_names (a "did you mean" on an unknown type)."""
        return [r["name"] for r in await self._all(JOB_TYPE_NAMES)]

    @asynccontextmanager
    async def audited(self, entry: AuditEntry) -> AsyncIterator[AuditEntry]:
        """As Store.audited: the change made inside and its audit row in one transaction."""
        conn = await self.conn()
        with self._errors():
            async with conn.transaction():
                yield entry
                query, params = audit_statement(entry)
                cur = await conn.execute(query, params)
                if entry.id is None:
                    row = await cur.fetchone()
                    assert row is not None  # INSERT ... RETURNING returns its row
                    entry.id = int(row["id"])

    async def job_get(self, job_id: int) -> JobRow:
        """The job with its attempts, oldest first. Raises NotFound."""
        rows = await self._all("SELECT * FROM jobs WHERE id = %s", (job_id,))  # query: job_get
        if not rows:
            raise NotFound(f"job {job_id} not found")
        job = cast(JobRow, rows[0])
        job["attempt_history"] = cast(
            list[AttemptRow],
            await self._all(
                "SELECT * FROM attempts WHERE job_id = %s ORDER BY number",  # query: attempt_list
                (job_id,),
            ),
        )
        return job

    async def job_states(self, ids: Sequence[int]) -> dict[int, str]:
        rows = await self._all(
            "SELECT id, state FROM jobs WHERE id = ANY(%s)", (list(ids),)
        )  # query: job_states
        return {r["id"]: r["state"] for r in rows}

    async def job_parents_unsettled(self, ids: Sequence[int]) -> dict[int, list[tuple[int, str]]]:
        """store.bulk.job_parents_unsettled: the parents that keep each of `ids` from a retry."""
        return parents_by_job(await self._all(JOB_PARENTS_UNSETTLED, {"ids": list(ids)}))

    async def job_retry(self, ids: Sequence[int]) -> list[JobRef]:
        """store.bulk.job_retry, the queued jobs left to the doorbell (outbox and NOTIFY) in the
        same transaction."""
        conn = await self.conn()
        with self._errors():
            async with conn.transaction():
                cur = await conn.execute(JOB_RETRY, {"ids": list(ids)})
                rows = await cur.fetchall()
                if rows:
                    await conn.execute(
                        "INSERT INTO job_outbox (job_id) SELECT unnest(%(ids)s::bigint[])"
                        " ON CONFLICT DO NOTHING",  # query: job_outbox_insert
                        {"ids": [r["id"] for r in rows]},
                    )
                    await conn.execute(
                        "SELECT pg_notify(%s, '')", (notify_channel(self.namespace),)
                    )
        return cast(list[JobRef], rows)

    async def job_cancel(self, ids: Sequence[int]) -> dict[int, str]:
        """store.bulk.job_cancel: not started jobs end cancelled, running ones are asked to stop."""
        rows = await self._all(
            JOB_CANCEL, {"ids": list(ids), "channel": cancel_channel(self.namespace)}
        )
        return {r["id"]: r["state"] for r in rows}
