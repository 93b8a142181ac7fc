"""TLS settings of the three services pass through their URLs to the drivers."""

from __future__ import annotations

from jq_cli.broker import _parameters
from jq_cli.telemetry import Telemetry


def test_amqps_url_carries_ca_and_client_certificate_options(tmp_path):
    params = _parameters("amqps://jq:pw@mq.example:5671/?heartbeat=10&server_hostname=mq.internal")
    assert params.ssl_options is not None and params.ssl_options.server_hostname == "mq.internal"
    assert params.port == 5671 and params.heartbeat == 10
    assert _parameters("amqp://jq:pw@mq.example/").ssl_options is None


def test_an_unreadable_ca_file_is_a_one_line_setting_error(run_cli, tmp_path):
    result = run_cli(
        "doctor",
        extra_env={"JQ_RABBITMQ_URL": f"amqps://jq:pw@127.0.0.1:1/?cafile={tmp_path}/none.pem"},
    )
    assert result.returncode == 1
    line = next(line for line in result.stdout.splitlines() if "rabbitmq" in line)
    assert "FAIL" in line and "none.pem" in line and "pw" not in line


def test_rediss_url_passes_its_ssl_options_to_redis():
    telemetry = Telemetry(
        "rediss://:pw@cache.example:6380/0?ssl_ca_certs=/etc/ssl/ca.pem&ssl_cert_reqs=required",
        "ns",
    )
    kwargs = telemetry._client.connection_pool.connection_kwargs
    assert kwargs["ssl_ca_certs"] == "/etc/ssl/ca.pem" and kwargs["port"] == 6380
    telemetry.close()


def test_postgres_sslmode_reaches_libpq(run_cli, settings):
    # The local server has no TLS, so sslmode=require must make the connection fail: proof it was passed on.
    result = run_cli(
        "list", extra_env={"JQ_DATABASE_URL": settings.database_url + "?sslmode=require"}
    )
    assert result.returncode == 3
    assert "SSL" in result.stderr
