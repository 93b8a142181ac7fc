"""The CLI contract for scripts: output formats, plain output off a terminal, NO_COLOR, and one
exit code per outcome, the same for every command."""

from __future__ import annotations

import json
import os
import pty
import subprocess

from conftest import JQ


def _jobs(ops, n=3):
    return [ops.submit("noop", {"n": i}) for i in range(n)]


def test_list_off_a_terminal_is_tab_separated_with_iso_timestamps(run_cli, ops, store):
    ids = _jobs(ops)
    result = run_cli("list")
    assert result.returncode == 0
    header, *lines = result.stdout.splitlines()
    assert header.split("\t")[:5] == ["ID", "TYPE", "QUEUE", "PRIORITY", "STATE"]
    assert [int(line.split("\t")[0]) for line in lines] == ids[::-1]
    created = lines[0].split("\t")[header.split("\t").index("CREATED")]
    assert created == store.job_get(ids[-1])["created_at"].isoformat()
    assert "\x1b[" not in result.stdout  # no colour codes


def test_wide_adds_columns(run_cli, ops):
    _jobs(ops, 1)
    narrow = run_cli("list").stdout.splitlines()[0].split("\t")
    wide = run_cli("list", "-o", "wide").stdout.splitlines()[0].split("\t")
    assert set(narrow) < set(wide) and {"RUN AT", "WORKER"} <= set(wide) - set(narrow)


def test_json_jsonl_and_name_formats(run_cli, ops):
    ids = _jobs(ops)
    as_json = json.loads(run_cli("list", "-o", "json").stdout)
    assert [j["id"] for j in as_json] == ids[::-1]
    assert json.loads(run_cli("list", "--json").stdout) == as_json
    lines = run_cli("list", "-o", "jsonl").stdout.splitlines()
    assert [json.loads(line)["id"] for line in lines] == ids[::-1]
    assert run_cli("list", "-o", "name").stdout.split() == [str(i) for i in ids[::-1]]
    assert run_cli("dlq", "list", "-o", "name").stdout == ""


def test_schedule_list_by_name(run_cli, ops):
    ops.schedule_add("nightly", "noop", "0 3 * * *")
    assert run_cli("schedule", "list", "-o", "name").stdout == "nightly\n"


def test_json_and_another_output_format_disagree(run_cli):
    result = run_cli("list", "--json", "-o", "wide")
    assert result.returncode == 2 and "disagree" in result.stderr


def _in_a_terminal(args: list[str], env: dict[str, str]) -> str:
    """Run jq with its stdout on a pseudo-terminal; returns what it printed."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [JQ, *args], stdout=follower, stderr=subprocess.PIPE, env={**env, "COLUMNS": "160"}
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
    proc.wait(30)
    os.close(leader)
    return b"".join(chunks).decode(errors="replace")


def test_a_terminal_gets_a_coloured_table_unless_no_color(env, ops):
    ops.submit("noop")
    coloured = _in_a_terminal(["list"], {**env, "TERM": "xterm-256color"})
    assert "┃" in coloured or "│" in coloured  # a drawn table, not tab-separated lines
    assert "\x1b[" in coloured
    plain = _in_a_terminal(["list"], {**env, "TERM": "xterm-256color", "NO_COLOR": "1"})
    assert "│" in plain or "┃" in plain
    assert "\x1b[3" not in plain and "\x1b[1;3" not in plain  # no foreground colours


def test_exit_codes_one_per_outcome(run_cli, ops, env):
    assert run_cli("list").returncode == 0  # 0: success, an empty list too
    done = ops.submit("noop")
    ops.cancel([done])
    assert (
        run_cli("cancel", str(done)).returncode == 1
    )  # 1: the operation failed (cancelled already)
    assert run_cli("submit", "noop", "--priority", "urgent").returncode == 2  # 2: bad input
    assert (
        run_cli("list", extra_env={"JQ_DATABASE_URL": "postgresql://localhost:1/jq"}).returncode
        == 3
    )
    assert run_cli("show", "424242").returncode == 4  # 4: not found
    assert (
        run_cli("purge", "--state", "cancelled", input="").returncode == 5
    )  # 5: refused, no terminal
    assert ops.get(done)["state"] == "cancelled"  # ... and nothing was deleted


def test_help_exit_codes_lists_every_code(run_cli):
    result = run_cli("help", "exit-codes")
    assert [line.split()[0] for line in result.stdout.splitlines()] == [
        "0",
        "1",
        "2",
        "3",
        "4",
        "5",
        "6",
    ]
    assert json.loads(run_cli("help", "exit-codes", "--json").stdout)["5"].startswith("refused")


def test_shell_completion_is_available(env):
    # `--show-completion` names the shell it finds among its parent processes (a following `bash`
    # is not read), so run it from bash as a user would: under a runner whose parents hold no shell,
    # calling jq directly would print "Shell  not supported". The trailing `exit` keeps bash from
    # exec-ing jq in its place.
    result = subprocess.run(
        ["bash", "-c", '"$0" --show-completion; status=$?; exit $status', JQ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "_jq_completion" in result.stdout and "complete " in result.stdout


def test_usage_errors_exit_2(run_cli):
    assert run_cli("list", "--limit", "many").returncode == 2
    assert run_cli("no-such-command").returncode == 2


def test_text_that_looks_like_rich_markup_prints_as_written(run_cli, ops, store, env):
    from jq_cli.store import Finish

    job_id = ops.submit("noop", {"note": "[/b] and [red]x"}, max_retries=0)
    store.job_claim([job_id], "w[/i]", 30)
    store.job_finish([Finish(job_id, 1, "failed", error="boom [/b] [bold]")], "w[/i]")
    shown = run_cli("show", str(job_id))
    assert shown.returncode == 0, shown.stderr
    assert "[/b] and [red]x" in shown.stdout and "boom [/b] [bold]" in shown.stdout
    listed = _in_a_terminal(["list", "--state", "dead"], {**env, "TERM": "xterm-256color"})
    assert "boom [/b] [bold]" in listed and "Traceback" not in listed
