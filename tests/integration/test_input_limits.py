"""Hardened input: every limit is checked before anything is written, names the field, and exits 2."""

from __future__ import annotations

import json

import pytest


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
