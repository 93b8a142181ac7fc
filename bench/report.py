"""The targets of issue 3, the one Rich table that compares figures with them, and the JSON file."""

from __future__ import annotations

import json
import operator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


@dataclass(frozen=True)
class Target:
    workload: str
    figure: str  # the key in that workload's figures
    label: str
    unit: str
    limit: float | None  # None: reported, no target
    better: str = ">="  # ">=" or "<="


TARGETS = [
    Target("W1", "one_by_one_per_s", "submit one by one (Client.submit)", "jobs/s", 3_500),
    Target("W1", "bulk_per_s", "submit bulk (submit_many)", "jobs/s", 60_000),
    Target("W2", "per_s", "drain by 2 worker processes", "jobs/s", 7_000),
    Target("W3", "p50_ms", "submit→start p50", "ms", 2.5, "<="),
    Target("W3", "p95_ms", "submit→start p95", "ms", None, "<="),
    Target("W3", "p99_ms", "submit→start p99", "ms", 5.0, "<="),
    Target("W4", "submit_median_ms", "`jq submit noop` (median)", "ms", 250, "<="),
    Target("W4", "show_median_ms", "`jq show ID` (median)", "ms", None, "<="),
    Target("W4", "help_median_ms", "`jq --help` (median)", "ms", 200, "<="),
    Target("W5", "idle_rss_mb", "worker RSS idle", "MB", 80, "<="),
    Target("W5", "growth_pct", "worker RSS growth", "%", 10, "<="),
]
_COMPARE = {">=": operator.ge, "<=": operator.le}


def _fmt(value: float, unit: str) -> str:
    if unit == "jobs/s" or abs(value) >= 1000:
        return f"{value:,.0f} {unit}"
    return (
        f"{value:,.1f} {unit}"
        if unit in ("MB", "%") or abs(value) >= 100
        else f"{value:,.2f} {unit}"
    )


def rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per target: the figure, the target and whether it was met (None: not run/no target)."""
    out = []
    for t in TARGETS:
        figures = results.get(t.workload)
        if not isinstance(figures, dict) or "error" in figures:
            out.append(
                {
                    "workload": t.workload,
                    "figure": t.label,
                    "value": None,
                    "target": t.limit,
                    "unit": t.unit,
                    "met": None,
                    "note": (figures or {}).get("error", "not run"),
                }
            )
            continue
        value = figures[t.figure]
        met = None if t.limit is None else bool(_COMPARE[t.better](value, t.limit))
        out.append(
            {
                "workload": t.workload,
                "figure": t.label,
                "value": value,
                "target": t.limit,
                "comparison": t.better,
                "unit": t.unit,
                "met": met,
            }
        )
    return out


def _note(workload: str, figures: dict[str, Any]) -> str:
    if "error" in figures:
        return figures["error"]
    if workload == "W1":
        return (
            f"{figures['jobs']:,} jobs each way; bulk in chunks of {figures['chunk']:,}; a bare durable "
            f"single-row insert does {figures['bare_insert_per_s']:,.0f}/s here now, so one-by-one submits "
            f"run at {figures['one_by_one_vs_bare_insert']:.2f} of it (target 0.8)"
        )
    if workload == "W2":
        return (
            f"{figures['jobs']:,} jobs, {figures['workers']} × `jq worker --concurrency "
            f"{figures['concurrency']} --prefetch {figures['prefetch']}`; preloaded, then workers started; "
            f"clock from first consumer registered (2nd +{figures['second_worker_lag_s'] * 1000:.0f} ms) "
            f"to all completed: {figures['drain_s']:.2f} s; DB first-claim→last-finish "
            f"{figures['db_span_s']:.2f} s = {figures['db_span_per_s']:,.0f} jobs/s"
        )
    if workload == "W3":
        return (
            f"{figures['jobs']} jobs at {figures['achieved_rate_per_s']:.1f}/s into {figures['workers']} idle "
            f"workers; jobs.created_at → attempts.started_at; max {figures['max_ms']:.1f} ms; "
            f"submit→finished p50 {figures['finish_p50_ms']:.1f} ms"
        )
    if workload == "W4":
        return (
            f"{figures['runs']} runs each after a warm-up; min submit {figures['submit_min_ms']:.0f} ms, "
            f"show {figures['show_min_ms']:.0f} ms, help {figures['help_min_ms']:.0f} ms"
        )
    if workload == "W5":
        return (
            f"1 worker, {figures['jobs']:,} jobs; after {figures['after_rss_mb']:.1f} MB, "
            f"peak {figures['peak_rss_mb']:.1f} MB; drained at {figures['per_s']:,.0f} jobs/s"
        )
    return ""


def render(results: dict[str, Any], meta: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    m, v = meta["machine"], meta["versions"]
    title = (
        f"jq benchmark (issue 3){' — QUICK smoke run, not comparable' if meta['quick'] else ''}\n"
        f"{m['cores']} cores, {m['cpu_model']}, {m['memory_gb']} GB, load {m['load_average_at_start']} · "
        f"Python {v['python']} · PostgreSQL {v['postgresql']} · RabbitMQ {v['rabbitmq']} · "
        f"Redis {v['redis']} · jq {v['jq']}"
    )
    table = Table(title=title, show_lines=False)
    table.add_column("workload")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    table.add_column("met", justify="center")
    for row in rows(results):
        value = "—" if row["value"] is None else _fmt(row["value"], row["unit"])
        target = (
            "—"
            if row["target"] is None
            else f"{row.get('comparison', '')} {_fmt(row['target'], row['unit'])}"
        )
        met = {True: "[green]yes[/]", False: "[red]NO[/]", None: "—"}[row["met"]]
        table.add_row(row["workload"], row["figure"], value, target, met)
    console.print(table)
    for workload, figures in results.items():
        console.print(f"[bold]{workload}[/]: {_note(workload, figures)}", highlight=False)


def write_json(path: Path, results: dict[str, Any], meta: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {**meta, "results": results, "rows": rows(results)}
    path.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
