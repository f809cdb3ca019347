"""The ACR API is spoken to over TLS: no plain-text byte reaches a TLS endpoint; certificates are verified."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from agent.errors import RegistryError
from agent.model import RepoKey
from agent.registries.aliyun import AliyunRegistry

APP = RepoKey("registry.cn-hangzhou.aliyuncs.com", "ns", "app")


class FirstBytes:
    """A TCP listener that records the first bytes each client sends, then hangs up."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.received: list[bytes] = []
        self.got = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    self.received.append(conn.recv(16))
                except OSError:
                    self.received.append(b"")
            self.got.set()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[FirstBytes]:
    server = FirstBytes()
    yield server
    server.close()


@pytest.mark.parametrize("form", ["https://127.0.0.1:{port}", "127.0.0.1:{port}"])
def test_no_plain_text_byte_reaches_a_tls_endpoint(listener: FirstBytes, form: str) -> None:
    """The first byte on the wire is a TLS handshake record (0x16), never `GET /repos/...`."""
    endpoint = form.format(port=listener.port)
    registry = AliyunRegistry(
        access_key_id="test-key", access_key_secret="test-secret", region="cn-hangzhou", endpoint=endpoint,
        retries=0, connect_timeout=2, read_timeout=2,
    )  # fmt: skip
    with registry, pytest.raises(RegistryError):
        registry.latest(APP, ["latest"])
    assert listener.got.wait(10), "the adapter never connected"
    first = listener.received[0]
    assert first[:1] == b"\x16", f"plain text reached a TLS endpoint: {first!r}"
    assert b"GET" not in first and b"/repos" not in first
