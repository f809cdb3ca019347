"""Tiny test images FROM scratch with the static busybox, pushed to the local registry."""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
from typing import Any

import docker
import requests

from tests.support import env

BUSYBOX = "/bin/busybox"
MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    ]
)
HTTP_CMD = ["httpd", "-f", "-p", "8080", "-h", "/www"]


def auth_config() -> dict[str, str]:
    return {"username": env.REGISTRY_USER, "password": env.REGISTRY_PASSWORD}


def client() -> docker.DockerClient:
    return docker.from_env(timeout=120)


def _dockerfile(
    *,
    cmd: list[str] | None,
    entrypoint: list[str] | None,
    healthcheck: str | None,
    volumes: list[str] | None,
    env_vars: dict[str, str] | None,
    labels: dict[str, str] | None,
    stop_signal: str | None,
    workdir: str | None,
    expose: list[str] | None,
    has_files: bool,
) -> str:
    lines = [
        "FROM scratch",
        "COPY busybox /bin/busybox",
        'RUN ["/bin/busybox", "--install", "-s", "/bin"]',
        'RUN ["/bin/mkdir", "-p", "/tmp", "/www"]',
        'RUN ["/bin/chmod", "1777", "/tmp"]',
        "COPY marker /marker",
    ]
    if has_files:
        lines.append("COPY files/ /")
    for key, value in (env_vars or {}).items():
        lines.append(f"ENV {key}={json.dumps(value)}")
    for key, value in (labels or {}).items():
        lines.append(f"LABEL {json.dumps(key)}={json.dumps(value)}")
    if volumes:
        lines.append(f"VOLUME {json.dumps(volumes)}")
    if expose:
        lines.append("EXPOSE " + " ".join(expose))
    if workdir:
        lines.append(f"WORKDIR {workdir}")
    if healthcheck:
        lines.append(f"HEALTHCHECK {healthcheck}")
    if stop_signal:
        lines.append(f"STOPSIGNAL {stop_signal}")
    if entrypoint is not None:
        lines.append(f"ENTRYPOINT {json.dumps(entrypoint)}")
    if cmd is not None:
        lines.append(f"CMD {json.dumps(cmd)}")
    return "\n".join(lines) + "\n"


def build_image(
    tag: str,
    *,
    cmd: list[str] | None = None,
    entrypoint: list[str] | None = None,
    healthcheck: str | None = None,
    volumes: list[str] | None = None,
    env: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    marker: str = "v1",
    files: dict[str, str] | None = None,
    stop_signal: str | None = None,
    workdir: str | None = None,
    expose: list[str] | None = None,
    random_mb: int = 0,
    docker_client: docker.DockerClient | None = None,
) -> str:
    """Build a busybox image tagged `tag` whose /marker holds `marker`; return its image id.

    `healthcheck` is the text after HEALTHCHECK, e.g. `--interval=1s CMD ["true"]`.
    `files` maps absolute paths in the image to their text; `random_mb` adds /big, a layer that
    does not compress, for pulls that take a while.
    """
    dc = docker_client or client()
    with tempfile.TemporaryDirectory(prefix="crt-build-") as ctx:
        shutil.copy2(BUSYBOX, os.path.join(ctx, "busybox"))
        with open(os.path.join(ctx, "marker"), "w") as fh:
            fh.write(marker + "\n")
        for path, text in (files or {}).items():
            dest = os.path.join(ctx, "files", path.lstrip("/"))
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            with open(dest, "w") as fh:
                fh.write(text)
        if random_mb:
            os.makedirs(os.path.join(ctx, "files"), exist_ok=True)
            with open(os.path.join(ctx, "files", "big"), "wb") as fh:
                for _ in range(random_mb):
                    fh.write(os.urandom(1 << 20))
        with open(os.path.join(ctx, "Dockerfile"), "w") as fh:
            fh.write(
                _dockerfile(
                    cmd=cmd,
                    entrypoint=entrypoint,
                    healthcheck=healthcheck,
                    volumes=volumes,
                    env_vars=env,
                    labels=labels,
                    stop_signal=stop_signal,
                    workdir=workdir,
                    expose=expose,
                    has_files=bool(files) or random_mb > 0,
                )
            )
        image, _ = dc.images.build(path=ctx, tag=tag, rm=True, forcerm=True, pull=False)
    return str(image.id)


def build_http_image(tag: str, marker: str, *, files: dict[str, str] | None = None, **kwargs: Any) -> str:
    """A busybox httpd image serving /www/index.html (the marker) on port 8080."""
    kwargs.setdefault("cmd", HTTP_CMD)
    kwargs.setdefault("expose", ["8080"])
    return build_image(
        tag, marker=marker, files={"/www/index.html": marker + "\n", **(files or {})}, **kwargs
    )


def push(ref: str, docker_client: docker.DockerClient | None = None) -> str:
    """Push `ref` (`repo:tag`) to the local registry with the test credentials; return the manifest digest."""
    dc = docker_client or client()
    repo, _, tag = ref.rpartition(":")
    digest = None
    for msg in dc.api.push(repo, tag=tag, auth_config=auth_config(), stream=True, decode=True):
        if "error" in msg:
            raise RuntimeError(f"push {ref} failed: {msg['error']}")
        aux = msg.get("aux") or {}
        if aux.get("Digest"):
            digest = aux["Digest"]
    if not digest:
        raise RuntimeError(f"push {ref} returned no digest")
    return str(digest)


def registry_digest(repo_path: str, tag: str) -> str:
    """Ask the registry for the manifest digest of `repo_path:tag` (Docker-Content-Digest)."""
    with requests.Session() as session:
        session.trust_env = False  # never route loopback through a proxy
        resp = session.head(
            f"http://{env.REGISTRY}/v2/{repo_path}/manifests/{tag}",
            auth=(env.REGISTRY_USER, env.REGISTRY_PASSWORD),
            headers={"Accept": MANIFEST_TYPES},
            timeout=10,
        )
    resp.raise_for_status()
    return resp.headers["Docker-Content-Digest"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get(port: int, path: str = "/") -> str:
    with requests.Session() as session:
        session.trust_env = False
        resp = session.get(f"http://127.0.0.1:{port}{path}", timeout=2)
    resp.raise_for_status()
    return resp.text
