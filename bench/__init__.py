"""The benchmark of issue 3: submit rates, drain rate, latency, CLI start-up and worker memory.

Run with `make bench` or `.venv/bin/python -m bench [--quick] [--only W1,W3] [--json PATH]`.
Every workload runs in a namespace of its own (Postgres schema, queues, Redis keys) that is
created fresh and removed afterwards, so a run never touches a live deployment's jobs.
"""
