"""One Docker client per engine a watch entry names (`docker_host`, TLS from `docker_tls_dir`)."""

from __future__ import annotations

from pathlib import Path

import docker
from docker.tls import TLSConfig

from agent.runtimes.faults import fault

API_VERSION = (
    "1.41"  # Docker 20.10: fixed, so that making a client never connects (a down engine fails later)
)


def client_for(host: str, tls_dir: Path | None = None) -> docker.DockerClient:
    """A client for `unix:///…`, `tcp://host:port` (TLS when `tls_dir` holds ca.pem, cert.pem, key.pem) or
    `ssh://user@host` (through the system's ssh client). Connects on first use, not here."""
    tls = None
    if tls_dir is not None:
        tls = TLSConfig(
            client_cert=(str(tls_dir / "cert.pem"), str(tls_dir / "key.pem")),
            ca_cert=str(tls_dir / "ca.pem"),
            verify=True,
        )
    with fault(f"Docker engine {host}"):
        return docker.DockerClient(
            base_url=host, version=API_VERSION, tls=tls, timeout=120, use_ssh_client=host.startswith("ssh://")
        )
