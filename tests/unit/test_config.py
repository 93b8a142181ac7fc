"""Settings: JQ_* variables (and the older service's names), validation with one clear error,
durations for the retention knobs, and URLs masked for messages."""

from __future__ import annotations

import pytest
from jq_cli.config import Settings, load_settings
from jq_cli.errors import InvalidInput
from jq_cli.redaction import mask_url


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No JQ_* variable of the run leaks in, and no .env is found."""
    import os

    for name in list(os.environ):
        if name.startswith("JQ_") or name in ("DATABASE_URL", "RABBITMQ_URL", "REDIS_URL"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def test_defaults_make_a_fresh_machine_work(clean_env):
    s = load_settings()
    assert s.database_url == "postgresql://localhost/jq"
    assert s.rabbitmq_url == "amqp://guest:guest@localhost:5672/"
    assert s.redis_url == "redis://localhost:6379/0"
    assert (s.namespace, s.retry_base_delay, s.retry_max_delay, s.retry_jitter) == (
        "jq",
        2.0,
        300.0,
        0.1,
    )


def test_jq_variables_and_the_older_names_are_read(clean_env):
    clean_env.setenv("JQ_WORKER_QUEUES", " default, reports ,,")
    clean_env.setenv("DATABASE_URL", "postgresql://db/old")  # the older service's name
    clean_env.setenv("DEFAULT_RETRY_BASE_DELAY", "5")
    clean_env.setenv("JQ_RETENTION_DEAD", "12h")
    clean_env.setenv("JQ_IMPORTS", "a.b, c")
    s = load_settings()
    assert s.queue_names == ["default", "reports"]
    assert s.database_url == "postgresql://db/old" and s.retry_base_delay == 5.0
    assert s.retention_dead == 43200.0 and s.import_modules == ["a.b", "c"]
    clean_env.setenv("JQ_DATABASE_URL", "postgresql://db/new")  # the JQ_ name wins
    assert load_settings().database_url == "postgresql://db/new"


def test_a_dotenv_file_is_read(clean_env, tmp_path):
    (tmp_path / ".env").write_text("JQ_NAMESPACE=fromfile\nJQ_LEASE_TTL=7\n")
    s = load_settings()
    assert (s.namespace, s.lease_ttl) == ("fromfile", 7.0)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("JQ_NAMESPACE", "Bad-Name"),
        ("JQ_WORKER_CONCURRENCY", "0"),
        ("JQ_RETRY_JITTER", "2"),
        ("JQ_LEASE_TTL", "soon"),
        ("JQ_RETENTION_COMPLETED", "forever"),
    ],
)
def test_a_bad_setting_is_one_invalid_input_naming_it(clean_env, name, value):
    clean_env.setenv(name, value)
    with pytest.raises(InvalidInput, match=rf"^invalid setting {name}: "):
        load_settings()


def test_settings_travel_to_a_child_process_as_jq_variables(clean_env):
    s = Settings(_env_file=None, namespace="ns1", api_key="k3y", lease_ttl=4.5)
    env = s.as_environment()
    assert (
        env["JQ_NAMESPACE"] == "ns1" and env["JQ_API_KEY"] == "k3y" and env["JQ_LEASE_TTL"] == "4.5"
    )
    assert "JQ_API_KEYS_FILE" not in env  # unset stays unset
    for name, value in env.items():
        clean_env.setenv(name, value)
    assert load_settings() == s


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("amqp://guest:guest@localhost:5672/", "amqp://guest:***@localhost:5672/"),
        ("postgresql://jq:p@ss@db/jq", "postgresql://jq:***@db/jq"),
        ("redis://:secret@cache:6379/0", "redis://:***@cache:6379/0"),
        ("postgresql://localhost/jq", "postgresql://localhost/jq"),
        ("http://[::1", "http://[::1"),
    ],
)
def test_urls_are_masked_for_messages(url, masked):
    assert mask_url(url) == masked
