"""Schemathesis against the shim's /openapi.json: generated requests to every operation, real
services behind; whatever it sends, the shim never answers with a server error."""

from __future__ import annotations

import warnings

import pytest

with warnings.catch_warnings():  # Starlette's notice that its test client will move to `httpx2`
    warnings.simplefilter("ignore")
    schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from jq_cli.http import create_app
from schemathesis.checks import not_a_server_error


@pytest.fixture
def api_schema(settings):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # Schemathesis calls the app as Starlette's test client does, as Host `testserver`.
        named = settings.model_copy(update={"serve_allowed_hosts": "testserver"})
        return schemathesis.openapi.from_asgi("/openapi.json", create_app(named))


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@hypothesis_settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_no_generated_request_gets_a_server_error(case):
    case.call_and_validate(checks=[not_a_server_error], excluded_checks=[])
