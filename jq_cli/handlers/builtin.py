"""The built-in job types: send_email and process_video (simulated) and noop. scrape_website,
the one that touches the network, lives in jq_cli.handlers.scrape."""

from __future__ import annotations

import random
import re
import time
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from jq_cli.handlers.registry import InvalidPayload, JobContext, job

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid")


def http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http or https URL")
    return value


class EmailPayload(_Payload):
    to: str = Field(max_length=254)
    subject: str = Field(max_length=998)
    body: str = Field(max_length=1_000_000)
    failure_rate: float = Field(0.0, ge=0, le=1)
    # Fail the first N attempts, then deliver: a scripted flake (the demo's retries and dead
    # letters happen every time, not by chance).
    fail_attempts: int = Field(0, ge=0, le=1000)

    @field_validator("to")
    @classmethod
    def _address(cls, value: str) -> str:
        if not EMAIL.match(value):
            raise ValueError("must be an email address")
        return value


class DeliveryFailed(Exception):
    """The simulated mail server refused the message (a transient failure: retried)."""


@job("send_email", payload=EmailPayload)
def send_email(payload: EmailPayload, ctx: JobContext) -> dict:
    """Simulated email delivery that fails its first fail_attempts attempts, and then with
    probability failure_rate."""
    time.sleep(random.uniform(0.01, 0.05))
    if ctx.attempt <= payload.fail_attempts:
        raise DeliveryFailed(
            f"simulated SMTP failure delivering to {payload.to} "
            f"(attempt {ctx.attempt}, fail_attempts={payload.fail_attempts})"
        )
    if random.random() < payload.failure_rate:
        raise DeliveryFailed(
            f"simulated SMTP failure delivering to {payload.to} (failure_rate={payload.failure_rate})"
        )
    return {"delivered_to": payload.to, "message_id": f"<{ctx.job_id}.{ctx.attempt}@jq.local>"}


class VideoPayload(_Payload):
    video_url: str = Field(max_length=2048)
    output_format: Literal["mp4", "webm", "mkv", "mov", "avi", "gif"] = "mp4"
    duration: float = Field(5.0, gt=0, le=3600, description="seconds of simulated work")

    _url = field_validator("video_url")(classmethod(lambda cls, v: http_url(v)))


@job("process_video", payload=VideoPayload)
def process_video(payload: VideoPayload, ctx: JobContext) -> dict:
    """Simulated transcoding that reports its progress as it goes and stops when cancelled."""
    steps = max(1, min(100, int(payload.duration * 4)))
    for step in range(1, steps + 1):
        if ctx.wait_cancelled(payload.duration / steps):
            from jq_cli.handlers.registry import Cancelled

            raise Cancelled(f"cancelled at {100 * (step - 1) // steps}%")
        ctx.progress(100 * step / steps, f"transcoding to {payload.output_format}")
    name = urlsplit(payload.video_url).path.rsplit("/", 1)[-1].rsplit(".", 1)[0] or "video"
    return {
        "output": f"{name}.{payload.output_format}",
        "format": payload.output_format,
        "duration": payload.duration,
    }


class NoopPayload(BaseModel):
    model_config = ConfigDict(extra="allow")


@job("noop", payload=NoopPayload)
def noop(payload: NoopPayload, ctx: JobContext) -> None:
    """Does nothing: for benchmarks and smoke tests."""
    return None


__all__ = ["DeliveryFailed", "InvalidPayload"]


import jq_cli.handlers.scrape  # noqa: E402,F401  (registers scrape_website beside the others)
