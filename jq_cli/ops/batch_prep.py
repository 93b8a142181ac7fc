"""Many jobs made ready to insert with little Python each (Client.submit_many, `jq submit --file`,
POST /jobs/bulk).

A bulk file or list usually repeats the same options (type, queue, priority ...) with another
payload on every line. Validating the options (pydantic, the @job defaults) is most of the cost of
preparing a job, so it is done once per distinct set of options in a batch; every job still has
its own payload checked against its type (the handler's model or the registered JSON Schema) and
encoded, so each job is held to exactly the rules of a single submit. A job whose options cannot
be a dictionary key (lists), or whose row depends on its payload beyond the payload itself (a
unique job's key is a digest of it), takes the full path."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import fields
from typing import TYPE_CHECKING, Any

from jq_cli.errors import InvalidInput
from jq_cli.model.jobspec import JobRequest, encode_payload
from jq_cli.store import NewJob

if TYPE_CHECKING:
    from jq_cli.ops.core import OperationsCore

# NewJob's fields after payload_json, in order: a job is built positionally from its template's.
_AFTER_PAYLOAD = [f.name for f in fields(NewJob)][2:]


class _Template:
    """What every job with one set of options shares: all of its NewJob but the payload."""

    __slots__ = ("check", "job_type", "rest")

    def __init__(self, new: NewJob, check: Callable[[Any], object]) -> None:
        self.job_type = new.job_type
        self.rest = tuple(getattr(new, name) for name in _AFTER_PAYLOAD)
        self.check = check


class BatchPreparer:
    """Prepares the jobs of one batch; make one per batch (run_at is checked against the time of
    the batch, and a job type's schema is read once for it)."""

    def __init__(self, core: OperationsCore) -> None:
        self._core = core
        self._max_bytes = core.settings.max_payload_bytes
        # options (key, type, value) -> template, or None where the full path is the only one
        self._templates: dict[Hashable, _Template | None] = {}

    def prepare(self, job: dict[str, Any] | JobRequest, where: str, number: int) -> NewJob:
        """The job ready to insert. Raises InvalidInput starting with `where` and `number` ("job
        3", "line 12")."""
        if not isinstance(job, dict):
            return self._full(job, f"{where} {number}")
        payload = job.get("payload", {})
        # The type of each value is part of the key: 1, 1.0 and True are equal as keys but not
        # as options (a bool is no max_retries).
        options = tuple((k, type(v), v) for k, v in job.items() if k != "payload")
        try:
            template = self._templates.get(options, _UNSEEN)
        except TypeError:  # a list among the options (depends_on, unique_on): not a key
            return self._full(job, f"{where} {number}")
        if template is _UNSEEN:
            new = self._full(job, f"{where} {number}")
            self._templates[options] = self._template(new)
            return new
        # pydantic would refuse a payload that is not a dict or has keys that are not strings, or
        # convert a Mapping: the full path does either, and words its error as a single submit's.
        if (
            template is None
            or type(payload) is not dict
            or not all(type(k) is str for k in payload)
        ):
            return self._full(job, f"{where} {number}")
        assert isinstance(template, _Template)
        try:
            template.check(payload)
            text = encode_payload(payload, self._max_bytes)
        except InvalidInput as exc:
            raise InvalidInput(f"{where} {number}: {exc.message}") from None
        return NewJob(template.job_type, text, *template.rest)

    def _template(self, new: NewJob) -> _Template | None:
        if new.unique_key is not None or new.unique_for is not None or new.depends_on:
            return None
        return _Template(new, self._core._rules(new.job_type).check)

    def _full(self, job: dict[str, Any] | JobRequest, where: str) -> NewJob:
        request = job if isinstance(job, JobRequest) else JobRequest.parse(job, where)
        try:
            return self._core._prepare(request)
        except InvalidInput as exc:
            raise InvalidInput(f"{where}: {exc.message}") from None


_UNSEEN: Any = object()
