"""`jq show`'s drawing of the workflow a job belongs to: a tree of its jobs with their states."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from rich.tree import Tree

from jq_cli.cli.output import state_text


def _label(node: dict[str, Any], focus: int) -> Text:
    text = Text(f"{node['id']} {node['job_type']} ").append_text(
        Text.from_markup(state_text(node["state"]))
    )
    if node["state"] == "waiting":
        text.append(f" (on {node['pending_parents']} parent(s))", style="dim")
    if node["id"] == focus:
        text.append("  ◀", style="bold")
    return text


def workflow_tree(graph: dict[str, Any], focus: int) -> Tree | None:
    """The workflow as a tree (a job with several parents appears under each, its own subtree
    drawn once); None for a job that belongs to no workflow."""
    nodes = {n["id"]: n for n in graph["jobs"]}
    if len(nodes) < 2:
        return None
    children: dict[int, list[int]] = {}
    has_parent: set[int] = set()
    for edge in graph["edges"]:
        if edge["parent_id"] in nodes and edge["child_id"] in nodes:
            children.setdefault(edge["parent_id"], []).append(edge["child_id"])
            has_parent.add(edge["child_id"])
    tree = Tree(Text(f"workflow {graph['root']}", style="bold"))
    drawn: set[int] = set()

    def add(branch: Tree, job_id: int) -> None:
        if job_id in drawn:
            branch.add(Text(f"{job_id} (drawn above)", style="dim"))
            return
        drawn.add(job_id)
        sub = branch.add(_label(nodes[job_id], focus))
        for child in children.get(job_id, []):
            add(sub, child)

    for job_id in nodes:
        if job_id not in has_parent:
            add(tree, job_id)
    return tree
