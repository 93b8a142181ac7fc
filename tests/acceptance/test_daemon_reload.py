"""SIGHUP reloads both daemons as the units promise (ExecReload=): the scheduler re-reads its
config file and keeps working (it used to die of SIGHUP); the units send it."""

from __future__ import annotations

import signal
from pathlib import Path

from conftest import wait_for

UNITS = Path(__file__).resolve().parents[2] / "daemons"


def test_scheduler_survives_sighup_and_applies_the_new_settings(ops, spawn, tmp_path):
    config = tmp_path / "jq.env"
    config.write_text("JQ_SCHEDULER_INTERVAL=0.2\n")
    proc = spawn("scheduler", "--config", str(config))
    first = ops.submit("noop", delay="0.5s")
    wait_for(lambda: ops.get(first)["state"] == "queued", 20, what="the scheduler to promote a job")
    config.write_text("JQ_SCHEDULER_INTERVAL=0.3\nJQ_LOG_LEVEL=DEBUG\nJQ_NAMESPACE=elsewhere\n")
    proc.send_signal(signal.SIGHUP)
    second = ops.submit("noop", delay="0.5s")
    wait_for(
        lambda: ops.get(second)["state"] == "queued" or proc.poll() is not None,
        20,
        what="a promotion after SIGHUP",
    )
    assert proc.poll() is None, "SIGHUP ended the scheduler"
    assert ops.get(second)["state"] == "queued"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    err = proc.stderr.read()
    assert "event=settings_reloaded" in err and "interval=0.3s" in err, err[-2000:]
    assert "restart_needed_for=namespace" in err  # kept the namespace it is connected to


def test_both_daemon_units_reload_with_sighup_and_read_a_config_file():
    for name, command in (
        ("jq-worker@.service", "jq worker"),
        ("jq-scheduler.service", "jq scheduler"),
    ):
        unit = (UNITS / name).read_text()
        assert "ExecReload=/bin/kill -HUP $MAINPID" in unit, name
        start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
        assert command in start and "--config /etc/jq/jq.env" in start, start
