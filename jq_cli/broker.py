"""All AMQP of jq: the one module that speaks to RabbitMQ (publishing, consuming, queue depths).

RabbitMQ is the transport only: a message carries a job id and wakes a worker; Postgres holds
the truth. Queues are durable classic queues with x-max-priority (quorum queues have no
priorities in 3.10). pika errors are translated here, in one place (Publisher._errors), into
BrokerUnavailable.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pika
import pika.exceptions
import pika.frame
import pika.spec

from jq_cli.errors import BrokerUnavailable, InvalidInput, Service
from jq_cli.states import MAX_AMQP_PRIORITY

SERVICE = Service.RABBITMQ
log = logging.getLogger("jq.broker")

_PIKA_ERRORS: tuple[type[BaseException], ...] = (pika.exceptions.AMQPError, OSError)
PUBLISH_CHUNK = 1000  # messages queued before one socket flush


def queue_name(namespace: str, queue: str) -> str:
    return f"{namespace}.{queue}"


def poison_queue_name(namespace: str) -> str:
    """Where messages that carry no usable job id are dead-lettered, for inspection."""
    return f"{namespace}._poison"


# TLS files given in an amqps:// URL's query, like sslrootcert= for Postgres and ssl_ca_certs= for
# Redis, so that every service's TLS settings live in its one URL.
TLS_QUERY = ("cafile", "certfile", "keyfile", "server_hostname")


def _tls_options(url: str) -> tuple[str, pika.SSLOptions | None]:
    """Strip our TLS query arguments from an amqps:// URL and turn them into pika SSLOptions."""
    import ssl
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    tls = {k: v for k, v in query if k in TLS_QUERY}
    if parts.scheme != "amqps":
        return url, None
    rest = urlunsplit(
        parts._replace(query=urlencode([(k, v) for k, v in query if k not in TLS_QUERY]))
    )
    context = ssl.create_default_context(cafile=tls.get("cafile"))  # verifies the server by default
    if tls.get("certfile"):
        context.load_cert_chain(tls["certfile"], tls.get("keyfile"))
    return rest, pika.SSLOptions(
        context, server_hostname=tls.get("server_hostname") or parts.hostname
    )


def _parameters_list(url: str, *, heartbeat: int | None = None) -> list[pika.URLParameters]:
    """One URLParameters per broker address: JQ_RABBITMQ_URL may list a cluster's nodes,
    comma-separated. pika tries them in order on every (re)connect, so a client whose node
    dies moves to the next one, where the caller declares its queues again."""
    from jq_cli.config import split_urls

    return [_parameters(u, heartbeat=heartbeat) for u in split_urls(url)] or [
        _parameters(url, heartbeat=heartbeat)
    ]


def _parameters(url: str, *, heartbeat: int | None = None) -> pika.URLParameters:
    from jq_cli.config import mask_url

    try:
        plain, tls = _tls_options(url)
        params = pika.URLParameters(plain)
    except (
        ValueError,
        OSError,
    ) as exc:  # a bad port, an unreadable CA file: settings to fix, not an outage
        raise InvalidInput(f"invalid RabbitMQ URL {mask_url(url)}: {exc}") from exc
    if tls is not None:
        params.ssl_options = tls
    params.connection_attempts = 1
    params.socket_timeout = 5
    params.blocked_connection_timeout = 30
    if heartbeat is not None:
        params.heartbeat = heartbeat
    return params


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or repr(exc)
    return f"{type(exc).__name__}: {text}"[:300]


def _declare(channel: Any, namespace: str, queue: str) -> None:
    poison = poison_queue_name(namespace)
    channel.queue_declare(poison, durable=True)
    channel.queue_declare(
        queue_name(namespace, queue),
        durable=True,
        arguments={
            "x-max-priority": MAX_AMQP_PRIORITY,
            "x-queue-type": "classic",
            # A message a worker rejects (it names no job) is kept aside, not lost or looped.
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": poison,
        },
    )


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
        self._frames: dict[tuple[str, int, int], bytes] = {}
        self._props = {
            p: pika.BasicProperties(priority=p, delivery_mode=pika.DeliveryMode.Persistent)
            for p in range(1, MAX_AMQP_PRIORITY + 1)
        }

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """Every pika (or socket) error raised inside becomes BrokerUnavailable, its cause kept,
        and the connection is dropped so that the next call opens a fresh one."""
        try:
            yield
        except _PIKA_ERRORS as exc:
            self.close()
            raise BrokerUnavailable(self.url, _describe(exc)) from exc

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
        # queue, priority and a short body, so pika's own marshalled method and header frames are
        # cached and each chunk goes out as one write and one flush.
        impl = channel._impl
        impl._raise_if_not_open()
        number = impl.channel_number
        frames = self._frames
        for start in range(0, len(batch), PUBLISH_CHUNK):
            out = []
            for message in batch[start : start + PUBLISH_CHUNK]:
                body = str(message.job_id).encode()
                key = (message.queue, message.priority, len(body))
                head = frames.get(key)
                if head is None:
                    head = frames[key] = (
                        pika.frame.Method(
                            number,
                            pika.spec.Basic.Publish(
                                exchange="", routing_key=queue_name(self.namespace, message.queue)
                            ),
                        ).marshal()
                        + pika.frame.Header(
                            number, len(body), self._props[message.priority]
                        ).marshal()
                    )
                out.append(head)
                out.append(pika.frame.Body(number, body).marshal())
            impl.connection._output_marshaled_frames([b"".join(out)])
            channel._flush_output()

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
            lambda: self._channel and self._channel.basic_qos(prefetch_count=prefetch),
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
        # One socket flush for the whole batch (BlockingChannel.basic_ack flushes per tag). Not
        # multiple=True: tags still waiting unclaimed in the worker's inbox would be acked too.
        impl = channel._impl
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
        channel.basic_qos(prefetch_count=self.prefetch)
        for queue in self.queues:
            _declare(channel, self.namespace, queue)
        with self._lock:
            self.generation += 1
            self._connection, self._channel = connection, channel
        if self._consuming:
            for queue in self.queues:
                channel.basic_consume(queue_name(self.namespace, queue), self._on_message)
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
                            "event=broker_reconnected url=%s node=%s", _mask(self.url), self._node()
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
                        _mask(self.url),
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


def _close_quietly(conn: pika.BlockingConnection | None) -> None:
    """Close a connection that may be dead already: the error of closing it says nothing new."""
    if conn is not None:
        with contextlib.suppress(*_PIKA_ERRORS):
            if conn.is_open:
                conn.close()


def _mask(url: str) -> str:
    from jq_cli.config import mask_url

    return mask_url(url)
