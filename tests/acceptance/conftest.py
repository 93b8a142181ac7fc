"""The acceptance tier: jq as whole processes (the CLI, the daemons, `jq top --web` in a browser,
the chaos and cluster subsets, the README's examples, the demo) against the real services. Its fixtures
are in tests/conftest.py; the helpers its tests import from here live in jq_testkit."""

from __future__ import annotations

import pytest

from jq_testkit import (
    DATABASE_URL,
    FAST,
    JQ,
    LOOPBACK_URL,
    QUEUES,
    RABBITMQ_URL,
    REDIS_URL,
    WorkerThread,
    free_port,
    listen_on_free_port,
    make_settings,
    settings_env,
    wait_for,
)

__all__ = [
    "DATABASE_URL",
    "FAST",
    "JQ",
    "LOOPBACK_URL",
    "QUEUES",
    "RABBITMQ_URL",
    "REDIS_URL",
    "WorkerThread",
    "free_port",
    "listen_on_free_port",
    "make_settings",
    "settings_env",
    "wait_for",
]


@pytest.fixture(scope="session", autouse=True)
def _services(_test_database: None) -> None:
    """Every test of this tier may use the test database, through `settings` or not."""
