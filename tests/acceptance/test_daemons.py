"""The daemons as systemd runs them: sd_notify over a real datagram socket, Prometheus metrics,
SIGHUP reloads, and the log formats (text, journald, JSON)."""

from __future__ import annotations

import json
import signal
import socket
import urllib.request
from pathlib import Path

import pytest

from conftest import listen_on_free_port, wait_for


class NotifySocket:
    """A real AF_UNIX datagram socket standing in for systemd's $NOTIFY_SOCKET."""

    def __init__(self, path: Path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.messages: list[str] = []

    def read(self) -> list[str]:
        while True:
            try:
                self.messages.extend(self.sock.recv(4096).decode().splitlines())
            except TimeoutError:
                return self.messages

    def wait_for(self, line: str, timeout: float = 20) -> list[str]:
        return wait_for(
            lambda: any(m.startswith(line) for m in self.read()) and self.messages,
            timeout,
            what=f"{line!r} on the notify socket",
        )

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify(tmp_path):
    n = NotifySocket(tmp_path / "notify.sock")
    yield n
    n.close()


@pytest.mark.parametrize("daemon", ["worker", "scheduler"])
def test_daemon_speaks_sd_notify_ready_watchdog_status_and_stopping(daemon, spawn, notify):
    proc = spawn(daemon, extra_env={"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "2000000"})
    notify.wait_for("READY=1")
    notify.wait_for("WATCHDOG=1")
    assert any(m.startswith("STATUS=") for m in notify.messages)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    notify.wait_for("STOPPING=1", timeout=5)
    assert notify.messages.index("READY=1") < notify.messages.index("STOPPING=1")


def test_worker_without_notify_socket_still_runs_and_exits_0(ops, spawn, tmp_path):
    # That nothing is sent without NOTIFY_SOCKET is tests/unit/test_sdnotify.py's to show.
    proc = spawn("worker")
    job_id = ops.submit("noop")
    wait_for(lambda: ops.get(job_id)["state"] == "completed", 20, what="job completed")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0


def _scrape(port: int) -> str:
    """The metrics text, or "" while the daemon has not opened its port yet."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return response.read().decode()
    except OSError:
        return ""


def _sample(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        named = line.startswith(name + "{") or line.startswith(name + " ")
        if named and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_worker_metrics_count_started_and_finished_jobs_by_state(ops, spawn):
    _, port = listen_on_free_port(lambda p: spawn("worker", "--metrics-port", str(p)), _scrape)
    ids = [ops.submit("noop") for _ in range(3)]
    ids.append(
        ops.submit(
            "send_email",
            {"to": "a@b.co", "subject": "s", "body": "b", "failure_rate": 1},
            max_retries=0,
        )
    )
    wait_for(
        lambda: all(ops.get(i)["state"] in ("completed", "dead") for i in ids),
        20,
        what="jobs finished",
    )
    expected = {
        ("jq_jobs_started_total", (("job_type", "noop"), ("queue", "default"))): 3,
        ("jq_jobs_finished_total", (("job_type", "noop"), ("state", "completed"))): 3,
        ("jq_jobs_finished_total", (("job_type", "send_email"), ("state", "dead"))): 1,
        ("jq_job_duration_seconds_count", (("job_type", "noop"),)): 3,
        ("jq_job_queue_wait_seconds_count", (("job_type", "noop"),)): 3,
    }

    def samples(text: str) -> dict:
        return {key: _sample(text, key[0], **dict(key[1])) for key in expected}

    # The worker counts a job in its metrics just after committing its outcome, so the last job's
    # figures may trail its state in Postgres by a moment: wait for them all, then compare.
    text = wait_for(
        lambda: (t := _scrape(port)) and samples(t) == expected and t,
        10,
        what=lambda: f"the metrics to count every job; last scrape: {samples(_scrape(port))}",
    )
    assert samples(text) == expected
    assert 'jq_build_info{role="worker"' in text


def test_leading_scheduler_metrics_show_queue_depth_and_leadership(ops, spawn):
    for priority in ("high", "low", "low"):
        ops.submit("noop", priority=priority, queue="reports")  # no worker consumes "reports"
    _, port = listen_on_free_port(lambda p: spawn("scheduler", "--metrics-port", str(p)), _scrape)

    def figures(text: str) -> tuple[float, float, float, float]:
        return (
            _sample(text, "jq_jobs", state="queued", priority="low"),
            _sample(text, "jq_jobs", state="queued", priority="high"),
            _sample(text, "jq_jobs", state="queued", priority="all"),
            _sample(text, "jq_scheduler_leader"),
        )

    # The gauges are cleared and set again one by one every few seconds: a scrape may fall between
    # two of them, so wait for a scrape that shows them all.
    wait_for(
        lambda: figures(_scrape(port)) == (2, 1, 3, 1),
        20,
        what=lambda: f"queue depth gauges and leadership; last scrape: {figures(_scrape(port))}",
    )


def test_sighup_rereads_the_config_file_and_changes_concurrency(ops, spawn, tmp_path):
    config = tmp_path / "jq.env"
    config.write_text("JQ_WORKER_CONCURRENCY=2\n")
    proc = spawn("worker", "--config", str(config), "--name", "hup")

    def concurrency():
        workers = ops.stats()["workers"] or []
        return next((w["concurrency"] for w in workers if w["name"] == "hup"), None)

    wait_for(lambda: concurrency() == 2, 20, what="worker heartbeat with concurrency 2")
    config.write_text("JQ_WORKER_CONCURRENCY=5\nJQ_LOG_LEVEL=DEBUG\n")
    proc.send_signal(signal.SIGHUP)
    wait_for(lambda: concurrency() == 5, 20, what="concurrency 5 after SIGHUP")
    job_id = ops.submit("noop")
    wait_for(lambda: ops.get(job_id)["state"] == "completed", 20, what="job completed after reload")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    err = proc.stderr.read()
    assert "event=settings_reloaded" in err and "concurrency=5" in err


def test_worker_with_a_missing_config_file_exits_2(run_cli, tmp_path):
    result = run_cli("worker", "--config", str(tmp_path / "absent.env"))
    assert result.returncode == 2
    assert "no such file" in result.stderr


def test_json_log_format_writes_one_json_object_per_line(ops, spawn):
    proc = spawn("worker", "--log-format", "json", "--name", "jsonlog")
    job_id = ops.submit(
        "send_email",
        {"to": "a@b.co", "subject": "s", "body": "b", "failure_rate": 1},
        max_retries=0,
    )
    wait_for(lambda: ops.get(job_id)["state"] == "dead", 20, what="job dead")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    lines = [json.loads(line) for line in proc.stderr.read().splitlines() if line.strip()]
    events = {line.get("event") for line in lines}
    assert {"worker_started", "job_dead", "worker_stopped"} <= events
    dead = next(line for line in lines if line.get("event") == "job_dead")
    assert dead["job"] == str(job_id) and dead["level"] == "info" and dead["logger"] == "jq.worker"


def test_under_journald_lines_carry_a_priority_prefix_and_no_timestamp(ops, spawn):
    proc = spawn("worker", "--name", "journald", extra_env={"JOURNAL_STREAM": "8:12345"})
    wait_for(
        lambda: any(w["name"] == "journald" for w in ops.stats()["workers"] or []),
        20,
        what="worker heartbeat",
    )
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    lines = [line for line in proc.stderr.read().splitlines() if line.strip()]
    started = next(line for line in lines if "event=worker_started" in line)
    assert started.startswith("<6>jq.worker: event=worker_started")


def test_unknown_log_format_is_refused(run_cli):
    result = run_cli("worker", "--log-format", "xml")
    assert result.returncode == 2
    assert "--log-format" in result.stderr
