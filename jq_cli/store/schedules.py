"""Cron schedules: their rows, and the one transaction that fires a due tick exactly once."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, cast

import psycopg
from psycopg import sql
from psycopg.rows import DictRow

from jq_cli.store.base import StoreBase
from jq_cli.store.rows import DueSchedule, FiredJob, JobRef, ScheduleJob, ScheduleRow, TickPlan

# query: schedule_job_fire. One job per (schedule, tick); the unique (schedule_name, fire_time) key
# makes a tick fired twice (two schedulers, a retried transaction) create one job. A job run now,
# outside the ticks (`jq schedule run`), has no fire time.
SCHEDULE_JOB_FIRE = """
    INSERT INTO jobs (job_type, queue, priority, state, payload, max_retries, run_at, published_at,
                      schedule_name, fire_time)
    SELECT s.job_type, s.queue, s.priority, 'queued', s.payload, coalesce(s.max_retries, %(retries)s),
           now(), now(), s.name, f.fire_time
    FROM unnest(%(names)s::text[], %(times)s::timestamptz[]) AS f(name, fire_time)
    JOIN schedules s ON s.name = f.name
    ON CONFLICT (schedule_name, fire_time) WHERE fire_time IS NOT NULL DO NOTHING
    RETURNING id, state, queue, priority, schedule_name, fire_time
"""


class ScheduleQueries(StoreBase):
    SCHEDULE_COLUMNS = (
        "job_type",
        "cron",
        "timezone",
        "payload",
        "priority",
        "max_retries",
        "queue",
        "misfire",
        "enabled",
        "next_fire_at",
    )

    def schedule_insert(self, row: dict[str, Any]) -> ScheduleRow | None:
        """Insert a schedule; None when the name exists. `row` has every SCHEDULE_COLUMNS key and
        name; payload as JSON text."""
        created = self._one(
            # query: schedule_insert. ON CONFLICT rather than a look-up first: two adds of one name race.
            """
            INSERT INTO schedules (name, job_type, cron, timezone, payload, priority, max_retries, queue,
                                   misfire, enabled, next_fire_at)
            VALUES (%(name)s, %(job_type)s, %(cron)s, %(timezone)s, %(payload)s::jsonb, %(priority)s,
                    %(max_retries)s, %(queue)s, %(misfire)s, %(enabled)s, %(next_fire_at)s)
            ON CONFLICT (name) DO NOTHING
            RETURNING *
            """,
            row,
        )
        return cast(ScheduleRow | None, created)

    def schedule_get(self, name: str) -> ScheduleRow | None:
        row = self._one("SELECT * FROM schedules WHERE name = %s", (name,))  # query: schedule_get
        return cast(ScheduleRow | None, row)

    def schedule_list(self) -> list[ScheduleRow]:
        rows = self._all("SELECT * FROM schedules ORDER BY name")  # query: schedule_list
        return cast(list[ScheduleRow], rows)

    def _schedule_set(
        self, conn: psycopg.Connection[DictRow], name: str, changes: dict[str, Any]
    ) -> ScheduleRow | None:
        unknown = set(changes) - set(self.SCHEDULE_COLUMNS)
        if unknown:
            raise ValueError(f"not schedule columns: {sorted(unknown)}")
        sets = [
            sql.SQL("{} = {}").format(
                sql.Identifier(c),
                sql.SQL("%({})s::jsonb" if c == "payload" else "%({})s").format(sql.SQL(c)),
            )
            for c in changes
        ]
        query = sql.SQL(
            # query: schedule_update. Only the columns given: an edit of the payload leaves the
            # next_fire_at a concurrent tick just advanced alone.
            "UPDATE schedules SET {}, updated_at = now() WHERE name = %(name)s RETURNING *"
        ).format(sql.SQL(", ").join(sets))
        return cast(ScheduleRow | None, conn.execute(query, {**changes, "name": name}).fetchone())

    def schedule_update(self, name: str, changes: dict[str, Any]) -> ScheduleRow | None:
        """Set some columns of a schedule; None when it does not exist."""
        with self._errors():
            return self._schedule_set(self.conn, name, changes)

    def schedule_delete(self, name: str) -> bool:
        return (
            self._run("DELETE FROM schedules WHERE name = %s", (name,)) == 1
        )  # query: schedule_delete

    def schedule_apply(
        self,
        inserts: Sequence[dict[str, Any]],
        updates: Sequence[tuple[str, dict[str, Any]]],
        deletes: Sequence[str],
    ) -> None:
        """Make several schedule changes in one transaction: a file is applied whole or not at all."""
        with self._errors(), self.conn.transaction():
            conn = self.conn
            for row in inserts:
                conn.execute(
                    # query: schedule_apply_insert
                    """
                    INSERT INTO schedules (name, job_type, cron, timezone, payload, priority, max_retries, queue,
                                           misfire, enabled, next_fire_at)
                    VALUES (%(name)s, %(job_type)s, %(cron)s, %(timezone)s, %(payload)s::jsonb, %(priority)s,
                            %(max_retries)s, %(queue)s, %(misfire)s, %(enabled)s, %(next_fire_at)s)
                    """,
                    row,
                )
            for name, changes in updates:
                self._schedule_set(conn, name, changes)
            if deletes:
                conn.execute(
                    "DELETE FROM schedules WHERE name = ANY(%s)", (list(deletes),)
                )  # query: schedule_apply_delete

    def schedule_jobs_recent(self, name: str, limit: int) -> list[ScheduleJob]:
        rows = self._all(
            # query: schedule_jobs_recent. Served by jobs_schedule_recent.
            """
            SELECT id, state, created_at, fire_time FROM jobs
            WHERE schedule_name = %s ORDER BY id DESC LIMIT %s
            """,
            (name, limit),
        )
        return cast(list[ScheduleJob], rows)

    def schedule_job_insert(self, name: str, default_max_retries: int) -> JobRef | None:
        """One job from the schedule now, outside its ticks (no fire time). None if it does not exist."""
        # A tick with no fire time: the unique (schedule_name, fire_time) key never holds it back.
        row = self._one(
            SCHEDULE_JOB_FIRE,
            {"names": [name], "times": [None], "retries": default_max_retries},
        )
        return cast(JobRef | None, row)

    def schedule_fire_due(
        self,
        limit: int,
        planner: Callable[[DueSchedule, datetime], TickPlan | None],
        default_max_retries: int,
    ) -> tuple[list[FiredJob], list[DueSchedule]]:
        """Fire the due schedules, in one transaction: lock up to `limit` enabled schedules whose
        next_fire_at has passed the database clock, ask `planner(row, now)` for a plan (fire_time,
        next_fire_at; None leaves the row alone), insert one job per fired tick and advance each
        timer. Returns (jobs created, the rows planned, each with its "plan")."""
        with self._errors(), self.conn.transaction():
            conn = self.conn
            locked = conn.execute(
                # query: schedule_lock_due. SKIP LOCKED: a second scheduler (or an edit in progress)
                # never waits here; the row it skips is fired by whoever holds it.
                """
                SELECT *, now() AS db_now FROM schedules
                WHERE enabled AND next_fire_at <= now()
                ORDER BY next_fire_at LIMIT %s FOR UPDATE SKIP LOCKED
                """,
                (limit,),
            ).fetchall()
            planned: list[DueSchedule] = []
            plans: list[TickPlan] = []
            for row in cast(list[DueSchedule], locked):
                plan = row["plan"] = planner(row, row["db_now"])
                if plan is not None:
                    planned.append(row)
                    plans.append(plan)
            if not planned:
                return [], []
            fired = [(r, p) for r, p in zip(planned, plans, strict=True) if p.fire_time is not None]
            jobs = (
                conn.execute(
                    SCHEDULE_JOB_FIRE,
                    {
                        "names": [r["name"] for r, _ in fired],
                        "times": [p.fire_time for _, p in fired],
                        "retries": default_max_retries,
                    },
                ).fetchall()
                if fired
                else []
            )
            conn.execute(
                # query: schedule_advance. last_fire_at is the tick fired, not when it was fired.
                """
                UPDATE schedules SET next_fire_at = a.next_at, last_fire_at = coalesce(a.fired, last_fire_at)
                FROM unnest(%(names)s::text[], %(next)s::timestamptz[], %(fired)s::timestamptz[])
                     AS a(name, next_at, fired)
                WHERE schedules.name = a.name
                """,
                {
                    "names": [r["name"] for r in planned],
                    "next": [p.next_fire_at for p in plans],
                    "fired": [p.fire_time for p in plans],
                },
            )
        return cast(list[FiredJob], jobs), planned

    def job_prune(self, state: str, older_than: float, limit: int) -> int:
        """Delete up to `limit` jobs in terminal `state` that finished more than `older_than`
        seconds ago (their attempts go with them). One short statement: a large prune is many of
        these, so it never holds many locks or blocks the queue for long."""
        return self._run(
            # query: job_prune. Oldest first along jobs_finished; SKIP LOCKED leaves a row someone
            # else holds (a purge by hand) for the next batch.
            """
            WITH doomed AS (
                SELECT id FROM jobs
                WHERE state = %(state)s AND finished_at < now() - make_interval(secs => %(age)s)
                ORDER BY finished_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED
            )
            DELETE FROM jobs USING doomed
            WHERE jobs.id = doomed.id AND jobs.state IN ('completed', 'dead', 'cancelled')
            """,
            {"state": state, "age": older_than, "limit": limit},
        )
