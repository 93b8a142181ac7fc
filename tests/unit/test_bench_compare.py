"""The bench's ratio and target logic (bench/compare.py) and its tables (bench/report.py), on
figures made up here: no services, no peers' venvs, no timing."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from bench import report
from bench.compare import best_peer, dig, evaluate

ROOT = Path(__file__).resolve().parents[2]


def _row(w1_one=None, w1_bulk=None, w2=None, p50=None, p99=None, complete=True) -> dict:
    return {
        "label": "x",
        "settings": "s",
        "durable": "d",
        "W1": {"one_by_one_per_s": w1_one, "bulk_per_s": w1_bulk},
        "W2": {"per_s": w2, "complete": complete, "completed": 10, "span_s": 1.0},
        "W3": {"p50_ms": p50, "p99_ms": p99},
    }


def _results() -> dict:
    return {
        "contestants": {
            "jq": _row(w1_one=800.0, w1_bulk=30_000.0, w2=3_000.0, p50=3.0, p99=6.0),
            "jq_c1": _row(w1_one=790.0, w1_bulk=29_000.0, w2=1_000.0, p50=3.0, p99=6.0),
            "pgqueuer": _row(w1_one=1_700.0, w1_bulk=50_000.0, w2=1_500.0, p50=3.6, p99=7.7),
            "dramatiq": _row(w1_one=8_000.0, w1_bulk=None, w2=2_000.0, p50=2.0, p99=6.0),
            "rq": {"label": "r", "settings": "s", "durable": "d", "W2": {"error": "boom"}},
        },
        "limits": {"insert_commit_per_s": 1_000.0, "copy_per_s": 60_000.0},
        "W4": {"python_median_ms": 20.0, "submit_median_ms": 300.0, "show_median_ms": 200.0},
        "W5": {
            "jobs": 1_000,
            "idle_rss_mb": 60.0,
            "after_rss_mb": 67.2,
            "peak_rss_mb": 70.0,
            "growth_pct": 12.0,
            "per_s": 900.0,
        },
    }


def _by_target(results: dict) -> dict[str, dict]:
    return {row["target"]: row for row in evaluate(results)}


def test_best_peer_skips_jq_rows_failed_workloads_and_missing_figures() -> None:
    contestants = _results()["contestants"]
    assert best_peer(contestants, ("W2", "per_s")) == ("dramatiq", 2_000.0)
    assert best_peer(contestants, ("W1", "bulk_per_s")) == ("pgqueuer", 50_000.0)
    assert best_peer(contestants, ("W3", "p50_ms"), higher_is_better=False) == ("dramatiq", 2.0)
    assert best_peer({"jq": contestants["jq"]}, ("W2", "per_s")) is None
    assert dig(contestants["rq"], ("W2", "per_s")) is None


def test_ratios_against_best_peer_limits_dramatiq_and_python() -> None:
    rows = _by_target(_results())
    drain = rows["W2 drain, jq defaults"]
    assert (drain["reference"], drain["ratio"], drain["met"]) == ("dramatiq", 1.5, True)
    slow = rows["W2 drain, jq --concurrency 1"]
    assert (slow["ratio"], slow["met"]) == (0.5, False)
    bulk = rows["W1 bulk enqueue"]
    assert (bulk["reference"], bulk["ratio"], bulk["met"]) == ("pgqueuer", 0.6, False)
    one = rows["W1 one by one / single-row insert commit beside it"]
    assert (one["ratio"], one["met"]) == (0.8, True)  # the boundary counts as met
    assert one["reference"] == "insert_commit_per_s"  # no yardstick beside it: the run's limit
    assert rows["W3 p50 submit→start / Dramatiq's"]["ratio"] == 1.5
    assert rows["W3 p50 submit→start / Dramatiq's"]["met"] is False
    assert rows["W3 p99 submit→start / Dramatiq's"]["met"] is True
    assert rows["W4 `jq submit` / `python -c pass`"]["ratio"] == 15.0
    assert rows["W4 `jq show` / `python -c pass`"]["met"] is True
    assert rows["W5 worker idle RSS (1,000 jobs)"]["met"] is True
    assert rows["W5 RSS growth (1,000 jobs)"]["met"] is False


def test_unmeasured_figures_and_targetless_rows_are_neither_met_nor_missed() -> None:
    results = _results()
    del results["limits"]
    results["W4"] = {"error": "RuntimeError: no jq"}
    rows = _by_target(results)
    assert rows["W1 one by one / single-row insert commit beside it"]["met"] is None
    assert rows["W4 `jq list` / `python -c pass`"]["met"] is None
    assert rows["W1 one by one / best peer"]["goal"] is None
    assert rows["W1 one by one / best peer"]["met"] is None
    assert rows["W1 one by one / best peer"]["ratio"] == 0.1


def test_markdown_has_every_contestant_and_target_and_marks_a_partial_drain() -> None:
    results = _results()
    results["contestants"]["pgqueuer"]["W2"]["complete"] = False
    meta = {
        "quick": True,
        "started_at": "2026-12-02 04:00 UTC",
        "machine": {"cores": 2, "cpu_model": "cpu", "memory_gb": 8, "load_average_at_start": [1]},
        "versions": {"jq": "1", "python": "3", "postgresql": "15", "rabbitmq": "3", "redis": "7"},
    }
    text = report.markdown(results, meta)
    lines = text.splitlines()
    assert sum(line.startswith("| x |") for line in lines) == 4  # the made-up labels
    assert "1,500/s (10 in 1 s)" in text
    assert "| W2 drain, jq defaults | 3,000 | dramatiq 2,000 | 1.50× | >= 1.5 | met |" in text
    assert "NOT MET" in text
    assert "QUICK" in text


def test_the_drivers_plan_paces_rate_jobs_and_chunks_bulk() -> None:
    spec = importlib.util.spec_from_file_location("peerside", ROOT / "bench/peers/peerside.py")
    assert spec is not None and spec.loader is not None
    peerside = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(peerside)
    assert peerside._plan("bulk", 12, 5) == [(0.0, 5), (0.0, 5), (0.0, 2)]
    assert peerside._plan("one", 3, 0) == [(0.0, 1)] * 3
    assert peerside._plan("rate", 3, 50) == [(0.0, 1), (0.02, 1), (0.04, 1)]


def test_one_by_one_is_judged_against_the_yardstick_taken_beside_it() -> None:
    results = _results()
    results["contestants"]["jq"]["W1"]["insert_commit_per_s"] = 2_000.0  # the run's limit: 1,000
    row = _by_target(results)["W1 one by one / single-row insert commit beside it"]
    assert (row["reference"], row["ratio"], row["met"]) == ("insert commit beside it", 0.4, False)


def test_lease_targets_judge_the_renewal_gap_and_cancel_p99() -> None:
    results = _results()
    results["leases"] = {"renewal_gap_in_lease_thirds": 0.3, "cancel_p99_ms": 9.0}
    rows = _by_target(results)
    gap = rows["Leases: shortest gap between renewals, in thirds of the lease"]
    assert gap["met"] is False and gap["ratio"] == 0.3  # renewed every second of a 30 s lease
    assert rows["Leases: cancel → running handler p99"]["met"] is True
    results["leases"] = {"renewal_gap_in_lease_thirds": 0.99, "cancel_p99_ms": 1_200.0}
    rows = _by_target(results)
    assert rows["Leases: shortest gap between renewals, in thirds of the lease"]["met"] is True
    assert rows["Leases: cancel → running handler p99"]["met"] is False
