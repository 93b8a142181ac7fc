"""`python -m bench`: run the workloads of issue 3, print the table, write the JSON."""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import time
import traceback
from pathlib import Path

from rich.console import Console

from bench import harness, report
from bench.workloads import QUICK, WORKLOADS, Sizes

DEFAULT_JSON = Path(__file__).resolve().parent / "results.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--only", default="", help="comma-separated workloads to run, e.g. W1,W3 (default: all)"
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
        help="jobs for the memory run (default 100,000; 5,000 with --quick)",
    )
    parser.add_argument(
        "--concurrency", type=int, default=None, help="handler threads per worker (default 16)"
    )
    parser.add_argument(
        "--prefetch", type=int, default=None, help="prefetch per worker (default 64)"
    )
    args = parser.parse_args(argv)
    only = [w.strip().upper() for w in args.only.split(",") if w.strip()]
    unknown = [w for w in only if w not in WORKLOADS]
    if unknown:
        parser.error(
            f"unknown workload(s) {', '.join(unknown)}; choose from {', '.join(WORKLOADS)}"
        )
    args.only = only or list(WORKLOADS)
    return args


def sizes_from(args: argparse.Namespace) -> Sizes:
    sizes = QUICK if args.quick else Sizes()
    overrides = {
        k: v
        for k, v in (
            ("w5_jobs", args.w5_jobs),
            ("concurrency", args.concurrency),
            ("prefetch", args.prefetch),
        )
        if v is not None
    }
    return dataclasses.replace(sizes, **overrides)


def _terminate(signum: int, _frame: object) -> None:
    # Turn SIGTERM into an exception so that every sandbox and worker is cleaned up on the way out.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    console = Console(width=None if sys.stdout.isatty() else 140)
    sizes = sizes_from(args)
    run_id = harness.new_run_id()
    settings = harness.Sandbox("meta", run_id).settings
    meta = {
        "quick": args.quick,
        "run_id": run_id,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "sizes": dataclasses.asdict(sizes),
        "machine": harness.machine(),
        "versions": harness.versions(settings),
    }
    results: dict[str, dict] = {}
    started = time.perf_counter()
    try:
        for name in args.only:
            console.print(f"[dim]{name}: {WORKLOADS[name].__doc__}[/]", highlight=False)
            begun = time.perf_counter()
            try:
                with harness.Sandbox(name, run_id) as sandbox:
                    results[name] = WORKLOADS[name](sandbox, sizes)
            except Exception as exc:  # one failed workload is reported; the others still run
                traceback.print_exc()
                results[name] = {"error": f"{type(exc).__name__}: {exc}"}
            results[name]["elapsed_s"] = time.perf_counter() - begun
    finally:
        harness.stop_all()
    meta["total_s"] = time.perf_counter() - started
    report.render(results, meta, console)
    report.write_json(args.json, results, meta)
    console.print(
        f"[dim]total {meta['total_s']:.0f} s; figures written to {args.json}; worker logs in "
        f"{harness.LOG_DIR}[/]",
        highlight=False,
    )
    return 1 if any("error" in r for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
