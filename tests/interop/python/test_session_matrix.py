"""The session/QoS matrix of MISSION.md, for MQTT 3.1.1 and 5.0, over WebSocket and TCP.

A subscriber subscribes and disconnects, a publisher publishes, the subscriber reconnects.
"Nothing arrived" is proven by a sentinel published after reconnecting: messages queued
for the session are delivered before it, so once it arrives, anything queued would have.
"""

import uuid

import pytest

from clients import Paho

CASES = [
    # (persistent session, publish QoS, subscribe QoS, delivered on reconnect)
    pytest.param(False, 0, 0, False, id="clean-q0-q0"),
    pytest.param(True, 0, 0, False, id="persistent-q0-q0"),
    pytest.param(False, 1, 1, False, id="clean-q1-q1"),
    pytest.param(True, 1, 1, True, id="persistent-q1-q1"),
    pytest.param(True, 0, 1, False, id="persistent-pubq0-subq1"),
]


@pytest.mark.parametrize("transport", ["websockets", "tcp"])
@pytest.mark.parametrize("version", ["3.1.1", "5"])
@pytest.mark.parametrize("persistent,pub_qos,sub_qos,delivered", CASES)
def test_reconnect_matrix(broker, transport, version, persistent, pub_qos, sub_qos, delivered):
    client_id = f"sub-{uuid.uuid4().hex[:8]}"
    subscriber = Paho(broker, client_id, version, transport, persistent).connect()
    subscriber.subscribe("matrix/t", sub_qos)
    subscriber.disconnect()

    publisher = Paho(broker, "pub-" + client_id, version, transport, persistent=False).connect()
    publisher.publish("matrix/t", b"while-away", pub_qos)
    # A QoS 0 publish is not acknowledged; a QoS 1 PUBACK on the same connection proves
    # the broker has routed it before the subscriber comes back.
    publisher.publish("matrix/barrier", b"", 1)

    subscriber = Paho(broker, client_id, version, transport, persistent).connect()
    assert subscriber.session_present == persistent
    subscriber.subscribe("matrix/sentinel", 1)
    publisher.publish("matrix/sentinel", b"sentinel", 1)
    received = []
    while True:
        message = subscriber.next_message()
        if message.topic == "matrix/sentinel":
            break
        received.append(message)
    if delivered:
        assert [m.payload for m in received] == [b"while-away"]
        assert received[0].qos == min(pub_qos, sub_qos)
    else:
        assert [(m.topic, m.payload, m.qos) for m in received] == []

    if persistent:
        # The subscription is still there: a new message arrives without subscribing again.
        publisher.publish("matrix/t", b"after", pub_qos)
        message = subscriber.next_message()
        assert (message.topic, message.payload) == ("matrix/t", b"after")
        assert message.qos == min(pub_qos, sub_qos)
    subscriber.disconnect()
    publisher.disconnect()
