"""The tables of one run: the contestants side by side, the services' own limits, the targets
of issue 12 as ratios (compare.py), jq's CLI and memory figures; as Rich tables on the terminal,
as Markdown (for the README) and as JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.compare import dig, evaluate

LIMITS = [
    ("insert_commit_per_s", "single-row INSERT, one commit each"),
    ("copy_per_s", "COPY (one transaction)"),
    ("skip_locked_1_per_s", "SKIP LOCKED claim, 1 row a commit"),
    ("skip_locked_10_per_s", "SKIP LOCKED claim, 10 rows a commit"),
    ("publish_persistent_per_s", "pika publish, persistent, no confirms"),
    ("consume_ack_per_s", "pika consume, prefetch 100, one ack each"),
]


def rate(value: Any) -> str:
    return "—" if not isinstance(value, int | float) else f"{value:,.0f}/s"


def _drain(figures: Any) -> str:
    w2 = figures.get("W2") if isinstance(figures, dict) else None
    if not isinstance(w2, dict) or "error" in w2:
        return "error" if isinstance(w2, dict) else "—"
    text = rate(w2.get("per_s"))  # the pace up to 99 % of the jobs (compete.Runner.wait_count)
    if not w2.get("complete"):  # the last of them still waiting when the cap ran out
        text += f" ({w2['completed']:,} in {w2['span_s']:.0f} s)"
    return text


def _latency(figures: Any) -> str:
    p50, p99 = dig(figures, ("W3", "p50_ms")), dig(figures, ("W3", "p99_ms"))
    if p50 is None:
        return "error" if isinstance(dig(figures, ("W3",)), type(None)) else "—"
    return f"{p50:.1f} / {p99:.1f} ms"


def _one_by_one(figures: Any) -> str:
    """The rate, and beside it the bare insert commit measured just before and after it."""
    text = rate(dig(figures, ("W1", "one_by_one_per_s")))
    beside = dig(figures, ("W1", "insert_commit_per_s"))
    return text if beside is None else f"{text} (insert {rate(beside)})"


def contestant_rows(results: dict[str, Any]) -> list[list[str]]:
    rows = []
    for figures in results.get("contestants", {}).values():
        rows.append(
            [
                figures["label"],
                _one_by_one(figures),
                rate(dig(figures, ("W1", "bulk_per_s"))),
                _drain(figures),
                _latency(figures),
                figures["durable"],
                figures["settings"],
            ]
        )
    return rows


CONTESTANT_COLUMNS = [
    "contestant",
    "W1 one by one (bare insert commit beside it)",
    "W1 bulk",
    "W2 drain, 2 processes",
    "W3 submit→start p50 / p99",
    "keeps durable",
    "settings",
]


def _number(value: Any, absolute: bool) -> str:
    if not isinstance(value, int | float):
        return "—"
    if absolute:
        return f"{value:,.1f}"
    return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"


def target_rows(results: dict[str, Any]) -> list[list[str]]:
    rows = []
    for row in evaluate(results):
        reference = (
            ""
            if row["absolute"]
            else f"{row['reference']} {_number(row['reference_value'], False)}"
        )
        rows.append(
            [
                row["target"],
                _number(row["jq"], False),
                reference,
                _number(row["ratio"], row["absolute"])
                + ("" if row["absolute"] or row["ratio"] is None else "×"),
                row["goal"] or "—",
                {True: "met", False: "NOT MET", None: "—"}[row["met"]],
            ]
        )
    return rows


TARGET_COLUMNS = ["target", "jq", "against", "ratio", "goal", "met"]


def limit_rows(results: dict[str, Any]) -> list[list[str]]:
    limits = results.get("limits") or {}
    if "error" in limits:
        return [["error", limits["error"]]]
    return [[label, rate(limits.get(key))] for key, label in LIMITS if key in limits]


def jq_rows(results: dict[str, Any]) -> list[list[str]]:
    w4, w5 = results.get("W4") or {}, results.get("W5") or {}
    rows = []
    if "error" in w4:
        rows.append(["W4", w4["error"]])
    elif w4:
        names = [("python", "python -c pass"), ("submit", "jq submit"), ("show", "jq show"),
                 ("list", "jq list"), ("help", "jq --help")]  # fmt: skip
        rows.append(
            [
                "W4 whole processes (median)",
                " · ".join(
                    f"{label} {w4[f'{name}_median_ms']:.0f} ms"
                    for name, label in names
                    if f"{name}_median_ms" in w4
                ),
            ]
        )
    if "error" in w5:
        rows.append(["W5", w5["error"]])
    elif w5:
        rows.append(
            [
                f"W5 one `jq worker` (defaults), {w5['jobs']:,} no-op jobs",
                f"idle {w5['idle_rss_mb']:.1f} MB → after {w5['after_rss_mb']:.1f} MB "
                f"({w5['growth_pct']:+.1f} %), peak {w5['peak_rss_mb']:.1f} MB, "
                f"{w5['per_s']:,.0f} jobs/s",
            ]
        )
    rows += lease_rows(results.get("leases") or {})
    return rows


def lease_rows(leases: dict[str, Any]) -> list[list[str]]:
    """The leases part: what holding running jobs writes, and how fast a cancel reaches one."""
    if "error" in leases:
        return [["leases", leases["error"]]]
    if not leases:
        return []
    p50, p99 = leases.get("cancel_p50_ms"), leases.get("cancel_p99_ms")
    cancels = "—" if p50 is None or p99 is None else f"{p50:.0f} / {p99:.0f} ms"
    return [
        [
            f"leases: {leases['held']:,} jobs held running {leases['window_s']:.0f} s "
            f"(lease {leases['lease_ttl_s']:g} s)",
            f"{leases['row_versions_per_s']:,.0f} row versions/s ({leases['hot_per_s']:,.0f} HOT), "
            f"{leases['index_entries_per_s']:,.0f} index entries/s "
            f"({len(leases['indexes_of_a_running_row'])} indexes hold a running row), "
            f"indexes +{leases['index_growth_kb_per_s']:,.1f} KB/s",
        ],
        [
            f"leases: cancel → running handler, p50 / p99 of {leases['cancels_seen']}",
            cancels,
        ],
    ]


def title(meta: dict[str, Any]) -> str:
    m, v = meta["machine"], meta["versions"]
    return (
        f"jq benchmark (issue 12){' — QUICK smoke run: sizes too small to compare' if meta['quick'] else ''}"
        f" · {meta['started_at']} · jq {v['jq']}\n"
        f"{m['cores']} cores, {m['cpu_model']}, {m['memory_gb']} GB, load average at start "
        f"{m['load_average_at_start']}, at end {meta.get('load_average_at_end')} · Python "
        f"{v['python']} · PostgreSQL {v['postgresql']} · RabbitMQ {v['rabbitmq']} · Redis {v['redis']}"
    )


def _sections(results: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    return [
        ("Contestants, one run, same job body (one Redis INCR)", CONTESTANT_COLUMNS,
         contestant_rows(results)),
        ("The services' own limits (one client, no queue library)", ["limit", "rate"],
         limit_rows(results)),
        ("Targets of issue 12 (ratios within this run)", TARGET_COLUMNS, target_rows(results)),
        ("jq alone", ["workload", "figures"], jq_rows(results)),
    ]  # fmt: skip


def _align(column: int) -> str:
    """The first column and the prose ones (durable, settings) left, the figures right."""
    return "---" if column == 0 or column >= 5 else "---:"


def render(results: dict[str, Any], meta: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    console.print(title(meta), highlight=False)
    for heading, columns, rows in _sections(results):
        if not rows:
            continue
        table = Table(title=heading, title_justify="left")
        for n, column in enumerate(columns):
            table.add_column(column, justify="left" if _align(n) == "---" else "right")
        for row in rows:
            table.add_row(*row)
        console.print(table)


def markdown(results: dict[str, Any], meta: dict[str, Any]) -> str:
    """The same tables in Markdown, for pasting into the README."""
    out = [title(meta).replace("\n", "  \n"), ""]
    for heading, columns, rows in _sections(results):
        if not rows:
            continue
        out += [f"**{heading}**", "", "| " + " | ".join(columns) + " |"]
        out.append("|" + "|".join(_align(n) for n in range(len(columns))) + "|")
        out += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
        out.append("")
    return "\n".join(out)


def write(json_path: Path, results: dict[str, Any], meta: dict[str, Any]) -> Path:
    """The JSON document and, beside it, the Markdown tables; returns the Markdown's path."""
    json_path.parent.mkdir(parents=True, exist_ok=True)
    document = {**meta, "results": results, "targets": evaluate(results)}
    json_path.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
    md_path = json_path.with_suffix(".md")
    md_path.write_text(markdown(results, meta), encoding="utf-8")
    return md_path
