"""time_limit on every submit path: the CLI (`jq submit --time-limit`), bulk lines, HTTP bodies;
bad values refused in one line with nothing written; `jq show` names the `timeout` outcome."""

from __future__ import annotations

import json

import pytest

import poison_handlers  # noqa: F401  (t_hang)
from conftest import LOOPBACK_URL, wait_for


def count(store) -> int:
    return store._one("SELECT count(*) AS c FROM jobs")["c"]


def test_cli_time_limit_is_stored_and_shown_as_a_timeout(run_cli, ops, store, start_worker):
    w = start_worker()  # registers t_hang (the CLI does not import the test handlers)
    done = run_cli(
        "submit",
        "t_hang",
        "--payload",
        '{"seconds": 30}',
        "--time-limit",
        "0.5s",
        "--max-retries",
        "0",
    )
    assert done.returncode == 0, done.stderr
    job_id = int(done.stdout)
    assert ops.get(job_id)["time_limit"] == 0.5
    assert w.thread.is_alive()

    wait_for(lambda: ops.get(job_id)["state"] == "dead", 30, what="the job to time out")
    shown = run_cli("show", str(job_id))
    assert shown.returncode == 0 and "timeout" in shown.stdout, shown.stdout


@pytest.mark.parametrize("bad", ["0", "-1s", "soon", "400d"])
def test_cli_refuses_a_bad_time_limit_in_one_line(run_cli, store, bad):
    done = run_cli("submit", "noop", "--time-limit", bad)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "time_limit" in done.stderr
    assert count(store) == 0


def test_bulk_lines_carry_time_limits(run_cli, ops, tmp_path):
    path = tmp_path / "jobs.jsonl"
    path.write_text(
        json.dumps({"job_type": "noop", "time_limit": "2m"})
        + "\n"
        + json.dumps({"job_type": "noop", "time_limit": 5})
        + "\n"
    )
    done = run_cli("submit", "--file", str(path), "--json")
    assert done.returncode == 0, done.stderr
    ids = json.loads(done.stdout)["ids"]
    assert [ops.get(i)["time_limit"] for i in ids] == [120.0, 5.0]


def test_http_body_carries_a_time_limit(settings, ops):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient
    from jq_cli.http import create_app

    with TestClient(create_app(settings), base_url=LOOPBACK_URL) as client:
        r = client.post("/api/v1/jobs", json={"job_type": "noop", "time_limit": "45s"})
        assert r.status_code == 201, r.text
        assert ops.get(r.json()["id"])["time_limit"] == 45.0
        bad = client.post("/api/v1/jobs", json={"job_type": "noop", "time_limit": "never"})
        assert bad.status_code == 422
