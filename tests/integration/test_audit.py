"""The audit log: every operator action, from the CLI, `jq top` and `jq serve`, is a
row committed with its change, naming who, what, the filter and how many jobs."""

from __future__ import annotations

import asyncio
import getpass
import json
import socket
import warnings

import pytest
from jq_cli.client import Client
from jq_cli.errors import Conflict, StoreError
from jq_cli.model.audit import Actor
from jq_cli.ops import actions as action_ops
from jq_cli.store import Finish, Store

from conftest import LOOPBACK_URL, make_settings


def dead_job(ops: Client, store: Store, n: int = 1) -> int:
    """A job that failed its only attempt, as a worker records it."""
    job_id = ops.submit("noop", {"n": n}, max_retries=0)
    claimed = store.job_claim([job_id], "test-worker", 30)
    store.job_finish([Finish(job_id, claimed[0].run_count, "failed", error="boom")], "test-worker")
    assert store.job_states([job_id]) == {job_id: "dead"}
    return job_id


def audit_rows(store: Store) -> list[dict]:
    return store._all("SELECT * FROM audit_log ORDER BY id")


def test_cli_actions_are_recorded_with_the_os_user_and_host(ops, store, run_cli):
    first, second = dead_job(ops, store, 1), dead_job(ops, store, 2)
    assert run_cli("retry", str(first)).returncode == 0
    assert run_cli("dlq", "retry", "--all").returncode == 0  # the second, by filter

    done = run_cli("audit", "-o", "json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [r["action"] for r in rows] == ["job.retry", "job.retry"]  # newest first
    by_filter, by_id = rows
    for row in rows:
        assert row["actor_kind"] == "cli"
        assert row["actor"] == getpass.getuser() and row["host"] == socket.gethostname()
        assert row["jobs"] == 1
    assert by_id["target"] == str(first) and by_id["filter"] == {}
    assert by_filter["target"] is None and by_filter["filter"] == {"state": "dead"}
    assert store.job_states([first, second]) == {first: "queued", second: "queued"}


def test_the_record_and_the_change_commit_together(settings, ops, store):
    job_id = dead_job(ops, store)
    # An actor the table refuses (its CHECK): the audit row fails, so the retry must not stay.
    with (
        Client(settings, actor=Actor("nobody", "x")) as broken,  # type: ignore[arg-type]
        pytest.raises(StoreError),
    ):
        broken.retry([job_id])
    assert store.job_states([job_id]) == {job_id: "dead"}
    assert audit_rows(store) == []
    # And a change refused by the store leaves no record either.
    ops.schedule_add("nightly", "noop", "0 3 * * *")
    with pytest.raises(Conflict):
        ops.schedule_add("nightly", "noop", "0 4 * * *")
    assert [r["action"] for r in audit_rows(store)] == ["schedule.add"]


def test_a_bulk_purge_in_batches_is_one_row_with_its_whole_count(ops, store, monkeypatch):
    monkeypatch.setattr(action_ops, "BULK_BATCH", 2)
    ids = [dead_job(ops, store, n) for n in range(5)]
    assert ops.purge(state="dead", dry_run=True) == 5
    assert audit_rows(store) == []  # a dry run changes nothing and records nothing
    assert ops.purge(state="dead") == 5
    (row,) = audit_rows(store)
    assert row["action"] == "job.purge" and row["jobs"] == 5
    assert row["filter"] == {"state": "dead"}
    assert store.job_states(ids) == {}


def test_schedule_changes_are_recorded(ops, store):
    ops.schedule_add("nightly", "noop", "0 3 * * *")
    ops.schedule_edit("nightly", cron="0 4 * * *")
    ops.schedule_set_enabled("nightly", False)
    ops.schedule_set_enabled("nightly", True)
    job_id = ops.schedule_run_now("nightly")
    ops.schedule_remove("nightly")
    rows = audit_rows(store)
    assert [r["action"] for r in rows] == [
        "schedule.add",
        "schedule.edit",
        "schedule.disable",
        "schedule.enable",
        "schedule.run_now",
        "schedule.remove",
    ]
    assert {r["target"] for r in rows} == {"nightly"}
    assert rows[1]["filter"]["cron"] == "0 4 * * *"
    assert rows[4]["jobs"] == 1 and rows[4]["detail"] == {"job": job_id}
    assert all(r["actor_kind"] == "api" for r in rows)  # a program's own Client


def test_audit_filters_by_action_and_age(ops, store, run_cli):
    job_id = dead_job(ops, store)
    ops.cancel([ops.submit("noop", {})])
    ops.retry([job_id])
    store._run("UPDATE audit_log SET at = now() - interval '3 days' WHERE action = 'job.cancel'")

    recent = json.loads(run_cli("audit", "--since", "1d", "--json").stdout)
    assert [r["action"] for r in recent] == ["job.retry"]
    cancels = json.loads(run_cli("audit", "--action", "job.cancel", "--json").stdout)
    assert [r["action"] for r in cancels] == ["job.cancel"]
    group = json.loads(run_cli("audit", "--action", "job", "--json").stdout)
    assert {r["action"] for r in group} == {"job.cancel", "job.retry"}
    plain = run_cli("audit")
    assert plain.returncode == 0 and "job.retry" in plain.stdout and "job.cancel" in plain.stdout

    bad = run_cli("audit", "--action", "job.explode")
    assert bad.returncode == 2 and bad.stderr.startswith("jq: error: unknown audit action")


def test_the_scheduler_prunes_the_audit_log_by_its_own_retention(settings, ops, store):
    from jq_cli.scheduler.daemon import Scheduler

    for n in range(3):
        ops.cancel([ops.submit("noop", {"n": n})])
    store._run(
        "UPDATE audit_log SET at = now() - interval '10 days' WHERE id IN"
        " (SELECT id FROM audit_log ORDER BY id LIMIT 2)"
    )
    kept = make_settings(settings.namespace, audit_retention="30d")
    assert Scheduler(kept).pruner.run_once().get("audit") is None
    assert len(audit_rows(store)) == 3
    short = make_settings(settings.namespace, audit_retention="7d")
    assert Scheduler(short).pruner.run_once()["audit"] == 2
    assert len(audit_rows(store)) == 1


def test_http_actions_are_recorded_as_the_api_keys_name(settings, ops, store, tmp_path):
    pytest.importorskip("fastapi")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    from jq_cli.http import create_app
    from jq_cli.http.keys import ApiKeys

    keys_file = tmp_path / "keys"
    keys_file.write_text("# operators\nalice alice-key-0123456789\nunnamed-key-9876543210\n")
    keyed = make_settings(settings.namespace, api_keys_file=str(keys_file))
    job_id = dead_job(ops, store)
    other = ops.submit("noop", {})
    with TestClient(
        create_app(keyed, api_keys=ApiKeys.from_settings(keyed)), base_url=LOOPBACK_URL
    ) as client:
        answer = client.post(
            f"/api/v1/jobs/{job_id}/retry", headers={"X-API-Key": "alice-key-0123456789"}
        )
        assert answer.status_code == 200, answer.text
        answer = client.post(
            f"/api/v1/jobs/{other}/cancel",
            headers={"Authorization": "Bearer unnamed-key-9876543210"},
        )
        assert answer.status_code == 200, answer.text
    retry, cancel = audit_rows(store)
    assert (retry["actor_kind"], retry["actor"], retry["action"]) == ("http", "alice", "job.retry")
    assert cancel["actor"].startswith("key-") and "9876543210" not in cancel["actor"]
    # The pooled Client acts as the request only while the request holds it.
    ops.cancel([ops.submit("noop", {})])
    assert audit_rows(store)[-1]["actor_kind"] == "api"


def test_top_actions_are_recorded_as_the_tui(settings, ops, store):
    from jq_cli.tui.app import TopApp

    job_id = dead_job(ops, store)

    async def scenario() -> None:
        with Client(settings, actor=Actor.local("tui")) as app_ops:
            app = TopApp(app_ops, refresh=0.2)
            async with app.run_test(size=(120, 40)) as pilot:
                for _ in range(400):
                    await pilot.pause(0.05)
                    if app.snapshots and app.dashboard.selected_table().selected_key():
                        break
                await pilot.press("r")
                for _ in range(400):
                    await pilot.pause(0.05)
                    if store.job_states([job_id])[job_id] == "queued":
                        break

    asyncio.run(scenario())
    (row,) = audit_rows(store)
    assert (row["actor_kind"], row["action"], row["target"]) == ("tui", "job.retry", str(job_id))
    assert row["actor"] == getpass.getuser()
