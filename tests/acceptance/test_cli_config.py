"""The deploy recipe runs as written: `jq --config FILE` reads the shipped example
settings file (daemons/jq.env.example), comments and all, for any command."""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from jq_cli.store import Store

from conftest import DATABASE_URL, JQ, RABBITMQ_URL, REDIS_URL

EXAMPLE = Path(__file__).resolve().parents[2] / "daemons" / "jq.env.example"


@pytest.fixture
def namespace() -> Iterator[str]:
    ns = f"t{uuid.uuid4().hex[:12]}"
    yield ns
    store = Store(DATABASE_URL, ns)
    store.drop_namespace()
    store.close()


def edited_example(tmp_path: Path, namespace: str) -> Path:
    """The shipped file as an operator edits it (`sudoedit /etc/jq/jq.env`): URLs and namespace
    changed, every comment left in place."""
    text = EXAMPLE.read_text()
    assert "\n# " in text  # the comments are what broke `env $(cat FILE | xargs)`
    for key, value in {
        "JQ_DATABASE_URL": DATABASE_URL,
        "JQ_RABBITMQ_URL": RABBITMQ_URL,
        "JQ_REDIS_URL": REDIS_URL,
        "JQ_NAMESPACE": namespace,
    }.items():
        text, count = re.subn(rf"^{key}=.*$", f"{key}={value}", text, flags=re.MULTILINE)
        assert count == 1, key
    path = tmp_path / "jq.env"
    path.write_text(text)
    return path


def bare_env() -> dict[str, str]:
    """What `sudo -u jq` leaves: no JQ_ variable of the caller."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/")}


def jq(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [JQ, *args], capture_output=True, text=True, timeout=60, env=bare_env(), cwd=cwd
    )


def test_config_file_from_the_shipped_example_migrates_and_reports(tmp_path, namespace):
    config = edited_example(tmp_path, namespace)
    migrated = jq("--config", str(config), "db", "migrate", cwd=tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    status = jq("--config", str(config), "db", "status", cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert f"in namespace {namespace!r}" in status.stdout
    submitted = jq("--config", str(config), "submit", "noop", cwd=tmp_path)
    assert submitted.returncode == 0, submitted.stderr
    store = Store(DATABASE_URL, namespace)
    try:
        assert store.job_states([int(submitted.stdout)]) == {int(submitted.stdout): "queued"}
    finally:
        store.close()


def test_the_file_wins_over_the_environment_and_jq_config_is_the_same(tmp_path, namespace):
    config = edited_example(tmp_path, namespace)
    assert jq("--config", str(config), "db", "migrate", cwd=tmp_path).returncode == 0
    env = {**bare_env(), "JQ_NAMESPACE": "elsewhere", "JQ_CONFIG": str(config)}
    status = subprocess.run(
        [JQ, "db", "status"], capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path
    )
    assert status.returncode == 0 and f"namespace {namespace!r}" in status.stdout, status


def test_a_missing_or_misspelt_config_file_is_one_line_and_exit_2(tmp_path):
    missing = jq("--config", str(tmp_path / "nope.env"), "db", "status", cwd=tmp_path)
    assert missing.returncode == 2
    assert missing.stderr.startswith("jq: error: --config: no such file")
    typo = tmp_path / "typo.env"
    typo.write_text("# settings\nJQ_NAMESPCE=jq\n")
    bad = jq("--config", str(typo), "db", "status", cwd=tmp_path)
    assert bad.returncode == 2 and len(bad.stderr.splitlines()) == 1
    assert "JQ_NAMESPCE" in bad.stderr and "JQ_NAMESPACE" in bad.stderr
