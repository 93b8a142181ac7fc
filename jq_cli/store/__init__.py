"""All SQL of jq: the one package that speaks to PostgreSQL, and the only owner of job state.

Queries are named noun_verb and commented with why. Every state change is a conditional
UPDATE (docs/design.md, Invariant 2); every time comparison uses the database's now() (docs/design.md, Invariant 4).
Driver errors are translated in one place (base.translate, applied by StoreBase._errors), into
jq's error tree, the driver's error kept as the cause. Store is one connection; its queries are
grouped by who needs them, one module each (each a mixin on StoreBase), and the rows they return
are typed in rows.py.
"""

from jq_cli.store.actions import ActionQueries
from jq_cli.store.audit import AuditEntry, AuditQueries, AuditRow
from jq_cli.store.base import (
    SERVICE,
    StoreBase,
    available_migrations,
    latest_version,
    migrations_dir,
)
from jq_cli.store.bulk import BulkQueries
from jq_cli.store.cycle import CycleQueries, CycleResult
from jq_cli.store.dashboard import job_count_created_per_second
from jq_cli.store.jobs import JobQueries
from jq_cli.store.maintenance import MaintenanceQueries
from jq_cli.store.migrations import MigrationQueries
from jq_cli.store.queues import QueueQueries, QueueRow
from jq_cli.store.records import Finish, Inserted, NewJob, hostname, payload_json
from jq_cli.store.rows import (
    AttemptRow,
    DueSchedule,
    FiredJob,
    JobCounts,
    JobRef,
    JobRow,
    JobSummary,
    QueuedCount,
    ScheduleJob,
    ScheduleRow,
    TickPlan,
)
from jq_cli.store.schedules import ScheduleQueries
from jq_cli.store.work import WorkQueries


class Store(
    JobQueries,
    BulkQueries,  # operator actions, split from JobQueries; no other mixin defines them
    ActionQueries,
    CycleQueries,  # the worker's finish-and-claim round trip; extends QueueQueries
    QueueQueries,  # before WorkQueries, which it extends
    WorkQueries,
    MaintenanceQueries,
    ScheduleQueries,
    AuditQueries,
    MigrationQueries,
    StoreBase,
):
    """One PostgreSQL connection (autocommit; explicit transactions where several statements
    must commit together). Not thread-safe: each thread that needs SQL owns a Store."""


__all__ = [
    "SERVICE",
    "AttemptRow",
    "AuditEntry",
    "AuditRow",
    "CycleResult",
    "DueSchedule",
    "Finish",
    "FiredJob",
    "Inserted",
    "JobCounts",
    "JobRef",
    "JobRow",
    "JobSummary",
    "NewJob",
    "QueueRow",
    "QueuedCount",
    "ScheduleJob",
    "ScheduleRow",
    "Store",
    "TickPlan",
    "available_migrations",
    "hostname",
    "job_count_created_per_second",
    "latest_version",
    "migrations_dir",
    "payload_json",
]
