"""`jq demo`: the whole system in one command, on a fresh machine with the three local services.

It starts a worker and a scheduler as child processes, serves a small page on loopback for the
scrape sample (a fresh machine may have no internet), submits sample jobs of every built-in
type and priority, follows them live until every one is terminal, prints the outcome, and
stops its children.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from jq_cli.cli.output import duration, state_text
from jq_cli.cli.self_command import self_command
from jq_cli.client import Client
from jq_cli.config import load_settings
from jq_cli.model.words import plural

PAGE = b"""<!doctype html><html><head><title>jq demo shop</title></head><body>
<h1>Today's offers</h1>
<ul><li class="offer">Espresso machine - 199 EUR</li><li class="offer">Grinder - 89 EUR</li>
<li class="offer">Milk jug - 12 EUR</li></ul></body></html>"""


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *args: Any) -> None:  # keep the live display clean
        pass


def _serve_page() -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/offers"


def _samples(page_url: str) -> list[dict[str, Any]]:
    email = {"to": "ops@example.com", "subject": "Your report", "body": "It is ready."}
    return [
        {
            "job_type": "send_email",
            "priority": "high",
            "payload": {**email, "subject": "Password reset"},
        },
        {"job_type": "send_email", "priority": "medium", "payload": email},
        # Scripted by attempt number, so that the demo shows the same story every time: one email
        # fails twice and is delivered at its third attempt (retries with back-off), one fails
        # every attempt and ends in the dead-letter queue.
        {
            "job_type": "send_email",
            "priority": "low",
            "max_retries": 2,
            "payload": {**email, "subject": "Flaky newsletter", "fail_attempts": 2},
        },
        {
            "job_type": "send_email",
            "priority": "low",
            "max_retries": 2,
            "payload": {**email, "to": "nobody@invalid.example", "fail_attempts": 1000},
        },
        {
            "job_type": "process_video",
            "priority": "medium",
            "payload": {
                "video_url": "https://videos.example.com/talk.mov",
                "output_format": "webm",
                "duration": 4,
            },
        },
        {
            "job_type": "process_video",
            "priority": "low",
            "payload": {
                "video_url": "https://videos.example.com/intro.avi",
                "output_format": "mp4",
                "duration": 2,
            },
        },
        {
            "job_type": "scrape_website",
            "priority": "high",
            "payload": {"url": page_url, "selector": "li.offer", "timeout": 5},
        },
        {"job_type": "noop", "priority": "low", "delay": 2, "payload": {"note": "delayed by 2 s"}},
    ]


def _spawn(args: list[str], log_path: str) -> subprocess.Popen:
    env = {**os.environ, "JQ_SCRAPE_ALLOW_PRIVATE": "1"}  # the demo page is on loopback
    log = open(log_path, "a", encoding="utf-8")  # noqa: SIM115 (kept open for the child's life)
    return subprocess.Popen(
        [sys.executable, "-m", "jq_cli", *args], env=env, stdout=log, stderr=log
    )


def _view(jobs: list[dict[str, Any]]) -> Table:
    table = Table(title="jq demo: following the sample jobs", header_style="bold")
    for column in ("ID", "TYPE", "PRIORITY", "STATE", "TRIES", "PROGRESS", "DETAIL"):
        # The detail gives way on a narrow terminal; the key columns are never cut.
        table.add_column(column, no_wrap=column != "DETAIL", overflow="ellipsis")
    for job in jobs:
        pct = job.get("progress")
        bar = (
            "-"
            if pct is None
            else f"{'█' * int(pct // 10)}{'░' * (10 - int(pct // 10))} {pct:3.0f}%"
        )
        detail = job.get("last_error") if job["state"] in ("retrying", "dead") else _result(job)
        table.add_row(
            str(job["id"]),
            job["job_type"],
            job["priority"],
            state_text(job["state"]),
            f"{job['attempts']}/{job['max_retries'] + 1}",
            bar,
            Text(_clip(detail, 44)),
        )
    return table


def _outcomes(attempts: list[dict[str, Any]]) -> str:
    """The attempts' outcomes, runs collapsed: "failed×3", "lost, completed"."""
    from itertools import groupby

    runs = [
        (outcome, len(list(group))) for outcome, group in groupby(a["outcome"] for a in attempts)
    ]
    return ", ".join(o if n == 1 else f"{o}×{n}" for o, n in runs) or "-"


def _clip(text: str | None, width: int) -> str:
    text = text or ""
    return text if len(text) <= width else text[: width - 1] + "…"


def _result(job: dict[str, Any]) -> str:
    result = job.get("result")
    if not isinstance(result, dict):
        return ""
    if job["job_type"] == "scrape_website":
        return f"{result.get('count')} matches: " + "; ".join(result.get("matches", []))
    if job["job_type"] == "send_email":
        return f"delivered to {result.get('delivered_to')}"
    if job["job_type"] == "process_video":
        return f"wrote {result.get('output')}"
    return ""


def run_demo(timeout: float = 120.0) -> int:
    settings = load_settings()
    # Piped (CI logs, `make run | tee`), Rich would fold the tables into 80 columns.
    out = Console() if sys.stdout.isatty() else Console(width=120)
    log_path = os.path.join(tempfile.gettempdir(), f"jq-demo-{settings.namespace}.log")
    server, page_url = _serve_page()
    children = [_spawn(["worker", "--concurrency", "4"], log_path), _spawn(["scheduler"], log_path)]
    out.print(
        f"started a worker (pid {children[0].pid}) and a scheduler (pid {children[1].pid}); "
        f"their logs go to {log_path}"
    )
    try:
        with Client(settings) as ops:
            ids = ops.submit_many(_samples(page_url))
            out.print(f"submitted {plural(len(ids), 'sample job')}: {', '.join(map(str, ids))}")
            deadline = time.monotonic() + timeout
            with Live(console=out, refresh_per_second=4, transient=False) as live:
                while True:
                    jobs = [ops.get(i) for i in ids]
                    live.update(_view(jobs))
                    if all(j["state"] in ("completed", "dead", "cancelled") for j in jobs):
                        break
                    if time.monotonic() > deadline:
                        out.print(
                            f"[red]gave up after {timeout:.0f}s: some jobs are not finished[/]"
                        )
                        return 1
                    for child in children:
                        if child.poll() is not None:
                            out.print(
                                f"[red]a child exited early (code {child.returncode}); see {log_path}[/]"
                            )
                            return 1
                    time.sleep(0.25)
            out.print()
            _outcome(out, jobs)
        return 0
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(15)
            except subprocess.TimeoutExpired:
                child.kill()
        server.shutdown()


def _outcome(out: Console, jobs: list[dict[str, Any]]) -> None:
    table = Table(title="outcome", header_style="bold")
    for column in (
        "ID",
        "TYPE",
        "PRIORITY",
        "STATE",
        "ATTEMPTS",
        "RAN FOR",
        "RESULT OR LAST ERROR",
    ):
        table.add_column(column, no_wrap=column != "RESULT OR LAST ERROR", overflow="ellipsis")
    for job in jobs:
        attempts = job["attempt_history"]
        ran = duration(attempts[-1]["started_at"], attempts[-1]["finished_at"]) if attempts else "-"
        detail = _result(job) if job["state"] == "completed" else (job.get("last_error") or "")
        table.add_row(
            str(job["id"]),
            job["job_type"],
            job["priority"],
            state_text(job["state"]),
            _outcomes(attempts),
            ran,
            Text(_clip(detail, 44)),
        )
    out.print(table)
    counts: dict[str, int] = {}
    for job in jobs:
        counts[job["state"]] = counts.get(job["state"], 0) + 1
    # The hints name this program as the shell that ran it can run it: after `make run`, `jq`
    # on PATH is usually the JSON processor (jq_cli/cli/self_command.py).
    jq = self_command()
    out.print(
        "all jobs terminal: "
        + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        + f". Try `{jq} show ID`, `{jq} dlq list`, `{jq} stats`.",
        highlight=False,
        soft_wrap=True,  # one line, however long the path: it is meant to be pasted
    )
    retried = [j["id"] for j in jobs if j["state"] == "completed" and j["attempts"] > 1]
    dead = [j["id"] for j in jobs if j["state"] == "dead"]
    if retried:
        out.print(f"retried, then completed: {', '.join(map(str, retried))}")
    if dead:
        out.print(
            f"in the dead-letter queue ({jq} dlq list): {', '.join(map(str, dead))}",
            highlight=False,
            soft_wrap=True,
        )
