"""A new user's first hour (issue 22): every mistake is one `jq: error:` line with the exit code of
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
