"""Which sites may talk to jq serve and jq top --web (jq_cli/http/sites.py): the Host allow-list
against DNS rebinding and the same-origin rule for state-changing requests."""

from __future__ import annotations

import pytest
from jq_cli.config import Settings
from jq_cli.http.keys import ApiKeys
from jq_cli.http.sites import AllowedHosts, default_hosts, same_origin


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "127.0.0.1:8000", "localhost:8000", "LOCALHOST", "[::1]:8000", "127.0.0.2"],
)
def test_loopback_names_are_always_allowed(host):
    assert AllowedHosts().allows(host)


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:8000", "127.0.0.1.evil.example", "", None, "[::1", "a b"]
)
def test_other_names_are_refused_by_default(host):
    assert not AllowedHosts().allows(host)


def test_configured_names_and_the_bind_address_are_allowed():
    hosts = AllowedHosts(["jq.internal", "Ops.Example:8000"], bind="10.0.0.5")
    assert hosts.allows("jq.internal:8000") and hosts.allows("ops.example")
    assert hosts.allows("10.0.0.5:8000") and not hosts.allows("evil.example")
    assert AllowedHosts(["*"]).allows("anything.example")
    assert AllowedHosts([], bind="::1").allows("[::1]:80")


def test_a_keyless_shim_enforces_the_list_and_a_keyed_one_only_when_configured():
    keys = ApiKeys(["k" * 20])
    assert not default_hosts(Settings(), ApiKeys()).allows("evil.example")
    assert default_hosts(Settings(), keys).allows("evil.example")
    configured = Settings(serve_allowed_hosts="jq.internal, ops.example")
    assert not default_hosts(configured, keys).allows("evil.example")
    assert default_hosts(configured, ApiKeys()).allows("ops.example")
    assert default_hosts(Settings(), ApiKeys(), ["jq.internal"]).allows("jq.internal")


@pytest.mark.parametrize(
    "origin, host, same",
    [
        (None, "127.0.0.1:8000", True),  # no browser sent it cross-site
        ("http://127.0.0.1:8000", "127.0.0.1:8000", True),
        ("http://127.0.0.1:8000", "127.0.0.1:8001", False),
        ("http://evil.example", "127.0.0.1:8000", False),
        ("null", "127.0.0.1:8000", False),
        ("http://[::1", "127.0.0.1:8000", False),
        ("http://127.0.0.1:8000", None, False),
    ],
)
def test_an_origin_is_this_server_only_when_it_names_the_host_requested(origin, host, same):
    assert same_origin(origin, host) is same
