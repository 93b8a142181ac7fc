"""What a schedule may look like (jq_cli.model.schedulespec): defaults, each field's validation
and its error message, and schedule files in TOML and YAML. No services."""

from __future__ import annotations

import pytest
from jq_cli.errors import InvalidInput
from jq_cli.model.schedulespec import EDITABLE, FIELDS, ScheduleSpec, load_schedule_file

BASE = {"name": "nightly", "job_type": "report", "cron": "0 3 * * *"}


def refused(data: dict, where: str = "") -> str:
    with pytest.raises(InvalidInput) as caught:
        ScheduleSpec.parse(data, where)
    return caught.value.message


def test_a_schedule_needs_only_a_name_a_job_type_and_a_cron_expression():
    spec = ScheduleSpec.parse(BASE)
    assert spec.as_dict() == {
        "name": "nightly",
        "job_type": "report",
        "cron": "0 3 * * *",
        "timezone": "UTC",
        "payload": {},
        "priority": "medium",
        "max_retries": None,
        "queue": "default",
        "misfire": "once",
        "enabled": True,
    }
    assert list(spec.as_dict()) == list(FIELDS) and FIELDS[1:] == EDITABLE


def test_every_field_given_is_kept_normalised():
    spec = ScheduleSpec.parse(
        BASE
        | {
            "cron": "  */5   *  * * * ",
            "timezone": "Europe/Berlin",
            "payload": {"k": 1},
            "priority": "HIGH",
            "max_retries": 0,
            "queue": "reports",
            "misfire": "skip",
            "enabled": False,
        }
    )
    assert (spec.cron, spec.timezone, spec.priority) == ("*/5 * * * *", "Europe/Berlin", "high")
    assert (spec.payload, spec.max_retries, spec.queue) == ({"k": 1}, 0, "reports")
    assert (spec.misfire, spec.enabled) == ("skip", False)


def test_null_values_take_the_defaults_as_an_empty_yaml_value_would():
    spec = ScheduleSpec.parse(
        BASE | {"timezone": None, "priority": None, "queue": None, "misfire": None, "payload": None}
    )
    assert (spec.timezone, spec.priority, spec.queue, spec.misfire) == (
        "UTC",
        "medium",
        "default",
        "once",
    )
    assert spec.payload == {}


@pytest.mark.parametrize("missing", ["name", "job_type", "cron"])
def test_a_required_field_missing_or_null_is_named(missing):
    assert refused({k: v for k, v in BASE.items() if k != missing}) == f"{missing} is required"
    assert refused(BASE | {missing: None}) == f"{missing} is required"


def test_unknown_fields_are_refused_with_the_known_ones():
    message = refused(BASE | {"every": "1h", "colour": "red"})
    assert message.startswith("unknown field(s) colour, every (known: name, job_type, cron,")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("name", "9lives", "schedule name '9lives' is not a valid name"),
        ("job_type", "a b", "job type 'a b' is not a valid name"),
        ("queue", "-q", "queue '-q' is not a valid name"),
        ("cron", "0 3 * *", "invalid cron expression '0 3 * *': it has 4 fields, want 5"),
        ("cron", "@sometimes", "invalid cron expression '@sometimes': unknown alias"),
        ("timezone", "Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
        ("payload", [1, 2], "payload must be a JSON object, got list"),
        ("priority", "urgent", "priority must be high, medium or low, got 'urgent'"),
        ("max_retries", -1, "max_retries must be a whole number from 0 to 100, got -1"),
        ("max_retries", 101, "max_retries must be a whole number from 0 to 100, got 101"),
        ("max_retries", True, "max_retries must be a whole number from 0 to 100, got True"),
        ("max_retries", "3", "max_retries must be a whole number from 0 to 100, got '3'"),
        ("misfire", "all", "misfire policy must be skip or once, got 'all'"),
        ("enabled", "yes", "enabled must be true or false, got 'yes'"),
    ],
)
def test_a_bad_field_is_refused_by_name(field, value, message):
    assert refused(BASE | {field: value}).startswith(message)


def test_the_error_says_where_the_schedule_came_from():
    assert refused(BASE | {"misfire": "all"}, "jobs.toml: schedule 2").startswith(
        "jobs.toml: schedule 2: misfire policy must be"
    )


# -- schedule files -----------------------------------------------------------------------------


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_toml_file_gives_its_schedule_tables(tmp_path):
    path = write(
        tmp_path,
        "jobs.toml",
        '[[schedules]]\nname = "a"\ntype = "report"\ncron = "0 3 * * *"\n\n'
        '[[schedules]]\nname = "b"\njob_type = "sync"\ncron = "@hourly"\npayload = {full = true}\n',
    )
    assert load_schedule_file(path) == [
        {"name": "a", "job_type": "report", "cron": "0 3 * * *"},
        {"name": "b", "job_type": "sync", "cron": "@hourly", "payload": {"full": True}},
    ]


def test_a_yaml_file_gives_its_schedule_list(tmp_path):
    path = write(
        tmp_path,
        "jobs.yml",
        "schedules:\n  - name: a\n    type: report\n    cron: '0 3 * * *'\n    timezone:\n",
    )
    assert load_schedule_file(path) == [
        {"name": "a", "job_type": "report", "cron": "0 3 * * *", "timezone": None}
    ]
    assert ScheduleSpec.parse(load_schedule_file(path)[0]).timezone == "UTC"


def test_an_empty_file_has_no_schedules(tmp_path):
    assert load_schedule_file(write(tmp_path, "none.yaml", "")) == []
    assert load_schedule_file(write(tmp_path, "none.toml", "")) == []


def file_refused(path) -> str:
    with pytest.raises(InvalidInput) as caught:
        load_schedule_file(path)
    return caught.value.message


def test_a_file_of_another_kind_is_refused(tmp_path):
    path = write(tmp_path, "jobs.json", "{}")
    assert file_refused(path) == f"schedule file {path}: the name must end in .toml, .yaml or .yml"


def test_a_file_that_does_not_parse_is_refused_by_its_format(tmp_path):
    toml = write(tmp_path, "bad.toml", "[[schedules]\n")
    assert file_refused(toml).startswith(f"schedule file {toml} is not valid TOML: ")
    yaml = write(tmp_path, "bad.yaml", "schedules: [a\n")
    message = file_refused(yaml)
    assert message.startswith(f"schedule file {yaml} is not valid YAML: ")
    assert "\n" not in message  # one line, whatever the YAML library wrote


def test_a_missing_or_unreadable_file_is_refused(tmp_path):
    assert file_refused(tmp_path / "gone.toml").startswith(
        f"cannot read schedule file {tmp_path / 'gone.toml'}: "
    )
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00")
    assert file_refused(binary) == f"schedule file {binary} is not UTF-8 text"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("- name: a\n", "the top level must hold only a `schedules` list"),
        ("schedules: []\nextra: 1\n", "the top level must hold only a `schedules` list"),
        ("schedules: {name: a}\n", "`schedules` must be a list"),
        ("schedules:\n  - just a string\n", "schedule 1 must be a table of fields"),
        (
            "schedules:\n  - {name: a, type: x, job_type: y, cron: '@daily'}\n",
            "schedule 1 gives both type and job_type",
        ),
    ],
)
def test_a_file_of_the_wrong_shape_is_refused_naming_the_problem(tmp_path, text, problem):
    path = write(tmp_path, "jobs.yaml", text)
    assert file_refused(path) == f"schedule file {path}: {problem}"
