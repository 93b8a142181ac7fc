"""All AMQP of jq: the one package that speaks to RabbitMQ (publishing, consuming, queue depths).

RabbitMQ is the transport only: a message carries a job id and wakes a worker; Postgres holds
the truth. Queues are durable classic queues with x-max-priority (quorum queues have no
priorities in 3.10). pika errors are translated in one place (connection._translated, applied
by Publisher._errors) into BrokerUnavailable. connection.py holds what both sides share (URL
parameters, queue names and declares), publisher.py and consumer.py one side each.

The names below are loaded on first use (PEP 562), so that `jq submit`, which only publishes,
does not import the consumer.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jq_cli.broker.connection import (
        SERVICE,
        TLS_QUERY,
        _declare,
        _parameters,
        poison_queue_name,
        queue_name,
    )
    from jq_cli.broker.consumer import Consumer, Delivery
    from jq_cli.broker.publisher import PUBLISH_CHUNK, Message, Publisher

__all__ = [
    "PUBLISH_CHUNK",
    "SERVICE",
    "TLS_QUERY",
    "Consumer",
    "Delivery",
    "Message",
    "Publisher",
    # _declare and _parameters are not public: the URL tests and cluster scenarios call them.
    "_declare",
    "_parameters",
    "poison_queue_name",
    "queue_name",
]

_MODULE_OF = {
    "SERVICE": "connection",
    "TLS_QUERY": "connection",
    "_declare": "connection",
    "_parameters": "connection",
    "poison_queue_name": "connection",
    "queue_name": "connection",
    "Consumer": "consumer",
    "Delivery": "consumer",
    "PUBLISH_CHUNK": "publisher",
    "Message": "publisher",
    "Publisher": "publisher",
}


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # once loaded, an attribute like any other
    return value
