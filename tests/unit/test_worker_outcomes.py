"""The outcome sanitiser: whatever a handler returns, raises or reports becomes something
PostgreSQL can store, or an error that names why not."""

from __future__ import annotations

import json
import math

import pytest
from jq_cli.store.records import Finish
from jq_cli.worker.outcomes import (
    SizeCaps,
    Unstorable,
    check_progress,
    clean_text,
    encode_result,
    sanitise,
)

CAPS = SizeCaps(max_result_bytes=100, max_error_bytes=80)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, {"a": [1.0, math.nan]}])
def test_nan_and_infinity_are_refused(value):
    with pytest.raises(Unstorable, match="NaN or Infinity"):
        encode_result(value, CAPS)


@pytest.mark.parametrize("value", ["a\x00b", {"k\x00": 1}, ["\x00"]])
def test_a_nul_character_is_refused_in_values_and_keys(value):
    with pytest.raises(Unstorable, match="NUL character"):
        encode_result(value, CAPS)


def test_an_escaped_backslash_before_u0000_is_text_not_a_nul():
    text = encode_result("C:\\u0000", CAPS)  # a backslash, then the letters u0000
    assert json.loads(text) == "C:\\u0000"
    assert encode_result("\\\\u0000", CAPS)  # two backslashes: still text


def test_a_lone_surrogate_is_refused():
    with pytest.raises(Unstorable, match="lone surrogate"):
        encode_result("\ud800", CAPS)


def test_a_result_past_the_limit_is_refused_naming_its_size():
    assert encode_result("é" * 49, CAPS) == '"' + "é" * 49 + '"'  # 100 bytes: at the limit
    with pytest.raises(Unstorable, match=r"result is 102 bytes, more than the cap of 100"):
        encode_result("é" * 50, CAPS)


@pytest.mark.parametrize("value", [{1, 2}, object(), b"bytes", {"when": 1j}])
def test_a_value_that_is_not_json_is_refused_naming_its_type(value):
    with pytest.raises(Unstorable, match="result is not JSON"):
        encode_result(value, CAPS)


def test_a_result_nested_too_deeply_is_refused():
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(Unstorable, match="nested too deeply"):
        encode_result(deep, SizeCaps(max_result_bytes=10**7))


def test_results_are_compact_and_keep_unicode():
    assert encode_result({"a": [1, 2.5, None, True], "é": "ü"}, CAPS) == (
        '{"a":[1,2.5,null,true],"é":"ü"}'
    )


def test_text_keeps_nul_and_surrogates_escaped_and_is_cut_at_the_limit_saying_so():
    assert clean_text(None, 10) is None
    assert clean_text("a\x00b", 80) == "a\\x00b"
    assert clean_text("a\ud800b", 80) == "a\\ud800b"
    cut = clean_text("é" * 200, 80)
    assert len(cut.encode()) <= 80 and cut.startswith("é")
    assert "more bytes past the cap of 80 (JQ_MAX_ERROR_BYTES)" in cut
    cut.encode("utf-8")  # never half a character


def test_text_from_a_str_subclass_is_plain_str():
    class Shouty(str):
        def __str__(self) -> str:
            raise RuntimeError

    assert type(clean_text(Shouty("x"), 80)) is str


def test_sanitise_makes_every_field_storable():
    finish = Finish(1, 1, "failed", result_json=None, error="e\x00", traceback="t" * 500)
    clean = sanitise(finish, CAPS)
    assert clean.error == "e\\x00"
    assert len(clean.traceback.encode()) <= 80 and "JQ_MAX_ERROR_BYTES" in clean.traceback
    assert (clean.job_id, clean.run, clean.outcome) == (1, 1, "failed")


@pytest.mark.parametrize(
    ("retry_in", "expected"),
    [(None, None), (3, 3.0), (2.5, 2.5), (-4, 0.0), (math.nan, 0.0), (math.inf, 0.0), ("5", 0.0)],
)
def test_sanitise_makes_the_retry_delay_a_finite_number_of_seconds(retry_in, expected):
    assert sanitise(Finish(1, 1, "failed", retry_in=retry_in), CAPS).retry_in == expected


def test_sanitise_drops_a_result_that_is_not_text():
    assert sanitise(Finish(1, 1, "completed", result_json=b"{}"), CAPS).result_json is None
    assert sanitise(Finish(1, 1, "completed", result_json="{}"), CAPS).result_json == "{}"


def test_progress_is_a_finite_percent_clamped_and_a_storable_message():
    assert check_progress(50, "half", 80) == (50.0, "half")
    assert check_progress(-3, None, 80) == (0.0, None)
    assert check_progress("120", None, 80) == (100.0, None)
    for bad, match in [
        ((math.nan, None), "NaN or Infinity"),
        (("lots", None), "must be a number"),
        ((1, 5), "not JSON text"),
        ((1, "a\x00"), "NUL character"),
        ((1, "\ud800"), "lone surrogate"),
        ((1, "x" * 81), "81 bytes, more than the cap of 80"),
    ]:
        with pytest.raises(ValueError, match=match):
            check_progress(*bad, 80)
