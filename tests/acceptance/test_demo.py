"""`jq demo` (what `make run` runs): every sample job ends terminal and the demo exits 0."""

from __future__ import annotations

import pytest


# The demo gives up after its own --timeout of 90 s and the command is killed at 120 s: pytest's
# default 120 s, which also counts the fixtures, must not cut a slow but passing run short.
@pytest.mark.timeout(180)
def test_demo_runs_every_sample_to_a_terminal_state_and_exits_0(run_cli, ops):
    result = run_cli("demo", "--timeout", "90", timeout=120)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "all jobs terminal" in result.stdout
    jobs = ops.list_jobs(limit=100)
    assert {j["job_type"] for j in jobs} == {
        "send_email",
        "process_video",
        "scrape_website",
        "noop",
    }
    assert {j["priority"] for j in jobs} == {"high", "medium", "low"}
    scrape = next(j for j in jobs if j["job_type"] == "scrape_website")
    assert ops.get(scrape["id"])["result"]["count"] == 3  # the page the demo served on loopback
    # The scripted flakes: one email retried twice then delivered, one in the dead-letter queue,
    # every run (not by chance).
    emails = [ops.get(j["id"]) for j in jobs if j["job_type"] == "send_email"]
    retried = [e for e in emails if e["state"] == "completed" and e["attempts"] == 3]
    dead = [e for e in emails if e["state"] == "dead"]
    assert len(retried) == 1 and [a["outcome"] for a in retried[0]["attempt_history"]] == [
        "failed",
        "failed",
        "completed",
    ]
    assert len(dead) == 1 and len(dead[0]["attempt_history"]) == 3
    assert [d["id"] for d in ops.dead_letters()] == [dead[0]["id"]]
    assert "in the dead-letter queue (jq dlq list)" in result.stdout
    assert "retried, then completed" in result.stdout
    # Every other sample has nothing that can fail: it completed.
    scripted = {retried[0]["id"], dead[0]["id"]}
    others = [j for j in jobs if j["id"] not in scripted]
    assert [j["state"] for j in others] == ["completed"] * len(others), others
