"""The scenarios of the cluster bed."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from chaos.harness import JQ


@dataclass(frozen=True)
class Scenario:
    name: str
    what: str
    fn: Callable[..., dict]


def bed(bed, services) -> dict:
    """Every worker host reaches every service through its address on the services host."""
    out = {"scenario": "bed", "status": "pass", "problems": []}
    env = {"JQ_DATABASE_URL": services.urls.database, "JQ_RABBITMQ_URL": services.urls.rabbitmq,
           "JQ_REDIS_URL": services.urls.redis, "PATH": "/usr/bin:/bin"}
    for i in (1, 2, 3):
        done = subprocess.run([*bed.exec_prefix(bed.host(i)), JQ, "doctor"], env=env,
                              capture_output=True, text=True, timeout=60)
        out[f"w{i}"] = done.stdout.strip()[-300:] + done.stderr.strip()[-300:]
        if done.returncode != 0:
            out["problems"].append(f"w{i} doctor exit {done.returncode}")
    out["status"] = "fail" if out["problems"] else "pass"
    return out


SCENARIOS = [Scenario("bed", "every host reaches every service", bed)]
