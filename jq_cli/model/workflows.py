"""Workflows: chains, groups and their callbacks, compiled into jobs that depend on each other.

    from jq_cli import Client, chain, group, step

    with Client() as client:
        ids = client.submit_workflow(
            chain(step("fetch", {"url": u}), step("parse"), group([step("index"), step("thumb")])
                  .then(step("notify")))
        )

A step runs once every job it depends on completed; its handler finds their results in
`ctx.parent_results` (in order) and the first of them in `ctx.parent_result`. The whole workflow
is inserted in one transaction, and each release happens in the transaction that completes the
last parent (the trigger of sql/021_workflows.sql), so nothing polls.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Step:
    """One job of a workflow: its type, payload and submit options (priority, queue,
    max_retries, on_parent_failure ...)."""

    job_type: str
    payload: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Chain:
    """Nodes run one after the other: each after the previous one completed."""

    nodes: tuple[Node, ...]


@dataclass(frozen=True)
class Group:
    """Nodes run side by side; what follows a group waits for all of its members."""

    members: tuple[Node, ...]

    def then(self, callback: Node) -> Chain:
        """The callback runs once, after every member completed, with their results in order."""
        return Chain((self, callback))


Node = Step | Chain | Group


def step(job_type: str, payload: dict[str, Any] | None = None, **options: Any) -> Step:
    return Step(job_type, {} if payload is None else payload, options)


def chain(*nodes: Node) -> Chain:
    if not nodes:
        raise ValueError("a chain needs at least one step")
    return Chain(tuple(nodes))


def group(members: list[Node] | tuple[Node, ...]) -> Group:
    if not members:
        raise ValueError("a group needs at least one member")
    return Group(tuple(members))


@dataclass
class Compiled:
    """The jobs of a workflow in submit order, and for each the indexes of its parents."""

    jobs: list[dict[str, Any]] = field(default_factory=list)
    links: list[list[int]] = field(default_factory=list)


def compile_workflow(node: Node) -> Compiled:
    """Flatten a workflow into job dicts (as submit_many takes) and their links. Parents always
    come before their children, so each job's parents exist when it is inserted."""
    out = Compiled()

    def emit(n: Node, parents: list[int]) -> list[int]:
        # Returns the jobs whose completion ends `n`: what the next node depends on.
        if isinstance(n, Step):
            out.jobs.append({"job_type": n.job_type, "payload": n.payload, **n.options})
            out.links.append(list(parents))
            return [len(out.jobs) - 1]
        if isinstance(n, Chain):
            tails = parents
            for inner in n.nodes:
                tails = emit(inner, tails)
            return tails
        ends: list[int] = []
        for member in n.members:
            ends.extend(emit(member, parents))
        return ends

    emit(node, [])
    return out
