"""All Redis of jq: worker heartbeats and per-second counters for rates and sparklines.

Telemetry is never on the critical path: callers buffer counts and flush them about once a
second, and when Redis is down they carry on (the dashboard shows telemetry as unavailable).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, cast

import redis
import redis.exceptions

from jq_cli.errors import InvalidInput, Service, TelemetryUnavailable

SERVICE = Service.REDIS
COUNTER_TTL = 3600  # seconds of per-second history kept for sparklines
_REDIS_ERRORS: tuple[type[BaseException], ...] = (redis.exceptions.RedisError, OSError)


class Telemetry:
    def __init__(self, url: str, namespace: str, timeout: float = 0.5) -> None:
        self.url = url
        self.namespace = namespace
        try:
            self._client = redis.Redis.from_url(
                url,
                socket_connect_timeout=timeout,
                socket_timeout=timeout,
                decode_responses=True,
                retry_on_timeout=False,
            )
        except ValueError as exc:  # a malformed URL is a setting to fix, not an outage
            from jq_cli.redaction import mask_url, redact, secrets_in

            # redis-py quotes what it misparsed (a piece of a password holding `#` or `/`): its
            # error is not kept as the cause, whose text a traceback would print.
            reason = redact(str(exc), secrets_in(url))
            raise InvalidInput(f"invalid Redis URL {mask_url(url)}: {reason}") from None

    def _key(self, *parts: str) -> str:
        return ":".join((self.namespace, *parts))

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Every Redis (or socket) error raised inside becomes TelemetryUnavailable, its cause kept."""
        try:
            yield
        except _REDIS_ERRORS as exc:
            raise TelemetryUnavailable(self.url, f"{type(exc).__name__}: {exc}"[:300]) from exc

    def ping(self) -> None:
        with self._errors():
            self._client.ping()

    # -- counters -----------------------------------------------------------------------------

    def add_counts(self, counts: Mapping[tuple[str, int], int]) -> None:
        """Add buffered counts {(event, epoch second): n} in one round trip."""
        if not counts:
            return
        with self._errors():
            pipe = self._client.pipeline(transaction=False)
            for (event, second), n in counts.items():
                key = self._key("rate", event)
                pipe.hincrby(key, str(second), n)
                pipe.expire(key, COUNTER_TTL)
            pipe.execute()

    def rates(self, events: list[str], seconds: int = 120) -> dict[str, list[int]]:
        """Per-second counts of each event for the last `seconds` whole seconds, oldest first."""
        now = int(time.time()) - 1
        fields = [str(s) for s in range(now - seconds + 1, now + 1)]
        with self._errors():
            pipe = self._client.pipeline(transaction=False)
            for event in events:
                pipe.hmget(self._key("rate", event), fields)
            results = pipe.execute()
        return {e: [int(v or 0) for v in r] for e, r in zip(events, results, strict=False)}

    # -- workers ------------------------------------------------------------------------------

    def heartbeat(self, worker: str, info: Mapping[str, Any], ttl: float) -> None:
        """Publish a worker's state; it disappears `ttl` seconds after its last heartbeat."""
        with self._errors():
            pipe = self._client.pipeline(transaction=False)
            pipe.set(
                self._key("worker", worker),
                json.dumps({**info, "ts": time.time()}),
                px=int(ttl * 1000),
            )
            pipe.zadd(self._key("workers"), {worker: time.time()})
            pipe.execute()

    def worker_gone(self, worker: str) -> None:
        with self._errors():
            self._client.delete(self._key("worker", worker))
            self._client.zrem(self._key("workers"), worker)

    def workers(self) -> list[dict[str, Any]]:
        """Workers whose heartbeat has not expired, with `heartbeat_age` in seconds."""
        with self._errors():
            # decode_responses=True: members come back as str (redis-py types them loosely).
            names = cast(list[str], self._client.zrange(self._key("workers"), 0, -1))
            values = self._client.mget([self._key("worker", n) for n in names]) if names else []
            gone = [n for n, v in zip(names, values, strict=False) if v is None]
            if gone:
                self._client.zrem(self._key("workers"), *gone)
        now = time.time()
        out = []
        for name, value in zip(names, values, strict=False):
            if value is None:
                continue
            info = json.loads(value)
            info["name"] = name
            info["heartbeat_age"] = round(now - info.pop("ts", now), 1)
            out.append(info)
        return out

    def delete_namespace(self) -> None:
        """Remove every key of the namespace (tests clean up with this)."""
        with self._errors():
            keys = list(self._client.scan_iter(match=f"{self.namespace}:*", count=500))
            if keys:
                self._client.delete(*keys)

    def close(self) -> None:
        self._client.close()


class CounterBuffer:
    """Counts events locally per epoch second so that the hot path never waits on Redis."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, int]] = Counter()
        self._lock = threading.Lock()

    def add(self, event: str, n: int = 1) -> None:
        with self._lock:
            self._counts[(event, int(time.time()))] += n

    def add_many(self, events: Counter[str]) -> None:
        """Several events at once (a worker's batch of outcomes): one lock, one clock read."""
        now = int(time.time())
        with self._lock:
            for event, n in events.items():
                self._counts[(event, now)] += n

    def take(self) -> Counter[tuple[str, int]]:
        with self._lock:
            counts, self._counts = self._counts, Counter()
        return counts

    def put_back(self, counts: Counter[tuple[str, int]]) -> None:
        # Keep at most ten minutes of unsent history while Redis is away.
        horizon = int(time.time()) - 600
        with self._lock:
            for key, n in counts.items():
                if key[1] >= horizon:
                    self._counts[key] += n
