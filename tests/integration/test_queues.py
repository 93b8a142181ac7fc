"""Queues you can pause: a pause is a row in PostgreSQL every worker's claim obeys;
its jobs stay queued, it outlives worker and scheduler restarts, and resuming runs them."""

from __future__ import annotations

import json

from jq_cli.client import Client
from jq_cli.store import Store

from conftest import wait_for


def states(store: Store, ids: list[int]) -> set[str]:
    return set(store.job_states(ids).values())


def attempts(store: Store, ids: list[int]) -> int:
    return store._one("SELECT count(*) AS n FROM attempts WHERE job_id = ANY(%s)", (ids,))["n"]


def test_a_paused_queue_starts_nothing_on_any_worker_and_resume_runs_its_jobs(
    ops: Client, store: Store, start_worker
):
    workers = [start_worker(queues=["default", "other"]) for _ in range(2)]
    ops.queue_pause("other")
    held = [ops.submit("noop", {"n": n}, queue="other") for n in range(6)]
    free = [ops.submit("noop", {"n": n}) for n in range(6)]
    wait_for(lambda: states(store, free) == {"completed"}, what="the unpaused queue's jobs")
    # Every worker has had the paused queue's messages and refused to claim them.
    wait_for(
        lambda: sum(w.worker.duplicates for w in workers) >= len(held),
        what="the workers to see the held jobs' messages",
    )
    assert states(store, held) == {"queued"} and attempts(store, held) == 0

    done = ops.queue_resume("other")
    assert done["changed"] and done["published"] == len(held)
    wait_for(lambda: states(store, held) == {"completed"}, what="the resumed queue's jobs")
    assert attempts(store, held) == len(held)  # held back was no attempt


def test_a_pause_survives_worker_and_scheduler_restarts(
    settings, ops: Client, store: Store, start_worker, make_scheduler
):
    ops.queue_pause("other")
    held = [ops.submit("noop", {"n": n}, queue="other") for n in range(3)]
    first = start_worker(queues=["other"])
    wait_for(lambda: first.worker.duplicates >= len(held), what="the first worker's refusals")
    assert first.stop() == 0
    # A new process sees the pause (it is a row, not a worker's memory)...
    with Client(settings) as fresh:
        (row,) = [q for q in fresh.queue_list()["queues"] if q["name"] == "other"]
    assert row["paused"] and row["queued"] == len(held)
    # ...the scheduler's sweeper does not send the held jobs round again...
    store._run(
        "UPDATE jobs SET published_at = now() - interval '1 hour' WHERE id = ANY(%s)", (held,)
    )
    scheduler = make_scheduler("s1")
    assert scheduler.sweeper.run_once() == 0
    # ...and a new worker obeys it too.
    second = start_worker(queues=["other"])
    free = ops.submit("noop", {}, queue="default")
    sweeper = make_scheduler("s2")
    store._run(
        "UPDATE jobs SET published_at = now() - interval '1 hour' WHERE id = ANY(%s)", (held,)
    )
    assert sweeper.sweeper.run_once() == 0
    ops.queue_resume("other")
    wait_for(lambda: states(store, held) == {"completed"}, what="the jobs after resume")
    assert second.worker.processed >= len(held)
    assert store.job_states([free]) == {free: "queued"}  # no worker consumes default here


def test_queue_commands_list_pause_and_resume(ops: Client, store: Store, run_cli, start_worker):
    worker = start_worker(queues=["default", "reports"])
    done = [ops.submit("noop", {"n": n}, queue="reports") for n in range(5)]
    wait_for(lambda: states(store, done) == {"completed"}, what="the reports jobs")
    assert run_cli("queue", "pause", "reports").stdout.strip() == "queue reports paused"
    again = run_cli("queue", "pause", "reports")
    assert again.returncode == 0 and "already" in again.stdout
    waiting = [ops.submit("noop", {"n": n}, queue="reports") for n in range(2)]
    wait_for(lambda: worker.worker.duplicates >= 2, what="the refused claims")

    def listed() -> dict:
        out = run_cli("queue", "list", "--json")
        assert out.returncode == 0, out.stderr
        return {q["name"]: q for q in json.loads(out.stdout)["queues"]}

    reports = wait_for(
        lambda: (q := listed()["reports"])["completed_per_second"] and q,
        what="the completed rate of reports",
    )
    assert reports["paused"] and reports["queued"] == 2 and reports["broker_ready"] == 0
    assert reports["workers"] == 1 and reports["running"] == 0
    assert reports["paused_by"]  # who paused it
    assert listed()["default"]["paused"] is False
    table = run_cli("queue", "list")
    assert table.returncode == 0 and "paused" in table.stdout and "reports" in table.stdout

    assert run_cli("queue", "resume", "reports").returncode == 0
    wait_for(lambda: states(store, waiting) == {"completed"}, what="the resumed jobs")
    actions = [r["action"] for r in json.loads(run_cli("audit", "--json").stdout)]
    assert actions == ["queue.resume", "queue.pause", "queue.pause"]

    bad = run_cli("queue", "pause", "no such queue")
    assert bad.returncode == 2 and bad.stderr.startswith("jq: error:")


def test_resuming_a_queue_never_paused_changes_nothing(ops: Client, store: Store):
    assert ops.queue_resume("reports") == {
        "name": "reports",
        "paused": False,
        "changed": False,
        "published": 0,
    }
    assert store.queue_rows() == []
    assert ops.queue_pause("reports")["changed"] and not ops.queue_pause("reports")["changed"]
    assert ops.queue_resume("reports")["changed"]
    assert [r["paused"] for r in store.queue_rows()] == [False]


def test_top_shows_a_paused_queue_and_toggles_it_after_a_confirmation(settings, ops, store):
    import asyncio

    from jq_cli.model.audit import Actor
    from jq_cli.tui.app import TopApp
    from jq_cli.tui.screens.confirm import ConfirmScreen
    from jq_cli.tui.widgets.counts_panel import CountsPanel

    job_id = ops.submit("noop", {}, queue="reports")

    async def until(pilot, predicate, what: str) -> None:
        for _ in range(400):
            if predicate():
                return
            await pilot.pause(0.05)
        raise AssertionError(f"timed out waiting for {what}")

    def paused() -> bool:
        return "reports" in store.queue_paused()

    async def scenario() -> None:
        with Client(settings, actor=Actor.local("tui")) as app_ops:
            app = TopApp(app_ops, refresh=0.2)
            async with app.run_test(size=(120, 40)) as pilot:
                await until(pilot, lambda: app.snapshot and app.snapshot.jobs, "the jobs")
                assert app.selected_job_id() == job_id
                await pilot.press("P")  # the selected job's queue
                await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
                await pilot.press("n")
                await until(pilot, lambda: not isinstance(app.screen, ConfirmScreen), "no")
                assert not paused()
                await pilot.press("P")
                await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
                await pilot.press("y")
                await until(pilot, paused, "the pause")
                panel = app.dashboard.query_one(CountsPanel)
                await until(
                    pilot, lambda: "reports 1 paused" in panel.render().plain, "the paused mark"
                )
                await pilot.press("P")
                await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
                assert app.screen.question.startswith("Resume queue reports")
                await pilot.press("y")
                await until(pilot, lambda: not paused(), "the resume")

    asyncio.run(scenario())
    actions = [r["action"] for r in store.audit_list()]
    assert actions == ["queue.resume", "queue.pause"]
    assert {r["actor_kind"] for r in store.audit_list()} == {"tui"}
