"""A command line a tired operator can trust. One error style (Click's and Typer's
usage errors included) with "did you mean", `--version`, `-o` on show and stats, filters that
mean "any of", idempotency keys that belong to one request, `--wait` that says what it does,
`--import` from the current directory, passing calls to the JSON processor, and displays that
tell the truth."""

from __future__ import annotations

import itertools
import json
import os
import pty
import signal
import subprocess
from pathlib import Path

import pytest

from conftest import JQ, wait_for

EMAIL = {"to": "ops@example.com", "subject": "hello", "body": "world"}


def one_error_line(result: subprocess.CompletedProcess, code: int = 2) -> str:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("jq: error: "), result.stderr
    assert result.stdout == ""
    return lines[0]


# -- one error style ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["show", "abc"], "'ID'"),
        (["list", "-o", "yaml"], "'yaml' is not one of"),
        (["show", "1", "2"], "unexpected extra argument"),
        (["lsit"], "Did you mean 'list'?"),
        (["schedule", "ad"], "Did you mean 'add'?"),
        (["list", "--stat", "dead"], "Did you mean --state?"),
        (["submit", "noop", "--priorty", "high"], "Did you mean --priority?"),
        (["show"], "Missing argument 'ID'"),
    ],
)
def test_usage_errors_of_click_and_typer_are_one_line_exit_2(run_cli, args, fragment):
    assert fragment in one_error_line(run_cli(*args))


def test_did_you_mean_for_states_types_priorities_and_a_payload_file(run_cli, tmp_path, ops):
    assert "did you mean 'completed'?" in one_error_line(run_cli("list", "--state", "complted"))
    assert "did you mean 'send_email'?" in one_error_line(run_cli("submit", "send_emial"))
    assert "did you mean 'high'?" in one_error_line(run_cli("submit", "noop", "--priority", "hihg"))
    payload = tmp_path / "email.json"
    payload.write_text(json.dumps(EMAIL))
    line = one_error_line(run_cli("submit", "send_email", "--payload", str(payload)))
    assert f"did you mean --payload @{payload}?" in line
    assert ops.list_jobs() == []  # nothing was written


def test_version_and_help_exit_0(run_cli):
    from jq_cli import __version__

    result = run_cli("--version")
    assert result.returncode == 0 and __version__ in result.stdout
    assert run_cli().returncode == 0  # no arguments: the help, on stdout
    assert "Commands" in run_cli().stdout


def test_show_and_stats_take_output(run_cli, ops):
    job_id = ops.submit("noop", {"n": 1})
    assert json.loads(run_cli("show", str(job_id), "-o", "json").stdout)["payload"] == {"n": 1}
    assert json.loads(run_cli("stats", "-o", "json").stdout)["by_state"]["queued"] == 1
    assert "disagree" in one_error_line(run_cli("show", str(job_id), "--json", "-o", "table"))


def test_exit_codes_page_lists_the_wait_timeout(run_cli):
    assert "6  --wait gave up" in run_cli("help", "exit-codes").stdout


# -- filters --------------------------------------------------------------------------------------


def test_filters_repeated_or_comma_separated_mean_any_of(run_cli, ops):
    queued = ops.submit("noop", {})
    dead = ops.submit("noop", {}, queue="other")
    cancelled = ops.submit("noop", {}, priority="low")
    ops.cancel([cancelled])
    ops.store._run("UPDATE jobs SET state = 'dead', finished_at = now() WHERE id = %s", (dead,))
    ops.queue_pause("reports")  # a queue that exists with no job (an unknown one is refused)

    def ids(*args: str) -> list[int]:
        result = run_cli("list", *args, "-o", "name")
        assert result.returncode == 0, result.stderr
        return sorted(int(i) for i in result.stdout.split())

    assert ids("--state", "dead", "--state", "cancelled") == [dead, cancelled]
    assert ids("--state", "dead,cancelled") == [dead, cancelled]
    assert ids("--queue", "other,reports") == [dead]
    assert ids("--priority", "low", "--priority", "high") == [cancelled]
    assert ids("--state", "queued,dead", "--queue", "default") == [queued]


def _in_a_terminal(args: list[str], env: dict[str, str], columns: int = 160) -> tuple[str, str]:
    """Run jq with its stdout on a pseudo-terminal: (what it printed, its stderr)."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [JQ, *args], stdout=follower, stderr=subprocess.PIPE, env={**env, "COLUMNS": str(columns)}
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    err = proc.communicate(timeout=30)[1]
    os.close(leader)
    return b"".join(chunks).decode(errors="replace"), err.decode()


def test_a_list_on_a_terminal_says_when_more_pages_exist(env, ops):
    ids = [ops.submit("noop", {}) for _ in range(3)]
    _, err = _in_a_terminal(["list", "--limit", "2"], env)
    assert f"--before {ids[1]}" in err
    _, err = _in_a_terminal(["list", "--limit", "3"], env)
    assert "more exist" not in err


def test_wide_never_cuts_a_type_or_queue_name(env, ops):
    queue = "quarterly-reports-of-the-eu-region"
    ops.submit("process_video", {"video_url": "https://x/a.mov"}, queue=queue)
    ops.store._run("UPDATE jobs SET last_error = %s", ("E" * 200,))
    out, _ = _in_a_terminal(["list", "-o", "wide"], {**env, "NO_COLOR": "1"}, columns=100)
    assert queue in out and "process_video" in out


# -- idempotency keys -----------------------------------------------------------------------------


def test_a_reused_idempotency_key_with_another_request_is_a_conflict(run_cli, ops):
    first = run_cli("submit", "noop", "--payload", '{"a": 1}', "--idempotency-key", "order-42")
    assert first.returncode == 0
    job_id = int(first.stdout)
    same = run_cli("submit", "noop", "--payload", '{ "a" : 1 }', "--idempotency-key", "order-42")
    assert same.returncode == 0 and int(same.stdout) == job_id  # the same request: the first job
    line = one_error_line(
        run_cli(
            "submit", "send_email", "--payload", json.dumps(EMAIL), "--idempotency-key", "order-42"
        ),
        code=1,
    )
    assert f"job {job_id}" in line and "another type" in line
    line = one_error_line(
        run_cli("submit", "noop", "--payload", '{"a": 2}', "--idempotency-key", "order-42"), code=1
    )
    assert f"job {job_id}" in line and "another payload" in line
    assert [j["id"] for j in ops.list_jobs()] == [job_id]


def test_a_bulk_file_reusing_a_key_for_another_request_writes_nothing(run_cli, ops, tmp_path):
    ops.submit("noop", {"a": 1}, idempotency_key="k")
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(
        json.dumps({"job_type": "noop", "payload": {}})
        + "\n"
        + json.dumps({"job_type": "noop", "payload": {"a": 2}, "idempotency_key": "k"})
        + "\n"
    )
    result = run_cli("submit", "--file", str(jobs))
    assert result.returncode == 1 and "idempotency key 'k'" in result.stderr
    assert len(ops.list_jobs()) == 1


# -- --wait ---------------------------------------------------------------------------------------


def test_wait_timeout_has_its_own_exit_code_and_says_the_job_goes_on(run_cli, ops):
    result = run_cli("submit", "noop", "--wait", "--timeout", "0.5")
    assert result.returncode == 6, result.stderr
    job_id = ops.list_jobs()[0]["id"]
    assert f"job {job_id} is queued and goes on" in result.stderr
    assert ops.get(job_id)["state"] == "queued"


def test_wait_on_ctrl_c_says_the_job_goes_on_and_exits_130(spawn, ops):
    proc = spawn("submit", "noop", "--wait")
    wait_for(lambda: ops.list_jobs(), 20, what="the job submitted")
    wait_for(lambda: ops.wait(ops.list_jobs()[0]["id"], timeout=0.2), 5, what="a poll")
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=20)[1]
    err = err.decode() if isinstance(err, bytes) else err
    job_id = ops.list_jobs()[0]["id"]
    assert proc.returncode == 130, err
    assert f"job {job_id} goes on" in err


def test_wait_shows_state_and_progress_on_a_terminal(env, ops, start_worker):
    start_worker()
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [
            JQ,
            "submit",
            "process_video",
            "--payload",
            '{"video_url": "https://x/a.mov", "duration": 2}',
            "--wait",
        ],
        stdout=subprocess.PIPE,
        stderr=follower,
        env=env,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    out = proc.communicate(timeout=60)[0].decode()
    os.close(leader)
    shown = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0 and out.endswith("completed\n")
    assert "running" in shown and "%" in shown and "attempt 1 of 4" in shown


# -- --import -------------------------------------------------------------------------------------


def test_worker_imports_a_module_from_the_current_directory(env, ops, tmp_path):
    (tmp_path / "myjobs.py").write_text(
        "from jq_cli import job\n\n@job('t_here')\ndef here(payload, ctx):\n    return {'ok': 1}\n"
    )
    proc = subprocess.Popen(
        [JQ, "worker", "--import", "myjobs"],
        cwd=tmp_path,
        env={k: v for k, v in env.items() if k != "PYTHONPATH"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(lambda: ops.store.job_type_exists("t_here"), 30, what="t_here registered")
        job_id = ops.submit("t_here", {})
        wait_for(lambda: ops.get(job_id)["state"] == "completed", 30, what="the job done")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)


def test_a_module_not_found_names_the_search_path(run_cli, tmp_path):
    line = one_error_line(run_cli("worker", "--import", "no_such_jobs"))
    assert "not found in the search path" in line and os.getcwd() in line


# -- the JSON processor ---------------------------------------------------------------------------


@pytest.fixture
def stand_in_jq(tmp_path) -> Path:
    """A `jq` on PATH that records its arguments and stdin, standing in for the JSON processor."""
    folder = tmp_path / "bin"
    folder.mkdir()
    script = folder / "jq"
    script.write_text(
        f'#!/bin/sh\nprintf "%s\\n" "$@" > {tmp_path}/args\ncat > {tmp_path}/stdin\nexit 7\n'
    )
    script.chmod(0o755)
    return folder


@pytest.mark.parametrize(
    "args",
    [
        ["-c", "select(.attempts > 1)"],
        ["."],
        [".[0]"],
        [".foo"],
        ['select(.state == "dead")'],
        ["-r", ".id"],
        ["--arg", "x", "1", "$x"],
        ["-s", "length"],
    ],
)
def test_a_json_processor_call_is_handed_over(env, stand_in_jq, tmp_path, args):
    ours = Path(JQ)
    result = subprocess.run(
        [str(ours), *args],
        input='{"id": 1}\n',
        capture_output=True,
        text=True,
        env={**env, "PATH": f"{ours.parent}:{stand_in_jq}:/usr/bin:/bin"},
    )
    assert result.returncode == 7, result.stderr  # the stand-in's code: it ran, with our stdin
    assert (tmp_path / "args").read_text().splitlines() == args
    assert (tmp_path / "stdin").read_text() == '{"id": 1}\n'


def test_our_commands_and_their_typos_are_never_handed_over(env, stand_in_jq, tmp_path):
    ours = Path(JQ)
    path = {**env, "PATH": f"{ours.parent}:{stand_in_jq}:/usr/bin:/bin"}
    typo = subprocess.run([str(ours), "lsit"], capture_output=True, text=True, env=path)
    assert typo.returncode == 2 and "Did you mean 'list'?" in typo.stderr
    listed = subprocess.run(
        [str(ours), "list", "-o", "name"], capture_output=True, text=True, env=path
    )
    assert listed.returncode == 0
    jobq = subprocess.run(
        [str(ours.parent / "jobq"), "-c", "."], capture_output=True, text=True, env=path
    )
    # jobq never passes a call to the JSON processor
    assert jobq.returncode == 2 and "jq: error:" in jobq.stderr
    assert not (tmp_path / "args").exists()


def test_without_another_jq_on_path_a_json_call_says_so(env):
    ours = Path(JQ)
    result = subprocess.run(
        [str(ours), "-c", "."],
        capture_output=True,
        text=True,
        env={**env, "PATH": f"{ours.parent}:/nonexistent"},
    )
    assert result.returncode == 2 and "JSON processor jq, which is not on PATH" in result.stderr


# -- displays that tell the truth -----------------------------------------------------------------


def test_a_finished_job_shows_its_worker_and_a_completed_one_no_current_error(
    run_cli, ops, start_worker, start_scheduler
):
    start_scheduler()  # it brings the retry back when due
    worker = start_worker()
    job_id = ops.submit("send_email", {**EMAIL, "fail_attempts": 1}, max_retries=1)
    wait_for(lambda: ops.get(job_id)["state"] == "completed", 30, what="the retried job done")
    worker.stop()
    job = ops.get(job_id)
    assert job["worker"] == worker.worker.name
    assert job["attempt_history"][0]["error"]  # the first attempt failed
    shown = run_cli("show", str(job_id)).stdout
    line = next(line for line in shown.splitlines() if line.startswith("last error"))
    assert line.split(None, 2)[2].strip() == "-"
    assert f"worker           {worker.worker.name}" in shown or worker.worker.name in shown
    listed = run_cli("list", "-o", "wide").stdout.splitlines()
    header = listed[0].split("\t")
    assert listed[1].split("\t")[header.index("WORKER")] == worker.worker.name


def test_a_requeued_job_shows_no_old_progress(run_cli, ops):
    job_id = ops.submit("noop", {})
    ops.store._run("UPDATE jobs SET progress = 60, attempts = 1 WHERE id = %s", (job_id,))
    shown = run_cli("show", str(job_id)).stdout
    assert (
        next(line for line in shown.splitlines() if line.startswith("progress")).split()[1] == "-"
    )
    listed = run_cli("list").stdout.splitlines()
    header = listed[0].split("\t")
    assert listed[1].split("\t")[header.index("PROGRESS")] == "-"


# -- schedules ------------------------------------------------------------------------------------


def test_schedule_add_and_edit_print_the_next_three_fire_times(run_cli):
    added = run_cli("schedule", "add", "tick", "noop", "--cron", "* * * * * */10")
    assert added.returncode == 0, added.stderr
    times = [line.strip() for line in added.stdout.splitlines()[1:]]
    assert len(times) == 3
    from datetime import datetime

    seconds = [datetime.strptime(t[:19], "%Y-%m-%d %H:%M:%S") for t in times]
    assert all((b - a).total_seconds() == 10 for a, b in itertools.pairwise(seconds))
    edited = run_cli("schedule", "edit", "tick", "--cron", "*/10 * * * * *")
    assert edited.returncode == 0 and len(edited.stdout.splitlines()) == 4
    assert "the sixth field is the seconds" in edited.stderr  # seconds written first: a warning
