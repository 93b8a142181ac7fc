"""`jq demo` (what `make run` runs): every sample job ends terminal and the demo exits 0."""

from __future__ import annotations

import re
import subprocess

import pytest


# The demo gives up after its own --timeout of 90 s and the command is killed at 120 s: pytest's
# default 120 s, which also counts the fixtures, must not cut a slow but passing run short.
@pytest.mark.timeout(180)
def test_demo_runs_every_sample_to_a_terminal_state_and_exits_0(run_cli, ops, env):
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
    assert "dlq list): " in result.stdout
    # The closing hint runs as printed, in the shell that ran the demo, even where `jq` on PATH
    # is the JSON processor (a hint of plain `jq show ID` failed there).
    hint = re.search(r"Try `(.+?) show ID`", result.stdout)
    assert hint, result.stdout[-2000:]
    shown = subprocess.run(
        f"{hint.group(1)} show {dead[0]['id']}",
        shell=True,
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "PATH": "/usr/bin:/bin"},
    )
    assert shown.returncode == 0 and f"{dead[0]['id']}" in shown.stdout, shown.stderr
    assert "retried, then completed" in result.stdout
    # Every other sample has nothing that can fail: it completed.
    scripted = {retried[0]["id"], dead[0]["id"]}
    others = [j for j in jobs if j["id"] not in scripted]
    assert [j["state"] for j in others] == ["completed"] * len(others), others
