"""The targets of issue 12 as ratios within one run: jq over the best peer, over a service's own
limit, or over Dramatiq's latency. Ratios of figures taken minutes apart on the same machine stay
put when the machine's speed drifts; the absolute figures do not.

Pure functions of the results' dictionaries, so that tests/unit can check them without services.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

JQ_ROWS = ("jq", "jq_c1")
_COMPARE = {">=": operator.ge, "<=": operator.le}


@dataclass(frozen=True)
class Target:
    label: str
    subject: tuple[str, ...]  # the path to jq's figure in the results
    # "best peer", "limit:<key>", "peer:<key>", "own" (a yardstick taken beside jq's figure),
    # "python -c pass" or "absolute"
    against: str
    figure: tuple[str, ...]  # the path inside the reference (a peer's figures or the limits)
    op: str  # ">=" or "<="
    factor: float | None  # None: printed, no target
    unit: str = ""


TARGETS = [
    Target("W2 drain, jq defaults", ("contestants", "jq", "W2", "per_s"),
           "best peer", ("W2", "per_s"), ">=", 1.5),
    Target("W2 drain, jq --concurrency 1", ("contestants", "jq_c1", "W2", "per_s"),
           "best peer", ("W2", "per_s"), ">=", 1.0),
    Target("W1 bulk enqueue", ("contestants", "jq", "W1", "bulk_per_s"),
           "best peer", ("W1", "bulk_per_s"), ">=", 1.2),
    Target("W1 one by one / single-row insert commit beside it",
           ("contestants", "jq", "W1", "one_by_one_per_s"),
           "own", ("contestants", "jq", "W1", "insert_commit_per_s"), ">=", 0.8),
    Target("W1 one by one / best peer", ("contestants", "jq", "W1", "one_by_one_per_s"),
           "best peer", ("W1", "one_by_one_per_s"), ">=", None),
    Target("W1 bulk / COPY", ("contestants", "jq", "W1", "bulk_per_s"),
           "limit:copy_per_s", (), ">=", None),
    Target("W2 drain / SKIP LOCKED 10 a commit", ("contestants", "jq", "W2", "per_s"),
           "limit:skip_locked_10_per_s", (), ">=", None),
    Target("W3 p50 submit→start / Dramatiq's", ("contestants", "jq", "W3", "p50_ms"),
           "peer:dramatiq", ("W3", "p50_ms"), "<=", 1.2),
    Target("W3 p99 submit→start / Dramatiq's", ("contestants", "jq", "W3", "p99_ms"),
           "peer:dramatiq", ("W3", "p99_ms"), "<=", 1.2),
    Target("W4 `jq submit` / `python -c pass`", ("W4", "submit_median_ms"),
           "python -c pass", ("W4", "python_median_ms"), "<=", 12.0),
    Target("W4 `jq show` / `python -c pass`", ("W4", "show_median_ms"),
           "python -c pass", ("W4", "python_median_ms"), "<=", 12.0),
    Target("W4 `jq list` / `python -c pass`", ("W4", "list_median_ms"),
           "python -c pass", ("W4", "python_median_ms"), "<=", 12.0),
    Target("Leases: shortest gap between renewals, in thirds of the lease",
           ("leases", "renewal_gap_in_lease_thirds"), "absolute", (), ">=", 0.95),
    Target("Leases: cancel → running handler p99", ("leases", "cancel_p99_ms"),
           "absolute", (), "<=", 1000.0, "ms"),
    Target("W5 worker idle RSS", ("W5", "idle_rss_mb"), "absolute", (), "<=", 80.0, "MB"),
    Target("W5 RSS growth", ("W5", "growth_pct"), "absolute", (), "<=", 10.0, "%"),
]  # fmt: skip


def dig(tree: Any, path: tuple[str, ...]) -> Any:
    """The value at `path`, or None where any step is missing or a workload failed."""
    for step in path:
        if not isinstance(tree, Mapping) or "error" in tree or step not in tree:
            return None
        tree = tree[step]
    return tree


def best_peer(
    contestants: Mapping[str, Any], figure: tuple[str, ...], higher_is_better: bool = True
) -> tuple[str, float] | None:
    """The best figure among the peers (jq's own rows excluded), or None if none has it."""
    found = [
        (key, value)
        for key, figures in contestants.items()
        if key not in JQ_ROWS and isinstance(value := dig(figures, figure), int | float)
    ]
    if not found:
        return None
    pick = max if higher_is_better else min
    return pick(found, key=lambda kv: kv[1])


def _reference(target: Target, results: Mapping[str, Any]) -> tuple[str, float | None]:
    contestants = results.get("contestants", {})
    if target.against == "best peer":
        best = best_peer(contestants, target.figure, target.op == ">=")
        return (best[0], best[1]) if best else ("no peer measured", None)
    if target.against.startswith("limit:"):
        key = target.against.split(":", 1)[1]
        return key, dig(results.get("limits"), (key,))
    if target.against.startswith("peer:"):
        key = target.against.split(":", 1)[1]
        return key, dig(contestants.get(key), target.figure)
    if target.against == "own":  # measured beside jq's figure; the run's limits table if not
        beside = dig(results, target.figure)
        if beside is not None:
            return "insert commit beside it", beside
        return "insert_commit_per_s", dig(results.get("limits"), ("insert_commit_per_s",))
    if target.against == "python -c pass":
        return target.against, dig(results, target.figure)
    return "", None  # absolute


def evaluate(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per target: jq's figure, the reference, the ratio and whether it met the target
    (None when something was not measured or the row carries no target)."""
    rows = []
    for t in TARGETS:
        value = dig(results, t.subject)
        ref_name, ref_value = _reference(t, results)
        if t.against == "absolute":
            ratio = value
        elif isinstance(value, int | float) and isinstance(ref_value, int | float) and ref_value:
            ratio = value / ref_value
        else:
            ratio = None
        met = None
        if t.factor is not None and ratio is not None:
            met = bool(_COMPARE[t.op](ratio, t.factor))
        label = t.label
        if t.subject[0] == "W5" and isinstance(jobs := dig(results, ("W5", "jobs")), int):
            label += f" ({jobs:,} jobs)"
        rows.append(
            {
                "target": label,
                "jq": value,
                "reference": ref_name,
                "reference_value": ref_value,
                "ratio": ratio,
                "goal": None
                if t.factor is None
                else f"{t.op} {t.factor:g}{t.unit and ' ' + t.unit}",
                "met": met,
                "absolute": t.against == "absolute",
            }
        )
    return rows
