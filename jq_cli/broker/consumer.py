"""The consumer: a worker's queues consumed on one thread, reconnected with back-off."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pika
import pika.exceptions

from jq_cli.broker.connection import (
    _PIKA_ERRORS,
    _close_quietly,
    _declare,
    _describe,
    _parameters_list,
    queue_name,
)
from jq_cli.redaction import mask_url

log = logging.getLogger("jq.broker")


@dataclass(frozen=True)
class Delivery:
    generation: int  # which connection it came on; its tag means nothing on another one
    tag: int
    body: bytes
    priority: int
    redelivered: bool


class Consumer:
    """Consumes a worker's queues on its own thread (pika's BlockingConnection is not
    thread-safe and sends heartbeats only while its thread runs it). Other threads acknowledge
    through ack()/reject(), which hand the work to the connection's thread."""

    def __init__(
        self,
        url: str,
        namespace: str,
        queues: Sequence[str],
        prefetch: int,
        on_delivery: Callable[[Delivery], None],
        on_connection_lost: Callable[[int], None],
    ) -> None:
        self.url = url
        # A malformed URL (any of a list) fails here, at start-up.
        self._params = _parameters_list(url, heartbeat=30)
        self.namespace = namespace
        self.queues = list(queues)
        self.prefetch = prefetch
        self.on_delivery = on_delivery
        self.on_connection_lost = on_connection_lost
        self.generation = 0
        self.connected = threading.Event()
        self._connection: pika.BlockingConnection | None = None
        self._channel: Any = None  # pika.adapters.blocking_connection.BlockingChannel
        self._stop = threading.Event()
        self._consuming = True
        self._lock = threading.Lock()
        self._unsettled: set[int] = set()  # delivery tags of this connection not yet settled

    # -- called from other threads ------------------------------------------------------------

    def _call(self, generation: int, fn: Callable[[], None]) -> None:
        with self._lock:
            conn = self._connection
            if conn is None or generation != self.generation:
                return  # the delivery died with its connection; the broker redelivers it
            with contextlib.suppress(*_PIKA_ERRORS):
                conn.add_callback_threadsafe(fn)

    def ack(self, generation: int, tags: Sequence[int]) -> None:
        if tags:
            self._call(generation, lambda: self._settle(generation, tags, "ack"))

    def reject(self, generation: int, tags: Sequence[int], requeue: bool) -> None:
        if tags:
            self._call(
                generation,
                lambda: self._settle(generation, tags, "requeue" if requeue else "reject"),
            )

    def set_prefetch(self, prefetch: int) -> None:
        """Change how many unacknowledged deliveries the broker sends (also after reconnects)."""
        self.prefetch = prefetch
        self._call(
            self.generation,
            lambda: (
                self._channel and self._channel.basic_qos(prefetch_count=prefetch, global_qos=True)
            ),
        )

    def stop_consuming(self) -> None:
        """Stop receiving new deliveries (graceful shutdown); acks still flow."""
        self._consuming = False
        if self._connection is not None:
            self._call(self.generation, self._cancel)

    def stop(self) -> None:
        self._stop.set()

    # -- the connection's own thread ----------------------------------------------------------

    def _settle(self, generation: int, tags: Sequence[int], how: str) -> None:
        channel = self._channel
        if generation != self.generation or channel is None or not channel.is_open:
            return
        # One socket flush for the whole batch (BlockingChannel.basic_ack flushes per tag).
        impl = channel._impl
        unsettled = self._unsettled
        unsettled.difference_update(tags)
        if how == "ack" and (not unsettled or min(unsettled) > max(tags)):
            # Every delivery up to the highest of these is settled: one frame acks them all.
            # (Not when a lower tag still waits unclaimed in the worker's inbox: multiple=True
            # would ack it too.)
            impl.basic_ack(max(tags), multiple=True)
        else:
            for tag in tags:
                if how == "ack":
                    impl.basic_ack(tag)
                else:
                    impl.basic_nack(tag, requeue=(how == "requeue"))
        channel._flush_output()

    def _cancel(self) -> None:
        if self._channel is not None and self._channel.is_open:
            for tag in list(self._channel.consumer_tags):
                self._channel.basic_cancel(tag)

    def _on_message(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        self._unsettled.add(method.delivery_tag)
        self.on_delivery(
            Delivery(
                self.generation,
                method.delivery_tag,
                body,
                properties.priority or 0,
                method.redelivered,
            )
        )

    def _connect(self) -> pika.BlockingConnection:
        connection = pika.BlockingConnection(self._params)
        channel = connection.channel()
        # Channel-wide (RabbitMQ's global flag): one window for all of the worker's queues, and one
        # that set_prefetch can resize under running consumers (a per-consumer limit applies only to
        # consumers started after it).
        channel.basic_qos(prefetch_count=self.prefetch, global_qos=True)
        for queue in self.queues:
            _declare(channel, self.namespace, queue)
        with self._lock:
            self.generation += 1
            self._connection, self._channel = connection, channel
            self._unsettled = set()  # tags are per channel: the old ones died with it
        if self._consuming:
            for queue in self.queues:
                tag = channel.basic_consume(queue_name(self.namespace, queue), self._on_message)
                # Each delivery from the channel's frame handler straight to on_delivery:
                # BlockingChannel would queue it as an event and dispatch it again, a fifth of
                # this thread's time under load. (Its consume and cancel bookkeeping stays.)
                channel._impl._consumers[tag] = self._on_message
        self.connected.set()
        return connection

    def run(self) -> None:
        """Consume until stop(); reconnect with back-off when the broker goes away."""
        delay, announced = 0.5, False
        while not self._stop.is_set():
            try:
                connection = self._connection
                if connection is None:
                    connection = self._connect()
                    if announced:
                        log.info(
                            "event=broker_reconnected url=%s node=%s",
                            mask_url(self.url),
                            self._node(),
                        )
                    delay, announced = 0.5, False
                connection.process_data_events(time_limit=0.2)
                # The broker may close just the channel (e.g. consumer_timeout: a prefetched delivery
                # that waited unacknowledged while every handler slot was busy) and keep the connection.
                # process_data_events() does not raise for that, so without this check the worker
                # would sit on a dead channel and consume nothing ever again (found by `make chaos`).
                if self._channel is not None and not self._channel.is_open:
                    raise pika.exceptions.ChannelClosed(0, "channel closed by the broker")
            except _PIKA_ERRORS as exc:
                lost = self.generation
                self._drop()
                self.on_connection_lost(lost)
                if not announced:
                    log.warning(
                        "event=broker_unavailable url=%s error=%r retry=backoff",
                        mask_url(self.url),
                        _describe(exc),
                    )
                    announced = True
                self._stop.wait(delay)
                delay = min(delay * 2, 10.0)
        self._drop()

    def _node(self) -> str:
        """host:port of the broker node this consumer is connected to (one of the listed ones)."""
        try:
            params = self._connection._impl.params  # type: ignore[union-attr]
            return f"{params.host}:{params.port}"
        except AttributeError:
            return "?"

    def _drop(self) -> None:
        self.connected.clear()
        with self._lock:
            conn, self._connection, self._channel = self._connection, None, None
        _close_quietly(conn)
