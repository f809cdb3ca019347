"""A cosign signer of our own, for tests: keys from `cryptography`, signatures written into the test
registry as cosign writes them (an OCI manifest tagged `sha256-<hex>.sig`, one simple-signing layer per
signature, the base64 DER ECDSA signature in the layer's annotation). The verifier accepting the real
cosign fixture (tests/fixtures/cosign) is what keeps this signer honest."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from agent.signatures.format import ANNOTATION, MEDIA_TYPE, TYPE
from tests.support import env
from tests.support.multiarch import _session, _url, put_blob, put_manifest

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"


class Signer:
    def __init__(self) -> None:
        self.private = ec.generate_private_key(ec.SECP256R1())  # what `cosign generate-key-pair` makes

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def write_public(self, path: Path) -> Path:
        path.write_bytes(self.public_pem())
        return path

    def write_private(self, path: Path) -> Path:
        """The private key as PEM: only to prove the agent refuses one given by mistake."""
        path.write_bytes(
            self.private.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        return path

    @staticmethod
    def payload(reference: str, digest: str) -> bytes:
        """cosign's simple-signing payload for `digest` of the repository `reference` (no tag)."""
        doc = {
            "critical": {
                "identity": {"docker-reference": reference},
                "image": {"docker-manifest-digest": digest},
                "type": TYPE,
            },
            "optional": None,
        }
        return json.dumps(doc, separators=(",", ":")).encode()

    def sign(self, payload: bytes) -> str:
        return base64.b64encode(self.private.sign(payload, ec.ECDSA(hashes.SHA256()))).decode()

    def push(
        self, repo: str, digest: str, *, signed_digest: str | None = None, reference: str | None = None
    ) -> str:
        """Add a signature of `signed_digest` (default `digest`) under `digest`'s `.sig` tag in `repo` of
        the test registry, keeping the signatures already there, as `cosign sign` does. Returns the tag."""
        payload = self.payload(reference or f"{env.REGISTRY}/{repo}", signed_digest or digest)
        return push_signature(repo, digest, payload, self.sign(payload))


def sig_tag(digest: str) -> str:
    return digest.replace(":", "-", 1) + ".sig"


def _existing_layers(repo: str, tag: str) -> list[dict[str, Any]]:
    with _session() as s:
        resp = s.get(_url(f"{repo}/manifests/{tag}"), headers={"Accept": OCI_MANIFEST}, timeout=10)
    if resp.status_code == 404:
        return []
    resp.raise_for_status()
    return list(resp.json().get("layers") or [])


def push_signature(repo: str, digest: str, payload: bytes, signature: str) -> str:
    tag = sig_tag(digest)
    layers = _existing_layers(repo, tag)
    layers.append({
        "mediaType": MEDIA_TYPE, "size": len(payload), "digest": put_blob(repo, payload),
        "annotations": {ANNOTATION: signature},
    })  # fmt: skip
    config = json.dumps({
        "architecture": "", "created": "0001-01-01T00:00:00Z", "os": "", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [x["digest"] for x in layers]},
    }).encode()  # fmt: skip
    manifest = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "size": len(config), "digest": put_blob(repo, config)},
        "layers": layers,
    }  # fmt: skip
    put_manifest(repo, tag, manifest, OCI_MANIFEST)
    return tag


def blob_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class MemoryStore:
    """Signatures kept in memory and read like a registry (the `Reader` port), counting each fetch."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}  # "repo/manifests/tag" or "repo/blobs/digest" -> bytes
        self.fetches: list[str] = []

    def add(
        self,
        signer: Signer,
        repo: str,
        digest: str,
        *,
        signed_digest: str | None = None,
        host: str = env.REGISTRY,
    ) -> None:
        payload = signer.payload(f"{host}/{repo}", signed_digest or digest)
        tag = sig_tag(digest)
        old = self.objects.get(f"{repo}/manifests/{tag}")
        layers = list(json.loads(old)["layers"]) if old else []
        self.objects[f"{repo}/blobs/{blob_digest(payload)}"] = payload
        layers.append({"mediaType": MEDIA_TYPE, "size": len(payload), "digest": blob_digest(payload),
                       "annotations": {ANNOTATION: signer.sign(payload)}})  # fmt: skip
        self.objects[f"{repo}/manifests/{tag}"] = json.dumps({"schemaVersion": 2, "layers": layers}).encode()

    def fetch(self, repo: Any, path: str, accept: str, what: str, limit: int = 1 << 20) -> bytes | None:
        key = f"{repo.path}/{path}"
        self.fetches.append(key)
        return self.objects.get(key)
