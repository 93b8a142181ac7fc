"""TLS settings of RabbitMQ and Redis pass through their URLs to the drivers (no connection made)."""

from __future__ import annotations

from jq_cli.broker import _parameters
from jq_cli.observe.telemetry import Telemetry


def test_amqps_url_carries_ca_and_client_certificate_options():
    params = _parameters("amqps://jq:pw@mq.example:5671/?heartbeat=10&server_hostname=mq.internal")
    assert params.ssl_options is not None and params.ssl_options.server_hostname == "mq.internal"
    assert params.port == 5671 and params.heartbeat == 10
    assert _parameters("amqp://jq:pw@mq.example/").ssl_options is None


def test_rediss_url_passes_its_ssl_options_to_redis():
    telemetry = Telemetry(
        "rediss://:pw@cache.example:6380/0?ssl_ca_certs=/etc/ssl/ca.pem&ssl_cert_reqs=required",
        "ns",
    )
    kwargs = telemetry._client.connection_pool.connection_kwargs
    assert kwargs["ssl_ca_certs"] == "/etc/ssl/ca.pem" and kwargs["port"] == 6380
    telemetry.close()
