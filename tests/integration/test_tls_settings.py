"""TLS settings of the three services pass through their URLs to the drivers."""

from __future__ import annotations


def test_an_unreadable_ca_file_is_a_one_line_setting_error(run_cli, tmp_path):
    result = run_cli(
        "doctor",
        extra_env={"JQ_RABBITMQ_URL": f"amqps://jq:pw@127.0.0.1:1/?cafile={tmp_path}/none.pem"},
    )
    assert result.returncode == 1
    line = next(line for line in result.stdout.splitlines() if "rabbitmq" in line)
    assert "FAIL" in line and "none.pem" in line and "pw" not in line


def test_postgres_sslmode_reaches_libpq(run_cli, settings):
    # The local server has no TLS, so sslmode=require must make the connection fail: proof it was passed on.
    result = run_cli(
        "list", extra_env={"JQ_DATABASE_URL": settings.database_url + "?sslmode=require"}
    )
    assert result.returncode == 3
    assert "SSL" in result.stderr
