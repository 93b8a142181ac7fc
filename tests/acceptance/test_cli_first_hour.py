"""A new user's first hour: every mistake is one `jq: error:` line with the exit code of
the table, checked before anything is written or started."""

from __future__ import annotations

from jq_cli.client import Client
from jq_cli.store import Finish, Store


def dead(ops: Client, store: Store) -> int:
    job_id = ops.submit("noop", {"n": 1}, max_retries=0)
    (claimed,) = store.job_claim([job_id], "test-worker", 30)
    store.job_finish([Finish(job_id, claimed.run_count, "failed", error="boom")], "test-worker")
    assert store.job_states([job_id]) == {job_id: "dead"}
    return job_id


def one_error_line(stderr: str) -> bool:
    lines = stderr.strip().splitlines()
    return len(lines) == 1 and lines[0].startswith("jq: error:") and "Traceback" not in stderr


def test_dlq_edit_with_a_missing_editor_is_one_line_and_exit_2(ops, store, run_cli):
    job_id = dead(ops, store)
    missing = run_cli(
        "dlq", "edit", str(job_id), extra_env={"EDITOR": "/nonexistent/vim", "VISUAL": ""}
    )
    assert missing.returncode == 2 and one_error_line(missing.stderr), missing.stderr
    assert "/nonexistent/vim" in missing.stderr
    # No $EDITOR and no terminal (the test's pipes): nothing can be chosen, and nothing waits.
    unset = run_cli("dlq", "edit", str(job_id), extra_env={"EDITOR": "", "VISUAL": ""})
    assert unset.returncode == 2 and one_error_line(unset.stderr), unset.stderr
    assert "$EDITOR" in unset.stderr
    assert store.job_states([job_id]) == {job_id: "dead"}


def test_dlq_edit_with_a_failing_editor_is_one_line_and_exit_1(ops, store, run_cli):
    job_id = dead(ops, store)
    failed = run_cli("dlq", "edit", str(job_id), extra_env={"EDITOR": "false", "VISUAL": ""})
    assert failed.returncode == 1 and one_error_line(failed.stderr), failed.stderr
    assert store.job_states([job_id]) == {job_id: "dead"}


# -- names that do not exist: a "did you mean", exit 2, nothing written ----------------------------


def test_submit_to_a_misspelt_queue_is_refused_with_a_did_you_mean(ops, store, run_cli):
    before = store.job_counts()["by_state"]
    typo = run_cli("submit", "noop", "--queue", "defualt")
    assert typo.returncode == 2 and one_error_line(typo.stderr), typo.stderr
    assert "did you mean 'default'?" in typo.stderr and "--new-queue" in typo.stderr
    assert store.job_counts()["by_state"] == before  # nothing written
    # A new queue on purpose is said explicitly, and from then on it exists.
    fresh = run_cli("submit", "noop", "--queue", "batch", "--new-queue")
    assert fresh.returncode == 0, fresh.stderr
    assert store.job_get(int(fresh.stdout))["queue"] == "batch"
    again = run_cli("submit", "noop", "--queue", "batch")
    assert again.returncode == 0, again.stderr


def test_submit_file_with_a_misspelt_queue_writes_nothing(store, run_cli, tmp_path):
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text('{"job_type": "noop"}\n{"job_type": "noop", "queue": "reprots"}\n')
    typo = run_cli("submit", "--file", str(jobs))
    assert typo.returncode == 2 and one_error_line(typo.stderr), typo.stderr
    assert "'reprots'" in typo.stderr
    assert store.job_counts()["by_state"] == {}


def test_queue_pause_resume_and_limit_refuse_a_misspelt_queue(ops, store, run_cli):
    ops.submit("noop", {})  # the default queue now has a job
    for args in (["pause"], ["resume"], ["limit", "--concurrency", "2"]):
        typo = run_cli("queue", args[0], "defualt", *args[1:])
        assert typo.returncode == 2 and one_error_line(typo.stderr), (args, typo.stderr)
        assert "did you mean 'default'?" in typo.stderr
    assert store.queue_rows() == [] and store.limit_rows() == []  # nothing written
    # Set a queue up before its first job, on purpose.
    paused = run_cli("queue", "pause", "nightly", "--new-queue")
    assert paused.returncode == 0, paused.stderr
    assert run_cli("queue", "resume", "nightly").returncode == 0
    assert run_cli("queue", "pause", "default").returncode == 0


def test_list_with_an_unknown_queue_or_type_says_so_instead_of_printing_nothing(ops, run_cli):
    ops.submit("send_email", {"to": "a@example.com", "subject": "s", "body": "b"})
    typo = run_cli("list", "--type", "sendmail")
    assert typo.returncode == 2 and one_error_line(typo.stderr), typo.stderr
    assert "did you mean 'send_email'?" in typo.stderr
    queue = run_cli("list", "--queue", "default,defualt")
    assert queue.returncode == 2 and "did you mean 'default'?" in queue.stderr
    fine = run_cli("list", "--type", "send_email", "--queue", "default")
    assert fine.returncode == 0 and "send_email" in fine.stdout


# -- a count confirmed is the count acted on; one job is "1 job" ---------------------------------


def test_purge_after_its_count_deletes_no_job_that_finished_since(ops, store):
    first = dead(ops, store)
    count, cutoff = ops.purge_count(state="dead")
    assert count == 1
    later = dead(ops, store)  # dies while the operator reads the question
    deleted = ops.purge(state="dead", finished_by=cutoff, at_most=count)
    assert deleted == 1 and store.job_states([first, later]) == {later: "dead"}


def test_messages_count_one_job_in_the_singular(ops, store, run_cli):
    ops.submit("noop", {})
    cancel = run_cli("cancel", "--state", "queued", "--dry-run")
    assert cancel.returncode == 0 and cancel.stdout.strip() == "would cancel 1 job", cancel
    dead(ops, store)
    purge = run_cli("dlq", "purge", "--yes")
    assert purge.returncode == 0 and purge.stdout.strip() == "deleted 1 dead job", purge
