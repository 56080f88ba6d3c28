"""JSON Web Tokens as passwords, with tokens minted by PyJWT: HS256 from a secret, RS256,
ES256 and EdDSA from PEM keys, a JWKS chosen by `kid`; expired, forged and confused tokens
refused; a connection ends when its token expires; a token's own topic lists."""

import base64
import hashlib
import hmac
import json
import os
import queue
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from conftest import Broker
from test_security import BAD_CREDENTIALS, Client, NOT_AUTHORIZED

SECRET = "a-test-secret-of-at-least-32-bytes!!"


def token(key, claims=None, algorithm="HS256", headers=None, **overrides):
    body = {"sub": "alice", "exp": int(time.time()) + 300, "iss": "https://auth.example", "aud": "tabmq"}
    body.update(claims or {})
    body.update(overrides)
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode(body, key, algorithm=algorithm, headers=headers)


def hs256_broker(extra=""):
    config = f"""
[auth.jwt]
secret = "{SECRET}"
issuer = "https://auth.example"
audience = "tabmq"
{extra}
"""
    return Broker(config=lambda directory: config)


@pytest.fixture
def hs256():
    running = hs256_broker()
    yield running
    running.stop()


def connect_with(broker, password, version="5", user="", client_id="chat-alice-1"):
    client = Client(broker, client_id, version, user, password)
    code = client.connect()
    return client, code


@pytest.mark.parametrize("version", ["3.1.1", "5"])
def test_a_valid_token_connects_as_its_subject(hs256, version):
    client, code = connect_with(hs256, token(SECRET), version)
    assert code == 0
    client.stop()
    client, code = connect_with(hs256, token(SECRET), version, user="alice")
    assert code == 0, "the user name may repeat the subject"
    client.stop()


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
@pytest.mark.parametrize(
    "why, password",
    [
        ("expired", lambda: token(SECRET, exp=int(time.time()) - 60)),
        ("wrong signature", lambda: token("another-secret-of-at-least-32-bytes!!")),
        ("wrong issuer", lambda: token(SECRET, iss="https://evil.example")),
        ("wrong audience", lambda: token(SECRET, aud="someone-else")),
        ("no subject", lambda: token(SECRET, sub=None)),
        ("no expiry", lambda: token(SECRET, exp=None)),
        ("alg none", lambda: jwt.encode({"sub": "alice", "exp": int(time.time()) + 300, "iss": "https://auth.example", "aud": "tabmq"}, None, algorithm="none")),
        ("HS512 instead of HS256", lambda: token(SECRET, algorithm="HS512")),
    ],
)
@pytest.mark.parametrize("version", ["3.1.1", "5"])
def test_bad_tokens_are_refused(hs256, why, password, version):
    client, code = connect_with(hs256, password(), version)
    assert code == BAD_CREDENTIALS, why
    client.stop()


def test_a_user_name_other_than_the_subject_is_refused(hs256):
    client, code = connect_with(hs256, token(SECRET), user="bob")
    assert code == BAD_CREDENTIALS
    client.stop()


def test_the_connection_ends_when_its_token_expires(hs256):
    client = Client(hs256, "chat-alice-1", "5", "", token(SECRET, exp=int(time.time()) + 2))
    reasons = queue.Queue()
    client.client.on_disconnect = lambda c, u, flags, rc, p: reasons.put((flags.is_disconnect_packet_from_server, rc.value))
    assert client.connect() == 0
    # The broker's DISCONNECT: maximum connect time (0xA0).
    assert reasons.get(timeout=15) == (True, 0xA0)
    client.stop()


def test_a_token_limits_the_topics_of_its_connection(hs256):
    limited = token(SECRET, {"publish": ["chat/alice/#"], "subscribe": ["chat/+/public"]})
    client, code = connect_with(hs256, limited)
    assert code == 0
    assert client.subscribe("chat/bob/public") == 1
    assert client.subscribe("chat/#") == NOT_AUTHORIZED
    assert client.publish("chat/alice/x", b"ok") in (0, 0x10)
    assert client.publish("chat/bob/x", b"no") == NOT_AUTHORIZED
    client.stop()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256_signed_with(key: bytes, claims: dict) -> str:
    """An HS256 token signed with `key` by hand (PyJWT rightly refuses a PEM key as secret)."""
    signing_input = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." + b64url(json.dumps(claims).encode())
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(signature)


def write_key(directory, name, data):
    path = os.path.join(directory, name)
    with open(path, "wb") as file:
        file.write(data)
    return path


def public_pem(private_key):
    return private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.mark.parametrize(
    "algorithm, make_key",
    [
        ("RS256", lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        ("ES256", lambda: ec.generate_private_key(ec.SECP256R1())),
        ("EdDSA", lambda: ed25519.Ed25519PrivateKey.generate()),
    ],
)
def test_public_key_tokens_verify_with_their_own_algorithm_only(algorithm, make_key):
    private_key = make_key()
    pem = public_pem(private_key)
    broker = Broker(
        config=lambda d: f'[auth.jwt]\npublic_key_file = "{write_key(d, "key.pem", pem)}"\n',
    )
    try:
        client, code = connect_with(broker, token(private_key, algorithm=algorithm, iss=None, aud=None))
        assert code == 0
        client.stop()
        other = make_key()
        client, code = connect_with(broker, token(other, algorithm=algorithm, iss=None, aud=None))
        assert code == BAD_CREDENTIALS, "signed by another key"
        client.stop()
        # Algorithm confusion: the public key used as an HMAC secret.
        confused = hs256_signed_with(pem, {"sub": "alice", "exp": int(time.time()) + 300})
        client, code = connect_with(broker, confused)
        assert code == BAD_CREDENTIALS, "an HS256 token signed with the public key"
        client.stop()
    finally:
        broker.stop()


def test_a_jwks_file_picks_the_key_by_kid():
    first = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    second = ec.generate_private_key(ec.SECP256R1())
    keys = []
    for kid, key, alg in [("k1", first, "RS256"), ("k2", second, "ES256")]:
        jwk = json.loads(jwt.algorithms.get_default_algorithms()[alg].to_jwk(key.public_key()))
        jwk.update({"kid": kid, "alg": alg})
        keys.append(jwk)
    jwks = json.dumps({"keys": keys}).encode()
    broker = Broker(config=lambda d: f'[auth.jwt]\npublic_key_file = "{write_key(d, "jwks.json", jwks)}"\n')
    try:
        for kid, key, alg in [("k1", first, "RS256"), ("k2", second, "ES256")]:
            client, code = connect_with(broker, token(key, algorithm=alg, headers={"kid": kid}, iss=None, aud=None))
            assert code == 0, kid
            client.stop()
        client, code = connect_with(broker, token(first, algorithm="RS256", headers={"kid": "k2"}, iss=None, aud=None))
        assert code == BAD_CREDENTIALS, "k2 is not an RSA key"
        client.stop()
    finally:
        broker.stop()


def test_a_short_secret_is_a_startup_error(tmp_path):
    import subprocess

    config = tmp_path / "tabmq.toml"
    config.write_text('[auth.jwt]\nsecret = "short"\n')
    result = subprocess.run(
        [os.environ["TABMQ_BIN"], "--config", str(config), "--data-dir", str(tmp_path / "data"), "--tcp", "127.0.0.1:0", "--ws", ""],
        capture_output=True, text=True, timeout=20,
    )
    assert result.returncode == 1
    assert "at least 32 bytes" in result.stderr
