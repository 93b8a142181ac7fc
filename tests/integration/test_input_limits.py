"""Hardened input: every limit is checked before anything is written, names the field, and exits 2."""

from __future__ import annotations

import json

import pytest

from conftest import LOOPBACK_URL


def _jobs(store) -> int:
    return store._one("SELECT count(*) AS n FROM jobs")["n"]


DEEP = json.dumps(json.loads('{"a":' * 40 + "1" + "}" * 40))


@pytest.mark.parametrize(
    "args, needle",
    [
        (["submit", "noop", "--payload", DEEP], "nested deeper"),
        (["submit", "noop", "--payload", '{"s": "\\ud800"}'], "lone surrogate"),
        (["submit", "noop", "--payload", '{"s": "a\\u0000b"}'], "NUL"),
        (["submit", "noop", "--payload", json.dumps({"s": "x" * 2048})], "cap of"),
        (["submit", "noop", "--queue", "bad queue"], "queue"),
        (["submit", "noop", "--queue", "q" * 101], "queue"),
        (["submit", "noop", "--max-retries", "1000"], "max_retries"),
        (["submit", "noop", "--delay", "400d"], "delay"),
        (["submit", "noop", "--at", "1999-01-01T00:00:00Z"], "past"),
        (["submit", "noop", "--at", "2999-01-01T00:00:00Z"], "future"),
        (["submit", "noop", "--idempotency-key", "k" * 201], "idempotency_key"),
        (["submit", "x" * 101], "job_type"),
        (["submit", "noop'; DROP TABLE jobs; --"], "job_type"),
    ],
)
def test_input_over_a_limit_is_refused_naming_the_field_and_writes_nothing(
    run_cli, store, args, needle
):
    result = run_cli(*args, extra_env={"JQ_MAX_PAYLOAD_BYTES": "1024"})
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("jq: error:") and needle in lines[0], (
        result.stderr
    )
    assert _jobs(store) == 0


def test_bulk_file_with_one_line_over_a_limit_writes_nothing(run_cli, store, tmp_path):
    good = json.dumps({"job_type": "noop", "payload": {}})
    bad = json.dumps({"job_type": "noop", "payload": json.loads(DEEP)})
    path = tmp_path / "jobs.jsonl"
    path.write_text("\n".join([good, good, bad, good]) + "\n")
    result = run_cli("submit", "--file", str(path))
    assert result.returncode == 2
    assert "line 3" in result.stderr and "nested deeper" in result.stderr
    assert _jobs(store) == 0


# -- input nested far past the limit, and YAML that expands: one line, exit 2, on every door ----

ABYSS = 100_000  # past Python's recursion limit: a recursive decoder would raise RecursionError
ABYSMAL = '{"a":' + "[" * ABYSS + "]" * ABYSS + "}"


def _one_error_line(result, needle: str) -> None:
    assert result.returncode == 2, result.stderr[-500:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("jq: error:") and needle in lines[0], (
        result.stderr[-500:]
    )


def test_a_payload_nested_100000_deep_is_one_error_line_on_every_cli_path(run_cli, store, tmp_path):
    payload = tmp_path / "deep.json"
    payload.write_text(ABYSMAL)
    _one_error_line(run_cli("submit", "noop", "--payload", f"@{payload}"), "nested deeper")
    _one_error_line(run_cli("submit", "noop", "--payload", "-", input=ABYSMAL), "nested deeper")
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(f'{{"job_type": "noop", "payload": {ABYSMAL}}}\n')
    _one_error_line(run_cli("submit", "--file", str(jobs)), "line 1")
    assert _jobs(store) == 0


def test_a_payload_nested_100000_deep_is_invalid_input_in_python_and_http(settings, ops, store):
    import asyncio
    import warnings

    from fastapi.testclient import TestClient
    from jq_cli import AsyncClient
    from jq_cli.errors import InvalidInput
    from jq_cli.http import create_app

    deep: list = []
    for _ in range(ABYSS):
        deep = [deep]
    with pytest.raises(InvalidInput, match="nested deeper"):
        ops.submit("noop", {"a": deep})

    async def submit_async() -> None:
        async with AsyncClient(settings) as client:
            await client.submit("noop", {"a": deep})

    with pytest.raises(InvalidInput, match="nested deeper"):
        asyncio.run(submit_async())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with TestClient(create_app(settings), base_url=LOOPBACK_URL) as http:
            job = f'{{"job_type": "noop", "payload": {ABYSMAL}}}'
            for path, body in (
                ("/api/v1/jobs", job),
                ("/api/v1/jobs/bulk", f'{{"jobs": [{job}]}}'),
            ):
                r = http.post(path, content=body, headers={"Content-Type": "application/json"})
                assert r.status_code == 422, r.text
                assert r.json()["type"] == "urn:jq:problem:invalid-input"
                assert "nested deeper" in r.json()["detail"]
    assert _jobs(store) == 0


# A 414-byte alias bomb: nine levels of nine references stand for 9**9 strings.
ALIAS_BOMB = (
    "".join(
        f"{name}: &{name} [{', '.join([f'*{prev}'] * 9) if prev else ', '.join(['lol'] * 9)}]\n"
        for prev, name in zip(" abcdefgh", "abcdefghi", strict=True)
    )
    + 'schedules: [{name: x, type: noop, cron: "* * * * *", payload: {x: *i}}]\n'
)


@pytest.mark.parametrize(
    "name, text, needle",
    [
        ("bomb.yaml", ALIAS_BOMB, "anchors and aliases"),
        ("anchor.yaml", "schedules: &s []\n", "anchors and aliases"),
        ("deep.yaml", "schedules: " + "[" * ABYSS + "]" * ABYSS + "\n", "nested deeper"),
        ("deep.toml", "x = " + "[" * ABYSS + "]" * ABYSS + "\n", "nested too deep"),
    ],
    ids=["alias-bomb", "anchor", "deep-yaml", "deep-toml"],
)
def test_a_schedule_file_that_expands_or_nests_without_end_is_refused_at_once(
    run_cli, tmp_path, name, text, needle
):
    path = tmp_path / name
    path.write_text(text)
    _one_error_line(run_cli("schedule", "apply", str(path), timeout=20), needle)
