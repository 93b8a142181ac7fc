"""Keyset paging: `before_id` continues a listing after the last id shown, and the pages stay
stable while new jobs arrive (an offset would shift by one for every new submit)."""

from __future__ import annotations

import json
import warnings

import pytest
from jq_cli.errors import InvalidInput

from conftest import LOOPBACK_URL


def test_before_id_pages_through_older_jobs_in_the_operations_layer(ops):
    ids = ops.submit_many([{"job_type": "noop", "payload": {"n": n}} for n in range(5)])
    first = ops.list_jobs(limit=2)
    assert [j["id"] for j in first] == ids[::-1][:2]
    ops.submit("noop", {"late": True})  # a new job must not shift the next page
    second = ops.list_jobs(limit=2, before_id=first[-1]["id"])
    assert [j["id"] for j in second] == ids[::-1][2:4]
    third = ops.list_jobs(limit=2, before_id=second[-1]["id"])
    assert [j["id"] for j in third] == [ids[0]]
    with pytest.raises(InvalidInput, match="before must be a job id"):
        ops.list_jobs(before_id=0)


def test_dead_letters_page_by_id(ops, store):
    ids = ops.submit_many([{"job_type": "noop"} for _ in range(3)])
    store._run("UPDATE jobs SET state = 'dead', finished_at = now() WHERE id = ANY(%s)", (ids,))
    assert [j["id"] for j in ops.dead_letters(limit=10, before_id=ids[2])] == [ids[1], ids[0]]


def test_cli_list_before_shows_the_next_page(ops, run_cli):
    ids = ops.submit_many([{"job_type": "noop"} for _ in range(4)])
    result = run_cli("list", "--limit", "2", "--before", str(ids[2]), "--json")
    assert result.returncode == 0, result.stderr
    assert [j["id"] for j in json.loads(result.stdout)] == [ids[1], ids[0]]
    bad = run_cli("list", "--before", "-3")
    assert (
        bad.returncode == 2
        and bad.stderr.count("\n") == 1
        and "before must be a job id" in bad.stderr
    )


def test_http_next_before_id_gives_stable_pages(settings):
    pytest.importorskip("fastapi")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    from jq_cli.http import create_app

    with TestClient(create_app(settings), base_url=LOOPBACK_URL) as client:
        ids = client.post(
            "/api/v1/jobs/bulk", json={"jobs": [{"job_type": "noop"} for _ in range(5)]}
        ).json()["ids"]
        page = client.get("/api/v1/jobs", params={"limit": 2}).json()
        assert [j["id"] for j in page["jobs"]] == ids[::-1][:2] and page["next_before_id"] == ids[3]
        client.post("/api/v1/jobs", json={"job_type": "noop"})  # arrives between two pages
        page = client.get(
            "/api/v1/jobs", params={"limit": 2, "before_id": page["next_before_id"]}
        ).json()
        assert [j["id"] for j in page["jobs"]] == [ids[2], ids[1]] and page[
            "next_before_id"
        ] == ids[1]
        page = client.get(
            "/api/v1/jobs", params={"limit": 2, "before_id": page["next_before_id"]}
        ).json()
        assert [j["id"] for j in page["jobs"]] == [ids[0]] and page["next_before_id"] is None
        both = client.get("/api/v1/jobs", params={"offset": 2, "before_id": ids[4]})
        assert both.status_code == 422 and "not both" in both.json()["detail"]
        assert client.get("/api/v1/dead-letter", params={"before_id": 0}).status_code == 422
