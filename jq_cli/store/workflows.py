"""Workflow queries: the graph a job belongs to. (Releasing and settling dependants is done by the
trigger of sql/021_workflows.sql, in the transaction of the parent's state change.)"""

from __future__ import annotations

from typing import TypedDict, cast

from jq_cli.errors import NotFound
from jq_cli.store.base import StoreBase


class WorkflowNode(TypedDict):
    id: int
    job_type: str
    state: str
    pending_parents: int
    on_parent_failure: str


class WorkflowEdge(TypedDict):
    parent_id: int
    child_id: int


class WorkflowGraph(TypedDict):
    root: int
    jobs: list[WorkflowNode]
    edges: list[WorkflowEdge]


WORKFLOW_LIMIT = 1000  # nodes drawn; a larger workflow is cut, its size said


def job_workflow(store: StoreBase, job_id: int) -> WorkflowGraph:
    """The jobs and edges of the workflow `job_id` belongs to (itself alone for a plain job).
    Raises NotFound."""
    row = store._one(
        # query: job_workflow_root. A parent that predates its workflow has no workflow_id: it is
        # the root itself.
        """
        SELECT coalesce(j.workflow_id,
                        (SELECT c.workflow_id FROM job_dependencies d JOIN jobs c ON c.id = d.child_id
                         WHERE d.parent_id = j.id LIMIT 1),
                        j.id) AS root
        FROM jobs j WHERE j.id = %s
        """,
        (job_id,),
    )
    if row is None:
        raise NotFound(f"job {job_id} not found")
    root = int(row["root"])
    jobs = store._all(
        # query: job_workflow_nodes (the partial index jobs_workflow)
        """
        SELECT id, job_type, state, pending_parents, on_parent_failure FROM jobs
        WHERE id = %(root)s OR workflow_id = %(root)s ORDER BY id LIMIT %(limit)s
        """,
        {"root": root, "limit": WORKFLOW_LIMIT},
    )
    ids = [j["id"] for j in jobs]
    edges = store._all(
        # query: job_workflow_edges
        """
        SELECT parent_id, child_id FROM job_dependencies
        WHERE child_id = ANY(%(ids)s) ORDER BY child_id, position
        """,
        {"ids": ids},
    )
    return {
        "root": root,
        "jobs": cast(list[WorkflowNode], jobs),
        "edges": cast(list[WorkflowEdge], edges),
    }
