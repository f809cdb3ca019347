"""The demo's world, all on loopback and all its own: nothing system-wide is read or changed.

A registry (Debian's `docker-registry` as a private process with its own storage, else the `registry:2`
image as a container), the stand-in ACR API (tests/support/fake_acr.py, plain http), tiny httpd images
and a container, every name carrying a random suffix. `close()` removes all of it, and the images it
pulled, unless `keep`.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import docker

from tests.support.fake_acr import FakeAcr
from tests.support.purge import purge
from tests.support.world import wait_port

REGISTRY_IMAGE = "registry:2"
BUSYBOX_IMAGE = "busybox:stable"


def say(text: str) -> None:
    print(f"demo: {text}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def static_busybox() -> str | None:
    """A busybox binary that runs in an image FROM scratch (statically linked), or None."""
    path = shutil.which("busybox")
    if path is None:
        return None
    done = subprocess.run(["ldd", path], capture_output=True, text=True)
    return path if "not a dynamic executable" in done.stdout + done.stderr else None


class DemoWorld:
    def __init__(self, keep: bool = False) -> None:
        self.keep = keep
        self.prefix = f"cr-demo-{secrets.token_hex(3)}-"
        self.dir = Path(tempfile.mkdtemp(prefix=self.prefix))
        self.client = docker.from_env(timeout=300)
        self.pulled: list[str] = []  # base images this demo pulled, removed at the end
        self.built: list[str] = []  # image ids, removed at the end if no reference is left on them
        self.proc: subprocess.Popen[bytes] | None = None
        self.fake: FakeAcr | None = None

    # -- bring-up --------------------------------------------------------------------------------------
    def start(self) -> DemoWorld:
        port = free_port()
        self.registry = f"127.0.0.1:{port}"
        if shutil.which("docker-registry"):
            self._registry_process(port)
        else:
            self._registry_container(port)
        wait_port(port, 60, "the registry")
        self.fake = FakeAcr(registry=self.registry, registry_auth=None).start()
        say(f"stand-in ACR API on {self.fake.url} (tests/support/fake_acr.py, plain http)")
        return self

    def _registry_process(self, port: int) -> None:
        d = self.dir / "registry"
        d.mkdir()
        (d / "config.yml").write_text(
            "version: 0.1\nlog:\n  level: warn\n"
            f"storage:\n  filesystem:\n    rootdirectory: {d / 'data'}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{port}\n"
        )
        with open(d / "registry.log", "wb") as log:
            self.proc = subprocess.Popen(["docker-registry", "serve", str(d / "config.yml")],
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        say(f"registry on 127.0.0.1:{port}: a private docker-registry process, storage in {d / 'data'}")

    def _registry_container(self, port: int) -> None:
        self._pull_once(REGISTRY_IMAGE, "for a registry (no docker-registry binary here)")
        self.client.containers.run(REGISTRY_IMAGE, name=self.prefix + "registry", detach=True,
                                   ports={"5000/tcp": ("127.0.0.1", port)})  # fmt: skip
        say(f"registry on 127.0.0.1:{port}: container {self.prefix}registry")

    def _pull_once(self, ref: str, why: str) -> None:
        try:
            self.client.images.get(ref)
        except docker.errors.ImageNotFound:
            say(f"pulling {ref} {why}; it is removed at the end")
            self.client.images.pull(ref)
            self.pulled.append(ref)

    # -- images and the container ----------------------------------------------------------------------
    @property
    def ref(self) -> str:
        return f"{self.registry}/{self.prefix}ns/web:latest"

    def push_version(self, text: str) -> str:
        """Build an httpd image answering `text`, push it; return its digest; tell the fake ACR."""
        ctx = self.dir / "build"
        shutil.rmtree(ctx, ignore_errors=True)
        (ctx / "www").mkdir(parents=True)
        (ctx / "www" / "index.html").write_text(text + "\n")
        busybox = static_busybox()
        if busybox:
            shutil.copy2(busybox, ctx / "busybox")
            head = (
                'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\n'
            )
        else:
            self._pull_once(BUSYBOX_IMAGE, "as the base of the demo image (no static busybox here)")
            head = f"FROM {BUSYBOX_IMAGE}\n"
        # httpd as PID 1 ignores SIGTERM: under a shell that exits on it, `docker stop` is quick
        (ctx / "Dockerfile").write_text(head + 'COPY www /www\nEXPOSE 8080\nCMD ["sh", "-c", "trap \'exit 0\' TERM; httpd -f -p 8080 -h /www & wait"]\n')  # fmt: skip
        image, _ = self.client.images.build(path=str(ctx), tag=self.ref, rm=True, forcerm=True)
        self.built.append(str(image.id))
        repo, _, tag = self.ref.rpartition(":")
        digest = None
        for msg in self.client.api.push(repo, tag=tag, stream=True, decode=True):
            if "error" in msg:
                raise RuntimeError(f"push {self.ref}: {msg['error']}")
            digest = (msg.get("aux") or {}).get("Digest") or digest
        if not digest:
            raise RuntimeError(f"push {self.ref} returned no digest")
        return str(digest)

    def run_web(self, port: int) -> str:
        name = self.prefix + "web"
        self.client.containers.run(self.ref, name=name, detach=True, init=True,
                                   ports={"8080/tcp": ("127.0.0.1", port)})  # fmt: skip
        return name

    # -- tear-down -------------------------------------------------------------------------------------
    def close(self) -> None:
        if self.fake is not None:
            self.fake.stop()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.keep:
            say(f"kept (--keep): the containers and images named {self.prefix}*, and {self.dir}")
            return
        with contextlib.suppress(Exception):
            purge(self.client, self.prefix)  # containers, images of <registry>/<prefix>ns/…
        for ref in [*self.built, *self.pulled]:
            with contextlib.suppress(docker.errors.DockerException):  # never forced: in use means not ours
                self.client.images.remove(ref)
        shutil.rmtree(self.dir, ignore_errors=True)
        self.client.close()
        say(f"cleaned up: containers, images, registry, stand-in API and {self.dir}")

    def __enter__(self) -> DemoWorld:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: Any) -> None:
        self.close()
