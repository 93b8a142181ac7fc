"""Poison outcomes: whatever a handler returns, raises or reports that PostgreSQL cannot store
(NaN, ±Infinity, NUL, lone surrogates, non-JSON types) or that exceeds a documented size cap is
that job's failed attempt, naming the problem; the worker stays up and its other jobs are fine."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from jq_cli.errors import InvalidInput

import poison_handlers  # noqa: F401  (registers t_poison, t_picky ...)
from conftest import make_settings, wait_for
from poison_handlers import PLACES, POISONS

LIMITS = {"max_result_bytes": 4096, "max_error_bytes": 2048}
TERMINAL = ("completed", "dead", "cancelled")

# What each poison says in the recorded error, wherever it was put.
NAMED = {
    "nan": "NaN",
    "inf": "Infinity",
    "-inf": "Infinity",
    "nul": "NUL",
    "surrogate": "surrogate",
    "object": "not JSON",
    "big": "cap of",
}


@pytest.fixture
def poison_worker(settings, start_worker):
    return start_worker(settings=make_settings(settings.namespace, **LIMITS), concurrency=4)


def terminal(ops, ids):
    def all_done():
        jobs = [ops.get(i) for i in ids]
        return jobs if all(j["state"] in TERMINAL for j in jobs) else None

    return wait_for(all_done, 60, what=lambda: f"jobs {ids} to end")


def expected_state(kind: str, where: str) -> str:
    if where == "error":
        return "dead"  # it raised: a failure whatever its message holds
    return "completed" if kind == "none" else "dead"


def check_job(job: dict, kind: str, where: str) -> None:
    assert job["state"] == expected_state(kind, where), job
    history = job["attempt_history"]
    assert len(history) == 1 and job["attempts"] == 1, history
    attempt = history[0]
    if job["state"] == "completed":
        assert attempt["outcome"] == "completed"
        return
    assert attempt["outcome"] == "failed"
    assert attempt["finished_at"] is not None
    error = attempt["error"]
    assert "\x00" not in error
    assert len(error.encode()) <= LIMITS["max_error_bytes"]
    if where == "error":
        if kind == "nul":
            assert "a\\x00b" in error  # escaped, not lost
        elif kind == "big":
            assert "JQ_MAX_ERROR_BYTES" in error  # cut, saying so
    else:
        assert NAMED[kind] in error, error
        if where == "result":
            assert "cannot store the result" in error


@pytest.mark.parametrize("where", PLACES)
@pytest.mark.parametrize("kind", [k for k in POISONS if k != "none"])
def test_each_poison_is_a_failed_attempt_naming_it(ops, poison_worker, kind, where):
    size = LIMITS["max_result_bytes"] * 2
    ids = ops.submit_many(
        [
            {"job_type": "t_poison", "payload": {"kind": kind, "where": where, "size": size}},
            {"job_type": "t_poison", "payload": {"kind": "none", "where": "result"}},
        ]
    )
    poisoned, healthy = terminal(ops, ids)
    check_job(poisoned, kind, where)
    assert healthy["state"] == "completed" and healthy["result"]["value"] == "fine"
    assert poison_worker.thread.is_alive()


def test_a_payload_validator_that_raises_keyerror_is_a_failed_attempt(ops, store, start_worker):
    bad, good = ops.submit("t_picky", {"n": 5}), ops.submit("t_picky", {"n": 7})
    # submit validates with the same model: a negative n cannot even be submitted (one line)...
    with pytest.raises(InvalidInput, match="the payload model raised KeyError"):
        ops.submit("t_picky", {"n": -1})
    # ...but a job already in the table (an older model, a direct insert) reaches the worker.
    store._run("UPDATE jobs SET payload = '{\"n\": -1}' WHERE id = %s", (bad,))
    start_worker(concurrency=2)
    done = terminal(ops, [bad, good])
    assert done[0]["state"] == "dead"
    attempt = done[0]["attempt_history"][0]
    assert attempt["outcome"] == "failed"
    assert "the payload model raised KeyError" in attempt["error"]
    assert "no entry for -1" in attempt["error"]
    assert done[1]["state"] == "completed"
    # the handler slot survived: more jobs still run
    more = ops.submit_many([{"job_type": "t_picky", "payload": {"n": i}} for i in range(8)])
    assert all(j["state"] == "completed" for j in terminal(ops, more))


def test_a_refused_outcome_batch_falls_back_row_by_row(ops, store):
    """The store, given a batch with one outcome PostgreSQL refuses (a result the sanitiser would
    never let through), records the others and that one as a failed attempt naming the refusal."""
    from jq_cli.store import Finish

    ids = [ops.submit("noop", {}) for _ in range(3)]
    claimed = store.job_claim(ids, "w1", 30)
    bad = '{"x": "\\u0000"}'  # jsonb refuses NUL
    finishes = [
        Finish(c.id, c.run_count, "completed", result_json=bad if c.id == ids[1] else '{"ok":1}')
        for c in claimed
    ]
    states = store.job_finish(finishes, "w1")
    assert states == {ids[0]: "completed", ids[1]: "dead", ids[2]: "completed"}
    refused = ops.get(ids[1])
    assert refused["attempt_history"][0]["outcome"] == "failed"
    assert "could not be recorded" in refused["attempt_history"][0]["error"]


# Payload text a submit accepts (a payload itself can never hold the poison).
clean_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20
)
outcome_spec = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(POISONS),
        "where": st.sampled_from(PLACES),
        "base": st.recursive(
            st.none() | st.booleans() | st.integers(-(2**40), 2**40) | clean_text,
            lambda inner: (
                st.lists(inner, max_size=3) | st.dictionaries(clean_text, inner, max_size=3)
            ),
            max_leaves=8,
        ),
    }
)


@hsettings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(specs=st.lists(outcome_spec, min_size=1, max_size=6))
def test_generated_outcomes_never_stop_the_worker(ops, poison_worker, specs):
    size = LIMITS["max_result_bytes"] * 2
    ids = ops.submit_many(
        [{"job_type": "t_poison", "payload": {**spec, "size": size}} for spec in specs]
    )
    for job, spec in zip(terminal(ops, ids), specs, strict=True):
        check_job(job, spec["kind"], spec["where"])
        if job["state"] == "completed" and spec["where"] == "result":
            assert job["result"]["base"] == spec["base"]
    assert poison_worker.thread.is_alive()
    # The outcome is committed before the worker lets its slot go, in the same round: wait for
    # that round rather than catch the moment between the two.
    wait_for(
        lambda: all(r.id not in ids for r in list(poison_worker.worker.running.values())),
        10,
        what="the worker frees every slot of these jobs",
    )
