"""`python -m chaos` (what `make chaos` runs): private PostgreSQL, RabbitMQ and Redis, every
scenario one after the other, one JSON line each, then a summary table. Exit 1 if any failed."""

from __future__ import annotations

import argparse
import signal
import sys
import time

from chaos.runner import run_all, summary_table
from chaos.scenarios import SCENARIOS
from chaos.services import PrivateServices


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__)
    parser.add_argument(
        "scenarios",
        nargs="*",
        metavar="SCENARIO",
        help=f"run only these (default: all): {', '.join(s.name for s in SCENARIOS)}",
    )
    args = parser.parse_args(argv)
    unknown = [n for n in args.scenarios if n not in {s.name for s in SCENARIOS}]
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}")

    # SIGTERM unwinds like Ctrl-C, so the private services are stopped either way.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    from rich.console import Console

    console = Console(stderr=True)
    started = time.monotonic()
    lacking = _machine_lacks()
    if lacking:
        # The one acceptable skip: said in one line, and not a pass either (exit 0 only because
        # nothing was tried).
        console.print(f"chaos: skipped: this machine lacks {lacking}")
        return 0
    try:
        console.print("chaos: starting private PostgreSQL (5433), RabbitMQ (5673) and Redis (6380)")
        with PrivateServices() as services:
            results = run_all(services, args.scenarios or None)
    except KeyboardInterrupt:
        console.print("chaos: interrupted; private services stopped")
        return 130
    out = Console(width=150)
    out.print(summary_table(results))
    # A scenario that skips on a machine with every service is a scenario that did not run: a fail.
    failed = [f for f in results if f.status in ("fail", "skip")]
    skipped: list = []
    for f in failed + skipped:
        out.print(f"{f.scenario} ({f.status}): {'; '.join(f.problems)}")
    out.print(
        f"{len(results) - len(failed) - len(skipped)} passed, {len(failed)} failed, "
        f"{len(skipped)} skipped in {time.monotonic() - started:.0f}s"
    )
    return 1 if failed else 0


def _machine_lacks() -> str:
    """What the private services need and this machine does not have ('' when all is there)."""
    import shutil

    from chaos.services import PG_BIN

    missing = [str(PG_BIN / "pg_ctl")] if not (PG_BIN / "pg_ctl").exists() else []
    missing += [
        b for b in ("redis-server", "rabbitmq-server") if shutil.which(b) is None and not _rabbit(b)
    ]
    return ", ".join(missing)


def _rabbit(binary: str) -> bool:
    from pathlib import Path

    return binary == "rabbitmq-server" and Path("/usr/lib/rabbitmq/bin/rabbitmq-server").exists()


if __name__ == "__main__":
    sys.exit(main())
