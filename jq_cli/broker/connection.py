"""What the publisher and the consumer share: URL parameters, queue names and declares, errors."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pika
import pika.exceptions

from jq_cli.errors import BrokerUnavailable, InvalidInput, Service
from jq_cli.model.states import MAX_AMQP_PRIORITY

SERVICE = Service.RABBITMQ

_PIKA_ERRORS: tuple[type[BaseException], ...] = (pika.exceptions.AMQPError, OSError)


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
    from jq_cli.redaction import split_urls

    return [_parameters(u, heartbeat=heartbeat) for u in split_urls(url)] or [
        _parameters(url, heartbeat=heartbeat)
    ]


def _parameters(url: str, *, heartbeat: int | None = None) -> pika.URLParameters:
    from jq_cli.redaction import mask_url, redact, secrets_in

    try:
        plain, tls = _tls_options(url)
        params = pika.URLParameters(plain)
    except (
        ValueError,
        OSError,
    ) as exc:  # a bad port, an unreadable CA file: settings to fix, not an outage
        # pika quotes what it misparsed (a piece of a password holding `#` or `/`): its error
        # is not kept as the cause, whose text a traceback would print.
        reason = redact(str(exc), secrets_in(url))
        raise InvalidInput(f"invalid RabbitMQ URL {mask_url(url)}: {reason}") from None
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


@contextlib.contextmanager
def _translated(url: str, drop: Callable[[], None]) -> Iterator[None]:
    """Every pika (or socket) error raised inside becomes BrokerUnavailable, its cause kept, and
    drop() is called first so that the next call opens a fresh connection."""
    try:
        yield
    except _PIKA_ERRORS as exc:
        drop()
        raise BrokerUnavailable(url, _describe(exc)) from exc


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


def _close_quietly(conn: pika.BlockingConnection | None) -> None:
    """Close a connection that may be dead already: the error of closing it says nothing new."""
    if conn is not None:
        with contextlib.suppress(*_PIKA_ERRORS):
            if conn.is_open:
                conn.close()
