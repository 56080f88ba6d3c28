"""Authentication and authorization with real clients (paho-mqtt, mosquitto_pub), every rule
both ways, over MQTT 3.1.1 and 5.0: the password file (written by `tabmq passwd`), the ACL,
client-id ownership, `$SYS`, SIGHUP reloads and the slowdown of repeated failures."""

import os
import queue
import signal
import subprocess
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from conftest import Broker

WAIT = 10.0
VERSIONS = ["3.1.1", "5"]

ACL = """\
user alice
topic readwrite chat/#
topic deny chat/secret/#
user admin
topic read $SYS/#
topic readwrite #
pattern readwrite devices/%c/#
"""

CONFIG = """\
[auth]
password_file = "{dir}/passwords"
[authz]
acl_file = "{dir}/acl"
client_id_pattern = "*-%u-*"
"""


def passwd(path: str, user: str, password: str, *extra: str) -> None:
    """`tabmq passwd`, the password on standard input."""
    subprocess.run(
        [os.environ["TABMQ_BIN"], "passwd", path, user, *extra],
        input=f"{password}\n", text=True, check=True, timeout=30,
    )


def secured_setup(directory: str) -> None:
    for user, password in [("alice", "wonderland"), ("bob", "builder"), ("admin", "root-pw")]:
        passwd(os.path.join(directory, "passwords"), user, password)
    with open(os.path.join(directory, "acl"), "w") as file:
        file.write(ACL)


@pytest.fixture
def secured():
    running = Broker(config=lambda directory: CONFIG.format(dir=directory), setup=secured_setup)
    yield running
    running.stop()


class Client:
    """A paho client that records CONNACK, SUBACK and PUBACK reason codes and messages."""

    def __init__(self, broker, client_id, version, user=None, password=None, transport="tcp"):
        protocol = mqtt.MQTTv5 if version == "5" else mqtt.MQTTv311
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol, transport=transport)
        if transport == "websockets":
            self.client.ws_set_options(path="/mqtt")
        if user is not None:
            self.client.username_pw_set(user, password)
        self.port = broker.port(transport)
        self.version = version
        self.connack = queue.Queue()
        self.subacks = queue.Queue()
        self.pubacks = queue.Queue()
        self.messages = queue.Queue()
        self.disconnected = threading.Event()
        self.client.on_connect = lambda c, u, flags, rc, p: self.connack.put(rc)
        self.client.on_subscribe = lambda c, u, mid, codes, p: self.subacks.put(codes)
        self.client.on_publish = lambda c, u, mid, rc, p: self.pubacks.put(rc)
        self.client.on_message = lambda c, u, message: self.messages.put(message)
        self.client.on_disconnect = lambda *args: self.disconnected.set()

    def connect(self):
        """Connects; returns the CONNACK reason code's value (0 when accepted)."""
        self.client.connect("127.0.0.1", self.port)
        self.client.loop_start()
        return self.connack.get(timeout=WAIT).value

    def subscribe(self, topic, qos=1):
        """The SUBACK's reason code for `topic` (v5 codes; 3.1.1's 0x80 reads as 0x80)."""
        self.client.subscribe(topic, qos)
        return self.subacks.get(timeout=WAIT)[0].value

    def publish(self, topic, payload, qos=1):
        """Publishes; the PUBACK's reason code (3.1.1: always 0)."""
        self.client.publish(topic, payload, qos=qos)
        return self.pubacks.get(timeout=WAIT).value

    def stop(self):
        self.client.disconnect()
        self.client.loop_stop()


# paho reports 3.1.1's CONNACK return codes as the MQTT 5 codes of the same meaning.
BAD_CREDENTIALS = 0x86
NOT_AUTHORIZED = 0x87
CLIENT_ID_REFUSED = 0x85


@pytest.mark.parametrize("version", VERSIONS)
def test_the_password_file_lets_in_only_the_right_password(secured, version):
    right = Client(secured, "chat-alice-laptop", version, "alice", "wonderland")
    assert right.connect() == 0
    right.stop()
    wrong = Client(secured, "chat-alice-laptop", version, "alice", "guess")
    assert wrong.connect() == BAD_CREDENTIALS
    wrong.stop()
    unknown = Client(secured, "chat-mallory-x", version, "mallory", "wonderland")
    assert unknown.connect() == BAD_CREDENTIALS
    unknown.stop()
    anonymous = Client(secured, "sensor1", version)
    assert anonymous.connect() == NOT_AUTHORIZED, "no anonymous clients once credentials are configured"
    anonymous.stop()


def test_a_websocket_client_authenticates_too(secured):
    client = Client(secured, "chat-bob-tab", "5", "bob", "builder", transport="websockets")
    assert client.connect() == 0
    client.stop()
    refused = Client(secured, "chat-bob-tab", "5", "bob", "wrong", transport="websockets")
    assert refused.connect() == BAD_CREDENTIALS
    refused.stop()


@pytest.mark.parametrize("version", VERSIONS)
def test_the_acl_decides_each_subscribe_and_publish(secured, version):
    alice = Client(secured, "chat-alice-laptop", version, "alice", "wonderland")
    assert alice.connect() == 0
    refused = 0x87 if version == "5" else 0x80
    assert alice.subscribe("chat/room/+") == 1
    assert alice.subscribe("#") == refused, "# is more than chat/#"
    assert alice.subscribe("chat/#") == refused, "it meets the denied chat/secret/#"
    assert alice.subscribe("devices/chat-alice-laptop/#") == 1, "pattern with %c"
    assert alice.subscribe("devices/chat-bob-tab/#") == refused
    bob = Client(secured, "chat-bob-tab", version, "bob", "builder")
    assert bob.connect() == 0
    # Bob has no rule for chat/: denied. MQTT 5 says so; 3.1.1 acknowledges and discards.
    assert bob.publish("chat/room/1", b"from bob") == (NOT_AUTHORIZED if version == "5" else 0)
    assert alice.publish("chat/room/1", b"from alice") == 0
    message = alice.messages.get(timeout=WAIT)
    assert (message.topic, message.payload) == ("chat/room/1", b"from alice"), "bob's never arrived"
    assert not bob.disconnected.is_set(), "a denied publish does not cost the connection"
    assert alice.publish("chat/secret/plans", b"x") == (NOT_AUTHORIZED if version == "5" else 0)
    alice.stop()
    bob.stop()


@pytest.mark.parametrize("version", VERSIONS)
def test_no_one_takes_over_a_client_id_that_is_not_theirs(secured, version):
    alice = Client(secured, "chat-alice-phone", version, "alice", "wonderland")
    assert alice.connect() == 0
    assert alice.subscribe("chat/room/+") == 1
    bob = Client(secured, "chat-alice-phone", version, "bob", "builder")
    assert bob.connect() == CLIENT_ID_REFUSED
    bob.stop()
    assert alice.publish("chat/room/2", b"still here") == 0
    assert alice.messages.get(timeout=WAIT).payload == b"still here"
    assert not alice.disconnected.is_set(), "alice's connection was never taken over"
    alice.stop()


def test_sys_topics_are_read_only_where_granted(secured):
    admin = Client(secured, "ops-admin-1", "5", "admin", "root-pw")
    assert admin.connect() == 0
    assert admin.subscribe("$SYS/broker/connections") == 1
    assert admin.publish("$SYS/broker/connections", b"999") == NOT_AUTHORIZED, "$SYS/ is the broker's"
    alice = Client(secured, "chat-alice-tab", "5", "alice", "wonderland")
    assert alice.connect() == 0
    assert alice.subscribe("$SYS/#") == NOT_AUTHORIZED
    assert alice.publish("$app/x", b"x") == NOT_AUTHORIZED
    admin.stop()
    alice.stop()


def test_sighup_reloads_the_password_file(secured):
    carol = Client(secured, "chat-carol-1", "5", "carol", "sesame")
    assert carol.connect() == BAD_CREDENTIALS
    carol.stop()
    passwd(os.path.join(secured.dir, "passwords"), "carol", "sesame")
    secured.process.send_signal(signal.SIGHUP)
    secured.wait_for_log("security files reloaded")
    carol = Client(secured, "chat-carol-1", "5", "carol", "sesame")
    assert carol.connect() == 0
    carol.stop()
    with open(os.path.join(secured.dir, "acl"), "a") as file:
        file.write("topic nonsense a/#/b\n")
    secured.process.send_signal(signal.SIGHUP)
    secured.wait_for_log("reload failed")
    alice = Client(secured, "chat-alice-2", "5", "alice", "wonderland")
    assert alice.connect() == 0, "a broken file leaves the previous policy in force"
    assert alice.subscribe("chat/room/+") == 1
    alice.stop()


def test_repeated_failures_from_one_address_are_answered_ever_more_slowly(secured):
    timings = []
    for attempt in range(5):
        client = Client(secured, "chat-alice-x", "5", "alice", f"guess-{attempt}")
        started = time.monotonic()
        assert client.connect() == BAD_CREDENTIALS
        timings.append(time.monotonic() - started)
        client.stop()
    # 0.25 s doubled per failure: the fifth waits 4 s.
    assert timings[4] >= 3.5, timings
    assert timings[4] > timings[2] > timings[0], timings


def test_mosquitto_pub_with_and_without_the_right_password(secured):
    common = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(secured.tcp_port), "-t", "chat/x", "-m", "hi", "-q", "1"]
    ok = subprocess.run([*common, "-i", "chat-alice-cli", "-u", "alice", "-P", "wonderland"], capture_output=True, text=True, timeout=20)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run([*common, "-i", "chat-alice-cli", "-u", "alice", "-P", "nope"], capture_output=True, text=True, timeout=20)
    assert bad.returncode != 0
    assert "not authorised" in bad.stderr.lower() or "bad user name" in bad.stderr.lower(), bad.stderr


def test_without_credentials_configured_loopback_clients_are_anonymous(broker):
    client = Client(broker, "anyone", "5")
    assert client.connect() == 0
    client.stop()
    assert "anonymous clients: no credentials are configured and every listener is on loopback" in broker.log_text()
