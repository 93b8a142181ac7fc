"""`python -m cluster`: make the hosts, run the bed inside the services host, remove everything.

The outer process (here, in the machine's own namespace) owns the namespaces and the temporary
directory and removes them whatever happens; the inner one (`--inside`, run in the services
namespace) starts the services and the scenarios. A hard limit stops a run that hangs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

HARD_LIMIT_S = 15 * 60


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m cluster")
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tag", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument(
        "--only", default="", help="comma-separated scenarios (scaling,broker_kill,...)"
    )
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON here")
    args = parser.parse_args()
    if args.inside:
        from cluster.runner import inside

        return inside(args.tag, Path(args.root), args.only, args.json)
    return outside(args.only, args.json)


def missing() -> str | None:
    """Why the bed cannot run on this machine, or None."""
    from chaos.services import PG_BIN, RABBIT_BIN

    from cluster.net import netns_permitted

    if os.geteuid() != 0:
        return "needs root (network namespaces, and PostgreSQL run as the postgres user)"
    for binary in (PG_BIN / "postgres", PG_BIN / "pg_basebackup", RABBIT_BIN / "rabbitmq-server"):
        if not binary.exists():
            return f"{binary} is not installed"
    if shutil.which("redis-server") is None:
        return "redis-server is not installed"
    return netns_permitted()


def outside(only: str, json_path: str | None) -> int:
    from cluster.net import Bed

    reason = missing()
    if reason:
        print(f"cluster: skipped: {reason}", file=sys.stderr)
        return 2
    tag = f"{os.getpid() % 10000:04d}"
    root = Path(tempfile.mkdtemp(prefix="jq-cluster-"))
    os.chmod(root, 0o755)  # the postgres user must reach its data directories
    bed = Bed(tag)
    inner = None
    try:
        bed.create()
        inner = subprocess.Popen(
            [
                *bed.exec_prefix(bed.svc),
                sys.executable,
                "-m",
                "cluster",
                "--inside",
                "--tag",
                tag,
                "--root",
                str(root),
                "--only",
                only,
                *(["--json", json_path] if json_path else []),
            ],
            cwd=Path(__file__).resolve().parent.parent,
        )
        try:
            return inner.wait(HARD_LIMIT_S)
        except subprocess.TimeoutExpired:
            print(f"cluster: stopped after the {HARD_LIMIT_S // 60}-minute limit", file=sys.stderr)
            inner.send_signal(signal.SIGINT)
            try:
                inner.wait(60)
            except subprocess.TimeoutExpired:
                inner.kill()
            return 1
    except KeyboardInterrupt:
        if inner is not None:
            try:
                inner.wait(60)  # it got the same Ctrl-C and is stopping its services
            except (subprocess.TimeoutExpired, KeyboardInterrupt):
                inner.kill()
        return 130
    finally:
        bed.remove()
        shutil.rmtree(root, ignore_errors=True)
        print(f"cluster: removed namespaces jqc{tag}* and {root}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
