"""The figures, as a table a person reads at the end of `make cluster`."""

from __future__ import annotations


def summary(results: list[dict], total_s: float) -> None:
    print()
    print(f"cluster: {len(results)} scenarios in {total_s:.0f}s")
    for r in results:
        keys = [k for k in r if k not in ("scenario", "status", "problems", "traceback", "logs")]
        print(f"  {r['scenario']:<16} {r['status'].upper():<5} {r.get('elapsed_s', '?')}s")
        for k in keys:
            if k != "elapsed_s":
                print(f"      {k}: {r[k]}")
        for p in r.get("problems", []):
            print(f"      problem: {p}")
