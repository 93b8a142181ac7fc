"""Listings in every output format (`-o table|wide|json|jsonl|name`), plain when stdout is not a
terminal, and the human times of the tables."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from jq_cli.cli.output import duration, human_seconds
from jq_cli.cli.rows import JOB_COLUMNS, SCHEDULE_COLUMNS, Column, Format, _cell, emit, resolve
from jq_cli.errors import InvalidInput

CREATED = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


def job(**fields) -> dict:
    row = {
        "id": 7,
        "job_type": "send_email",
        "queue": "default",
        "priority": "high",
        "state": "dead",
        "attempts": 4,
        "max_retries": 3,
        "progress": 12.4,
        "last_error": "DeliveryFailed:\t550\nmailbox full",
        "created_at": CREATED,
        "run_at": CREATED,
        "started_at": None,
        "finished_at": CREATED + timedelta(seconds=2),
        "worker": "host:1:abc",
    }
    return {**row, **fields}


def lines(capsys) -> list[str]:
    return capsys.readouterr().out.splitlines()


def test_plain_table_is_tab_separated_with_a_header_and_iso_times(capsys):
    emit([job(), job(id=8, state="completed", progress=None)], JOB_COLUMNS, Format.table)
    header, first, second = (line.split("\t") for line in lines(capsys))
    assert header == [
        "ID", "TYPE", "QUEUE", "PRIORITY", "STATE", "ATTEMPTS", "PROGRESS", "CREATED", "ERROR"
    ]  # fmt: skip
    assert first == [
        "7", "send_email", "default", "high", "dead", "4/4", "12%", CREATED.isoformat(),
        "DeliveryFailed: 550 mailbox full",
    ]  # fmt: skip
    assert second[4:7] == ["completed", "4/4", "-"] and second[-1] == "-"  # no error once done


def test_wide_adds_its_columns_and_json_formats_keep_every_field(capsys):
    emit([job()], JOB_COLUMNS, Format.wide)
    header, row = (line.split("\t") for line in lines(capsys))
    assert header[-5:] == ["RUN AT", "STARTED", "FINISHED", "WORKER", "ERROR"]
    assert row[-5:-1] == [
        CREATED.isoformat(),
        "-",
        (CREATED + timedelta(seconds=2)).isoformat(),
        "host:1:abc",
    ]
    emit([job(), job(id=8)], JOB_COLUMNS, Format.json)
    (doc,) = lines(capsys)
    assert [r["id"] for r in json.loads(doc)] == [7, 8]
    assert json.loads(doc)[0]["created_at"] == CREATED.isoformat()
    emit([job(), job(id=8)], JOB_COLUMNS, Format.jsonl)
    assert [json.loads(line)["id"] for line in lines(capsys)] == [7, 8]
    emit([job(), job(id=8)], JOB_COLUMNS, Format.name)
    assert lines(capsys) == ["7", "8"]


def test_an_empty_list_prints_the_header_only_or_an_empty_document(capsys):
    emit([], JOB_COLUMNS, Format.table)
    assert len(lines(capsys)) == 1
    emit([], JOB_COLUMNS, Format.json)
    assert lines(capsys) == ["[]"]
    emit([], JOB_COLUMNS, Format.name)
    assert lines(capsys) == []


def test_schedules_list_by_name_and_show_paused_ones_without_a_next_fire(capsys):
    schedule = {
        "name": "nightly", "job_type": "noop", "cron": "0 3 * * *", "timezone": "UTC",
        "enabled": False, "misfire": "once", "last_fire_at": None, "next_fire_at": CREATED,
        "priority": "low", "queue": "default", "max_retries": None, "payload": {"a": "é"},
    }  # fmt: skip
    emit([schedule], SCHEDULE_COLUMNS, Format.wide, key="name")
    header, row = (line.split("\t") for line in lines(capsys))
    cells = dict(zip(header, row, strict=True))
    assert cells["STATUS"] == "paused" and cells["NEXT FIRE"] == "-"
    assert cells["PAYLOAD"] == '{"a": "é"}'
    emit([schedule], SCHEDULE_COLUMNS, Format.name, key="name")
    assert lines(capsys) == ["nightly"]


def test_terminal_cells_are_cut_to_their_width_and_states_coloured():
    error = Column("ERROR", lambda r: r["last_error"], width=10)
    assert _cell(error, {"last_error": "x" * 30}, plain=False) == "x" * 9 + "…"
    assert _cell(error, {"last_error": "x" * 30}, plain=True) == "x" * 30  # plain is never cut
    state = Column("STATE", lambda r: r["state"], "state")
    assert _cell(state, {"state": "dead"}, plain=False) == "[red]dead[/]"
    assert _cell(state, {"state": "dead"}, plain=True) == "dead"


def test_json_flag_and_another_format_disagree():
    assert resolve(None, False) is Format.table
    assert resolve(None, True) is Format.json and resolve(Format.json, True) is Format.json
    assert resolve(Format.name, False) is Format.name
    with pytest.raises(InvalidInput, match="--json and -o jsonl disagree"):
        resolve(Format.jsonl, True)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.25, "250ms"), (1.5, "1.5s"), (61, "1m01s"), (3661, "1h01m"), (90000, "1d01h")],
)
def test_human_seconds(seconds, text):
    assert human_seconds(seconds) == text


def test_duration_of_a_run_needs_both_ends():
    assert duration(CREATED, CREATED + timedelta(seconds=2)) == "2.0s"
    assert duration(CREATED, None) == duration(None, CREATED) == "-"


def test_the_claims_returning_list_is_in_the_order_of_claimedjobs_fields():
    """store/cycle.py builds a ClaimedJob from the claim's row by position."""
    import dataclasses
    import re

    from jq_cli.store import hot_sql
    from jq_cli.store.work import ClaimedJob

    returning = hot_sql._CLAIM_CTES.split("RETURNING", 1)[1].split("\n), opened", 1)[0]
    returning = re.sub(r"--[^\n]*", "", returning)
    returning = returning.replace("extract(epoch FROM now() - run_at)::float8 AS waited", "waited")
    names = [part.strip() for part in returning.split(",")]
    fields = [f.name for f in dataclasses.fields(ClaimedJob)]
    assert names == fields
    assert len(fields) == hot_sql.CLAIMED_COLUMNS
