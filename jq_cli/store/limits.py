"""Limits at claim time: the claim counts running jobs and recent starts per limit
key under a transaction-scoped advisory lock, claims only what fits, and sends the rest back
to scheduled (no attempt spent) with a run_at when it may fit and the reason in limited_by."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypedDict, cast

from jq_cli.model.limits import Limit
from jq_cli.store.work import ClaimedJob, WorkQueries


def key_value(field: str) -> str:
    """The SQL for the value of a limit's key field (named by the SQL expression `field`) in a
    job's payload: the jsonb text of `payload -> field` (a string keeps its quotes, so "1" and 1
    differ), SQL NULL when the field is missing (JSON null is 'null'). The one definition of a
    key's value: the claim reads it for the keys it locks and the count of running jobs compares
    it, both in PostgreSQL, so the two never disagree (docs/design.md, Invariant 8)."""
    return f"(payload -> {field})::text"


CONCURRENCY_RECHECK = 0.2  # seconds a job held back by a concurrency limit waits per round
MAX_WAIT = 30.0


class LimitRow(TypedDict):
    scope: str
    name: str
    concurrency: int | None
    rate_count: int | None
    rate_period: float | None
    key_field: str | None


@dataclass
class _Key:
    """One limit key of this claim: its counts and what this claim admitted."""

    key: str
    row: LimitRow
    value: str | None
    running: int = 0
    starts: int = 0
    oldest_age: float = 0.0  # seconds since the oldest start in the window
    admitted: int = 0
    held: int = 0

    def fits(self) -> bool:
        conc, rate = self.row["concurrency"], self.row["rate_count"]
        if conc is not None and self.running + self.admitted >= conc:
            return False
        return not (rate is not None and self.starts + self.admitted >= rate)

    def why(self) -> str:
        conc = self.row["concurrency"]
        if conc is not None and self.running + self.admitted >= conc:
            return f"concurrency {conc} of {self.key}"
        return f"rate {self.row['rate_count']}/{self.row['rate_period']:g}s of {self.key}"

    def wait(self) -> float:
        """Seconds until the next held job of this key may fit."""
        self.held += 1
        rate, period = self.row["rate_count"], self.row["rate_period"]
        conc = self.row["concurrency"]
        if conc is not None and self.running + self.admitted >= conc:
            return min(MAX_WAIT, CONCURRENCY_RECHECK * (1 + (self.held - 1) // conc))
        assert rate is not None and period is not None
        first = max(0.01, period - self.oldest_age)  # when the oldest start leaves the window
        return min(MAX_WAIT, first + period * ((self.held - 1) // rate))


def limit_fields(limit: Limit) -> dict[str, Any]:
    """A Limit as the columns of its row."""
    return {
        "concurrency": limit.concurrency,
        "rate_count": limit.rate[0] if limit.rate else None,
        "rate_period": limit.rate[1] if limit.rate else None,
        "key_field": limit.key,
    }


class LimitQueries(WorkQueries):
    def limit_rows(self) -> list[LimitRow]:
        return cast(list[LimitRow], self._all("SELECT * FROM limits"))  # query: limit_list

    def limit_set(self, scope: str, name: str, row: dict[str, Any]) -> None:
        """Set (or, with every field None, remove) the limit of a queue or job type."""
        if all(row.get(k) is None for k in ("concurrency", "rate_count")):
            self._run("DELETE FROM limits WHERE scope = %s AND name = %s", (scope, name))
            return
        self._run(
            # query: limit_set
            """
            INSERT INTO limits (scope, name, concurrency, rate_count, rate_period, key_field)
            VALUES (%(scope)s, %(name)s, %(concurrency)s, %(rate_count)s, %(rate_period)s,
                    %(key_field)s)
            ON CONFLICT (scope, name) DO UPDATE SET concurrency = EXCLUDED.concurrency,
                rate_count = EXCLUDED.rate_count, rate_period = EXCLUDED.rate_period,
                key_field = EXCLUDED.key_field, updated_at = now()
            """,
            {"scope": scope, "name": name, **row},
        )

    def limit_sync_types(self, limits: dict[str, Limit]) -> None:
        """Record the limits a worker's handlers declare (@job(concurrency=..., rate=...))."""
        for name, limit in sorted(limits.items()):
            self.limit_set("type", name, limit_fields(limit))

    def job_count_limited(self) -> int:
        """Jobs waiting because a limit held them back (along jobs_due: scheduled ones only)."""
        row = self._one(
            # query: job_count_limited
            "SELECT count(*) AS n FROM jobs WHERE state = 'scheduled' AND limited_by IS NOT NULL"
        )
        return int(row["n"]) if row else 0

    def limits_exist(self) -> bool:
        """Whether any limit is set (a table of a few rows): without one, no claim counts."""
        row = self._one("SELECT EXISTS (SELECT 1 FROM limits) AS limited")  # query: limits_exist
        return bool(row and row["limited"])

    def job_claim_limited(
        self, ids: Sequence[int], worker: str, lease_ttl: float, limits: list[LimitRow]
    ) -> list[ClaimedJob]:
        """job_claim for what fits the limits among `ids`; the rest goes back to scheduled."""
        by_scope = {(r["scope"], r["name"]): r for r in limits}
        with self._errors(), self.conn.transaction():
            fields = sorted({r["key_field"] for r in limits if r["key_field"]})
            jobs = self.conn.execute(
                # query: job_limit_candidates. Highest priority first, as the claim would take them;
                # with each key field's value (key_value, NULL when missing) in `keyed`.
                f"""
                SELECT id, job_type, queue,
                       (SELECT jsonb_object_agg(field, {key_value("field")})
                        FROM unnest(%(fields)s::text[]) AS field) AS keyed
                FROM jobs
                WHERE id = ANY(%(ids)s) AND state = 'queued'
                  -- a paused queue's jobs wait without a claim, limit or not
                  AND NOT EXISTS (SELECT 1 FROM queues q WHERE q.name = jobs.queue AND q.paused)
                ORDER BY priority DESC, id
                """,
                {"ids": list(ids), "fields": fields},
            ).fetchall()
            keys: dict[str, _Key] = {}
            job_keys: dict[int, list[_Key]] = {}
            for job in jobs:
                mine = []
                for scope, name in (("queue", job["queue"]), ("type", job["job_type"])):
                    row = by_scope.get((scope, name))
                    if row is None:
                        continue
                    value = None
                    key = f"{scope}:{name}"
                    if row["key_field"]:
                        value = (job["keyed"] or {}).get(row["key_field"])
                        key += (
                            f":{row['key_field']} missing"
                            if value is None
                            else f":{row['key_field']}={value}"
                        )
                    mine.append(keys.setdefault(key, _Key(key, row, value)))
                job_keys[job["id"]] = mine
            # Sorted, so that two claims needing the same keys take their locks in one order.
            for name in sorted(keys):
                self.conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtext(%s))",
                    (f"{self.namespace}:limit:{name}",),
                )
            for counted in keys.values():
                self._limit_count(counted)
            admitted: list[int] = []
            held: dict[int, tuple[float, str]] = {}
            for job in jobs:
                mine = job_keys[job["id"]]
                blocking = [k for k in mine if not k.fits()]
                if blocking:
                    held[job["id"]] = (max(k.wait() for k in blocking), blocking[0].why())
                    continue
                for fitting in mine:
                    fitting.admitted += 1
                admitted.append(job["id"])
            for job_id, (wait, why) in held.items():
                self.conn.execute(
                    # query: job_hold_by_limit. Not an attempt, not a failure: it waits as
                    # scheduled, and the scheduler queues it again when it may fit.
                    """
                    UPDATE jobs SET state = 'scheduled', limited_by = %(why)s, published_at = NULL,
                                    run_at = now() + make_interval(secs => %(wait)s), updated_at = now()
                    WHERE id = %(id)s AND state = 'queued'
                    """,
                    {"id": job_id, "why": why, "wait": wait},
                )
            if not admitted:
                return []
            claimed = self.job_claim(admitted, worker, lease_ttl)
            won = [c.id for c in claimed]
            # The claim stamps now(), this transaction's start, taken before the locks were: the
            # start becomes the moment the limit admitted it, so attempts' times show the limit.
            self.conn.execute(
                # query: job_limit_stamp
                """
                WITH j AS (
                    UPDATE jobs SET started_at = clock_timestamp()
                    WHERE id = ANY(%(ids)s) RETURNING id, run_count, started_at
                )
                UPDATE attempts a SET started_at = j.started_at
                FROM j WHERE a.job_id = j.id AND a.number = j.run_count
                """,
                {"ids": won},
            )
            starts = [
                k.key
                for job_id in won
                for k in job_keys.get(job_id, [])
                if k.row["rate_count"] is not None
            ]
            if starts:
                self.conn.execute(
                    # query: limit_start_insert
                    "INSERT INTO limit_starts (key, started_at)"
                    " SELECT unnest(%(keys)s::text[]), clock_timestamp()",
                    {"keys": starts},
                )
            return claimed

    def _limit_count(self, k: _Key) -> None:
        row, field = k.row, k.row["key_field"]
        column = "queue" if row["scope"] == "queue" else "job_type"
        if row["concurrency"] is not None:
            found = self.conn.execute(
                # query: job_count_running_by_limit. Along jobs_running (running jobs only).
                f"""
                SELECT count(*) AS n FROM jobs
                WHERE state = 'running' AND {column} = %(name)s
                  AND (%(field)s::text IS NULL
                       OR {key_value("%(field)s")} IS NOT DISTINCT FROM %(value)s::text)
                """,
                {"name": row["name"], "field": field, "value": k.value},
            ).fetchone()
            k.running = int(found["n"]) if found else 0
        if row["rate_count"] is not None:
            self.conn.execute(
                # query: limit_start_prune
                "DELETE FROM limit_starts WHERE key = %(key)s"
                " AND started_at < clock_timestamp() - make_interval(secs => %(period)s)",
                {"key": k.key, "period": row["rate_period"]},
            )
            found = self.conn.execute(
                # query: limit_start_count
                """
                SELECT count(*) AS n,
                       coalesce(extract(epoch FROM clock_timestamp() - min(started_at)), 0) AS age
                FROM limit_starts WHERE key = %(key)s
                """,
                {"key": k.key},
            ).fetchone()
            k.starts = int(found["n"]) if found else 0
            k.oldest_age = float(found["age"]) if found else 0.0
