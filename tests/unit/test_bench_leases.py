"""The bench's leases part as the command line and the report see it (no service needed)."""

from __future__ import annotations

from bench import __main__ as bench_main
from bench import report


def test_the_leases_part_can_be_run_alone():
    assert bench_main.parse_args(["--only", "leases"]).only == ["leases"]
    assert "leases" in bench_main.parse_args([]).only


def test_the_report_shows_the_write_rates_and_the_cancel_latency():
    figures = {
        "held": 1000,
        "window_s": 30.0,
        "lease_ttl_s": 30.0,
        "row_versions_per_s": 100.0,
        "hot_per_s": 98.0,
        "index_entries_per_s": 6.0,
        "indexes_of_a_running_row": ["jobs_pkey", "jobs_running", "jobs_state_id"],
        "index_growth_kb_per_s": 0.0,
        "cancels_seen": 50,
        "cancel_p50_ms": 3.2,
        "cancel_p99_ms": 9.7,
    }
    text = report.markdown({"leases": figures}, _meta())
    assert "100 row versions/s (98 HOT), 6 index entries/s (3 indexes hold a running row)" in text
    assert "cancel → running handler, p50 / p99 of 50 | 3 / 10 ms" in text


def test_a_failed_leases_part_is_reported_not_raised():
    assert report.lease_rows({"error": "RuntimeError: boom"}) == [["leases", "RuntimeError: boom"]]


def _meta() -> dict:
    return {
        "quick": False,
        "started_at": "now",
        "machine": {"cores": 2, "cpu_model": "x", "memory_gb": 1, "load_average_at_start": 0},
        "versions": {"jq": "0", "python": "3", "postgresql": "15", "rabbitmq": "3", "redis": "7"},
    }
