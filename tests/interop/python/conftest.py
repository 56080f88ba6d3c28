"""A real tabmq broker process per test, on free loopback ports, with its own data directory."""

import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"broker never listened on port {port}")


class Broker:
    """The broker binary named by TABMQ_BIN."""

    def __init__(self, config=None, setup=None) -> None:
        """`config(dir)`: TOML for a config file; `setup(dir)` runs first (to write files it names)."""
        self.dir = tempfile.mkdtemp(prefix="tabmq-interop-")
        if setup:
            setup(self.dir)
        self.tcp_port = free_port()
        self.ws_port = free_port()
        self.log_path = os.path.join(self.dir, "broker.log")
        self.log = open(self.log_path, "wb")
        config_args = []
        if config:
            path = os.path.join(self.dir, "tabmq.toml")
            with open(path, "w") as file:
                file.write(config(self.dir))
            config_args = ["--config", path]
        self.process = subprocess.Popen(
            [
                os.environ["TABMQ_BIN"],
                *config_args,
                "--tcp", f"127.0.0.1:{self.tcp_port}",
                "--ws", f"127.0.0.1:{self.ws_port}",
                "--www", "",
                "--data-dir", os.path.join(self.dir, "data"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )
        wait_for_port(self.tcp_port)
        wait_for_port(self.ws_port)

    def log_text(self) -> str:
        with open(self.log_path, "rb") as file:
            return file.read().decode(errors="replace")

    def wait_for_log(self, text: str, count: int = 1, timeout: float = 20.0) -> None:
        """Waits until the broker's log holds `text` `count` times (polling its file)."""
        deadline = time.monotonic() + timeout
        while self.log_text().count(text) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"the broker never logged {text!r} ({count}x)")
            time.sleep(0.02)

    def port(self, transport: str) -> int:
        return self.ws_port if transport == "websockets" else self.tcp_port

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=20)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def broker():
    running = Broker()
    yield running
    running.stop()
