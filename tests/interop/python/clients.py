"""paho-mqtt clients with blocking helpers that wait for events, never for fixed times."""

import queue
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

WAIT = 10.0


class Paho:
    """One paho client: connect, subscribe, publish and receive, each awaited."""

    def __init__(self, broker, client_id: str, version: str, transport: str, persistent: bool):
        self.version = version
        protocol = mqtt.MQTTv5 if version == "5" else mqtt.MQTTv311
        clean_session = None if version == "5" else not persistent
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=protocol,
            transport=transport,
            clean_session=clean_session,
        )
        if transport == "websockets":
            self.client.ws_set_options(path="/mqtt")
        self.persistent = persistent
        self.port = broker.port(transport)
        self.messages: "queue.Queue[mqtt.MQTTMessage]" = queue.Queue()
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.session_present = None
        self.reason_code = None
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *args: self.subscribed.set()
        self.client.on_message = lambda client, userdata, message: self.messages.put(message)

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        self.session_present = flags.session_present
        self.reason_code = reason_code
        self.connected.set()

    def connect(self) -> "Paho":
        if self.version == "5":
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = 3600 if self.persistent else 0
            self.client.connect("127.0.0.1", self.port, clean_start=not self.persistent, properties=properties)
        else:
            self.client.connect("127.0.0.1", self.port)
        self.client.loop_start()
        assert self.connected.wait(WAIT), "no CONNACK"
        return self

    def subscribe(self, topic: str, qos: int) -> None:
        self.subscribed.clear()
        self.client.subscribe(topic, qos)
        assert self.subscribed.wait(WAIT), "no SUBACK"

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(WAIT)
        assert info.is_published()

    def next_message(self, timeout: float = WAIT) -> "mqtt.MQTTMessage":
        return self.messages.get(timeout=timeout)

    def disconnect(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
