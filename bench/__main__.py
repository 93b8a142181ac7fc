"""`python -m bench`: jq beside its peers (issue 12), the services' limits, jq's CLI and memory;
prints the tables and writes bench/results.json and bench/results.md."""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from rich.console import Console

from bench import compete, harness, leases, limits, report, venvs
from bench.contestants import BY_KEY
from bench.workloads import QUICK, WORKLOADS, Sizes

DEFAULT_JSON = Path(__file__).resolve().parent / "results.json"
SECTIONS = ("limits", "compare", "W4", "W5", "leases")
COMPARE_ALIASES = ("W1", "W2", "W3")  # they run together, in the same namespaces


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated parts: limits, compare (W1–W3, run together), W4, W5, leases"
        " (default: all)",
    )
    parser.add_argument(
        "--contestants",
        default=",".join(BY_KEY),
        help=f"who runs W1–W3 (default: {','.join(BY_KEY)})",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small counts: a smoke run, not a measurement"
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=DEFAULT_JSON,
        help=f"where to write the figures ({DEFAULT_JSON})",
    )
    parser.add_argument(
        "--w5-jobs",
        type=int,
        default=None,
        help="jobs for W5 (default 100,000; 5,000 with --quick)",
    )
    args = parser.parse_args(argv)
    only = set()
    for part in (p.strip() for p in args.only.split(",") if p.strip()):
        name = "compare" if part.upper() in COMPARE_ALIASES else part
        name = name.upper() if name.upper() in ("W4", "W5") else name.lower()
        if name not in SECTIONS:
            parser.error(f"unknown part {part!r}; choose from {', '.join(SECTIONS)}")
        only.add(name)
    args.only = [s for s in SECTIONS if s in only] or list(SECTIONS)
    args.contestants = [c.strip() for c in args.contestants.split(",") if c.strip()]
    unknown = [c for c in args.contestants if c not in BY_KEY]
    if unknown:
        parser.error(f"unknown contestant(s) {', '.join(unknown)}; choose from {', '.join(BY_KEY)}")
    return args


def _terminate(signum: int, _frame: object) -> None:
    # Turn SIGTERM into an exception so that every namespace and worker is cleaned up on the way out.
    raise SystemExit(128 + signum)


def _guarded(console: Console, name: str, fn) -> dict[str, Any]:
    console.print(f"[bold]{name}[/]", highlight=False)
    begun = time.perf_counter()
    try:
        figures = fn()
    except Exception as exc:  # one failed part is reported; the others still run
        traceback.print_exc()
        figures = {"error": f"{type(exc).__name__}: {exc}"}
    figures["elapsed_s"] = round(time.perf_counter() - begun, 1)
    return figures


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    console = Console(width=None if sys.stdout.isatty() else 200)
    sizes: Sizes = QUICK if args.quick else Sizes()
    if args.w5_jobs is not None:
        sizes = dataclasses.replace(sizes, w5_jobs=args.w5_jobs)
    plan = compete.QUICK_PLAN if args.quick else compete.Plan()
    lim_sizes = limits.QUICK_LIMITS if args.quick else limits.LimitSizes()
    if "compare" in args.only:  # built before the clock starts (once; reused while pins hold)
        for peer in sorted({BY_KEY[c].peer for c in args.contestants}):
            venvs.ensure(peer, say=lambda text: console.print(f"[dim]{text}[/]", highlight=False))
    run_id = harness.new_run_id()
    settings = harness.Sandbox("meta", run_id).settings
    meta: dict[str, Any] = {
        "quick": args.quick,
        "run_id": run_id,
        "started_at": time.strftime("%Y-%m-%d %H:%M %Z"),
        "sizes": {
            "plan": dataclasses.asdict(plan),
            "limits": dataclasses.asdict(lim_sizes),
            **dataclasses.asdict(sizes),
        },
        "machine": harness.machine(),
        "versions": harness.versions(settings),
    }
    results: dict[str, Any] = {}
    started = time.perf_counter()
    try:
        if "limits" in args.only:
            results["limits"] = _guarded(
                console, "service limits", lambda: limits.measure(run_id, lim_sizes)
            )
        if "compare" in args.only:
            results["contestants"] = {}
            for key in args.contestants:
                console.print(f"[bold]{BY_KEY[key].label}[/]", highlight=False)
                results["contestants"][key] = compete.run(
                    BY_KEY[key], run_id, plan, say=lambda t: console.print(t, highlight=False)
                )
        for name in ("W4", "W5"):
            if name in args.only:

                def one(name: str = name) -> dict[str, Any]:
                    with harness.Sandbox(name, run_id) as sandbox:
                        return WORKLOADS[name](sandbox, sizes)

                results[name] = _guarded(console, f"{name}: {WORKLOADS[name].__doc__}", one)
        if "leases" in args.only:
            lease_sizes = leases.QUICK_LEASES if args.quick else leases.LeaseSizes()

            def hold() -> dict[str, Any]:
                with harness.Sandbox("leases", run_id) as sandbox:
                    return leases.measure(sandbox, lease_sizes)

            results["leases"] = _guarded(console, "leases: 1,000 jobs held running", hold)
    finally:
        harness.stop_all()
    meta["total_s"] = round(time.perf_counter() - started, 1)
    meta["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report.render(results, meta, console)
    md_path = report.write(args.json, results, meta)
    console.print(
        f"[dim]total {meta['total_s']:.0f} s; figures in {args.json} and {md_path}; worker logs in "
        f"{harness.LOG_DIR}[/]",
        highlight=False,
    )
    return 1 if _has_error(results) else 0


def _has_error(tree: Any) -> bool:
    if isinstance(tree, dict):
        return "error" in tree or any(_has_error(v) for v in tree.values())
    return False


if __name__ == "__main__":
    sys.exit(main())
