"""The figures, as a person reads them at the end of `make cluster` (the JSON lines above them,
and --json FILE, carry every field)."""

from __future__ import annotations

SHOWN = {
    "brokerkill": ("killed", "queue_now_on", "workers_moved_to", "workers_moved_s"),
    "nomirror": (
        "killed",
        "declare_on_live_node",
        "workers_reconnected_while_down",
        "executions_started_while_down",
        "consuming_again_after_node_back_s",
    ),
    "brokerpart": ("partitioned", "workers_moved_to", "workers_moved_s"),
    "dbfailover": (
        "accepted_present",
        "promoted_after_s",
        "daemons_reconnected_s",
        "leader_before",
        "leader_after",
        "leadership_back_s",
    ),
    "hostcutoff": (
        "lease_s",
        "jobs_held_by_cut_host",
        "rescued_and_done_elsewhere_s",
        "cut_for_s",
        "stale_results",
        "stale_attempt_outcomes",
        "outcomes_refused_on_return",
    ),
}


def _scaling(r: dict) -> None:
    print(f"      20 ms I/O jobs, concurrency {r.get('concurrency_per_host')} per host")
    print("      hosts  jobs/s  efficiency  PG primary ms/job  RabbitMQ ms/job  workers ms/job")
    for row in r.get("rows", []):
        print(
            f"      {row['hosts']:>5}  {row['jobs_per_s']:>6}  {row['efficiency']:>10}"
            f"  {row['pg_primary_cpu_ms_per_job']:>17}  {row['rabbitmq_cpu_ms_per_job']:>15}"
            f"  {row['workers_cpu_ms_per_job']:>14}"
        )
    print(
        f"      PostgreSQL saturates near {r.get('pg_saturates_per_core_jobs_per_s')} jobs/s per "
        f"core of its own; this {r.get('cores_here')}-core machine runs out near "
        f"{r.get('machine_ceiling_jobs_per_s')} jobs/s for the whole bed"
    )


def summary(results: list[dict], total_s: float) -> None:
    print()
    print(f"cluster: {len(results)} scenarios in {total_s:.0f}s")
    for r in results:
        print(f"  {r['scenario']:<12} {r['status'].upper():<5} {r.get('elapsed_s', '?')}s")
        if r["scenario"] == "scaling" and "rows" in r:
            _scaling(r)
        elif "lost" in r:
            print(
                f"      accepted {r['accepted']}  lost {r['lost']}  terminal twice "
                f"{r['multi_terminal']}  duplicate runs {r['dup_exec']} (≤{r['dup_exec_bound']})"
                f"  recovery {r['recovery_s']}s  re-published {r.get('republished_by_sweeper', '-')}"
            )
            for key in SHOWN.get(r["scenario"], ()):
                print(f"      {key}: {r.get(key)}")
        for p in r.get("problems", []):
            print(f"      problem: {p}")
