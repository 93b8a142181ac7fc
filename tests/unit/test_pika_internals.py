"""The broker package reaches below pika's public API for speed (one write and one flush for a
chunk of publishes or acknowledgements). pika is pinned below its next minor version in
pyproject.toml; this test says at once, without a broker, which internal a new pika no longer
has."""

from __future__ import annotations

import inspect

import pika
import pika.channel
import pika.connection
import pika.frame
import pika.spec
import pytest
from pika.adapters.blocking_connection import BlockingChannel


def _assigned_in_init(cls: type, attribute: str) -> bool:
    """Instance attributes exist only on instances: read them from the class's __init__."""
    return f"self.{attribute} =" in inspect.getsource(cls.__init__)


def _gone(what: str) -> str:
    return (
        f"pika {pika.__version__} has no {what}, which jq_cli/broker/ uses (publisher.py's "
        "Publisher._publish, consumer.py's Consumer._settle): adapt them to this pika or keep pika "
        "below it in pyproject.toml"
    )


def test_blocking_channel_still_wraps_an_impl_and_flushes_on_demand():
    assert _assigned_in_init(BlockingChannel, "_impl"), _gone("BlockingChannel._impl")
    assert callable(getattr(BlockingChannel, "_flush_output", None)), _gone(
        "BlockingChannel._flush_output()"
    )


def test_the_channel_impl_still_has_what_the_fast_paths_call():
    channel = pika.channel.Channel
    for attribute in ("connection", "channel_number"):
        assert _assigned_in_init(channel, attribute), _gone(f"Channel.{attribute}")
    assert "self._consumers: dict =" in inspect.getsource(channel.__init__), _gone(
        "Channel._consumers"
    )
    # Consumer._connect routes deliveries from _on_deliver through _consumers[tag] directly.
    assert "self._consumers[consumer_tag](" in inspect.getsource(channel._on_deliver), _gone(
        "Channel._on_deliver calling _consumers[consumer_tag]"
    )
    for method in ("_raise_if_not_open", "basic_ack", "basic_nack"):
        assert callable(getattr(channel, method, None)), _gone(f"Channel.{method}()")


def test_the_connection_still_writes_frames_marshalled_by_the_caller():
    write = getattr(pika.connection.Connection, "_output_marshaled_frames", None)
    assert callable(write), _gone("Connection._output_marshaled_frames()")
    assert list(inspect.signature(write).parameters) == ["self", "marshaled_frames"], _gone(
        "Connection._output_marshaled_frames(marshaled_frames)"
    )


@pytest.mark.parametrize("frame", ["Method", "Header", "Body"])
def test_frames_still_marshal_themselves(frame):
    assert callable(getattr(getattr(pika.frame, frame, None), "marshal", None)), _gone(
        f"pika.frame.{frame}.marshal()"
    )


def test_a_publish_marshalled_by_hand_is_what_pika_would_send():
    # The cached method and header frames of Publisher._publish, built the same way.
    props = pika.BasicProperties(priority=3, delivery_mode=pika.DeliveryMode.Persistent)
    body = b"42"
    method = pika.frame.Method(1, pika.spec.Basic.Publish(exchange="", routing_key="jq.default"))
    raw = (
        method.marshal()
        + pika.frame.Header(1, len(body), props).marshal()
        + pika.frame.Body(1, body).marshal()
    )
    assert raw.endswith(b"42\xce") and b"jq.default" in raw  # 0xCE ends every AMQP frame


@pytest.mark.parametrize("job_id", [7, 123_456_789])
def test_cached_frames_are_byte_for_byte_what_pika_marshals(job_id):
    # The publisher caches each message's frames but its body (Publisher._marshalled): whatever
    # pika writes around a body must still depend only on the body's length.
    from jq_cli.broker.connection import queue_name
    from jq_cli.broker.publisher import Message, Publisher

    publisher = Publisher("amqp://guest:guest@localhost:5672/", "ns")
    body = str(job_id).encode()
    head, end = publisher._marshalled(5, Message(job_id, "default", 2), len(body))
    assert head + body + end == (
        pika.frame.Method(
            5, pika.spec.Basic.Publish(exchange="", routing_key=queue_name("ns", "default"))
        ).marshal()
        + pika.frame.Header(5, len(body), publisher._props[2]).marshal()
        + pika.frame.Body(5, body).marshal()
    )
