"""Topic aliases from the server (paho-mqtt, MQTT 5): a client that announces Topic Alias
Maximum gets its repeated topics as aliases, never beyond its maximum, starting over on each
connection; a client that announces none never gets one. paho hands a PUBLISH that names its
topic by alias alone over with an empty topic, so these tests resolve aliases themselves, as a
client library must: the wire is what is checked."""

import queue

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from conftest import Broker

WAIT = 10.0


@pytest.fixture
def broker():
    running = Broker()
    yield running
    running.stop()


class AliasedSubscriber:
    """A paho v5 client that records each message's wire topic and alias, and resolves them."""

    def __init__(self, broker, client_id, alias_maximum):
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.port = broker.tcp_port
        self.alias_maximum = alias_maximum
        self.received = queue.Queue()
        self.connected = queue.Queue()
        self.subscribed = queue.Queue()
        self.client.on_connect = lambda c, u, flags, rc, p: self.connected.put(rc)
        self.client.on_subscribe = lambda c, u, mid, codes, p: self.subscribed.put(codes)
        self.client.on_message = self.on_message
        self.reset()

    def reset(self):
        """A new connection: the aliases known so far no longer hold."""
        self.aliases = {}

    def on_message(self, client, userdata, message):
        alias = getattr(message.properties, "TopicAlias", None)
        self.received.put((message.topic, alias, message.payload))

    def connect(self):
        properties = None
        if self.alias_maximum is not None:
            properties = Properties(PacketTypes.CONNECT)
            properties.TopicAliasMaximum = self.alias_maximum
        self.reset()
        self.client.connect("127.0.0.1", self.port, properties=properties, clean_start=True)
        self.client.loop_start()
        assert self.connected.get(timeout=WAIT) == 0

    def subscribe(self, topic):
        self.client.subscribe(topic, 0)
        self.subscribed.get(timeout=WAIT)

    def next(self):
        """(resolved topic, wire topic, alias, payload) of the next message."""
        wire_topic, alias, payload = self.received.get(timeout=WAIT)
        if alias is not None:
            assert 1 <= alias <= (self.alias_maximum or 0), f"alias {alias} beyond the maximum"
            if wire_topic:
                self.aliases[alias] = wire_topic
            assert alias in self.aliases, f"alias {alias} used before it was named"
        topic = wire_topic or self.aliases[alias]
        return topic, wire_topic, alias, payload

    def stop(self):
        self.client.disconnect()
        self.client.loop_stop()


def publisher(broker):
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="alias-publisher", protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", broker.tcp_port)
    client.loop_start()
    return client


def publish_all(client, topics):
    """Publishes to each of `topics` in turn, QoS 1 (in order), waiting for the last."""
    sent = []
    for number, topic in enumerate(topics):
        payload = f"{topic}#{number}".encode()
        info = client.publish(topic, payload, qos=1)
        sent.append((topic, payload))
    info.wait_for_publish(timeout=WAIT)
    return sent


def test_repeated_topics_arrive_as_aliases_within_the_clients_maximum_and_start_over(broker):
    subscriber = AliasedSubscriber(broker, "aliased", alias_maximum=2)
    subscriber.connect()
    subscriber.subscribe("sensors/#")
    source = publisher(broker)
    # Two busy topics, each round, and a topic used once per round.
    hot = [f"sensors/building-7/floor-3/room-{n}/temperature" for n in range(2)]
    topics = [topic for round_ in range(8) for topic in [*hot, f"sensors/once/{round_}"]]
    sent = publish_all(source, topics)
    seen = [subscriber.next() for _ in sent]
    assert [(topic, payload) for topic, _, _, payload in seen] == sent, "every message, right topic, in order"
    aliases = {alias for _, _, alias, _ in seen if alias is not None}
    assert aliases == {1, 2}, "aliases assigned, no more than the client's 2"
    by_alias_alone = [topic for topic, wire, alias, _ in seen if alias is not None and wire == ""]
    assert by_alias_alone == [topic for topic in topics[6:] if topic in hot], "the busy ones, from their third use"

    # A new connection starts over: the first message of a topic names it in full.
    subscriber.stop()
    subscriber.connect()
    subscriber.subscribe("sensors/#")
    publish_all(source, hot[:1])
    topic, wire_topic, _, _ = subscriber.next()
    assert wire_topic == topic == hot[0]
    subscriber.stop()
    source.loop_stop()


def test_a_client_that_announces_no_maximum_never_gets_an_alias(broker):
    subscriber = AliasedSubscriber(broker, "plain", alias_maximum=None)
    subscriber.connect()
    subscriber.subscribe("sensors/#")
    source = publisher(broker)
    sent = publish_all(source, ["sensors/a", "sensors/b"] * 10)
    seen = [subscriber.next() for _ in sent]
    assert all(alias is None and wire == topic for topic, wire, alias, _ in seen)
    subscriber.stop()
    source.loop_stop()
