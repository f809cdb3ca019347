"""Multi-arch images made with the Registry v2 API alone: an index of an amd64 and an arm64 manifest."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import requests

from tests.support import env

V2 = "application/vnd.docker.distribution.manifest.v2+json"
LIST = "application/vnd.docker.distribution.manifest.list.v2+json"


def _session() -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    s.auth = (env.REGISTRY_USER, env.REGISTRY_PASSWORD)
    return s


def _url(path: str) -> str:
    return f"http://{env.REGISTRY}/v2/{path}"


def put_blob(repo: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with _session() as s:
        start = s.post(_url(f"{repo}/blobs/uploads/"), timeout=10)
        start.raise_for_status()
        location = start.headers["Location"]
        sep = "&" if "?" in location else "?"
        done = s.put(f"{location}{sep}digest={digest}", data=data,
                     headers={"Content-Type": "application/octet-stream"}, timeout=30)  # fmt: skip
        done.raise_for_status()
    return digest


def put_manifest(repo: str, reference: str, manifest: dict[str, Any], media_type: str) -> tuple[str, int]:
    raw = json.dumps(manifest).encode()
    with _session() as s:
        resp = s.put(
            _url(f"{repo}/manifests/{reference}"), data=raw, headers={"Content-Type": media_type}, timeout=10
        )
        resp.raise_for_status()
    return "sha256:" + hashlib.sha256(raw).hexdigest(), len(raw)


def get_manifest(repo: str, reference: str) -> dict[str, Any]:
    with _session() as s:
        resp = s.get(_url(f"{repo}/manifests/{reference}"), headers={"Accept": V2}, timeout=10)
        resp.raise_for_status()
        return dict(resp.json())


def variant(repo: str, manifest: dict[str, Any], architecture: str) -> tuple[str, int]:
    """The same layers under a config that names another architecture; returns (digest, size)."""
    with _session() as s:
        resp = s.get(_url(f"{repo}/blobs/{manifest['config']['digest']}"), timeout=10)
        resp.raise_for_status()
        config = resp.json()
    config["architecture"] = architecture
    raw = json.dumps(config).encode()
    other = dict(manifest, config={**manifest["config"], "digest": put_blob(repo, raw), "size": len(raw)})
    return put_manifest(repo, "sha256:" + hashlib.sha256(json.dumps(other).encode()).hexdigest(), other, V2)


def push_index(repo: str, tag: str, source_ref: str, host_arch: str = "amd64") -> dict[str, str]:
    """Tag `repo:tag` as an index of `source_ref`'s manifest (host arch) and an arm64 twin.

    Returns {"index": digest, host_arch: digest, "arm64": digest}.
    """
    base = get_manifest(repo, source_ref)
    raw = json.dumps(base).encode()
    native = put_manifest(repo, "sha256:" + hashlib.sha256(raw).hexdigest(), base, V2)
    other_arch = "arm64" if host_arch != "arm64" else "amd64"
    other = variant(repo, base, other_arch)
    index = {
        "schemaVersion": 2,
        "mediaType": LIST,
        "manifests": [
            {"mediaType": V2, "digest": d, "size": n, "platform": {"architecture": a, "os": "linux"}}
            for (d, n), a in ((native, host_arch), (other, other_arch))
        ],
    }
    digest, _ = put_manifest(repo, tag, index, LIST)
    return {"index": digest, host_arch: native[0], other_arch: other[0]}


def push_foreign(repo: str, tag: str, source_ref: str, architecture: str = "arm64") -> str:
    """Tag `repo:tag` as a single-platform manifest for another architecture; returns its digest."""
    digest, _ = variant(repo, get_manifest(repo, source_ref), architecture)
    manifest = get_manifest(repo, digest)
    return put_manifest(repo, tag, manifest, V2)[0]
