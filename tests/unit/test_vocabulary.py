"""One word, one meaning: "hand over" and "hand back" are what a worker does with a
job; the front ends pass a call to the JSON processor and never say they hand it over."""

from __future__ import annotations

import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "jq_cli"
FRONT_ENDS = ("cli", "http", "tui")
HAND_OVER = re.compile(r"hand(?:ed|s|ing)?[ _-]?over|handover", re.IGNORECASE)


def test_the_front_ends_never_say_hand_over():
    said = [
        f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}"
        for front_end in FRONT_ENDS
        for path in sorted((PACKAGE / front_end).rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if HAND_OVER.search(line) or HAND_OVER.search(path.name)
    ]
    assert said == []


def test_the_json_processor_module_is_named_for_what_it_does():
    from jq_cli.cli import json_processor

    assert callable(json_processor.pass_to_json_processor_if_asked)
    assert json_processor.is_json_processor_call([".id"], ["list"])
