"""A loopback TCP proxy that can freeze or slow what flows back, as a stalled registry would.

Put it in front of the shared registry (never freeze that registry itself: others use it).
`freeze_after(n)`: once n bytes have gone back to the clients, stop forwarding in both directions and keep
every connection open, like `kill -STOP` of the registry. `throttle(bps)`: forward at most bps bytes/s back.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from types import TracebackType


class TcpProxy:
    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._server.getsockname()[1])
        self.sent_back = 0  # bytes forwarded from the upstream to the clients
        self.frozen = threading.Event()
        self.closed = threading.Event()
        self.connections = 0  # accepted
        self.client_closed = 0  # of those, closed by the client
        self._freeze_at: int | None = None
        self._bps: float | None = None
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []

    def __enter__(self) -> TcpProxy:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def freeze_after(self, nbytes: int) -> None:
        self._freeze_at = self.sent_back + nbytes

    def throttle(self, bytes_per_second: float) -> None:
        self._bps = bytes_per_second

    def close(self) -> None:
        self.closed.set()
        self.frozen.set()
        self._server.close()
        with self._lock:
            for s in self._socks:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            up = socket.create_connection(self.upstream)
            with self._lock:
                self._socks += [client, up]
                self.connections += 1
            threading.Thread(target=self._pump, args=(client, up, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(up, client, True), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, back: bool) -> None:
        try:
            while not self.closed.is_set():
                if back and self.frozen.is_set():
                    self.closed.wait()  # the upstream's answers are no longer read: it looks stopped
                    return
                data = src.recv(4096 if back and self._bps else 16384)
                if not data:
                    break
                if back:
                    data = self._limit(data)
                    if self._bps:
                        time.sleep(len(data) / self._bps)
                elif self.frozen.is_set():
                    continue  # the client's bytes go nowhere; its close is still seen
                if data:
                    dst.sendall(data)
        except OSError:
            pass
        finally:
            if not back:
                with self._lock:
                    self.client_closed += 1
            if not self.frozen.is_set() or not back:
                for s in (src, dst):
                    with contextlib.suppress(OSError):
                        s.shutdown(socket.SHUT_RDWR)

    def _limit(self, data: bytes) -> bytes:
        """Count bytes going back; past the freeze point, cut the data there and freeze."""
        with self._lock:
            if self._freeze_at is not None and self.sent_back + len(data) >= self._freeze_at:
                data = data[: max(0, self._freeze_at - self.sent_back)]
                self.frozen.set()
            self.sent_back += len(data)
        return data
