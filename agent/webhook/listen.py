"""Listen addresses: parsing `host:port`, binding, and telling loopback from the rest."""

from __future__ import annotations

import ipaddress
import re
import socket

from agent.errors import ConfigError


def parse_listen(listen: str, key: str = "listen") -> tuple[str, int]:
    """`host:port` or `[v6]:port` → (host, port); an empty host means every IPv4 interface.

    ConfigError names `key` (e.g. "webhook.listen") when `listen` is neither.
    """
    m = re.fullmatch(r"(?:\[([0-9A-Fa-f:.%\w]+)\]|([^\[\]:\s]*)):([0-9]{1,5})", listen)
    if not m:
        raise ConfigError([f"{key}: must be host:port or [ipv6]:port, got {listen!r}"])
    host = m.group(1) if m.group(1) is not None else (m.group(2) or "0.0.0.0")
    port = int(m.group(3))
    if port > 65535:
        raise ConfigError([f"{key}: port out of range in {listen!r}"])
    return host, port


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return host == "localhost"


def bind(host: str, port: int) -> socket.socket:
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
        family, address = (socket.AF_INET6 if ip.version == 6 else socket.AF_INET), host
    except ValueError:
        infos = socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
        family, address = infos[0][0], str(infos[0][4][0])
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock
