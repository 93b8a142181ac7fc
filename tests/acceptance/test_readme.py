"""Every example in the README and in docs/ runs as written and does what its text says.

Each fenced shell (or schedule-file) block of README.md and docs/**/*.md is preceded by a marker:
`<!-- runnable: NAME -->` for an example this test runs, in the test's own namespace, with the
commands as written (`jq` and `jobq` are this package's, first on PATH as after
`. .venv/bin/activate`, the JSON processor after them), and checks against what the text
claims; or `<!-- example: NAME -->` for one that cannot run here, with the reason in
NOT_RUNNABLE below. A block with neither marker fails the test, so a new example must choose.
Names are unique across all the files, so that a check names its block alone.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from conftest import wait_for

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
# The README and every page of the documentation site; the generated CLI reference holds only
# `text` synopses, which this test leaves alone like any other fence that is not shell.
SOURCES = [README, *sorted((ROOT / "docs").rglob("*.md"))]
BIN = Path(sys.executable).parent
FENCE = re.compile(r"<!-- (runnable|example): ([\w-]+) -->\n```(\w+)\n(.*?)\n```", re.S)

# The examples that cannot run inside a test, and why.
NOT_RUNNABLE = {
    "make": "`make test` runs this very suite and `make run` is `jq demo`, which test_demo.py runs",
    "serve": "`pip install` needs a package registry, and `--host 0.0.0.0` listens beyond "
    "loopback; test_http.py runs a real `jq serve` on 127.0.0.1 instead",
    "curl": "a transcript with a placeholder key (`KEY=...`) and abbreviated answers (`...`); "
    "test_http.py checks each of these requests and their answers",
    "web": "`pip install` needs a package registry and `--host 0.0.0.0` listens beyond loopback; "
    "test_tui_web.py serves `jq top --web` on 127.0.0.1 and drives it in headless Chromium",
    "cluster-env": "an environment file for hosts named mq1..3 and db1..2; `make cluster` runs "
    "exactly these settings (comma-separated broker URLs, a multi-host PostgreSQL URL) in its "
    "network namespaces, and test_cluster_quick.py a subset",
    "rabbit-cluster": "clusters three RabbitMQ nodes on other hosts; `make cluster` does the same "
    "with three private nodes in network namespaces",
    "limits": "a synopsis (`[--key tenant]`); test_limits.py sets queue limits from the CLI and "
    "checks from the attempts' timestamps that three workers never exceed them",
    "systemd": "needs root, systemd and an install in /opt/jq; test_daemons.py checks sd_notify, "
    "SIGTERM and SIGHUP of the daemons",
}


@dataclass
class Block:
    kind: str  # runnable | example
    name: str
    lang: str
    text: str
    source: str = ""  # the file, relative to the repository


def blocks() -> list[Block]:
    return [
        Block(*m.groups(), source=str(path.relative_to(ROOT)))
        for path in SOURCES
        for m in FENCE.finditer(path.read_text())
    ]


def commands(text: str) -> list[str]:
    """The block's commands: one per line, backslash continuations joined, comments kept (the
    shell drops them), blank lines skipped."""
    out: list[str] = []
    pending = ""
    for line in text.splitlines():
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        if full and not full.startswith("#"):
            out.append(full)
    return out


@dataclass
class Ran:
    command: str
    result: subprocess.CompletedProcess


class Shell:
    """Runs an example's commands with bash, one at a time (so that each output can be checked),
    in a folder of its own; a command ending in `&` is started in the background and stopped at
    the end, as the shell that typed it would on exit."""

    def __init__(self, env: dict[str, str], cwd: Path):
        json_tool = shutil.which("jq", path="/usr/local/bin:/usr/bin:/bin")
        path = [str(BIN)] + ([str(Path(json_tool).parent)] if json_tool else []) + ["/bin"]
        self.env = {**env, "PATH": ":".join(dict.fromkeys(path))}
        self.cwd = cwd
        self.background: list[subprocess.Popen] = []

    def run(self, text: str) -> list[Ran]:
        ran = []
        for command in commands(text):
            line = re.sub(r"\s+#.*$", "", command)  # a trailing comment (none holds a '#')
            if line.endswith("&"):
                self.background.append(
                    subprocess.Popen(
                        ["bash", "-c", "exec " + line[:-1]],
                        env=self.env,
                        cwd=self.cwd,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.PIPE,
                    )
                )
                continue
            result = subprocess.run(
                ["bash", "-o", "pipefail", "-c", line],
                env=self.env,
                cwd=self.cwd,
                capture_output=True,
                text=True,
                timeout=120,
            )
            ran.append(Ran(line, result))
        return ran

    def stop(self) -> None:
        for proc in self.background:
            proc.terminate()
        for proc in self.background:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture
def shell(env, tmp_path):
    sh = Shell(env, tmp_path)
    yield sh
    sh.stop()


def block(name: str) -> Block:
    found = [b for b in blocks() if b.name == name]
    assert len(found) == 1, f"example block {name!r}: {len(found)} found"
    return found[0]


def ok(ran: Ran) -> str:
    assert ran.result.returncode == 0, (ran.command, ran.result.stdout, ran.result.stderr)
    return ran.result.stdout


# -- the markers --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shell_example_is_marked_runnable_or_says_why_not(path):
    text = path.read_text()
    fences = re.findall(r"^```(sh|console|bash)$", text, re.M)
    marked = [b for b in blocks() if b.source == str(path.relative_to(ROOT))]
    assert len(marked) >= len(fences)
    for b in marked:
        if b.kind == "runnable":
            assert b.name in CHECKS, f"runnable block {b.name!r} has no check in this test"
        else:
            assert b.name in NOT_RUNNABLE, (
                f"block {b.name!r}: say in NOT_RUNNABLE why it cannot run"
            )
    unmarked = len(re.findall(r"(?<!-->\n)^```(?:sh|console|bash)$", text, re.M))
    assert unmarked == 0, "a shell example without a <!-- runnable/example: NAME --> marker"


def test_example_names_are_unique_and_each_check_and_reason_has_its_block():
    names = [b.name for b in blocks()]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    # A check or a reason whose block was moved away or renamed would pass unnoticed.
    assert set(CHECKS) | set(NOT_RUNNABLE) == set(names)


# -- the runnable examples ----------------------------------------------------------------------


def check_by_hand(shell: Shell, ops) -> None:
    """The quick start by hand: a worker and a scheduler in the background, two submits (the
    second waits and completes), a list, `jq show 1` and `jq stats`."""
    submit, wait, listed, shown, stats = shell.run(block("by-hand").text)
    first = int(ok(submit))
    assert first == 1  # the first job of a fresh namespace, as `jq show 1` assumes
    assert re.fullmatch(r"2 completed\n", ok(wait))
    rows = ok(listed).splitlines()
    assert rows[0].startswith("ID\tTYPE") and {r.split("\t")[0] for r in rows[1:]} == {"1", "2"}
    assert "send_email" in ok(shown) and "a@example.com" in shown.result.stdout
    assert "completed" in ok(stats)
    wait_for(lambda: ops.get(1)["state"] == "completed", 30, what="the email sent")


def check_listings(shell: Shell, ops) -> None:
    """`jq list --state dead -o name | xargs jq retry` retries every dead job listed; `jobq list
    -o jsonl | jq -c 'select(.attempts > 1)'` gives the JSON processor our lines; the any-of
    filter lists jobs in any of the states."""
    dead = [
        ops.submit("send_email", {"to": "a@example.com", "subject": "s", "body": "b"})
        for _ in range(2)
    ]
    once = ops.submit("noop", {})
    cancelled = ops.submit("noop", {})
    ops.cancel([cancelled])
    ops.store._run(
        "UPDATE jobs SET state = 'dead', attempts = 4, finished_at = now() WHERE id = ANY(%s)",
        (dead,),
    )
    # A job back in the queue after two failed attempts: the one the JSON filter picks.
    ops.store._run("UPDATE jobs SET attempts = 2 WHERE id = %s", (once,))
    retry, jsonl, any_of = shell.run(block("listings").text)
    assert sorted(ok(retry).split()) == sorted([str(i) for i in dead] + ["queued"] * 2)
    assert set(ops.store.job_states(dead).values()) == {"queued"}
    picked = [json.loads(line) for line in ok(jsonl).splitlines()]
    # The retried jobs start a fresh set of attempts: only the twice-failed one is picked, one
    # compact line (-c) of the JSON processor.
    assert [j["id"] for j in picked] == [once] and ok(jsonl).count("\n") == 1
    ids = {int(line.split("\t")[0]) for line in ok(any_of).splitlines()[1:]}
    assert ids == {cancelled}


def check_schedules(shell: Shell, ops) -> None:
    """`30 2 * * *` in Europe/Berlin: the next fire times printed are 02:30 Berlin time, and
    `schedule show` names them."""
    added, shown = shell.run(block("schedules").text)
    lines = ok(added).splitlines()
    assert lines[0].startswith("added schedule nightly-report")
    times = [line.strip() for line in lines[1:]]
    assert len(times) == 3 and all(t[11:19] == "02:30:00" for t in times)
    assert "nightly-report" in ok(shown) and "02:30:00" in shown.result.stdout
    schedule = ops.schedule_get("nightly-report")
    berlin = schedule["next_fire_at"].astimezone(ZoneInfo("Europe/Berlin"))
    assert (berlin.hour, berlin.minute) == (2, 30)


def check_schedules_toml(shell: Shell, ops) -> None:
    """The schedule file applies as written, and a second apply changes nothing."""
    (shell.cwd / "schedules.toml").write_text(block("schedules-toml").text + "\n")
    first, again = (
        shell.run("jq schedule apply schedules.toml")[0],
        shell.run("jq schedule apply schedules.toml")[0],
    )
    assert "2 added" in ok(first)
    assert "0 added, 0 updated, 0 removed, 2 unchanged" in ok(again)
    assert {s["name"] for s in ops.schedule_list()} == {"nightly-report", "cache-warm"}


def check_queues(shell: Shell, ops) -> None:
    """`jq queue list` prints the columns its comment names; `pause` makes the queue's row
    paused (what every worker's claim reads) and its jobs stay queued; `resume` undoes it.
    test_queues.py shows with running workers that a paused queue starts nothing."""
    held = [ops.submit("noop", {"n": n}, queue="reports") for n in range(2)]
    listed, paused, resumed = commands(block("queues").text)

    def reports() -> dict:
        return next(q for q in ops.queue_list()["queues"] if q["name"] == "reports")

    header, *rows = ok(shell.run(listed)[0]).splitlines()
    assert header.split("\t")[:7] == [
        "QUEUE", "STATUS", "QUEUED", "BROKER", "RUNNING", "WORKERS", "DONE/S",
    ]  # fmt: skip
    assert any(row.split("\t")[0] == "reports" for row in rows)
    assert ok(shell.run(paused)[0]).strip() == "queue reports paused"
    assert reports()["paused"] and reports()["queued"] == len(held)
    assert set(ops.store.job_states(held).values()) == {"queued"}
    ok(shell.run(resumed)[0])
    assert reports()["paused"] is False


def check_audit(shell: Shell, ops) -> None:
    """`jq audit --since 1d` lists the last day's operator actions, newest first; `--action`
    keeps one action, and `-o json` prints them as one JSON document."""
    ops.cancel([ops.submit("noop", {})])
    ok(shell.run("jq purge --state cancelled --yes")[0])
    recent, purges = shell.run(block("audit").text)
    lines = ok(recent).splitlines()
    assert "job.purge" in lines[1] and "job.cancel" in lines[2]  # newest first, below a header
    rows = json.loads(ok(purges))
    assert [r["action"] for r in rows] == ["job.purge"]


CHECKS: dict[str, Callable[..., None]] = {
    "audit": check_audit,
    "by-hand": check_by_hand,
    "listings": check_listings,
    "queues": check_queues,
    "schedules": check_schedules,
    "schedules-toml": check_schedules_toml,
}


@pytest.mark.timeout(180)
@pytest.mark.parametrize("name", sorted(CHECKS))
def test_readme_example_runs_as_written(name, shell, ops):
    CHECKS[name](shell, ops)
