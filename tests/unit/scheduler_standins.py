"""Stand-ins for what the scheduler's duties talk to: a store that answers from a script and
records each query, a publisher that records what it sends, a census and a clock. No services."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class ScriptedStore:
    """Each query answers from its script in turn (the last answer repeats); an answer that is an
    exception is raised, one that is callable is called with the query's arguments."""

    def __init__(self, **answers: Any) -> None:
        self.answers = {name: list(script) for name, script in answers.items()}
        self.calls: list[tuple[Any, ...]] = []

    def __getattr__(self, name: str) -> Callable[..., Any]:
        answers = self.__dict__.get("answers", {})
        if name not in answers:
            raise AttributeError(name)

        def query(*args: Any) -> Any:
            self.calls.append((name, *args))
            script = answers[name]
            answer = script.pop(0) if len(script) > 1 else script[0]
            if isinstance(answer, BaseException):
                raise answer
            return answer(*args) if callable(answer) else answer

        return query

    def asked(self, name: str) -> list[tuple[Any, ...]]:
        """The arguments of each call of one query."""
        return [call[1:] for call in self.calls if call[0] == name]


class RecordingPublisher:
    """Records the messages published; `fail` makes publish raise, `depths` are ready counts."""

    def __init__(self, depths: dict[str, int] | None = None, fail: Exception | None = None):
        self.depths = depths or {}
        self.fail = fail
        self.published: list[Any] = []
        self.depths_asked: list[list[str]] = []
        self.closed = False

    def publish(self, messages: Any) -> int:
        batch = list(messages)
        if self.fail is not None:
            raise self.fail
        self.published.extend(batch)
        return len(batch)

    def queue_depths(self, queues: Any) -> dict[str, int | None]:
        asked = list(queues)
        self.depths_asked.append(asked)
        if self.fail is not None:
            raise self.fail
        return {q: self.depths.get(q) for q in asked}

    def ids(self) -> list[int]:
        return [m.job_id for m in self.published]

    def close(self) -> None:
        self.closed = True


class FixedCensus:
    """The workers' heartbeats as given; None stands for Redis away."""

    def __init__(self, workers: list[dict[str, Any]] | None = None) -> None:
        self._workers = workers
        self.closed = False

    def workers(self) -> list[dict[str, Any]] | None:
        return self._workers

    def close(self) -> None:
        self.closed = True


class FakeClock:
    """Monotonic seconds that move only when a test moves them."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def job(job_id: int, queue: str = "default", priority: int = 2, **more: Any) -> dict[str, Any]:
    """A JobRef row as the store returns it."""
    return {"id": job_id, "queue": queue, "priority": priority, **more}
