"""TLS listeners with a test CA made here: mosquitto_pub/sub over mqtts with --cafile, paho
over wss://, client certificates (mutual TLS) required when a client CA is configured,
and a new certificate taken on SIGHUP while established connections go on."""

import datetime
import os
import signal
import shutil
import ssl
import subprocess

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import Broker, free_port, wait_for_port
from test_security import Client

pytestmark = pytest.mark.skipif(shutil.which("mosquitto_pub") is None, reason="mosquitto-clients is installed by `cargo xtask test`")


def pem(obj) -> bytes:
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM)
    return obj.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def certificate(subject: str, issuer_key, issuer_name, key, ca: bool, san=None):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer_name or x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


class Authority:
    """A test CA that signs server and client certificates into `directory`."""

    def __init__(self, directory: str, name: str):
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.cert = certificate(name, self.key, None, self.key, ca=True)
        self.path = self.write(f"{name}.pem", pem(self.cert))

    def write(self, name: str, data: bytes) -> str:
        path = os.path.join(self.directory, name)
        with open(path, "wb") as file:
            file.write(data)
        return path

    def issue(self, cn: str, prefix: str, server: bool):
        key = ec.generate_private_key(ec.SECP256R1())
        san = [x509.DNSName("localhost"), x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))] if server else None
        cert = certificate(cn, self.key, self.cert.subject, key, ca=False, san=san)
        return self.write(f"{prefix}.crt", pem(cert)), self.write(f"{prefix}.key", pem(key))


@pytest.fixture
def tls_broker(tmp_path):
    ports = {"wss": free_port(), "mqtts": free_port()}
    state = {}

    def setup(directory):
        state["ca"] = Authority(directory, "test-ca")
        state["cert"], state["key"] = state["ca"].issue("localhost", "server", server=True)
        state["clients"] = Authority(directory, "client-ca")

    def config(directory):
        return (
            f'[listeners]\nwss = "127.0.0.1:{ports["wss"]}"\nmqtts = "127.0.0.1:{ports["mqtts"]}"\n'
            f'[tls]\ncert_file = "{state["cert"]}"\nkey_file = "{state["key"]}"\n'
        )

    running = Broker(config=config, setup=setup)
    wait_for_port(ports["wss"])
    wait_for_port(ports["mqtts"])
    running.ports = ports
    running.state = state
    yield running
    running.stop()


def mosquitto(*args, timeout=20):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)


def test_mosquitto_clients_over_mqtts_verify_the_broker(tls_broker):
    port = str(tls_broker.ports["mqtts"])
    ca = tls_broker.state["ca"].path
    sub = subprocess.Popen(
        ["mosquitto_sub", "-h", "localhost", "-p", port, "--cafile", ca, "-t", "tls/t", "-C", "1", "-W", "15"],
        stdout=subprocess.PIPE, text=True,
    )
    for _ in range(100):
        sent = mosquitto("mosquitto_pub", "-h", "localhost", "-p", port, "--cafile", ca, "-t", "tls/t", "-m", "secret hello")
        assert sent.returncode == 0, sent.stderr
        if sub.poll() is not None:
            break
    out, _ = sub.communicate(timeout=20)
    assert out.strip() == "secret hello"
    wrong_ca = tls_broker.state["clients"].path
    refused = mosquitto("mosquitto_pub", "-h", "localhost", "-p", port, "--cafile", wrong_ca, "-t", "tls/t", "-m", "x")
    assert refused.returncode != 0, "a client that does not trust the certificate does not connect"


def test_paho_over_wss(tls_broker):
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="wss-client", protocol=mqtt.MQTTv5, transport="websockets")
    client.ws_set_options(path="/mqtt")
    client.tls_set(ca_certs=tls_broker.state["ca"].path)
    codes = []
    import threading

    connected = threading.Event()
    client.on_connect = lambda c, u, f, rc, p: (codes.append(rc.value), connected.set())
    client.connect("localhost", tls_broker.ports["wss"])
    client.loop_start()
    assert connected.wait(10)
    assert codes == [0]
    client.disconnect()
    client.loop_stop()


def mutual_tls_broker(state, users=(), extra_setup=None, extra_config=lambda directory: ""):
    """A broker with an mqtts listener that requires client certificates of `client-ca`;
    `state` gets the CAs and a certificate per name in `users`."""
    port = free_port()

    def setup(directory):
        state["ca"] = Authority(directory, "test-ca")
        state["cert"], state["key"] = state["ca"].issue("localhost", "server", server=True)
        state["clients"] = Authority(directory, "client-ca")
        for user in users:
            state[user] = state["clients"].issue(user, user, server=False)
        if extra_setup:
            extra_setup(directory)

    def config(directory):
        return (
            f'[listeners]\nmqtts = "127.0.0.1:{port}"\n'
            f'[tls]\ncert_file = "{state["cert"]}"\nkey_file = "{state["key"]}"\nclient_ca_file = "{state["clients"].path}"\n'
            + extra_config(directory)
        )

    broker = Broker(config=config, setup=setup)
    wait_for_port(port)
    broker.mqtts_port = port
    return broker


def test_client_certificates_are_required_with_a_client_ca():
    state = {}
    stranger = lambda d: state.update(stranger=Authority(d, "other-ca").issue("mallory", "mallory", server=False))
    broker = mutual_tls_broker(state, users=["alice"], extra_setup=stranger)
    try:
        base = ["mosquitto_pub", "-h", "localhost", "-p", str(broker.mqtts_port), "--cafile", state["ca"].path, "-t", "m/t", "-m", "x"]
        assert mosquitto(*base).returncode != 0, "no client certificate"
        assert mosquitto(*base, "--cert", state["stranger"][0], "--key", state["stranger"][1]).returncode != 0, "another CA"
        ok = mosquitto(*base, "--cert", state["alice"][0], "--key", state["alice"][1])
        assert ok.returncode == 0, ok.stderr
    finally:
        broker.stop()


def test_sighup_takes_a_new_certificate_and_keeps_connections(tls_broker):
    port = tls_broker.ports["mqtts"]
    state = tls_broker.state

    def paho(ca):
        client = Client(tls_broker, f"keeper-{os.path.basename(ca)}", "5")
        client.port = port
        client.client.tls_set(ca_certs=ca)
        return client

    before = paho(state["ca"].path)
    assert before.connect() == 0
    second = Authority(tls_broker.dir, "second-ca")
    cert, key = second.issue("localhost", "server2", server=True)
    shutil.copy(cert, state["cert"])
    shutil.copy(key, state["key"])
    tls_broker.process.send_signal(signal.SIGHUP)
    tls_broker.wait_for_log("TLS certificate reloaded")
    after = paho(second.path)
    assert after.connect() == 0, "new handshakes use the new certificate"
    old_trust = mosquitto("mosquitto_pub", "-h", "localhost", "-p", str(port), "--cafile", state["ca"].path, "-t", "t", "-m", "x")
    assert old_trust.returncode != 0, "the old certificate is no longer served"
    assert before.subscribe("still/here") == 1, "the connection made before the reload goes on"
    before.stop()
    after.stop()


def test_a_client_certificate_can_name_the_user():
    state = {}

    def write_acl(directory):
        with open(os.path.join(directory, "acl"), "w") as file:
            file.write("user alice\ntopic readwrite chat/#\n")

    broker = mutual_tls_broker(
        state,
        users=["alice", "bob"],
        extra_setup=write_acl,
        extra_config=lambda d: f'use_identity_as_username = true\n[authz]\nacl_file = "{os.path.join(d, "acl")}"\n',
    )
    try:
        def subscribe(who):
            cert, key = state[who]
            return mosquitto(
                "mosquitto_sub", "-h", "localhost", "-p", str(broker.mqtts_port), "-V", "mqttv5", "--cafile", state["ca"].path,
                "--cert", cert, "--key", key, "-t", "chat/#", "-E",
            )

        alice = subscribe("alice")
        assert alice.returncode == 0 and "denied" not in alice.stderr, alice.stderr
        bob = subscribe("bob")
        # mosquitto_sub exits 0 either way, and says so on stderr.
        assert "All subscription requests were denied" in bob.stderr, "bob's certificate makes him bob, whom the ACL keeps out of chat/#"
        assert "anonymous clients: credentials are configured (tls.use_identity_as_username)" in broker.log_text()
    finally:
        broker.stop()
