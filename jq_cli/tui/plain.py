"""Text of the dashboard without Textual: cell formatting shared by the panels, the sparklines,
and the whole `jq top --once` snapshot."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from jq_cli.model.states import JobState, Priority
from jq_cli.tui.source import Snapshot

BARS = "▁▂▃▄▅▆▇█"
UNKNOWN = "·"
RATE_WINDOW = 10  # the rate shown beside a sparkline: the mean of the last ten seconds
STATES = [s.value for s in JobState]
STALE_BEATS = 2  # a worker that missed this many heartbeat intervals is marked stale
JOB_COLUMNS = ("ID", "TYPE", "PRIO", "STATE", "TRIES", "AGE", "TOOK", "PROGRESS")
# Key columns first: at 80x24 a panel is half the screen wide, and what must show is who, how
# busy (running/concurrency) and whether alive, a stale one too; the rest scrolls in.
WORKER_COLUMNS = ("NAME", "RUN", "BEAT", "DONE", "FAILED", "QUEUES", "HOST", "PID")
BEAT_COLUMN = WORKER_COLUMNS.index("BEAT")
DEAD_COLUMNS = ("ID", "TYPE", "AGE", "LAST ERROR")


def short_seconds(seconds: float | None) -> str:
    """A compact age or duration for a table cell: 850ms, 12s, 4m05s, 3h07m, 2d04h."""
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.0f}s" if seconds >= 10 else f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{seconds // 60:.0f}m{seconds % 60:02.0f}s"
    if seconds < 86400:
        return f"{seconds // 3600:.0f}h{(seconds % 3600) // 60:02.0f}m"
    return f"{seconds // 86400:.0f}d{(seconds % 86400) // 3600:02.0f}h"


def age(when: datetime | None, now: datetime) -> str:
    return "-" if when is None else short_seconds((now - when).total_seconds())


def duration(job: dict[str, Any], now: datetime) -> str:
    started, finished = job.get("started_at"), job.get("finished_at")
    if started is None:
        return "-"
    if finished is None:
        return (
            short_seconds((now - started).total_seconds()) if job.get("state") == "running" else "-"
        )
    return short_seconds((finished - started).total_seconds())


def progress(job: dict[str, Any]) -> str:
    if job.get("state") != "running":
        return ""
    value = job.get("progress")
    if value is None:
        return "…"
    filled = max(0, min(5, round(value / 20)))
    return "█" * filled + "░" * (5 - filled) + f" {value:3.0f}%"


def attempts(job: dict[str, Any]) -> str:
    return f"{job.get('attempts', 0)}/{job.get('max_retries', 0) + 1}"


def job_cells(job: dict[str, Any], now: datetime) -> tuple[str, ...]:
    return (
        str(job["id"]),
        job["job_type"],
        job["priority"],
        job["state"],
        attempts(job),
        age(job.get("created_at"), now),
        duration(job, now),
        progress(job),
    )


def dead_cells(job: dict[str, Any], now: datetime) -> tuple[str, ...]:
    error = (job.get("last_error") or "").strip().splitlines()
    return (
        str(job["id"]),
        job["job_type"],
        age(job.get("finished_at") or job.get("created_at"), now),
        error[-1] if error else "",
    )


def is_stale(worker: dict[str, Any], heartbeat_interval: float) -> bool:
    return float(worker.get("heartbeat_age", 0)) > STALE_BEATS * heartbeat_interval


def worker_cells(worker: dict[str, Any], heartbeat_interval: float) -> tuple[str, ...]:
    beat = short_seconds(float(worker.get("heartbeat_age", 0)))
    if is_stale(worker, heartbeat_interval):
        beat += " STALE"
    elif worker.get("draining"):
        beat += " draining"
    return (
        worker["name"],
        f"{worker.get('running', 0)}/{worker.get('concurrency', '?')}",
        beat,
        str(worker.get("processed", 0)),
        str(worker.get("failed", 0)),
        ",".join(worker.get("queues", [])),
        str(worker.get("host", "?")),
        str(worker.get("pid", "?")),
    )


def sparkline(values: list[int | None], width: int) -> str:
    """The series squeezed into at most `width` cells, each the mean of its seconds, the newest
    second in the rightmost cell; `·` where no second of a cell was counted."""
    if width <= 0 or not values:
        return ""
    size = math.ceil(len(values) / width)
    cells: list[float | None] = []
    for end in range(len(values), 0, -size):
        known = [v for v in values[max(0, end - size) : end] if v is not None]
        cells.append(sum(known) / len(known) if known else None)
    cells.reverse()
    top = max((c for c in cells if c is not None), default=0.0)
    out = []
    for c in cells:
        if c is None:
            out.append(UNKNOWN)
        elif top <= 0 or c <= 0:
            out.append(BARS[0])
        else:
            out.append(BARS[min(len(BARS) - 1, max(1, math.ceil(c / top * (len(BARS) - 1))))])
    return "".join(out)


def rate_now(values: list[int | None]) -> float:
    recent = [v for v in values[-RATE_WINDOW:] if v is not None]
    return sum(recent) / len(recent) if recent else 0.0


def rate_text(rate: float) -> str:
    return f"{rate:7.1f}/s" if rate < 10_000 else f"{rate / 1000:6.1f}k/s"


def counts_lines(stats: dict[str, Any], columns: int = 2) -> list[str]:
    """States in `columns` columns, then queued by priority and by queue."""
    by_state = stats["by_state"]
    width = max(len(str(n)) for n in by_state.values()) if by_state else 1
    cells = [f"{s:<9} {by_state.get(s, 0):>{width}}" for s in STATES]
    lines = ["   ".join(cells[i : i + columns]) for i in range(0, len(cells), columns)]
    prio = stats["queued_by_priority"]
    lines.append(
        "queued by priority: " + "  ".join(f"{p.value} {prio.get(p.value, 0)}" for p in Priority)
    )
    queues = stats["queues"]
    lines.append(
        "queued by queue: "
        + (
            "  ".join(
                f"{q} {v['queued']}" + (" paused" if v.get("paused") else "")
                for q, v in sorted(queues.items(), key=lambda kv: (-kv[1]["queued"], kv[0]))
            )
            or "-"
        )
    )
    return lines


def rate_lines(rates: dict[str, list[int | None]], spark_width: int) -> list[str]:
    return [
        f"{event:<9} {rate_text(rate_now(rates[event]))} {sparkline(rates[event], spark_width)}"
        for event in ("submitted", "completed", "failed")
    ]


def _table(title: str, columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(columns)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return [title, fmt.format(*columns).rstrip()] + [fmt.format(*r).rstrip() for r in rows]


def snapshot_text(
    snap: Snapshot,
    *,
    namespace: str,
    heartbeat_interval: float,
    jobs_limit: int = 20,
    spark_width: int = 60,
) -> str:
    """The whole dashboard as plain text (`jq top --once`)."""
    now = snap.taken_at
    out = [f"jq top · namespace {namespace} · {now:%Y-%m-%d %H:%M:%S}Z"]
    if snap.database_error:
        out.append(f"database unavailable: {snap.database_error}")
        return "\n".join(out) + "\n"
    assert snap.stats is not None
    out += ["", "jobs"] + ["  " + line for line in counts_lines(snap.stats, columns=4)]
    if snap.stats.get("broker_error"):
        out.append(f"  broker: {snap.stats['broker_error']}")
    out += ["", f"rates (last {len(next(iter(snap.rates.values()))) if snap.rates else 0}s)"]
    if snap.rates is None:
        out.append(f"  telemetry unavailable: {snap.rates_error}")
    else:
        out += ["  " + line for line in rate_lines(snap.rates, spark_width)]
    out.append("")
    if snap.workers is None:
        out += ["workers", f"  telemetry unavailable: {snap.telemetry_error}"]
    else:
        out += _table(
            f"workers ({len(snap.workers)})",
            WORKER_COLUMNS,
            [worker_cells(w, heartbeat_interval) for w in snap.workers],
        )
    out.append("")
    title = f"recent jobs ({min(len(snap.jobs), jobs_limit)} of {len(snap.jobs)} shown)"
    if snap.jobs_error:
        out += [title, f"  {snap.jobs_error}"]
    else:
        out += _table(title, JOB_COLUMNS, [job_cells(j, now) for j in snap.jobs[:jobs_limit]])
    out.append("")
    out += _table(
        f"dead letters ({len(snap.dead)})",
        DEAD_COLUMNS,
        [dead_cells(j, now) for j in snap.dead[:jobs_limit]],
    )
    return "\n".join(out) + "\n"
