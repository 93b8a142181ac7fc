"""Workflows: chains, groups with callbacks, dependencies; release in the transaction
that completes the last parent; dead or cancelled parents settle their dependants."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import psycopg
import pytest
from jq_cli import PermanentError, chain, group, job, step
from jq_cli.errors import InvalidInput, InvalidTransition

import handlers_for_tests  # noqa: F401  (registers the t_* job types for in-process workers)
from conftest import LOOPBACK_URL, wait_for


@job("t_add")
def t_add(payload: dict, ctx) -> dict:
    """Adds payload["n"] to its parent's n: a chain step that uses its parent's result."""
    base = (ctx.parent_result or {}).get("n", 0)
    return {"n": base + payload.get("n", 1)}


@job("t_sum")
def t_sum(payload: dict, ctx) -> dict:
    """A group's callback: the sum of its members' n, and the parents it was given."""
    return {"total": sum(r["n"] for r in ctx.parent_results), "parents": ctx.parents}


@job("t_flaky")
def t_flaky(payload: dict, ctx) -> dict:
    """Fails for good the first time (creating `marker`), completes afterwards."""
    marker = Path(payload["marker"])
    if not marker.exists():
        marker.write_text("failed once")
        raise PermanentError("first run fails")
    return {"n": 10}


def state(ops, job_id: int) -> str:
    return ops.get(job_id)["state"]


def wait_state(ops, job_id: int, wanted: str, timeout: float = 30) -> dict:
    return wait_for(
        lambda: (j := ops.get(job_id))["state"] == wanted and j,
        timeout,
        what=lambda: f"job {job_id} {wanted} (is {state(ops, job_id)})",
    )


def test_chain_runs_each_step_after_the_previous_with_its_result(
    ops, start_worker, start_scheduler
):
    ids = ops.submit_workflow(
        chain(step("t_add", {"n": 1}), step("t_add", {"n": 2}), step("t_add"))
    )
    assert [state(ops, i) for i in ids] == ["queued", "waiting", "waiting"]
    start_scheduler()
    start_worker()
    last = wait_state(ops, ids[2], "completed")
    assert last["result"] == {"n": 4}
    starts = [ops.get(i)["started_at"] for i in ids]
    finishes = [ops.get(i)["finished_at"] for i in ids]
    assert finishes[0] <= starts[1] and finishes[1] <= starts[2]


def test_group_callback_runs_once_after_every_member_with_their_results(
    ops, start_worker, start_scheduler
):
    flow = group([step("t_add", {"n": n}) for n in (1, 2, 3)]).then(step("t_sum"))
    ids = ops.submit_workflow(flow)
    start_scheduler()
    start_worker(concurrency=3)
    callback = wait_state(ops, ids[3], "completed")
    assert callback["result"] == {"total": 6, "parents": ids[:3]}
    assert len(callback["attempt_history"]) == 1


def test_depends_on_waits_until_its_parents_complete(ops, start_worker, start_scheduler):
    a = ops.submit("t_add", {"n": 5}, delay="1h")
    b = ops.submit("t_add", {"n": 1})
    child = ops.submit("t_sum", {}, depends_on=[a, b])
    start_scheduler()
    start_worker()
    wait_state(ops, b, "completed")
    assert state(ops, child) == "waiting"
    assert ops.get(child)["pending_parents"] == 1
    ops.store._run("UPDATE jobs SET run_at = now() WHERE id = %s", (a,))  # a is due now
    assert wait_state(ops, child, "completed")["result"] == {"total": 6, "parents": [a, b]}


def test_a_child_of_completed_parents_is_queued_at_once(ops):
    a = ops.submit("noop", {})
    ops.store._run("UPDATE jobs SET state = 'completed', result = '{\"n\": 3}' WHERE id = %s", (a,))
    child = ops.submit("t_add", {}, depends_on=[a])
    row = ops.get(child)
    assert row["state"] == "queued"
    assert row["parent_results"] == [{"id": a, "result": {"n": 3}}]


def test_two_parents_completing_at_once_release_the_child_exactly_once(ops, settings, store):
    """The two completions run in two transactions on two connections; the second blocks on the
    child's row until the first commits, then counts down from what the first left."""
    for _ in range(5):
        p1, p2 = ops.submit("noop", {}), ops.submit("noop", {})
        child = ops.submit("noop", {}, depends_on=[p1, p2])
        conns = [psycopg.connect(settings.database_url) for _ in range(2)]
        for c in conns:
            c.execute(f"SET search_path = {settings.namespace}")
            c.commit()
        complete = "UPDATE jobs SET state = 'completed' WHERE id = %s AND state = 'queued'"
        conns[0].execute(complete, (p1,))  # holds the child's row, not committed

        def finish_second(conn=conns[1], parent=p2, query=complete) -> None:
            conn.execute(query, (parent,))
            conn.commit()

        second = threading.Thread(target=finish_second)
        second.start()
        pid = conns[1].info.backend_pid
        wait_for(
            lambda pid=pid: store._one(
                "SELECT wait_event_type = 'Lock' AS blocked FROM pg_stat_activity WHERE pid = %s",
                (pid,),
            )["blocked"],
            10,
            what="the second completion to wait for the first",
        )
        conns[0].commit()
        second.join(10)
        for c in conns:
            c.close()
        row = ops.get(child)
        assert (row["state"], row["pending_parents"]) == ("queued", 0)
        assert (
            store._one("SELECT count(*) AS n FROM job_outbox WHERE job_id = %s", (child,))["n"] == 1
        )


def test_dead_parent_cancels_its_dependants_and_retry_resumes_the_workflow(
    ops, tmp_path, start_worker, start_scheduler
):
    ids = ops.submit_workflow(
        chain(
            step("t_flaky", {"marker": str(tmp_path / "m")}, max_retries=0),
            step("t_add", {"n": 1}),
            step("t_add", {"n": 1}),
        )
    )
    runs_anyway = ops.submit("t_add", {"n": 7}, depends_on=[ids[0]], on_parent_failure="run")
    start_scheduler()
    start_worker()
    wait_state(ops, ids[0], "dead")
    for i in ids[1:]:
        row = wait_state(ops, i, "cancelled")
        assert "ended" in row["last_error"]
    assert wait_state(ops, runs_anyway, "completed")["result"] == {"n": 7}
    report = ops.retry([ids[0]])
    assert report.changed == {ids[0]: "queued"}
    assert wait_state(ops, ids[2], "completed")["result"] == {"n": 12}


def test_cancelled_parent_cancels_a_waiting_child(ops):
    parent = ops.submit("noop", {}, delay="1h")
    child = ops.submit("noop", {}, depends_on=[parent])
    grandchild = ops.submit("noop", {}, depends_on=[child])
    assert ops.cancel([parent]).changed == {parent: "cancelled"}
    assert state(ops, child) == "cancelled"
    assert state(ops, grandchild) == "cancelled"
    assert ops.cancel([child]).refused  # already cancelled
    other = ops.submit("noop", {}, delay="1h")
    waiting = ops.submit("noop", {}, depends_on=[other])
    assert ops.cancel([waiting]).changed == {waiting: "cancelled"}
    assert state(ops, other) == "scheduled"  # a child's cancel leaves its parent alone


def test_bad_dependencies_are_refused(ops, store):
    with pytest.raises(InvalidInput, match="does not exist"):
        ops.submit("noop", {}, depends_on=[123_456])
    with pytest.raises(InvalidInput, match="depends_on"):
        ops.submit("noop", {}, depends_on=[0])
    with pytest.raises(InvalidInput, match="on_parent_failure"):
        ops.submit("noop", {}, depends_on=[1], on_parent_failure="ignore")
    assert store._one("SELECT count(*) AS n FROM jobs")["n"] == 0


def test_jq_submit_after_and_show_draw_the_workflow(ops, run_cli):
    ids = ops.submit_workflow(group([step("noop"), step("noop")]).then(step("noop")))
    done = run_cli("submit", "noop", "--after", f"{ids[2]}")
    assert done.returncode == 0, done.stderr
    child = int(done.stdout)
    assert state(ops, child) == "waiting"
    shown = run_cli("show", str(ids[1]))
    assert shown.returncode == 0, shown.stderr
    assert f"workflow {ids[0]}" in shown.stdout
    for i in [*ids, child]:
        assert str(i) in shown.stdout
    assert "waiting" in shown.stdout
    as_json = json.loads(run_cli("show", str(child), "--json").stdout)
    assert {n["id"] for n in as_json["workflow"]["jobs"]} == {*ids, child}
    bad = run_cli("submit", "noop", "--after", "x,1")
    assert bad.returncode == 2
    assert bad.stderr.startswith("jq: error: --after takes job ids")


def test_http_shim_accepts_dependencies(ops, settings):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient
    from jq_cli.http import create_app

    parent = ops.submit("noop", {}, delay="1h")
    with TestClient(create_app(settings), base_url=LOOPBACK_URL) as http:
        created = http.post("/api/v1/jobs", json={"job_type": "noop", "depends_on": [parent]})
    assert created.status_code == 201, created.text
    assert state(ops, created.json()["id"]) == "waiting"


def _set_state(store, job_id: int, wanted: str) -> None:
    """A parent's end as the worker's finish makes it: one conditional UPDATE of its state."""
    store._run("UPDATE jobs SET state = %s, finished_at = now() WHERE id = %s", (wanted, job_id))


def test_a_parent_retried_after_it_died_settles_a_run_child_once(ops, store):
    """on_parent_failure="run": the death counts p1 settled; its retry un-settles it; its
    completion settles it again, once. The child waits for p2 all along."""
    p1, p2 = ops.submit("noop", {}), ops.submit("noop", {})
    child = ops.submit("noop", {}, depends_on=[p1, p2], on_parent_failure="run")
    _set_state(store, p1, "dead")
    assert (state(ops, child), ops.get(child)["pending_parents"]) == ("waiting", 1)
    assert ops.retry([p1]).changed == {p1: "queued"}
    assert ops.get(child)["pending_parents"] == 2
    store._run("UPDATE jobs SET result = '{\"n\": 1}' WHERE id = %s", (p1,))
    _set_state(store, p1, "completed")
    assert (state(ops, child), ops.get(child)["pending_parents"]) == ("waiting", 1)
    _set_state(store, p2, "completed")
    row = ops.get(child)
    assert (row["state"], row["pending_parents"]) == ("queued", 0)
    assert row["parent_results"] == [{"id": p1, "result": {"n": 1}}, {"id": p2, "result": None}]


def test_retry_of_a_child_whose_parents_have_not_settled_is_refused(ops, store, run_cli):
    parent = ops.submit("noop", {})
    child = ops.submit("noop", {}, depends_on=[parent])
    _set_state(store, parent, "dead")
    assert state(ops, child) == "cancelled"
    report = ops.retry([child])
    assert not report.changed
    err = report.refused[child]
    assert err.kind == "invalid-transition" and f"{parent} (dead)" in err.message
    assert state(ops, child) == "cancelled"
    cli = run_cli("retry", str(child))
    assert cli.returncode == 1 and str(parent) in cli.stderr
    assert ops.retry_matching(state="cancelled") == 0
    # A child that ran although its parent died, then died itself, while the parent was
    # retried: it waits for the parent again, so its own retry is refused too.
    runs = ops.submit("noop", {}, depends_on=[parent], on_parent_failure="run")
    _set_state(store, runs, "dead")
    assert ops.retry([runs]).changed == {runs: "queued"}  # the parent is settled (dead)
    _set_state(store, runs, "dead")
    assert ops.retry([parent]).changed == {parent: "queued"}
    assert runs in ops.retry([runs]).refused
    with pytest.raises(InvalidTransition, match=str(parent)):
        ops.retry_edited(runs, {})


def test_async_client_and_http_refuse_a_retry_whose_parents_have_not_settled(ops, store, settings):
    import asyncio

    from fastapi.testclient import TestClient
    from jq_cli import AsyncClient
    from jq_cli.http.app import create_app

    parent = ops.submit("noop", {})
    child = ops.submit("noop", {}, depends_on=[parent])
    _set_state(store, parent, "dead")

    async def scenario():
        async with AsyncClient(settings) as client:
            return await client.retry([child])

    report = asyncio.run(scenario())
    assert not report.changed and f"{parent} (dead)" in report.refused[child].message
    assert state(ops, child) == "cancelled"
    with TestClient(create_app(settings), base_url=LOOPBACK_URL) as http:
        answer = http.post(f"/api/v1/jobs/{child}/retry")
    assert answer.status_code == 409 and str(parent) in answer.text
