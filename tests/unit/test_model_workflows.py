"""Workflows compiled into jobs and links (jq_cli.model.workflows): chains, groups, callbacks,
and the refusal of empty ones. No services."""

from __future__ import annotations

import pytest
from jq_cli.model.workflows import Chain, Group, Step, chain, compile_workflow, group, step


def types(compiled) -> list[str]:
    return [j["job_type"] for j in compiled.jobs]


def test_a_step_carries_its_payload_and_submit_options():
    s = step("fetch", {"url": "u"}, priority="high", queue="io")
    assert s == Step("fetch", {"url": "u"}, {"priority": "high", "queue": "io"})
    assert step("parse").payload == {}
    compiled = compile_workflow(s)
    assert compiled.jobs == [
        {"job_type": "fetch", "payload": {"url": "u"}, "priority": "high", "queue": "io"}
    ]
    assert compiled.links == [[]]


def test_a_chain_links_each_step_to_the_one_before():
    compiled = compile_workflow(chain(step("a"), step("b"), step("c")))
    assert types(compiled) == ["a", "b", "c"]
    assert compiled.links == [[], [0], [1]]


def test_a_group_runs_side_by_side_and_its_callback_waits_for_every_member():
    compiled = compile_workflow(group([step("x"), step("y"), step("z")]).then(step("done")))
    assert types(compiled) == ["x", "y", "z", "done"]
    assert compiled.links == [[], [], [], [0, 1, 2]]


def test_a_group_inside_a_chain_depends_on_what_came_before_and_holds_up_what_follows():
    flow = chain(
        step("fetch"),
        step("parse"),
        group([step("index"), step("thumb")]).then(step("notify")),
        step("archive"),
    )
    compiled = compile_workflow(flow)
    assert types(compiled) == ["fetch", "parse", "index", "thumb", "notify", "archive"]
    assert compiled.links == [[], [0], [1], [1], [2, 3], [4]]


def test_a_chain_inside_a_group_ends_with_its_last_step():
    flow = group([chain(step("a1"), step("a2")), step("b")]).then(step("join"))
    compiled = compile_workflow(flow)
    assert types(compiled) == ["a1", "a2", "b", "join"]
    assert compiled.links == [[], [0], [], [1, 2]]


def test_parents_always_come_before_their_children():
    flow = chain(group([step("a"), chain(step("b"), group([step("c"), step("d")]))]), step("e"))
    compiled = compile_workflow(flow)
    for index, parents in enumerate(compiled.links):
        assert all(parent < index for parent in parents)
    assert compiled.links[-1] == [0, 2, 3]  # e waits for a, c and d


def test_then_makes_a_chain_of_the_group_and_its_callback():
    g = group([step("a")])
    assert g.then(step("b")) == Chain((Group((Step("a"),)), Step("b")))


def test_an_empty_chain_or_group_is_refused():
    with pytest.raises(ValueError, match="a chain needs at least one step"):
        chain()
    with pytest.raises(ValueError, match="a group needs at least one member"):
        group([])
