"""Debian's mosquitto_pub and mosquitto_sub against tabmq over TCP."""

import shutil
import subprocess

import pytest

pytestmark = pytest.mark.skipif(
    shutil.which("mosquitto_pub") is None, reason="mosquitto-clients is installed by `cargo xtask test`"
)


def sub_process(broker, *args):
    return subprocess.Popen(
        ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.tcp_port), "-W", "10", *args],
        stdout=subprocess.PIPE,
        text=True,
    )


def pub(broker, *args):
    subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.tcp_port), *args], check=True, timeout=10)



@pytest.mark.parametrize("version", ["mqttv311", "mqttv5"])
def test_qos0_live_delivery(broker, version):
    sub = sub_process(broker, "-V", version, "-t", "cli/live", "-C", "1", "-v")
    # mosquitto_sub gives no sign that it has subscribed: publish until it receives one.
    for _ in range(100):
        pub(broker, "-V", version, "-t", "cli/live", "-m", "hello")
        if sub.poll() is not None:
            break
    out, _ = sub.communicate(timeout=15)
    assert out.strip() == "cli/live hello"


@pytest.mark.parametrize("version", ["mqttv311", "mqttv5"])
def test_qos1_and_qos2_queued_for_a_persistent_session(broker, version):
    client = f"durable-{version}"
    common = ["-V", version, "-c", "-i", client, "-q", "2", "-t", "cli/q/#"]
    subprocess.run(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.tcp_port), *common, "-E"], check=True, timeout=10)
    pub(broker, "-V", version, "-t", "cli/q/1", "-m", "qos1", "-q", "1")
    pub(broker, "-V", version, "-t", "cli/q/2", "-m", "qos2", "-q", "2")
    out, _ = sub_process(broker, *common, "-C", "2", "-v").communicate(timeout=15)
    assert out.splitlines() == ["cli/q/1 qos1", "cli/q/2 qos2"]


def test_retained_and_persistent_session(broker):
    pub(broker, "-t", "cli/retained", "-m", "kept", "-r", "-q", "1")
    out = subprocess.run(
        ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.tcp_port), "-t", "cli/retained", "-C", "1", "-W", "10"],
        capture_output=True, text=True, timeout=15,
    ).stdout
    assert out.strip() == "kept"
    # A persistent session (-c) with a subscription, offline while a QoS 1 message is published.
    subprocess.run(
        ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.tcp_port), "-c", "-i", "durable", "-q", "1",
         "-t", "cli/queued", "-E"],
        check=True, timeout=10,
    )
    pub(broker, "-t", "cli/queued", "-m", "waiting", "-q", "1")
    out = subprocess.run(
        ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.tcp_port), "-c", "-i", "durable", "-q", "1",
         "-t", "cli/queued", "-C", "1", "-W", "10"],
        capture_output=True, text=True, timeout=15,
    ).stdout
    assert out.strip() == "waiting"
