"""Faults, the quick subset of `make chaos`: real `jq worker` processes killed mid-job (kill -9,
SIGTERM then SIGKILL) and poison messages, through the same runner code as the full suite.

These only harm jq processes of their own namespace, so they run against the shared services;
the scenarios that stop or reconfigure a service run only in `make chaos`, on private ones."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the chaos package beside jq_cli

from chaos.runner import run_scenario
from chaos.services import SharedServices

from conftest import DATABASE_URL, RABBITMQ_URL, REDIS_URL


@pytest.fixture(scope="module")
def services():
    with SharedServices(DATABASE_URL, RABBITMQ_URL, REDIS_URL) as s:
        yield s


def assert_held(figures) -> None:
    detail = figures.as_json()
    assert figures.status == "pass", detail
    assert figures.lost == 0, detail
    assert figures.multi_terminal == 0, detail
    assert figures.dup_exec <= figures.dup_exec_bound, detail
    assert figures.invalid_rows == 0, detail
    assert figures.accepted > 0 and figures.rejected > 0, detail


# Each scenario takes some 15 s here, and waits up to 30 s for daemons to start and for its jobs to
# end: on a loaded machine 60 s could cut a passing scenario short.
@pytest.mark.timeout(150)
def test_worker_killed_mid_job_loses_nothing_and_reruns_only_what_it_cut(services):
    figures = run_scenario(services, "kill9", quick=True)
    assert_held(figures)
    assert figures.dup_exec_bound >= 1, "the kill landed between jobs: nothing was interrupted"


@pytest.mark.timeout(150)
def test_sigterm_then_sigkill_a_second_later_loses_nothing(services):
    assert_held(run_scenario(services, "sigterm_kill", quick=True))


@pytest.mark.timeout(150)
def test_poison_messages_neither_crash_nor_loop_the_worker(services):
    figures = run_scenario(services, "poison", quick=True)
    assert_held(figures)
    assert figures.dup_exec == 0
    assert figures.extra["queue_left"] == 0


# The poison classes: each ends its own jobs as intended while the healthy load
# completes, and the worker that met them drains and exits 0.
@pytest.mark.timeout(150)
@pytest.mark.parametrize(
    "scenario", ["poison_nan", "poison_validator", "ignore_cancel", "hung_time_limit"]
)
def test_poison_jobs_end_as_intended_and_harm_no_other_job(services, scenario):
    figures = run_scenario(services, scenario, quick=True)
    assert_held(figures)
    assert figures.wrong_end == 0 and figures.dup_over == 0
