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
