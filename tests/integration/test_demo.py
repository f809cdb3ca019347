"""Issue 21 item 1: `./scripts/demo.sh`, the README's first command, leaves the host alone.

It runs in a private mount namespace where /etc/hosts is a copy and /etc/docker/certs.d an empty
directory: both must come out byte for byte the same, the demo must still show a real update, and
nothing it made (containers, images, registry, temporary directory) may remain.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import docker
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _tree(path: Path) -> list[tuple[str, str]]:
    return sorted((str(p.relative_to(path)), hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "d")
                  for p in path.rglob("*"))  # fmt: skip


def test_demo_changes_nothing_system_wide_and_shows_a_real_update(
    tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root and unshare(1) for a private mount namespace")
    assert "dev-env" not in (ROOT / "scripts" / "demo.sh").read_text()
    hosts = tmp_path / "hosts"
    shutil.copy2("/etc/hosts", hosts)
    hosts_before = hosts.read_bytes()
    certs = tmp_path / "certs.d"
    certs.mkdir()
    real_hosts = Path("/etc/hosts").read_bytes()
    real_certs = Path("/etc/docker/certs.d")
    certs_before = _tree(real_certs) if real_certs.is_dir() else None
    mounts = f"mount --bind {hosts} /etc/hosts"
    if real_certs.is_dir():
        mounts += f" && mount --bind {certs} /etc/docker/certs.d"
    script = f"{mounts} && exec ./scripts/demo.sh"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALIYUN_", "ALIBABA_CLOUD_"))}
    done = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    out = done.stdout + done.stderr
    assert done.returncode == 0, out

    # a real update, shown
    assert "runs v1 on 127.0.0.1:" in out and "'hello from v1'" in out
    assert re.search(r"now answers 'hello from v2'", out), out
    assert re.search(r"pass done: checked=1 updated=1 ", out), out
    assert "would update" in out  # the dry run

    # nothing system-wide changed: inside the namespace, nor outside it
    assert hosts.read_bytes() == hosts_before
    assert list(certs.iterdir()) == []
    assert Path("/etc/hosts").read_bytes() == real_hosts
    assert (_tree(real_certs) if real_certs.is_dir() else None) == certs_before

    # and everything it made is gone
    prefix = re.search(r"(cr-demo-[0-9a-f]{6}-)web", out)
    workdir = re.search(r"work directory (\S+)", out)
    registry = re.search(r"registry on (127\.0\.0\.1:\d+)", out)
    assert prefix and workdir and registry, out
    assert not Path(workdir.group(1)).exists()
    api = docker_client.api
    assert [
        c["Names"] for c in api.containers(all=True) if any(prefix.group(1) in n for n in c["Names"])
    ] == []
    refs = [r for i in api.images(all=True) for r in (i.get("RepoTags") or []) + (i.get("RepoDigests") or [])]
    assert [r for r in refs if prefix.group(1) in r or registry.group(1) in r] == []
    assert "cleaned up" in out
    host, port = registry.group(1).split(":")
    import socket

    with pytest.raises(OSError):
        socket.create_connection((host, int(port)), 1).close()  # the registry process is gone
