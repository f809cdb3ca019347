"""Read the cosign signatures of one digest from its own repository: the `sha256-<hex>.sig` manifest,
then each signature layer's blob (the payload) with the signature from the layer's annotation."""

from __future__ import annotations

import hashlib
import json
from typing import Protocol

from agent.errors import RegistryError
from agent.model import RepoKey
from agent.signatures.format import ANNOTATION, MEDIA_TYPE, Signature

MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"
)
MAX_LAYERS = 32  # signatures read per digest; more is not a signature manifest anyone made
MAX_PAYLOAD = 64 * 1024


class Reader(Protocol):
    def fetch(self, repo: RepoKey, path: str, accept: str, what: str, limit: int = ...) -> bytes | None: ...


def sig_tag(digest: str) -> str:
    """`sha256:<hex>` → `sha256-<hex>.sig`, cosign's tag for the signatures of that digest."""
    return digest.replace(":", "-", 1) + ".sig"


def read_signatures(reader: Reader, repo: RepoKey, digest: str) -> list[Signature] | None:
    """The signatures stored for `digest`, or None when there is no `.sig` tag. Raises RegistryError."""
    tag = sig_tag(digest)
    raw = reader.fetch(repo, f"manifests/{tag}", MANIFEST_TYPES, f"{repo}:{tag}")
    if raw is None:
        return None
    try:
        layers = json.loads(raw).get("layers") or []
    except (ValueError, AttributeError):
        raise RegistryError(f"{repo}:{tag} is not a JSON image manifest") from None
    out = []
    for layer in layers[:MAX_LAYERS] if isinstance(layers, list) else []:
        if not isinstance(layer, dict) or layer.get("mediaType") != MEDIA_TYPE:
            continue
        blob_digest = layer.get("digest")
        signature = (layer.get("annotations") or {}).get(ANNOTATION)
        if not isinstance(blob_digest, str) or not isinstance(signature, str):
            continue
        what = f"{repo}@{blob_digest} (a signature of {digest})"
        blob = reader.fetch(repo, f"blobs/{blob_digest}", "*/*", what, MAX_PAYLOAD)
        if blob is None or "sha256:" + hashlib.sha256(blob).hexdigest() != blob_digest:
            continue  # missing or not what the manifest names: not a signature
        out.append(Signature(blob, signature))
    return out
