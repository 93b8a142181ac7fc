"""The HTTP shim (`jq serve`) through HTTP against the real services: every endpoint, every error
class as a problem document, API keys on and off, the body limit, the older service's bodies,
Idempotency-Key, /health with a service down, /metrics, and one real `jq serve` process."""

from __future__ import annotations

import asyncio
import socket
import uuid
import warnings

import httpx
import pytest

from conftest import LOOPBACK_URL, listen_on_free_port, make_settings, wait_for

pytest.importorskip("fastapi")
with warnings.catch_warnings():  # Starlette's notice that it will move to `httpx2` one day
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from jq_cli.client import Client
from jq_cli.http import create_app

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

EMAIL = {"to": "ops@example.com", "subject": "hello", "body": "world"}
CLOSED = "127.0.0.1:1"  # nothing listens on port 1: connections are refused at once
KEYS = ["first-key-0123456789", "second-key-9876543210"]
TRACE_WORDS = ("Traceback", 'File "', "line ", "RuntimeError")


@pytest.fixture
def client(settings):
    with TestClient(create_app(settings), base_url=LOOPBACK_URL) as c:
        yield c


@pytest.fixture
def keyed(settings):
    with TestClient(create_app(settings, api_keys=KEYS), base_url=LOOPBACK_URL) as c:
        yield c


def is_problem(response: httpx.Response, status: int, kind: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    doc = response.json()
    assert {"type", "title", "status", "detail"} <= set(doc)
    assert doc["status"] == status
    if kind:
        assert doc["type"] == f"urn:jq:problem:{kind}"
    for word in ("Traceback", 'File "'):
        assert word not in response.text
    return doc


def submit(
    client: TestClient, job_type: str = "noop", payload: dict | None = None, **fields
) -> dict:
    r = client.post("/api/v1/jobs", json={"job_type": job_type, "payload": payload or {}, **fields})
    assert r.status_code == 201, r.text
    return r.json()


# -- jobs -----------------------------------------------------------------------------------------


def test_submit_answers_201_with_the_committed_job(client, ops):
    r = client.post(
        "/api/v1/jobs", json={"job_type": "send_email", "payload": EMAIL, "priority": "high"}
    )
    assert r.status_code == 201, r.text
    job = r.json()
    assert r.headers["location"] == f"/api/v1/jobs/{job['id']}"
    assert (job["state"], job["priority"], job["payload"]) == ("queued", "high", EMAIL)
    assert ops.get(job["id"])["state"] == "queued"  # committed before the answer
    shown = client.get(f"/api/v1/jobs/{job['id']}").json()
    assert shown["id"] == job["id"] and shown["attempt_history"] == []


def test_older_service_job_body_is_accepted_verbatim(client):
    old = {"job_type": "send_email", "priority": "low", "payload": EMAIL, "max_retries": 5}
    job = client.post("/api/v1/jobs", json=old).json()
    assert (job["job_type"], job["priority"], job["max_retries"], job["payload"]) == (
        "send_email",
        "low",
        5,
        EMAIL,
    )


def test_idempotency_key_header_returns_the_first_job(client):
    body = {"job_type": "noop", "payload": {"n": 1}}
    first = client.post("/api/v1/jobs", json=body, headers={"Idempotency-Key": "order-42"})
    again = client.post("/api/v1/jobs", json=body, headers={"Idempotency-Key": "order-42"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert first.json()["idempotency_key"] == "order-42"
    other = client.post("/api/v1/jobs", json=body, headers={"Idempotency-Key": "order-43"})
    assert other.status_code == 201 and other.json()["id"] != first.json()["id"]
    clash = client.post(
        "/api/v1/jobs", json={**body, "idempotency_key": "a"}, headers={"Idempotency-Key": "b"}
    )
    is_problem(clash, 422, "invalid-input")


def test_bulk_submit_takes_all_jobs_or_none(client, ops):
    jobs = [{"job_type": "noop", "payload": {"n": n}} for n in range(3)]
    r = client.post("/api/v1/jobs/bulk", json={"jobs": jobs})
    assert r.status_code == 201, r.text
    assert r.json()["count"] == 3 and r.json()["created"] == 3
    assert [ops.get(i)["payload"]["n"] for i in r.json()["ids"]] == [0, 1, 2]
    unknown = client.post("/api/v1/jobs/bulk", json={"jobs": [jobs[0], {"job_type": "nope"}]})
    assert is_problem(unknown, 422, "invalid-input")["detail"].startswith("job 2: unknown job type")
    badly = client.post(
        "/api/v1/jobs/bulk", json={"jobs": [jobs[0], {"job_type": "noop", "priority": "urgent"}]}
    )
    assert is_problem(badly, 422)["detail"].startswith("job 2: priority")
    is_problem(client.post("/api/v1/jobs/bulk", json={"jobs": []}), 422)
    assert len(ops.list_jobs()) == 3  # the refused batches wrote nothing


def test_list_filters_and_pages_newest_first(client):
    ids = [submit(client, payload={"n": n})["id"] for n in range(5)]
    submit(client, "send_email", EMAIL, priority="high")
    page = client.get("/api/v1/jobs", params={"type": "noop", "limit": 2}).json()
    assert [j["id"] for j in page["jobs"]] == ids[::-1][:2] and page["next_offset"] == 2
    last = client.get("/api/v1/jobs", params={"type": "noop", "limit": 2, "offset": 4}).json()
    assert [j["id"] for j in last["jobs"]] == [ids[0]] and last["next_offset"] is None
    high = client.get(
        "/api/v1/jobs", params={"priority": "high", "state": "queued", "since": "1h"}
    ).json()
    assert [j["job_type"] for j in high["jobs"]] == ["send_email"]
    assert is_problem(client.get("/api/v1/jobs", params={"state": "lost"}), 422)[
        "detail"
    ].startswith("unknown state")
    is_problem(client.get("/api/v1/jobs", params={"limit": 0}), 422)
    is_problem(client.get("/api/v1/jobs", params={"since": "soon"}), 422)


def test_cancel_and_retry_answer_409_for_a_wrong_state_and_404_for_an_unknown_id(client):
    job_id = submit(client)["id"]
    is_problem(client.post(f"/api/v1/jobs/{job_id}/retry"), 409, "invalid-transition")
    assert client.post(f"/api/v1/jobs/{job_id}/cancel").json() == {
        "id": job_id,
        "state": "cancelled",
    }
    is_problem(client.post(f"/api/v1/jobs/{job_id}/cancel"), 409, "invalid-transition")
    assert client.post(f"/api/v1/jobs/{job_id}/retry").json() == {"id": job_id, "state": "queued"}
    for path in (
        "/api/v1/jobs/987654321",
        "/api/v1/jobs/987654321/retry",
        "/api/v1/jobs/987654321/cancel",
    ):
        call = client.get if path.endswith("1") else client.post
        is_problem(call(path), 404, "not-found")
    is_problem(client.get("/api/v1/jobs/0"), 422)
    is_problem(client.get(f"/api/v1/jobs/{2**64}"), 422)  # beyond a bigint: refused, never a 500


def test_dead_letter_lists_and_retries_dead_jobs(client, start_worker):
    start_worker()
    dead = submit(client, "send_email", {**EMAIL, "failure_rate": 1.0}, max_retries=0)["id"]
    wait_for(lambda: client.get(f"/api/v1/jobs/{dead}").json()["state"] == "dead", what="job dead")
    listed = client.get("/api/v1/dead-letter").json()
    assert [j["id"] for j in listed["jobs"]] == [dead] and listed["jobs"][0]["last_error"]
    dry = client.post("/api/v1/dead-letter/retry", json={"all": True, "dry_run": True}).json()
    assert dry["dry_run"] and dry["count"] == 1
    mixed = client.post("/api/v1/dead-letter/retry", json={"ids": [dead, 987654321]}).json()
    assert mixed["changed"] == [{"id": dead, "state": "queued"}]
    assert mixed["refused"][0]["id"] == 987654321 and mixed["refused"][0]["kind"] == "not-found"
    is_problem(client.post("/api/v1/dead-letter/retry", json={}), 422)
    is_problem(client.post("/api/v1/dead-letter/retry", json={"ids": [1], "all": True}), 422)


def test_stats_counts_by_state_priority_and_queue(client):
    submit(client, priority="high")
    stats = client.get("/api/v1/stats").json()
    assert stats["by_state"]["queued"] == 1 and stats["queued_by_priority"]["high"] == 1
    assert stats["queues"]["default"]["queued"] == 1


# -- schedules ------------------------------------------------------------------------------------


def test_scheduled_jobs_round_trip_with_the_older_service_body(client):
    old = {
        "name": "nightly",
        "job_type": "send_email",
        "cron_expression": "0 3 * * *",
        "payload": EMAIL,
        "priority": "high",
    }
    r = client.post("/api/v1/scheduled-jobs", json=old)
    assert r.status_code == 201, r.text
    assert (r.json()["cron"], r.json()["priority"], r.json()["enabled"]) == (
        "0 3 * * *",
        "high",
        True,
    )
    assert r.headers["location"] == "/api/v1/scheduled-jobs/nightly"
    is_problem(client.post("/api/v1/scheduled-jobs", json=old), 409)  # the name exists: a conflict
    assert [s["name"] for s in client.get("/api/v1/scheduled-jobs").json()] == ["nightly"]
    shown = client.get("/api/v1/scheduled-jobs/nightly", params={"next": 3}).json()
    assert len(shown["next_fire_times"]) == 3
    changed = client.patch(
        "/api/v1/scheduled-jobs/nightly", json={"cron": "*/5 * * * *", "enabled": False}
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["cron"], changed.json()["enabled"]) == ("*/5 * * * *", False)
    is_problem(client.patch("/api/v1/scheduled-jobs/nightly", json={"colour": "blue"}), 422)
    is_problem(client.patch("/api/v1/scheduled-jobs/nightly", json={"cron": "every tuesday"}), 422)
    is_problem(
        client.post(
            "/api/v1/scheduled-jobs", json={**old, "name": "bad", "cron_expression": "61 * * * *"}
        ),
        422,
    )
    assert client.delete("/api/v1/scheduled-jobs/nightly").status_code == 204
    for call in (client.get, client.delete):
        is_problem(call("/api/v1/scheduled-jobs/nightly"), 404, "not-found")
    is_problem(client.patch("/api/v1/scheduled-jobs/nightly", json={"enabled": True}), 404)


# -- errors ---------------------------------------------------------------------------------------


def test_bad_requests_are_problem_documents(client):
    post = "/api/v1/jobs"
    is_problem(
        client.post(post, content=b'{"job_type": ', headers={"content-type": "application/json"}),
        400,
    )
    is_problem(
        client.post(post, content=b'{"job_type": "noop"}', headers={"content-type": "text/plain"}),
        415,
    )
    detail = is_problem(
        client.post(post, json={"job_type": "noop", "payload": [1]}), 422, "invalid-input"
    )["detail"]
    assert detail.startswith("payload")
    assert (
        "colour"
        in is_problem(client.post(post, json={"job_type": "noop", "colour": 1}), 422)["detail"]
    )
    assert (
        "unknown job type"
        in is_problem(client.post(post, json={"job_type": "nope"}), 422)["detail"]
    )
    is_problem(client.get("/api/v1/nowhere"), 404)
    is_problem(client.delete("/api/v1/jobs"), 405)


def test_a_body_over_the_limit_is_refused_with_413_before_parsing(settings, ops):
    small = settings.model_copy(update={"max_payload_bytes": 1000})
    with TestClient(create_app(small), base_url=LOOPBACK_URL) as c:
        big = {"job_type": "noop", "payload": {"blob": "x" * 2000}}
        is_problem(c.post("/api/v1/jobs", json=big), 413, "payload-too-large")
        chunks = iter(
            [b'{"job_type": "noop", "payload": {"blob": "', b"x" * 600, b"x" * 600, b'"}}']
        )
        is_problem(
            c.post("/api/v1/jobs", content=chunks, headers={"content-type": "application/json"}),
            413,
        )
        bulk = {"jobs": [{"job_type": "noop", "payload": {"n": n}} for n in range(100)]}
        is_problem(c.post("/api/v1/jobs/bulk", json=bulk), 413)
        assert (
            c.post(
                "/api/v1/jobs", json={"job_type": "noop", "payload": {"blob": "x" * 100}}
            ).status_code
            == 201
        )
        assert 'route="/api/v1/jobs",status="413"} 2.0' in c.get("/metrics").text
    assert len(ops.list_jobs()) == 1


class BrokenOperations(Client):
    def stats(self):
        raise RuntimeError("secret internals at /srv/jq: password=hunter2")


def test_an_unexpected_error_is_a_bare_500_and_the_traceback_only_logged(settings, caplog):
    app = create_app(settings, ops_factory=lambda: BrokenOperations(settings))
    with TestClient(app, base_url=LOOPBACK_URL) as c:
        r = c.get("/api/v1/stats")
        doc = is_problem(r, 500, "internal-error")
    for word in (*TRACE_WORDS, "hunter2", "secret internals"):
        assert word not in r.text
    assert doc["detail"] == "internal error: the server logged the details"
    logged = [rec for rec in caplog.records if rec.name == "jq.http" and rec.exc_info]
    assert logged and "secret internals" in str(logged[0].exc_info[1])


# -- services down --------------------------------------------------------------------------------


def test_health_reports_each_service_and_503_when_postgres_or_rabbitmq_is_down(settings, client):
    ok = client.get("/health")
    assert ok.status_code == 200 and ok.json()["status"] == "ok"
    assert {c["name"] for c in ok.json()["checks"]} == {"postgresql", "schema", "rabbitmq", "redis"}
    cases = [
        ({"database_url": f"postgresql://{CLOSED}/jq_test"}, 503, "postgresql"),
        ({"rabbitmq_url": f"amqp://guest:guest@{CLOSED}/"}, 503, "rabbitmq"),
        ({"redis_url": f"redis://{CLOSED}/0"}, 200, "redis"),
    ]
    for change, status, down in cases:
        broken = make_settings(settings.namespace, **change)
        with TestClient(create_app(broken), base_url=LOOPBACK_URL) as c:
            r = c.get("/health")
            assert r.status_code == status, r.text
            assert r.json()["status"] == ("unavailable" if status == 503 else "degraded")
            assert [c["name"] for c in r.json()["checks"] if not c["ok"]] == [down]


def test_a_service_down_answers_503_and_an_unmigrated_schema_too(settings):
    broken = make_settings(settings.namespace, database_url=f"postgresql://{CLOSED}/jq_test")
    with TestClient(create_app(broken), base_url=LOOPBACK_URL) as c:
        is_problem(c.post("/api/v1/jobs", json={"job_type": "noop"}), 503, "service-unavailable")
        is_problem(c.get("/api/v1/stats"), 503, "service-unavailable")
        metrics = c.get("/metrics")
        assert metrics.status_code == 200 and "jq_stats_up 0.0" in metrics.text
    bare = make_settings(f"t{uuid.uuid4().hex[:12]}")
    with TestClient(create_app(bare), base_url=LOOPBACK_URL) as c:
        is_problem(c.get("/api/v1/jobs"), 503, "schema-not-migrated")
        assert c.get("/health").status_code == 503


def test_a_submit_while_rabbitmq_is_down_is_still_accepted(settings, ops):
    broken = make_settings(settings.namespace, rabbitmq_url=f"amqp://guest:guest@{CLOSED}/")
    with TestClient(create_app(broken), base_url=LOOPBACK_URL) as c:
        job = submit(c)
    assert ops.get(job["id"])["state"] == "queued"  # committed; the sweeper publishes it later


# -- auth -----------------------------------------------------------------------------------------


def test_every_endpoint_but_health_needs_a_key_when_keys_are_set(keyed):
    paths = [
        ("GET", "/api/v1/jobs"),
        ("POST", "/api/v1/jobs"),
        ("GET", "/api/v1/stats"),
        ("GET", "/metrics"),
        ("GET", "/api/v1/scheduled-jobs"),
        ("GET", "/openapi.json"),
        ("DELETE", "/api/v1/scheduled-jobs/x"),
    ]
    for method, path in paths:
        for headers in (
            {},
            {"X-API-Key": "wrong"},
            {"Authorization": "Bearer wrong"},
            {"Authorization": f"Basic {KEYS[0]}"},
        ):
            r = keyed.request(method, path, headers=headers)
            is_problem(r, 401, "unauthorized")
            assert r.headers["www-authenticate"].startswith("Bearer")
    assert (
        keyed.get("/api/v1/jobs", headers={"Authorization": f"Bearer {KEYS[0]}"}).status_code == 200
    )
    assert (
        keyed.get("/api/v1/jobs", headers={"authorization": f"bearer {KEYS[1]}"}).status_code == 200
    )
    assert (
        keyed.post(
            "/api/v1/jobs", json={"job_type": "noop"}, headers={"X-API-Key": KEYS[1]}
        ).status_code
        == 201
    )
    metrics = keyed.get("/metrics", headers={"X-API-Key": KEYS[0]}).text
    assert 'jq_http_requests_total{method="GET",route="/api/v1/stats",status="401"} 4.0' in metrics


def _call_asgi(app, headers: list[tuple[bytes, bytes]], body: bytes) -> tuple[int, int]:
    """POST /api/v1/jobs straight into the ASGI app, whose `receive` counts the times the body was
    asked for. Returns (status, reads)."""
    reads, statuses = [], []

    async def receive():
        reads.append(1)
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v1/jobs",
        "raw_path": b"/api/v1/jobs",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *headers,
        ],
        "client": ("127.0.0.1", 40000),
        "server": ("testserver", 80),
    }
    asyncio.run(app(scope, receive, send))
    return statuses[0], len(reads)


def test_a_request_without_a_key_gets_401_before_its_body_is_read(keyed, ops):
    huge = b"{" * 5_000_000  # malformed and over the limit: either would be 400 or 413 if parsed
    r = keyed.post("/api/v1/jobs", content=huge, headers={"content-type": "application/json"})
    is_problem(r, 401)
    # A valid job under the limit, so that only the missing key can refuse it: never read.
    body = b'{"job_type": "noop"}'
    assert _call_asgi(keyed.app, [], body) == (401, 0)
    assert _call_asgi(keyed.app, [(b"x-api-key", b"wrong")], body) == (401, 0)
    assert ops.list_jobs() == []
    # The same request with a key is read (once) and accepted: the count can see a read.
    assert _call_asgi(keyed.app, [(b"x-api-key", KEYS[0].encode())], body) == (201, 1)
    assert len(ops.list_jobs()) == 1


def test_health_is_open_but_shows_details_only_with_a_key(keyed):
    anonymous = keyed.get("/health")
    assert anonymous.status_code == 200
    assert all(set(c) == {"name", "ok"} for c in anonymous.json()["checks"])
    assert "localhost" not in anonymous.text
    known = keyed.get("/health", headers={"X-API-Key": KEYS[0]}).json()
    assert all("detail" in c for c in known["checks"])


# -- docs and metrics -----------------------------------------------------------------------------


def test_openapi_and_docs_describe_every_endpoint(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert set(paths) == {
        "/api/v1/jobs",
        "/api/v1/jobs/bulk",
        "/api/v1/jobs/{job_id}",
        "/api/v1/jobs/{job_id}/retry",
        "/api/v1/jobs/{job_id}/cancel",
        "/api/v1/stats",
        "/api/v1/dead-letter",
        "/api/v1/dead-letter/retry",
        "/api/v1/scheduled-jobs",
        "/api/v1/scheduled-jobs/{name}",
        "/health",
        "/metrics",
    }
    assert set(paths["/api/v1/scheduled-jobs/{name}"]) == {"get", "patch", "delete"}
    assert "swagger" in client.get("/docs").text.lower()


def test_metrics_count_requests_by_route_and_jobs_by_state(client):
    submit(client)
    client.get("/api/v1/jobs/987654321")
    client.get("/no/such/path/12345")
    text = client.get("/metrics").text
    assert 'jq_http_requests_total{method="POST",route="/api/v1/jobs",status="201"} 1.0' in text
    assert (
        'jq_http_requests_total{method="GET",route="/api/v1/jobs/{job_id}",status="404"} 1.0'
        in text
    )
    assert 'route="unmatched",status="404"' in text and "12345" not in text
    # The scheduler's series: every state under priority "all", queued ones also by priority.
    assert 'jq_jobs{priority="all",state="queued"} 1.0' in text
    assert (
        'jq_jobs{priority="medium",state="queued"} 1.0' in text
        and 'jq_jobs{priority="all",state="dead"} 0.0' in text
    )
    assert 'jq_queue_jobs_queued{queue="default"} 1.0' in text
    assert "jq_stats_up 1.0" in text and "jq_build_info{version=" in text


# -- the command ----------------------------------------------------------------------------------


def test_serve_refuses_a_public_address_without_a_key(run_cli):
    out = run_cli(
        "serve", "--host", "0.0.0.0", extra_env={"JQ_API_KEY": "", "JQ_API_KEYS_FILE": ""}
    )
    assert out.returncode == 2 and "without an API key" in out.stderr


def read_datagrams(sock: socket.socket) -> list[str]:
    lines = []
    while True:
        try:
            lines.extend(sock.recv(4096).decode().splitlines())
        except (BlockingIOError, TimeoutError):
            return lines


def test_a_real_jq_serve_process_serves_the_api(settings, spawn, tmp_path):
    key = f"canary-key-{uuid.uuid4().hex}"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    notify.setblocking(False)

    def up(port: int) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    proc, port = listen_on_free_port(
        lambda p: spawn(
            "serve",
            "--port",
            str(p),
            extra_env={"JQ_API_KEY": key, "NOTIFY_SOCKET": str(tmp_path / "notify.sock")},
        ),
        up,
    )
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {key}"}
    r = httpx.post(
        f"{base}/api/v1/jobs", json={"job_type": "noop", "payload": {"via": "http"}}, headers=auth
    )
    assert r.status_code == 201, r.text
    assert httpx.get(f"{base}/api/v1/jobs/{r.json()['id']}", headers=auth).json()["payload"] == {
        "via": "http"
    }
    assert httpx.get(f"{base}/api/v1/stats").status_code == 401
    # A key in the query string is no key (headers only) and stays out of the access log.
    assert httpx.get(f"{base}/api/v1/stats?key={key}&x=%0Afake").status_code == 401
    assert (
        httpx.get(f"{base}/openapi.json", headers={"X-API-Key": key}).json()["info"]["title"]
        == "jq"
    )
    assert "READY=1" in read_datagrams(notify)  # sent once the socket was bound
    proc.terminate()
    assert proc.wait(15) == 0
    assert "STOPPING=1" in read_datagrams(notify)
    notify.close()
    stderr = proc.stderr.read()
    assert "API key(s) loaded" in stderr and key not in stderr
    assert "POST /api/v1/jobs" in stderr  # the access log, one line per request
    assert '"GET /api/v1/stats" 401' in stderr and "fake" not in stderr


# -- filters that filter, keys that mean one request -----------------------------------


def test_repeated_and_comma_separated_filters_mean_any_of(client, ops):
    queued = ops.submit("noop", {})
    other = ops.submit("noop", {}, queue="other", priority="low")
    cancelled = ops.submit("noop", {})
    ops.cancel([cancelled])
    ids = lambda r: sorted(j["id"] for j in r.json()["jobs"])  # noqa: E731
    assert ids(client.get("/api/v1/jobs?state=queued&state=cancelled")) == [
        queued,
        other,
        cancelled,
    ]
    assert ids(client.get("/api/v1/jobs?state=cancelled,dead")) == [cancelled]
    assert ids(client.get("/api/v1/jobs?queue=other,reports")) == [other]
    assert ids(client.get("/api/v1/jobs?priority=low&priority=high")) == [other]


def test_an_unknown_query_parameter_is_a_400_naming_it(client, ops):
    ops.submit("noop", {})
    doc = is_problem(client.get("/api/v1/jobs?status=dead"), 400, "invalid-input")
    assert "status" in doc["detail"] and "did you mean 'state'" in doc["detail"]
    doc = is_problem(client.get("/api/v1/dead-letter?colour=red&size=2"), 400)
    assert "colour, size" in doc["detail"]
    assert client.get("/api/v1/jobs?state=dead&limit=5").status_code == 200


def test_an_idempotency_key_reused_for_another_request_is_a_409_naming_the_job(client):
    first = client.post(
        "/api/v1/jobs", json={"job_type": "noop", "payload": {"a": 1}, "idempotency_key": "k-1"}
    )
    assert first.status_code == 201
    again = client.post(
        "/api/v1/jobs", json={"job_type": "noop", "payload": {"a": 1}, "idempotency_key": "k-1"}
    )
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    other = client.post(
        "/api/v1/jobs",
        json={"job_type": "send_email", "payload": EMAIL, "idempotency_key": "k-1"},
    )
    doc = is_problem(other, 409, "conflict")
    assert f"job {first.json()['id']}" in doc["detail"]


# -- other sites: DNS rebinding (Host) and cross-site requests (Origin) ---------------------------


def test_a_keyless_shim_refuses_a_cross_site_post_and_leaves_the_job(client, ops):
    job = ops.submit("noop", {})
    evil = client.post(f"/api/v1/jobs/{job}/cancel", headers={"Origin": "http://evil.example"})
    is_problem(evil, 403, "forbidden")
    assert ops.get(job)["state"] == "queued"
    null = client.post(f"/api/v1/jobs/{job}/cancel", headers={"Origin": "null"})
    is_problem(null, 403, "forbidden")
    own = client.post(f"/api/v1/jobs/{job}/cancel", headers={"Origin": "http://127.0.0.1"})
    assert own.status_code == 200, own.text  # the shim's own origin
    assert ops.get(job)["state"] == "cancelled"
    # A read from another site's page is harmless without the Host rule's help: allowed.
    assert client.get("/api/v1/stats", headers={"Origin": "http://evil.example"}).status_code == 200


def test_a_keyless_shim_refuses_a_rebound_host_name(client, ops, store):
    job = ops.submit("noop", {"secret": "payload"})
    rebound = {"Host": "evil.example"}
    read = client.get(f"/api/v1/jobs/{job}", headers=rebound)
    assert "payload" not in is_problem(read, 403, "forbidden")["detail"]
    is_problem(client.post("/api/v1/jobs", json={"job_type": "noop"}, headers=rebound), 403)
    is_problem(client.get("/health", headers=rebound), 403)
    assert store._one("SELECT count(*) AS n FROM jobs")["n"] == 1
    assert client.get(f"/api/v1/jobs/{job}", headers={"Host": "localhost:8000"}).status_code == 200


def test_configured_host_names_are_answered_and_a_keyed_shim_answers_any(settings):
    named = settings.model_copy(update={"serve_allowed_hosts": "jq.internal"})
    with TestClient(create_app(named), base_url="http://jq.internal") as c:
        assert c.get("/api/v1/stats").status_code == 200
        is_problem(c.get("/api/v1/stats", headers={"Host": "evil.example"}), 403)
    with TestClient(create_app(settings, api_keys=KEYS), base_url="http://jq.example") as c:
        assert c.get("/api/v1/stats", headers={"X-API-Key": KEYS[0]}).status_code == 200
        cross = c.post(
            "/api/v1/jobs",
            json={"job_type": "noop"},
            headers={"X-API-Key": KEYS[0], "Origin": "http://evil.example"},
        )
        is_problem(cross, 403, "forbidden")


def test_a_real_keyless_jq_serve_answers_allowed_hosts_only(spawn):
    def up(port: int) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    proc, port = listen_on_free_port(
        lambda p: spawn("serve", "--port", str(p), "--allowed-host", "jq.internal"), up
    )
    base = f"http://127.0.0.1:{port}"
    assert httpx.get(f"{base}/api/v1/stats", headers={"Host": "jq.internal"}).status_code == 200
    rebound = httpx.post(
        f"{base}/api/v1/jobs", json={"job_type": "noop"}, headers={"Host": "evil.example"}
    )
    assert rebound.status_code == 403
    assert rebound.headers["content-type"].startswith("application/problem+json")
    proc.terminate()
    assert proc.wait(15) == 0
