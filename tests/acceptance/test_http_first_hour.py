"""The HTTP shim for a new user: /docs works with no internet, and a 422 names every
bad field, not just the first."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from jq_cli.http.app import create_app

from conftest import LOOPBACK_URL


@pytest.fixture
def client(settings):
    with TestClient(create_app(settings), base_url=LOOPBACK_URL) as c:
        yield c


def test_docs_page_and_its_assets_are_served_by_jq_serve_itself(client):
    page = client.get("/docs")
    assert page.status_code == 200 and "swagger" in page.text.lower()
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
    assert urls, page.text
    # Nothing from another host: offline, a CDN's script is a blank page.
    assert all(url.startswith("/") for url in urls), urls
    kinds = {}
    for url in urls:
        asset = client.get(url)
        assert asset.status_code == 200, url
        kinds[url.rsplit(".", 1)[-1]] = asset.headers["content-type"]
    assert "javascript" in kinds["js"] and "text/css" in kinds["css"]
    assert "/openapi.json" in page.text and client.get("/openapi.json").status_code == 200


def test_a_422_names_every_bad_field_in_its_detail(client):
    bad = client.post(
        "/api/v1/jobs",
        json={"job_type": "noop", "priority": "urgent", "max_retries": -1, "delay": "soon"},
    )
    assert bad.status_code == 422, bad.text
    body = bad.json()
    fields = [e["field"] for e in body.get("errors", [])]
    for field in ("priority", "max_retries", "delay"):
        assert field in body["detail"], body
        assert any(field in f for f in fields), body


def test_the_serve_units_command_line_serves_docs_on_loopback_without_a_key(settings, tmp_path):
    """daemons/jq-serve.service's ExecStart, run as written (its paths pointed here): it listens
    with no API key configured (it used to exit 2 and restart until systemd gave up)."""
    import os
    import shlex
    import subprocess
    from pathlib import Path

    import httpx

    from conftest import JQ, listen_on_free_port

    unit = (Path(__file__).resolve().parents[2] / "daemons" / "jq-serve.service").read_text()
    (start,) = [
        line.split("=", 1)[1] for line in unit.splitlines() if line.startswith("ExecStart=")
    ]
    config = tmp_path / "jq.env"
    config.write_text(
        "# the test's services\n"
        + "".join(f"{k}={v}\n" for k, v in settings.as_environment().items())
    )
    args = shlex.split(
        start.replace("/opt/jq/.venv/bin/jq", JQ).replace("/etc/jq/jq.env", str(config))
    )
    assert args[args.index("--port") + 1] == "8000"
    env = {k: v for k, v in os.environ.items() if not k.startswith("JQ_")}

    def start_at(port: int) -> subprocess.Popen:
        at = [*args[: args.index("--port") + 1], str(port)]
        return subprocess.Popen(at, env=env, stderr=subprocess.PIPE, text=True)

    def up(port: int) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    proc, port = listen_on_free_port(start_at, up)
    try:
        page = httpx.get(f"http://127.0.0.1:{port}/docs", timeout=5)
        assert page.status_code == 200
        for asset in re.findall(r"""(?:src|href)=["'](/[^"']+)["']""", page.text):
            assert httpx.get(f"http://127.0.0.1:{port}{asset}", timeout=5).status_code == 200
    finally:
        proc.terminate()
        assert proc.wait(15) == 0
        assert proc.stderr is not None
        assert "listening on 127.0.0.1 only" in proc.stderr.read()
