"""The systemd units in daemons/: they name the daemons, stop after the drain grace, and verify."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[2] / "daemons"
JQ = str(Path(sys.executable).parent / "jq")  # by path: `jq` on PATH may be the JSON tool


def test_systemd_units_name_the_daemons_and_stop_after_the_drain_grace():
    worker = (UNITS / "jq-worker@.service").read_text()
    assert "Type=notify" in worker and "jq worker" in worker
    stop = int(
        next(
            line.split("=")[1] for line in worker.splitlines() if line.startswith("TimeoutStopSec")
        )
    )
    assert stop > 30  # longer than the default JQ_SHUTDOWN_GRACE
    assert "Type=notify" in (UNITS / "jq-scheduler.service").read_text()
    assert (UNITS / "jq.env.example").exists()


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)
def test_systemd_analyze_verifies_the_units(tmp_path):
    paths = []
    for unit in sorted(UNITS.glob("*.service")):
        # The units name /opt/jq/.venv/bin/jq; point them at this checkout's jq to verify the rest.
        path = tmp_path / unit.name
        path.write_text(unit.read_text().replace("/opt/jq/.venv/bin/jq", JQ))
        paths.append(str(path))
    assert len(paths) == 3
    result = subprocess.run(
        ["systemd-analyze", "verify", *paths], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr


def _directives(unit: str) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in (UNITS / unit).read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            values.setdefault(key.strip(), []).append(value.strip())
    return values


def test_jq_serve_unit_binds_loopback_and_does_not_restart_on_a_setting_error():
    serve = _directives("jq-serve.service")
    (start,) = serve["ExecStart"]
    # No --host: 127.0.0.1, which needs no key; 0.0.0.0 without a key exits 2 on every start.
    assert " serve" in start and "--host" not in start and "0.0.0.0" not in start
    assert "--config /etc/jq/jq.env" in start
    assert serve["RestartPreventExitStatus"] == ["2"]
    assert serve["StartLimitBurst"] and serve["StartLimitIntervalSec"]


@pytest.mark.parametrize("unit", ["jq-worker@.service", "jq-scheduler.service", "jq-serve.service"])
def test_every_unit_reads_the_settings_file_and_stops_on_exit_2(unit):
    directives = _directives(unit)
    assert "--config /etc/jq/jq.env" in directives["ExecStart"][0]
    assert directives["RestartPreventExitStatus"] == ["2"]
