"""The contract of every front door: the CLI, Client, AsyncClient and the HTTP shim submit, retry
and cancel by the same rules (docs/design.md, Code layout: one preparation of a job, one audited
path for every operator action). Each behaviour is one test, parametrised over the doors; a door
that lacks a behaviour is skipped with its reason, never faked."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
import warnings
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import pytest
from jq_cli import AsyncClient
from jq_cli.client import Client
from jq_cli.config import Settings
from jq_cli.errors import Conflict, InvalidInput, InvalidTransition, JqError, NotFound
from jq_cli.handlers.registry import job
from jq_cli.store import Finish, Store
from pydantic import BaseModel

pytest.importorskip("fastapi")
with warnings.catch_warnings():  # Starlette's notice that it will move to `httpx2` one day
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from jq_cli.http import create_app

from conftest import LOOPBACK_URL

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

DOORS = ("cli", "client", "async", "http")
FAR_PARENT_DELAY = "1h"  # a parent that stays scheduled: its dependants stay waiting


class Resize(BaseModel):
    width: int


# In-process @job declarations: what an application that imports its handlers submits with.
@job("t_contract_local", queue="images", priority="high", max_retries=7)
def _local_defaults(payload: dict[str, Any], ctx: Any) -> None:
    return None


@job("t_contract_local_schema", payload=Resize)
def _local_schema(payload: Resize, ctx: Any) -> None:
    return None


class Failed(Exception):
    """A door refused: the error as that door reports it (an exception, an exit code, a status)."""

    def __init__(
        self,
        error: JqError | None = None,
        *,
        exit_code: int | None = None,
        status: int | None = None,
        kind: str | None = None,
        text: str = "",
    ) -> None:
        super().__init__(text or repr(error))
        self.error, self.exit_code, self.status, self.kind = error, exit_code, status, kind


def assert_refused(failed: Failed, expected: type[JqError]) -> None:
    """The same refusal in each door's own words: the error class, its exit code, its status."""
    if failed.error is not None:
        assert isinstance(failed.error, expected), failed.error
    if failed.exit_code is not None:
        assert failed.exit_code == expected.exit_code, failed
    if failed.status is not None:
        assert failed.status == expected.http_status, failed
        assert failed.kind == f"urn:jq:problem:{expected.kind}", failed


class Door:
    """One front door, driven as its users drive it."""

    name = ""
    actor_kind = ""
    in_process = True  # sees the @job declarations this process imported

    def submit(self, job_type: str, payload: dict[str, Any] | None = None, **options: Any) -> int:
        raise NotImplementedError

    def submit_many(self, jobs: list[dict[str, Any]]) -> list[int]:
        raise NotImplementedError

    def retry(self, job_id: int) -> None:
        raise NotImplementedError

    def cancel(self, job_id: int) -> None:
        raise NotImplementedError

    def get(self, job_id: int) -> dict[str, Any]:
        raise NotImplementedError


class ClientDoor(Door):
    name, actor_kind = "client", "api"

    def __init__(self, settings: Settings) -> None:
        self.client = Client(settings)

    def _call(self, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except JqError as exc:
            raise Failed(exc) from exc

    def submit(self, job_type: str, payload: dict[str, Any] | None = None, **options: Any) -> int:
        return self._call(lambda: self.client.submit(job_type, payload, **options))

    def submit_many(self, jobs: list[dict[str, Any]]) -> list[int]:
        return self._call(lambda: self.client.submit_many(jobs))

    def _action(self, name: str, job_id: int) -> None:
        report = self._call(lambda: getattr(self.client, name)([job_id]))
        if job_id in report.refused:
            raise Failed(report.refused[job_id])

    def retry(self, job_id: int) -> None:
        self._action("retry", job_id)

    def cancel(self, job_id: int) -> None:
        self._action("cancel", job_id)

    def get(self, job_id: int) -> dict[str, Any]:
        return self._call(lambda: self.client.get(job_id))


class AsyncDoor(Door):
    name, actor_kind = "async", "api"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def _run(self, body: Callable[[AsyncClient], Any]) -> Any:
        async def scenario() -> Any:
            async with AsyncClient(self.settings) as client:
                return await body(client)

        try:
            return asyncio.run(scenario())
        except JqError as exc:
            raise Failed(exc) from exc

    def submit(self, job_type: str, payload: dict[str, Any] | None = None, **options: Any) -> int:
        return self._run(lambda c: c.submit(job_type, payload, **options))

    def submit_many(self, jobs: list[dict[str, Any]]) -> list[int]:
        return self._run(lambda c: c.submit_many(jobs))

    def _action(self, name: str, job_id: int) -> None:
        report = self._run(lambda c: getattr(c, name)([job_id]))
        if job_id in report.refused:
            raise Failed(report.refused[job_id])

    def retry(self, job_id: int) -> None:
        self._action("retry", job_id)

    def cancel(self, job_id: int) -> None:
        self._action("cancel", job_id)

    def get(self, job_id: int) -> dict[str, Any]:
        return self._run(lambda c: c.get(job_id))


class CliDoor(Door):
    name, actor_kind, in_process = "cli", "cli", False
    FLAGS: ClassVar[dict[str, str]] = {  # option -> how `jq submit` spells it
        "queue": "--queue",
        "priority": "--priority",
        "max_retries": "--max-retries",
        "delay": "--delay",
        "idempotency_key": "--idempotency-key",
        "unique_for": "--unique-for",
        "depends_on": "--after",
    }

    def __init__(self, run_cli: Callable[..., subprocess.CompletedProcess]) -> None:
        self.run_cli = run_cli

    def _run(self, *args: str, input: str | None = None) -> str:
        done = self.run_cli(*args, input=input)
        if done.returncode != 0:
            raise Failed(exit_code=done.returncode, text=done.stderr)
        return done.stdout

    def submit(self, job_type: str, payload: dict[str, Any] | None = None, **options: Any) -> int:
        args = ["submit", job_type, "--payload", json.dumps(payload or {})]
        for key, value in options.items():
            if key == "depends_on":
                value = ",".join(str(p) for p in value)
            args += [self.FLAGS[key], str(value)]
        if "queue" in options:  # the CLI alone refuses a queue nobody knows yet, to catch typos
            args.append("--new-queue")
        return int(self._run(*args))

    def submit_many(self, jobs: list[dict[str, Any]]) -> list[int]:
        lines = "".join(json.dumps(j) + "\n" for j in jobs)
        args = ["submit", "--file", "-", "--json", "--new-queue"]  # as submit's --queue, above
        return json.loads(self._run(*args, input=lines))["ids"]

    def retry(self, job_id: int) -> None:
        self._run("retry", str(job_id))

    def cancel(self, job_id: int) -> None:
        self._run("cancel", str(job_id))

    def get(self, job_id: int) -> dict[str, Any]:
        return json.loads(self._run("show", str(job_id), "-o", "json"))


class HttpDoor(Door):
    name, actor_kind = "http", "http"

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def _answer(self, response: Any) -> Any:
        if response.status_code >= 400:
            doc = response.json()
            raise Failed(status=response.status_code, kind=doc.get("type"), text=response.text)
        return response.json()

    def submit(self, job_type: str, payload: dict[str, Any] | None = None, **options: Any) -> int:
        body = {"job_type": job_type, "payload": payload or {}, **options}
        return self._answer(self.client.post("/api/v1/jobs", json=body))["id"]

    def submit_many(self, jobs: list[dict[str, Any]]) -> list[int]:
        return self._answer(self.client.post("/api/v1/jobs/bulk", json={"jobs": jobs}))["ids"]

    def retry(self, job_id: int) -> None:
        self._answer(self.client.post(f"/api/v1/jobs/{job_id}/retry"))

    def cancel(self, job_id: int) -> None:
        self._answer(self.client.post(f"/api/v1/jobs/{job_id}/cancel"))

    def get(self, job_id: int) -> dict[str, Any]:
        return self._answer(self.client.get(f"/api/v1/jobs/{job_id}"))


@pytest.fixture(params=DOORS)
def door(request: pytest.FixtureRequest, settings: Settings, run_cli: Any) -> Iterator[Door]:
    if request.param == "cli":
        yield CliDoor(run_cli)
    elif request.param == "client":
        d = ClientDoor(settings)
        yield d
        d.client.close()
    elif request.param == "async":
        yield AsyncDoor(settings)
    else:
        with TestClient(create_app(settings), base_url=LOOPBACK_URL) as c:
            yield HttpDoor(c)


def refused(expected: type[JqError], call: Callable[[], object]) -> None:
    with pytest.raises(Failed) as caught:
        call()
    assert_refused(caught.value, expected)


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def dead_job(ops: Client, store: Store) -> int:
    """A job that failed its only attempt, as a worker records it."""
    job_id = ops.submit("noop", {"dead": True}, max_retries=0)
    claimed = store.job_claim([job_id], "contract-worker", 30)
    store.job_finish(
        [Finish(job_id, claimed[0].run_count, "failed", error="boom")], "contract-worker"
    )
    assert store.job_states([job_id]) == {job_id: "dead"}
    return job_id


def stored(store: Store, job_id: int) -> tuple[str, int, int, str]:
    row = store._one(
        "SELECT queue, priority, max_retries, state FROM jobs WHERE id = %s", (job_id,)
    )
    return row["queue"], row["priority"], row["max_retries"], row["state"]


def job_count(store: Store) -> int:
    return store._one("SELECT count(*) AS n FROM jobs")["n"]


# -- preparation: @job defaults and payload schemas ------------------------------------------------


def test_defaults_a_worker_registered_are_applied(door: Door, store: Store) -> None:
    name = unique_name("t_remote")
    defaults = {"queue": "images", "priority": "high", "max_retries": 7}
    store.job_type_register([name], "remote-worker", [None], [json.dumps(defaults)])
    job_id = door.submit(name, {})
    assert stored(store, job_id) == ("images", 3, 7, "queued")
    # What the submit gives wins over the defaults.
    over = door.submit(name, {}, queue="other", priority="low")
    assert stored(store, over)[:3] == ("other", 1, 7)


def test_defaults_declared_in_process_are_applied(door: Door, store: Store) -> None:
    if not door.in_process:
        pytest.skip("the jq command imports no application's handlers: only registered ones")
    job_id = door.submit("t_contract_local", {})
    assert stored(store, job_id) == ("images", 3, 7, "queued")


def test_payload_against_a_registered_schema_is_refused(door: Door, store: Store) -> None:
    name = unique_name("t_remote_schema")
    schema = Resize.model_json_schema()
    store.job_type_register([name], "remote-worker", [json.dumps(schema)])
    refused(InvalidInput, lambda: door.submit(name, {}))
    assert job_count(store) == 0
    assert stored(store, door.submit(name, {"width": 3}))[3] == "queued"


def test_payload_against_an_in_process_model_is_refused(door: Door, store: Store) -> None:
    if not door.in_process:
        pytest.skip("the jq command imports no application's handlers: only registered ones")
    refused(InvalidInput, lambda: door.submit("t_contract_local_schema", {}))
    assert job_count(store) == 0


def test_bulk_jobs_are_held_to_the_same_rules(door: Door, store: Store) -> None:
    name = unique_name("t_remote_bulk")
    defaults = {"queue": "images", "priority": "high", "max_retries": 7}
    schema = Resize.model_json_schema()
    store.job_type_register([name], "remote-worker", [json.dumps(schema)], [json.dumps(defaults)])
    same = {"job_type": name, "payload": {"width": 1}}  # lines that share their options
    ids = door.submit_many([same, same, {**same, "queue": "other"}])
    assert [stored(store, i)[:3] for i in ids] == [("images", 3, 7)] * 2 + [("other", 3, 7)]
    before = job_count(store)
    refused(InvalidInput, lambda: door.submit_many([same, {"job_type": name, "payload": {}}]))
    assert job_count(store) == before  # all or none


def test_unknown_type_is_refused(door: Door, store: Store) -> None:
    refused(InvalidInput, lambda: door.submit("t_no_such_type", {}))


# -- idempotency and uniqueness -----------------------------------------------------------------


def _conflict_options(path: str, ops: Client) -> dict[str, Any]:
    if path == "unique_for":
        return {"unique_for": "1h"}
    if path == "depends_on":
        return {"depends_on": [ops.submit("noop", {"parent": True}, delay=FAR_PARENT_DELAY)]}
    return {}


@pytest.mark.parametrize("path", ["plain", "unique_for", "depends_on"])
def test_idempotency_key_with_another_payload_is_a_conflict(
    door: Door, ops: Client, store: Store, path: str
) -> None:
    options = _conflict_options(path, ops)
    first = door.submit("noop", {"n": 1}, idempotency_key="k-contract", **options)
    assert door.submit("noop", {"n": 1}, idempotency_key="k-contract", **options) == first
    before = job_count(store)
    refused(
        Conflict, lambda: door.submit("noop", {"n": 2}, idempotency_key="k-contract", **options)
    )
    assert job_count(store) == before


def test_unique_submit_returns_the_earlier_job(door: Door, store: Store) -> None:
    first = door.submit("noop", {"n": 1}, unique_for="1h")
    assert door.submit("noop", {"n": 1}, unique_for="1h") == first
    assert door.submit("noop", {"n": 2}, unique_for="1h") != first


def test_dependant_waits_for_its_parent(door: Door, ops: Client, store: Store) -> None:
    parent = ops.submit("noop", {}, delay=FAR_PARENT_DELAY)
    child = door.submit("noop", {}, depends_on=[parent])
    assert stored(store, child)[3] == "waiting"
    refused(InvalidInput, lambda: door.submit("noop", {}, depends_on=[999_999]))


# -- delays, priorities, reading ----------------------------------------------------------------


def test_delay_schedules_and_priority_is_stored(door: Door, store: Store) -> None:
    later = door.submit("noop", {}, delay="1h", priority="low")
    assert stored(store, later)[1:] == (1, 3, "scheduled")
    assert door.get(later)["priority"] == "low"
    refused(InvalidInput, lambda: door.submit("noop", {}, priority="urgent"))
    refused(InvalidInput, lambda: door.submit("noop", {}, delay="soon"))


def test_unknown_job_is_not_found(door: Door) -> None:
    refused(NotFound, lambda: door.get(999_999))
    refused(NotFound, lambda: door.retry(999_999))
    refused(NotFound, lambda: door.cancel(999_999))


# -- operator actions and their audit rows -------------------------------------------------------


def audit_rows(store: Store) -> list[dict[str, Any]]:
    return store._all("SELECT * FROM audit_log ORDER BY id")


def test_retry_is_audited_as_the_door(door: Door, ops: Client, store: Store) -> None:
    job_id = dead_job(ops, store)
    door.retry(job_id)
    assert store.job_states([job_id]) == {job_id: "queued"}
    row = audit_rows(store)[-1]
    assert (row["action"], row["target"], row["jobs"]) == ("job.retry", str(job_id), 1)
    assert row["actor_kind"] == door.actor_kind
    refused(InvalidTransition, lambda: door.retry(job_id))  # queued now: not retryable


def test_cancel_is_audited_as_the_door(door: Door, ops: Client, store: Store) -> None:
    job_id = ops.submit("noop", {}, delay="1h")
    door.cancel(job_id)
    assert store.job_states([job_id]) == {job_id: "cancelled"}
    row = audit_rows(store)[-1]
    assert (row["action"], row["target"], row["jobs"]) == ("job.cancel", str(job_id), 1)
    assert row["actor_kind"] == door.actor_kind
    refused(InvalidTransition, lambda: door.cancel(job_id))  # cancelled already
