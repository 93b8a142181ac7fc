"""The publisher: job messages out to RabbitMQ, queue counts, purges and deletes."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pika
import pika.exceptions
import pika.frame
import pika.spec

from jq_cli.broker.connection import (
    _close_quietly,
    _declare,
    _parameters_list,
    _translated,
    poison_queue_name,
    queue_name,
)
from jq_cli.errors import BrokerUnavailable
from jq_cli.model.states import MAX_AMQP_PRIORITY

PUBLISH_CHUNK = 1000  # messages queued before one socket flush


@dataclass(frozen=True)
class Message:
    job_id: int
    queue: str
    priority: int


class Publisher:
    """Publishes job messages. Not thread-safe: one per thread. Connects lazily, reconnects once
    on a dropped connection. No per-message confirm wait: a message lost in flight is found by
    the scheduler's sweeper, which re-publishes queued jobs the broker does not hold."""

    def __init__(self, url: str, namespace: str) -> None:
        self.url = url
        self.namespace = namespace
        self._connection: pika.BlockingConnection | None = None
        self._channel: Any = None  # pika.adapters.blocking_connection.BlockingChannel
        self._declared: set[str] = set()
        self._frames: dict[tuple[str, int, int], tuple[bytes, bytes]] = {}
        self._props = {
            p: pika.BasicProperties(priority=p, delivery_mode=pika.DeliveryMode.Persistent)
            for p in range(1, MAX_AMQP_PRIORITY + 1)
        }

    def _errors(self) -> contextlib.AbstractContextManager[None]:
        """Every pika (or socket) error raised inside becomes BrokerUnavailable, its cause kept,
        and the connection is dropped so that the next call opens a fresh one."""
        return _translated(self.url, self.close)

    def _open(self) -> Any:
        """The open channel, connecting first if need be. Raises BrokerUnavailable."""
        if self._channel is None or not self._channel.is_open:
            self.close()
            with self._errors():
                self._connection = pika.BlockingConnection(_parameters_list(self.url))
                self._channel = self._connection.channel()
            self._declared.clear()
            self._frames.clear()  # marshalled for the old channel's number
        return self._channel

    def publish(self, messages: Iterable[Message]) -> int:
        """Publish each message; returns how many. Once more on a fresh connection if the open one
        fails (the broker dropped it while idle). Raises BrokerUnavailable."""
        batch = list(messages)
        if not batch:
            return 0
        for attempt in (1, 2):
            self._open()  # a broker that refuses the connection is not asked twice
            try:
                with self._errors():
                    self._publish(batch)
                return len(batch)
            except BrokerUnavailable:
                if attempt == 2:
                    raise
        return 0

    def _publish(self, batch: Sequence[Message]) -> None:
        channel = self._open()
        for queue in {m.queue for m in batch} - self._declared:
            _declare(channel, self.namespace, queue)
            self._declared.add(queue)
        # BlockingChannel.basic_publish marshals three frames and flushes the socket for every
        # message, which capped bulk submits near 20,000 a second. Our messages differ only in
        # queue, priority and a short body, so pika's own marshalled frames are cached: the method
        # and header frames whole, the body frame as what comes before and after the body (both
        # depend only on its length). Each chunk goes out as one write and one flush.
        impl = channel._impl
        impl._raise_if_not_open()
        number = impl.channel_number
        frames = self._frames
        for start in range(0, len(batch), PUBLISH_CHUNK):
            out = []
            for message in batch[start : start + PUBLISH_CHUNK]:
                body = str(message.job_id).encode()
                key = (message.queue, message.priority, len(body))
                cached = frames.get(key)
                if cached is None:
                    cached = frames[key] = self._marshalled(number, message, len(body))
                out.append(cached[0])
                out.append(body)
                out.append(cached[1])
            impl.connection._output_marshaled_frames([b"".join(out)])
            channel._flush_output()

    def _marshalled(self, number: int, message: Message, size: int) -> tuple[bytes, bytes]:
        """(method and header frames, and the body frame's start; the body frame's end) of a
        message to this queue at this priority with a body of `size` bytes, as pika marshals them."""
        body_frame = pika.frame.Body(number, b"\0" * size).marshal()
        head = (
            pika.frame.Method(
                number,
                pika.spec.Basic.Publish(
                    exchange="", routing_key=queue_name(self.namespace, message.queue)
                ),
            ).marshal()
            + pika.frame.Header(number, size, self._props[message.priority]).marshal()
            + body_frame[: -size - 1]
        )
        return head, body_frame[-1:]

    def queue_depths(self, queues: Iterable[str]) -> dict[str, int | None]:
        """Ready messages per queue, as the broker counts them (None: the queue does not exist).
        Raises BrokerUnavailable."""
        return {q: None if c is None else c[0] for q, c in self.queue_counts(queues).items()}

    def queue_counts(self, queues: Iterable[str]) -> dict[str, tuple[int, int] | None]:
        """(ready messages, consumers) per queue (None: the queue does not exist). A passive
        declare counts only ready messages: deliveries consumers hold unacknowledged are not in
        it, and without the management plugin nothing in AMQP counts them. Raises BrokerUnavailable."""
        counts: dict[str, tuple[int, int] | None] = {}
        for queue in queues:
            with self._errors():
                channel = self._open()
                try:
                    frame = channel.queue_declare(queue_name(self.namespace, queue), passive=True)
                    counts[queue] = (frame.method.message_count, frame.method.consumer_count)
                except pika.exceptions.ChannelClosedByBroker:
                    counts[queue] = None  # NOT_FOUND closes the channel; the next call reopens it
                    self._channel = None
        return counts

    def purge(self, queue: str) -> int:
        """Drop every ready message of a queue (tests and operators recovering a broker)."""
        with self._errors():
            count: int = (
                self._open().queue_purge(queue_name(self.namespace, queue)).method.message_count
            )
            return count

    def delete_namespace_queues(self, queues: Iterable[str]) -> None:
        """Delete the namespace's queues (tests clean up with this)."""
        for name in [
            *(queue_name(self.namespace, q) for q in queues),
            poison_queue_name(self.namespace),
        ]:
            with self._errors():
                try:
                    self._open().queue_delete(name)
                except pika.exceptions.ChannelClosedByBroker:
                    self._channel = None

    def publish_raw(
        self, queue: str, body: bytes, priority: int = 1, headers: dict[str, Any] | None = None
    ) -> None:
        """Publish an arbitrary body (tests of poison messages)."""
        with self._errors():
            channel = self._open()
            _declare(channel, self.namespace, queue)
            channel.basic_publish(
                "",
                queue_name(self.namespace, queue),
                body,
                pika.BasicProperties(priority=priority, headers=headers),
            )

    def ping(self) -> None:
        """Connect if not connected. Raises BrokerUnavailable, InvalidInput (a malformed URL)."""
        self._open()

    def close(self) -> None:
        conn, self._connection, self._channel = self._connection, None, None
        _close_quietly(conn)
