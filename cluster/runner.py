"""The inner process: services up, each scenario in turn, the figures printed, services down."""

from __future__ import annotations

import json
import signal
import sys
import time
import traceback
from pathlib import Path

from cluster.net import Bed
from cluster.services import ServicesHost


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def inside(tag: str, root: Path, only: str, json_path: str | None) -> int:
    from cluster import report, scenarios

    signal.signal(signal.SIGTERM, _interrupt)
    bed = Bed(tag)
    wanted = [s for s in only.split(",") if s] or [s.name for s in scenarios.SCENARIOS]
    results = []
    started = time.monotonic()
    with ServicesHost(root) as services:
        for scenario in scenarios.SCENARIOS:
            if scenario.name not in wanted:
                continue
            print(f"cluster: {scenario.name}: {scenario.what}", flush=True)
            t0 = time.monotonic()
            try:
                figures = scenario.fn(bed, services)
            except Exception as exc:
                figures = {"scenario": scenario.name, "status": "fail"}
                figures["problems"] = [f"scenario error: {type(exc).__name__}: {exc}"[:500]]
                figures["traceback"] = traceback.format_exc()[-2000:]
            figures["elapsed_s"] = round(time.monotonic() - t0, 1)
            print(json.dumps(figures, default=str), flush=True)
            results.append(figures)
    total = round(time.monotonic() - started, 1)
    report.summary(results, total)
    if json_path:
        Path(json_path).write_text(json.dumps({"total_s": total, "results": results}, default=str))
    return 0 if all(r.get("status") == "pass" for r in results) else 1


if __name__ == "__main__":
    sys.exit(1)
