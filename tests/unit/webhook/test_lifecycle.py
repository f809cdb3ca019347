"""Starting, stopping and listening.

The Waker is a hand-written fake that records its calls (and can block or fail on demand).
"""

from __future__ import annotations

import http.client
import socket
import time
from collections.abc import Callable

import pytest

from agent.errors import ConfigError
from agent.metrics import Metrics
from agent.secret import Secret
from agent.webhook import WebhookServer, parse_listen
from tests.support.wait import wait_until
from tests.unit.webhook.support import (
    TARGETS,
    TOKEN,
    FakeWaker,
    Running,
)

# -- lifecycle ----------------------------------------------------------------------------


def test_stop_is_idempotent_and_closes_the_port(make: Callable[..., Running]) -> None:
    """After stop() (called twice) nothing listens on the port any more."""
    run = make()
    host, port = run.server.address
    assert run.request("GET", "/healthz").status == 200
    run.server.stop()
    run.server.stop()
    with pytest.raises(OSError):
        socket.create_connection((host, port), timeout=2).close()


def test_stop_cuts_a_connection_that_is_still_sending(make: Callable[..., Running]) -> None:
    """stop() does not wait out a slow client's client_timeout: open connections are shut."""
    run = make(client_timeout=30.0)
    with run.connect() as slow:
        slow.sendall(b"GET /healthz HTTP/1.1\r\n")
        wait_until(lambda: run.request("GET", "/healthz").status == 200, 5, "the server")
        start = time.monotonic()
        run.server.stop()
        assert time.monotonic() - start < 3.0


def test_start_before_listening_elsewhere_reports_the_address_in_use() -> None:
    """A port that is taken gives an OSError naming the listen address."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = WebhookServer(
            f"127.0.0.1:{port}",
            token=Secret(TOKEN),
            targets=TARGETS,
            waker=FakeWaker(),
            health=dict,
            metrics=Metrics(),
        )
        with pytest.raises(OSError, match=f"127.0.0.1:{port}"):
            server.start()
        server.stop()


def test_listens_on_ipv6_loopback_when_available() -> None:
    """`[::1]:0` binds the IPv6 loopback."""
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    server = WebhookServer(
        "[::1]:0", token=Secret(TOKEN), targets=TARGETS, waker=FakeWaker(), health=dict, metrics=Metrics()
    )
    server.start()
    try:
        host, port = server.address
        assert host == "::1" and port > 0
        conn = http.client.HTTPConnection("::1", port, timeout=5)
        conn.request("GET", "/healthz")
        assert conn.getresponse().status == 200
        conn.close()
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("0.0.0.0:7023", ("0.0.0.0", 7023)),
        ("127.0.0.1:0", ("127.0.0.1", 0)),
        ("[::1]:7023", ("::1", 7023)),
        (":7023", ("0.0.0.0", 7023)),
        ("localhost:80", ("localhost", 80)),
    ],
)
def test_parse_listen_accepts_host_port_forms(listen: str, expected: tuple[str, int]) -> None:
    """host:port, [v6]:port and :port (every IPv4 interface) are understood."""
    assert parse_listen(listen) == expected


@pytest.mark.parametrize(
    "listen", ["7023", "::1:7023", "host:70000", "host:", "[::1]", "host:80\n", "a b:80"]
)
def test_parse_listen_rejects_malformed_addresses(listen: str) -> None:
    """Anything else is our ConfigError naming the key and the value, never a ValueError (issue 10)."""
    with pytest.raises(ConfigError, match=r"webhook\.listen: (must be host:port|port out of range)") as e:
        parse_listen(listen, "webhook.listen")
    assert not isinstance(e.value, ValueError) and repr(listen) in str(e.value)
