"""Request bodies the shim accepts beyond JobRequest: shapes only, every rule stays in jq_cli.client.

A schedule takes `cron` or, as the older service spelled it, `cron_expression`."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from jq_cli.model.jobspec import JobRequest

CRON = AliasChoices("cron", "cron_expression")
JobId = Annotated[int, Field(ge=1, le=2**63 - 1)]  # a PostgreSQL bigint


class BulkSubmit(BaseModel):
    """Many jobs in one transaction: all are accepted or none."""

    model_config = ConfigDict(extra="forbid")

    jobs: list[JobRequest] = Field(..., min_length=1)


class DeadLetterRetry(BaseModel):
    """Either `ids`, or `all` (optionally one `job_type`; `dry_run` only lists what would change)."""

    model_config = ConfigDict(extra="forbid")

    ids: list[JobId] | None = Field(None, min_length=1, max_length=10_000)
    all: bool = False
    job_type: str | None = None
    dry_run: bool = False


class ScheduleCreate(BaseModel):
    """A cron schedule; the older service's body (`name`, `job_type`, `cron_expression`, `payload`,
    `priority`) is accepted as it is."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str
    job_type: str
    cron: str = Field(..., validation_alias=CRON)
    payload: dict[str, Any] | None = None
    priority: str = "medium"
    max_retries: int | None = None
    queue: str = "default"
    timezone: str = "UTC"
    misfire: str = "once"
    enabled: bool = True


class ScheduleChange(BaseModel):
    """The fields to change; omitted ones stay as they are."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    job_type: str | None = None
    cron: str | None = Field(None, validation_alias=CRON)
    payload: dict[str, Any] | None = None
    priority: str | None = None
    max_retries: int | None = None
    queue: str | None = None
    timezone: str | None = None
    misfire: str | None = None
    enabled: bool | None = None
