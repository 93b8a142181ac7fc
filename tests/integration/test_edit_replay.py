"""Edit, replay, act by filter: retry with a corrected payload, `jq dlq edit` in
$EDITOR, `jq replay`, cancel and the dead-letter commands by filter with --dry-run, `jq show`'s
folded tracebacks and timeline, and `p` in `jq top` purging exactly what the filter shows."""

from __future__ import annotations

import asyncio
import json

from jq_cli.client import Client
from jq_cli.model.audit import Actor
from jq_cli.store import Finish, Store

EMAIL = {"to": "ops@example.com", "subject": "hello", "body": "world"}


def fail(store: Store, job_id: int, *, retry_in: float | None = None, tb: str | None = None):
    """One attempt of a queued job that fails; with retry_in the job goes on retrying."""
    claimed = store.job_claim([job_id], "test-worker", 30)
    assert [c.id for c in claimed] == [job_id]
    run = claimed[0].run_count
    store.job_finish(
        [Finish(job_id, run, "failed", error=f"boom {run}", traceback=tb, retry_in=retry_in)],
        "test-worker",
    )


def dead(ops: Client, store: Store, job_type: str = "noop", payload=None, **kw) -> int:
    job_id = ops.submit(job_type, {"n": 1} if payload is None else payload, max_retries=0, **kw)
    fail(store, job_id)
    assert store.job_states([job_id]) == {job_id: "dead"}
    return job_id


def completed(ops: Client, store: Store, **kw) -> int:
    job_id = ops.submit("noop", {"n": 1}, **kw)
    claimed = store.job_claim([job_id], "test-worker", 30)
    store.job_finish([Finish(job_id, claimed[0].run_count, "completed")], "test-worker")
    return job_id


def test_retry_with_a_corrected_payload_is_validated_like_a_submit(ops, store, run_cli):
    job_id = dead(ops, store, "send_email", {**EMAIL, "subject": "typo"})
    bad = run_cli("retry", str(job_id), "--payload", json.dumps({**EMAIL, "to": "nope"}))
    assert bad.returncode == 2 and bad.stderr.startswith("jq: error:") and "to" in bad.stderr
    assert store.job_get(job_id)["payload"]["subject"] == "typo"  # nothing written
    assert store.job_states([job_id]) == {job_id: "dead"}

    good = run_cli("retry", str(job_id), "--payload", json.dumps(EMAIL))
    assert good.returncode == 0, good.stderr
    job = store.job_get(job_id)
    assert job["state"] == "queued" and job["payload"] == EMAIL and job["attempts"] == 0
    assert len(job["attempt_history"]) == 1  # the history is kept
    (row,) = store.audit_list(action="job.edit")
    assert row["target"] == str(job_id) and row["detail"]["old_payload"]["subject"] == "typo"

    again = run_cli("retry", str(job_id), "--payload", json.dumps(EMAIL))
    assert again.returncode == 1 and "only a dead job" in again.stderr
    both = run_cli("retry", str(job_id), str(job_id + 1), "--payload", "{}")
    assert both.returncode == 2


def test_dlq_edit_opens_the_payload_in_the_editor_and_retries_it(ops, store, run_cli, tmp_path):
    job_id = dead(ops, store)
    editor = tmp_path / "edit.sh"
    editor.write_text('#!/bin/sh\nsed -i \'s/"n": 1/"n": 7/\' "$1"\n')
    editor.chmod(0o755)
    done = run_cli("dlq", "edit", str(job_id), extra_env={"EDITOR": str(editor), "VISUAL": ""})
    assert done.returncode == 0, done.stderr
    assert store.job_get(job_id)["payload"] == {"n": 7}
    assert store.job_states([job_id]) == {job_id: "queued"}

    untouched = dead(ops, store)
    same = run_cli("dlq", "edit", str(untouched), extra_env={"EDITOR": "true", "VISUAL": ""})
    assert same.returncode == 0 and "unchanged" in same.stdout
    assert store.job_states([untouched]) == {untouched: "dead"}

    broken = tmp_path / "break.sh"
    broken.write_text('#!/bin/sh\necho "not json" > "$1"\n')
    broken.chmod(0o755)
    bad = run_cli("dlq", "edit", str(untouched), extra_env={"EDITOR": str(broken), "VISUAL": ""})
    assert bad.returncode == 2 and bad.stderr.startswith("jq: error: the edited payload")
    assert store.job_states([untouched]) == {untouched: "dead"}


def test_replay_runs_a_finished_job_again_linked_both_ways(ops, store, run_cli):
    original = completed(ops, store)
    done = run_cli("replay", str(original))
    assert done.returncode == 0, done.stderr
    replay = int(done.stdout)
    assert replay != original
    new, old = store.job_get(replay), store.job_get(original)
    assert new["state"] == "queued" and new["payload"] == old["payload"]
    assert new["replay_of"] == original and old["state"] == "completed"
    assert ops.get(original)["replays"] == [replay]

    def field(job_id: int, name: str) -> str:
        shown = run_cli("show", str(job_id))
        assert shown.returncode == 0, shown.stderr
        (line,) = [ln for ln in shown.stdout.splitlines() if ln.strip().startswith(name)]
        return line.split(None, len(name.split()))[-1].strip()

    assert field(replay, "replay of") == str(original)
    assert field(original, "replays") == str(replay)
    (row,) = store.audit_list(action="job.replay")
    assert row["target"] == str(original) and row["detail"] == {"replay": replay}

    refused = run_cli("replay", str(replay))  # queued, not finished
    assert refused.returncode == 1 and "only a finished job" in refused.stderr


def test_cancel_by_filter_with_a_dry_run(ops, store, run_cli):
    target = [ops.submit("noop", {"n": n}, queue="other") for n in range(3)]
    kept = [ops.submit("noop", {}, queue="default"), ops.submit("send_email", EMAIL, queue="other")]
    args = ("cancel", "--state", "queued", "--type", "noop", "--queue", "other")
    dry = run_cli(*args, "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout) == {"dry_run": True, "count": 3, "ids": target}
    assert set(store.job_states(target).values()) == {"queued"}
    assert store.audit_list() == []

    done = json.loads(run_cli(*args, "--json").stdout)
    assert sorted(done["ids"]) == target
    assert set(store.job_states(target).values()) == {"cancelled"}
    assert set(store.job_states(kept).values()) == {"queued"}
    (row,) = store.audit_list()
    assert row["action"] == "job.cancel" and row["jobs"] == 3
    assert row["filter"] == {"state": "queued", "type": "noop", "queue": "other"}

    assert run_cli("cancel", "--state", "completed").returncode == 2
    assert run_cli("cancel", "1", "--state", "queued").returncode == 2


def test_dead_letter_commands_take_filters_and_dry_run(ops, store, run_cli):
    other = [dead(ops, store, queue="other") for _ in range(2)]
    default = [dead(ops, store), dead(ops, store, "send_email", EMAIL)]
    dry = json.loads(
        run_cli("dlq", "retry", "--all", "--queue", "other", "--dry-run", "--json").stdout
    )
    # Counts, not ids: a bulk action works in bounded batches whatever it matches.
    assert dry == {"dry_run": True, "count": 2}
    assert set(store.job_states(other).values()) == {"dead"}
    done = json.loads(run_cli("dlq", "retry", "--all", "--queue", "other", "--json").stdout)
    assert done == {"count": 2} and set(store.job_states(other).values()) == {"queued"}
    assert set(store.job_states(default).values()) == {"dead"}  # the filter held

    dry = json.loads(run_cli("dlq", "purge", "--type", "send_email", "--dry-run", "--json").stdout)
    assert dry == {"dry_run": True, "count": 1}  # the key only with --dry-run
    assert len(store.job_states(default)) == 2
    gone = json.loads(run_cli("dlq", "purge", "--type", "send_email", "--yes", "--json").stdout)
    assert gone["count"] == 1 and list(store.job_states(default)) == [default[0]]
    actions = [(r["action"], r["jobs"], r["filter"]) for r in store.audit_list()]
    assert actions == [
        ("job.purge", 1, {"state": "dead", "type": "send_email"}),
        ("job.retry", 2, {"state": "dead", "queue": "other"}),
    ]


def test_show_prints_every_attempts_error_and_folds_tracebacks(ops, store, run_cli):
    job_id = ops.submit("noop", {}, max_retries=1)
    tracebacks = {
        run: "\n".join(f"frame {run}.{i}" for i in range(20)) + f"\nValueError: boom {run}"
        for run in (1, 2)
    }
    fail(store, job_id, retry_in=0.0, tb=tracebacks[1])
    store._run("UPDATE jobs SET state = 'queued' WHERE id = %s", (job_id,))  # as promoted
    fail(store, job_id, tb=tracebacks[2])
    assert run_cli("retry", str(job_id)).returncode == 0

    text = run_cli("show", str(job_id))
    assert text.returncode == 0, text.stderr
    out = text.stdout
    for run in (1, 2):
        assert f"boom {run}" in out
        assert f"attempt {run} traceback" in out and f"ValueError: boom {run}" in out
        assert f"frame {run}.19" in out and f"frame {run}.0\n" not in out  # folded
    assert "lines folded" in out
    # The timeline, derived from the attempts, timestamps and the audit log.
    timeline = out[out.index("timeline") :]
    for event in (
        "submitted",
        "attempt 1 on test-worker",
        "attempt 1 failed",
        "retrying",
        "attempt 2 failed",
        "dead",
        "retry by ",
    ):
        assert event in timeline, event
    whole = json.loads(run_cli("show", str(job_id), "--json").stdout)
    assert [a["traceback"] for a in whole["attempt_history"]] == [tracebacks[1], tracebacks[2]]


def test_top_purges_only_what_the_filter_shows(settings, ops, store):
    from jq_cli.tui.app import TopApp
    from jq_cli.tui.screens.confirm import ConfirmScreen
    from jq_cli.tui.widgets.jobs_panel import FilterInput

    shown = [completed(ops, store, queue="other") for _ in range(2)]
    hidden = [completed(ops, store) for _ in range(2)]

    async def until(pilot, predicate, what: str) -> None:
        for _ in range(400):
            if predicate():
                return
            await pilot.pause(0.05)
        raise AssertionError(f"timed out waiting for {what}")

    async def scenario() -> None:
        with Client(settings, actor=Actor.local("tui")) as app_ops:
            app = TopApp(app_ops, refresh=0.2)
            async with app.run_test(size=(120, 40)) as pilot:
                await until(pilot, lambda: app.snapshots, "the first refresh")
                await pilot.press("slash")
                app.screen.query_one(FilterInput).value = "state:completed queue:other"
                await pilot.press("enter")
                await until(
                    pilot,
                    lambda: app.snapshot and {j["id"] for j in app.snapshot.jobs} == set(shown),
                    "the filtered jobs",
                )
                await pilot.press("p")
                await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
                assert app.screen.question.startswith("Delete 2 completed queue:other jobs")
                await pilot.press("y")
                await until(pilot, lambda: not store.job_states(shown), "the purge")

    asyncio.run(scenario())
    assert sorted(store.job_states(hidden)) == hidden
    (row,) = store.audit_list()
    assert row["actor_kind"] == "tui" and row["jobs"] == 2 and row["filter"]["queue"] == "other"
