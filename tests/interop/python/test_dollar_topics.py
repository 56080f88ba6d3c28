"""Topics starting with `$` (paho-mqtt, MQTT 3.1.1 and 5.0, no ACL): clients publish to them
as to any topic, except `$SYS/`, which is the broker's; wildcards at the first level never
match them; every refusal is logged."""

import pytest

from conftest import Broker
from test_security import NOT_AUTHORIZED, VERSIONS, WAIT, Client


@pytest.fixture
def broker():
    running = Broker()
    yield running
    running.stop()


@pytest.mark.parametrize("version", VERSIONS)
def test_clients_publish_to_dollar_topics_and_only_named_filters_receive_them(broker, version):
    named = Client(broker, f"named-{version}", version)
    assert named.connect() == 0
    assert named.subscribe("$app/#") == 1
    everything = Client(broker, f"everything-{version}", version)
    assert everything.connect() == 0
    assert everything.subscribe("#") == 1
    any_first_level = Client(broker, f"levels-{version}", version)
    assert any_first_level.connect() == 0
    assert any_first_level.subscribe("+/events") == 1
    publisher = Client(broker, f"publisher-{version}", version)
    assert publisher.connect() == 0
    assert publisher.publish("$app/events", b"dollar") == 0
    message = named.messages.get(timeout=WAIT)
    assert (message.topic, message.payload) == ("$app/events", b"dollar")
    # A plain message after it from the same publisher, delivered in order: the first
    # message `#` and `+/events` see is this one.
    assert publisher.publish("app/events", b"plain") == 0
    assert everything.messages.get(timeout=WAIT).topic == "app/events"
    assert any_first_level.messages.get(timeout=WAIT).topic == "app/events"
    assert not publisher.disconnected.is_set()
    for client in (named, everything, any_first_level, publisher):
        client.stop()


@pytest.mark.parametrize("version", VERSIONS)
def test_sys_topics_are_the_brokers_and_each_refusal_is_logged(broker, version):
    watcher = Client(broker, f"watcher-{version}", version)
    assert watcher.connect() == 0
    assert watcher.subscribe("$SYS/fake/#") == 1
    assert watcher.subscribe("$SYS-not/#") == 1
    forger = Client(broker, f"forger-{version}", version)
    assert forger.connect() == 0
    # MQTT 5 says why; 3.1.1 has no way to, so the message is acknowledged and discarded.
    assert forger.publish("$SYS/fake/uptime", b"0") == (NOT_AUTHORIZED if version == "5" else 0)
    broker.wait_for_log("publish refused: not authorized")
    assert not forger.disconnected.is_set(), "a refused publish does not cost the connection"
    assert forger.publish("$SYS-not/really", b"ok") == 0, "only the $SYS/ level is reserved"
    assert watcher.messages.get(timeout=WAIT).topic == "$SYS-not/really", "the forged one never came"
    forger.stop()
    watcher.stop()
