"""Runs scenarios one at a time and reports them: a JSON line each, then a Rich summary table."""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Iterable

from chaos.harness import Figures, Run
from chaos.proxy import FaultProxy
from chaos.scenarios import BY_NAME, SCENARIOS, Scenario


def run_scenario(services, scenario: Scenario | str, *, quick: bool = False) -> Figures:
    """One scenario in its own namespace; never raises (an error is a failed scenario)."""
    if isinstance(scenario, str):
        scenario = BY_NAME[scenario]
    if scenario.private_only and not services.private:
        f = Figures(scenario.name, status="skip")
        f.problems.append("needs private services (it stops or reconfigures one)")
        return f
    proxy = None
    run = None
    try:
        if scenario.proxy:
            u = services.urls
            proxy = FaultProxy(
                {
                    "postgres": _port(u.database),
                    "rabbitmq": _port(u.rabbitmq),
                    "redis": _port(u.redis),
                }
            ).start()
        run = Run(services, scenario.name, quick=quick, proxy=proxy).setup()
        figures = scenario.fn(run)
        return figures.judge()
    except Exception as exc:
        f = run.figures if run is not None else Figures(scenario.name)
        f.status = "fail"
        f.problems.append(f"scenario error: {type(exc).__name__}: {exc}"[:500])
        f.extra["traceback"] = traceback.format_exc()[-1500:]
        return f
    finally:
        if run is not None:
            run.teardown()
            if run.figures.status == "fail":
                run.figures.extra["logs"] = _keep_logs(run)
        if proxy is not None:
            proxy.stop()


def _keep_logs(run: Run) -> str:
    """A failed scenario's daemon logs outlive the private services' temp dir."""
    import shutil
    from pathlib import Path

    keep = Path("/tmp/jq-chaos-logs") / run.ns
    keep.mkdir(parents=True, exist_ok=True)
    for log in run.dir.glob("*.log"):
        shutil.copy(log, keep / log.name)
    return str(keep)


def _port(url: str) -> int:
    from urllib.parse import urlsplit

    port = urlsplit(url).port
    if port is None:
        raise ValueError(f"no port in {url}")  # the fault suite's URLs always name one
    return port


def run_all(
    services, names: Iterable[str] | None = None, *, quick: bool = False, out=sys.stdout
) -> list[Figures]:
    chosen = [BY_NAME[n] for n in names] if names else SCENARIOS
    results = []
    for scenario in chosen:
        started = time.monotonic()
        figures = run_scenario(services, scenario, quick=quick)
        figures.elapsed_s = round(time.monotonic() - started, 1)
        print(figures.as_json(), file=out, flush=True)
        results.append(figures)
    return results


def summary_table(results: list[Figures]):
    from rich.table import Table

    table = Table(title="jq under faults", title_justify="left")
    for column in (
        "scenario",
        "status",
        "lost",
        "wrong_end",
        "multi_terminal",
        "hits",
        "dup_exec",
        "dup_over",
        "dup_ticks",
        "invalid_rows",
        "recovery_s",
        "accepted",
        "elapsed_s",
    ):
        table.add_column(column, justify="left" if column in ("scenario", "status") else "right")
    style = {"pass": "green", "fail": "bold red", "skip": "yellow"}
    for f in results:

        def cell(v):
            return "-" if v is None else str(v)

        dup = "-" if f.dup_exec is None else f"{f.dup_exec} (≤{f.dup_exec_bound})"
        table.add_row(
            f.scenario,
            f"[{style[f.status]}]{f.status}[/]",
            cell(f.lost),
            cell(f.wrong_end),
            cell(f.multi_terminal),
            cell(f.hits),
            dup,
            cell(f.dup_over),
            cell(f.dup_ticks),
            cell(f.invalid_rows),
            cell(f.recovery_s),
            str(f.accepted),
            str(f.elapsed_s),
        )
    return table
