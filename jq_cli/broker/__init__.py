"""All AMQP of jq: the one package that speaks to RabbitMQ (publishing, consuming, queue depths).

RabbitMQ is the transport only: a message carries a job id and wakes a worker; Postgres holds
the truth. Queues are durable classic queues with x-max-priority (quorum queues have no
priorities in 3.10). pika errors are translated in one place (connection._translated, applied
by Publisher._errors) into BrokerUnavailable. connection.py holds what both sides share (URL
parameters, queue names and declares), publisher.py and consumer.py one side each.
"""

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
