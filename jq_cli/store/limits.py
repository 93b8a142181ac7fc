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


# {field: key_value(field)} of a job's payload for the key fields in %(fields)s.
KEYED = f"(SELECT jsonb_object_agg(field, {key_value('field')}) FROM unnest(%(fields)s::text[]) AS field)"
# Waiting jobs job_limit_older reads at most, of each kind (the oldest queued of the queue, the
# oldest held back by any limit): a claim's cost stays bounded whatever the backlog; a job of
# the key beyond them waits for its own delivery, as it would without this order.
OLDER_SCAN = 1000
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
    share: int = 0  # delivered jobs of this key in the claim: it admits no more than that

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


def _older_first(keys: list[_Key]) -> str:
    """Why a delivered job that fits waits: older jobs took its place in the claim."""
    return f"older jobs of {keys[0].key} first" if keys else "older jobs first"


def _keys_of(
    job: dict[str, Any], by_scope: dict[tuple[str, str], LimitRow], keys: dict[str, _Key] | None
) -> list[_Key]:
    """The limit keys of a job (a row with queue, job_type and keyed), found in or added to
    `keys` (fresh ones when None)."""
    mine = []
    for scope, name in (("queue", job["queue"]), ("type", job["job_type"])):
        row = by_scope.get((scope, name))
        if row is None:
            continue
        value = None
        key = f"{scope}:{name}"
        if row["key_field"]:
            value = (job["keyed"] or {}).get(row["key_field"])
            field = row["key_field"]
            key += f":{field} missing" if value is None else f":{field}={value}"
        found = _Key(key, row, value)
        mine.append(found if keys is None else keys.setdefault(key, found))
    return mine


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
        """job_claim for what fits the limits among `ids`; the rest goes back to scheduled. Within
        a limit key, older jobs of the same priority go first: those the key held back earlier
        (or queued and not yet delivered here) are claimed in place of newer delivered ones."""
        by_scope = {(r["scope"], r["name"]): r for r in limits}
        fields = sorted({r["key_field"] for r in limits if r["key_field"]})
        with self._errors(), self.conn.transaction():
            jobs = self.conn.execute(
                # query: job_limit_candidates. Highest priority first, as the claim would take them;
                # with each key field's value (key_value, NULL when missing) in `keyed`.
                f"""
                SELECT id, job_type, queue, priority, state, {KEYED} AS keyed
                FROM jobs
                WHERE id = ANY(%(ids)s) AND state = 'queued'
                  -- a paused queue's jobs wait without a claim, limit or not
                  AND NOT EXISTS (SELECT 1 FROM queues q WHERE q.name = jobs.queue AND q.paused)
                ORDER BY priority DESC, id
                """,
                {"ids": list(ids), "fields": fields},
            ).fetchall()
            keys: dict[str, _Key] = {}
            job_keys = {job["id"]: _keys_of(job, by_scope, keys) for job in jobs}
            for counted in keys.values():
                counted.share = sum(1 for mine in job_keys.values() if counted in mine)
            # Sorted, so that two claims needing the same keys take their locks in one order.
            for name in sorted(keys):
                self.conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtext(%s))",
                    (f"{self.namespace}:limit:{name}",),
                )
            for counted in keys.values():
                self._limit_count(counted)
            delivered = len(jobs)
            jobs += self._limit_older(jobs, job_keys, keys, by_scope, fields)
            jobs.sort(key=lambda j: (-j["priority"], j["id"]))
            asked = set(ids)
            admitted: list[int] = []
            held: dict[int, tuple[float, str]] = {}
            for job in jobs:
                mine = job_keys[job["id"]]
                full = [k for k in mine if not k.fits()]
                taken = [k for k in mine if k.admitted >= k.share]  # by older jobs of the key
                if not full and not taken and len(admitted) < delivered:
                    for fitting in mine:
                        fitting.admitted += 1
                    admitted.append(job["id"])
                elif job["id"] in asked:  # delivered here: it waits; an older one stays as it is
                    held[job["id"]] = (
                        max(k.wait() for k in full) if full else CONCURRENCY_RECHECK,
                        full[0].why() if full else _older_first(taken or mine),
                    )
            return self._limit_admit(jobs, admitted, held, job_keys, worker, lease_ttl)

    def _limit_older(
        self,
        jobs: list[dict[str, Any]],
        job_keys: dict[int, list[_Key]],
        keys: dict[str, _Key],
        by_scope: dict[tuple[str, str], LimitRow],
        fields: list[str],
    ) -> list[dict[str, Any]]:
        """The jobs of each locked key that wait longer than its delivered ones, at the same or a
        higher priority (queued, or held back by a limit: scheduled with limited_by), at most
        one per delivered job of the key. Those with a key this claim has not locked are left
        for a claim that does (locks are taken in one sorted order, never one more later)."""
        found: dict[int, dict[str, Any]] = {}
        for k in keys.values():
            newest = max(
                (j for j in jobs if k in job_keys[j["id"]]), key=lambda j: (-j["priority"], j["id"])
            )
            column = "queue" if k.row["scope"] == "queue" else "job_type"
            rows = self.conn.execute(
                # query: job_limit_older. The jobs of this key before its newest delivered one in
                # the claim's order (priority, then submit order).
                f"""
                SELECT id, job_type, queue, priority, state, {KEYED} AS keyed
                FROM (
                    (SELECT id, job_type, queue, priority, state, payload FROM jobs
                     WHERE state = 'queued' AND queue = %(queue)s
                     ORDER BY published_at LIMIT %(scan)s)  -- along jobs_queued
                    UNION ALL
                    (SELECT id, job_type, queue, priority, state, payload FROM jobs
                     WHERE state = 'scheduled' AND limited_by IS NOT NULL
                     ORDER BY id LIMIT %(scan)s)  -- along jobs_limited (sql/044)
                ) AS jobs
                WHERE {column} = %(name)s
                  AND (%(field)s::text IS NULL
                       OR {key_value("%(field)s")} IS NOT DISTINCT FROM %(value)s::text)
                  AND (priority > %(priority)s OR (priority = %(priority)s AND id < %(id)s))
                  AND id <> ALL(%(ids)s)
                  AND NOT EXISTS (SELECT 1 FROM queues q WHERE q.name = jobs.queue AND q.paused)
                ORDER BY priority DESC, id
                LIMIT %(share)s
                """,
                {
                    "name": k.row["name"],
                    "field": k.row["key_field"],
                    "value": k.value,
                    "queue": newest["queue"],
                    "scan": OLDER_SCAN,
                    "priority": newest["priority"],
                    "id": newest["id"],
                    "ids": list(job_keys),
                    "share": k.share,
                    "fields": fields,
                },
            ).fetchall()
            for row in rows:
                mine = _keys_of(row, by_scope, None)
                if row["id"] not in found and all(m.key in keys for m in mine):
                    job_keys[row["id"]] = [keys[m.key] for m in mine]
                    found[row["id"]] = row
        return list(found.values())

    def _limit_admit(
        self,
        jobs: list[dict[str, Any]],
        admitted: list[int],
        held: dict[int, tuple[float, str]],
        job_keys: dict[int, list[_Key]],
        worker: str,
        lease_ttl: float,
    ) -> list[ClaimedJob]:
        """Hold back `held`, claim `admitted` (older ones taken in place of delivered ones come
        back from scheduled first), stamp their starts; inside job_claim_limited's transaction."""
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
        waiting = [j["id"] for j in jobs if j["id"] in admitted and j["state"] == "scheduled"]
        if waiting:
            self.conn.execute(
                # query: job_unhold. An older job held back by a limit is taken now, in its turn;
                # its limited_by is cleared below, with its start.
                "UPDATE jobs SET state = 'queued', updated_at = now()"
                " WHERE id = ANY(%(ids)s) AND state = 'scheduled'",
                {"ids": waiting},
            )
        claimed = self.job_claim(admitted, worker, lease_ttl)
        won = [c.id for c in claimed]
        # The claim stamps now(), this transaction's start, taken before the locks were: the
        # start becomes the moment the limit admitted it, so attempts' times show the limit.
        # limited_by is cleared: a scheduled job with it set is one a limit holds back now.
        self.conn.execute(
            # query: job_limit_stamp
            """
            WITH j AS (
                UPDATE jobs SET started_at = clock_timestamp(), limited_by = NULL
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
