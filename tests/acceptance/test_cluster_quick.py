"""Several hosts: the settings that list several service addresses, against the shared
services; and a quick subset of `make cluster` (network namespaces, a three-node RabbitMQ
cluster, a PostgreSQL primary with a synchronous standby) where this machine allows it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from jq_cli.broker import Publisher
from jq_cli.client import Client
from jq_cli.errors import ServiceUnavailable
from jq_cli.redaction import mask_url, split_urls

from conftest import DATABASE_URL, RABBITMQ_URL, free_port, make_settings, wait_for

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # the cluster package beside jq_cli


def test_every_password_of_a_url_list_is_masked():
    masked = mask_url("amqp://jq:first@mq1:5672/,amqp://jq:second@mq2:5672/")
    assert masked == "amqp://jq:***@mq1:5672/,amqp://jq:***@mq2:5672/"


def test_a_multi_host_postgres_url_is_one_url_and_masked():
    url = "postgresql://jq:pw@db1:5432,db2:5432/jq?target_session_attrs=read-write"
    assert split_urls(url) == [url]
    assert (
        mask_url(url) == "postgresql://jq:***@db1:5432,db2:5432/jq?target_session_attrs=read-write"
    )


def test_a_comma_inside_one_url_does_not_split_it():
    assert split_urls("amqp://jq:a,b@mq1/") == ["amqp://jq:a,b@mq1/"]
    assert split_urls("amqp://mq1/, amqps://mq2/") == ["amqp://mq1/", "amqps://mq2/"]


def _with_dead_first_host(url: str, dead: int) -> str:
    """The test database's URL as a multi-host one whose first host refuses connections."""
    parts = urlsplit(url)
    user = f"{parts.netloc.rsplit('@', 1)[0]}@" if "@" in parts.netloc else ""
    host = f"{parts.hostname or 'localhost'}:{parts.port or 5432}"
    query = f"{parts.query}&" if parts.query else ""
    return (
        f"{parts.scheme}://{user}127.0.0.1:{dead},{host}{parts.path}"
        f"?{query}target_session_attrs=read-write"
    )


def test_a_dead_first_node_of_each_service_is_skipped(settings, start_worker):
    """Submit and work with the first RabbitMQ node and the first PostgreSQL host down: the
    message is published and consumed through the second node (no scheduler runs to publish it
    later), and the rows go to the host that accepts read-write sessions."""
    dead = free_port()
    listed = make_settings(
        settings.namespace,
        rabbitmq_url=f"amqp://guest:guest@127.0.0.1:{dead}/,{RABBITMQ_URL}",
        database_url=_with_dead_first_host(DATABASE_URL, dead),
    )
    start_worker(settings=listed)
    with Client(listed) as ops:
        job_id = ops.submit("noop", {"n": 1})
        job = wait_for(
            lambda: (j := ops.get(job_id))["state"] == "completed" and j,
            30,
            what=lambda: f"job {job_id} completed, is {ops.get(job_id)['state']}",
        )
    assert job["attempts"] == 1


def test_every_broker_node_down_names_each_without_its_password(settings):
    a, b = free_port(), free_port()
    url = f"amqp://guest:secret@127.0.0.1:{a}/,amqp://guest:secret@127.0.0.1:{b}/"
    publisher = Publisher(url, settings.namespace)
    with pytest.raises(ServiceUnavailable) as caught:
        publisher.ping()
    text = str(caught.value)
    assert f"127.0.0.1:{a}" in text and f"127.0.0.1:{b}" in text, text
    assert "secret" not in text


# -- the bed ------------------------------------------------------------------------------------


def _cannot_run() -> str | None:
    from cluster.__main__ import missing

    return missing()


def _namespaces() -> set[str]:
    done = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    return {line.split()[0] for line in done.stdout.splitlines() if line.startswith("jqc")}


@pytest.mark.timeout(900)
def test_broker_node_loss_and_database_failover_on_three_hosts(tmp_path):
    reason = _cannot_run()
    if reason:
        pytest.skip(f"the cluster bed cannot run here: {reason}")
    before = _namespaces()
    out = tmp_path / "figures.json"
    done = subprocess.run(
        [sys.executable, "-m", "cluster", "--only", "broker_kill,db_failover", "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=840,
    )
    assert out.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    results = {r["scenario"]: r for r in json.loads(out.read_text())["results"]}
    for name in ("brokerkill", "dbfailover"):
        r = results[name]
        assert r["status"] == "pass", r
        assert r["lost"] == 0 and r["multi_terminal"] == 0, r
        assert r["dup_exec"] <= r["dup_exec_bound"], r
        assert r["accepted"] > 0, r
    assert results["brokerkill"]["queue_now_on"] != results["brokerkill"]["killed"]
    assert results["dbfailover"]["accepted_present"] == results["dbfailover"]["accepted"]
    assert results["dbfailover"]["leader_after"], results["dbfailover"]
    assert done.returncode == 0, done.stderr[-3000:]
    # It removed what it made: no namespace of its own is left, nor its temporary directory.
    assert _namespaces() <= before
    assert "removed namespaces" in done.stderr
