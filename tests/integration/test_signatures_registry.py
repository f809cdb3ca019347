"""Our test signer writes cosign signatures into the real test registry; the agent's reader and verifier
(the same ones a pass uses) accept them, and refuse what they must."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.model import RepoKey
from agent.registries.oci import OciRegistry
from agent.signatures.cosign import verify
from agent.signatures.fetch import read_signatures
from agent.signatures.keys import load_key
from tests.support import env
from tests.support.cosign_signer import Signer
from tests.support.multiarch import V2, put_blob, put_manifest


def tiny_image(repo: str, marker: str) -> str:
    """A manifest (no layers) pushed under `marker` as its tag; returns its digest. No engine needed."""
    raw = json.dumps({"architecture": "amd64", "os": "linux", "marker": marker}).encode()
    config = {
        "mediaType": "application/vnd.docker.container.image.v1+json",
        "size": len(raw),
        "digest": put_blob(repo, raw),
    }
    return put_manifest(
        repo, marker, {"schemaVersion": 2, "mediaType": V2, "layers": [], "config": config}, V2
    )[0]


@pytest.fixture
def repo(prefix: str) -> str:
    return f"{prefix}ns/signed"


def reader() -> OciRegistry:
    return OciRegistry(auth=lambda host: (env.REGISTRY_USER, env.REGISTRY_PASSWORD))


def test_our_signer_writes_what_the_verifier_accepts(repo: str, tmp_path: Path) -> None:
    digest = tiny_image(repo, "v1")
    ours, theirs = Signer(), Signer()
    ours.push(repo, digest)
    key = load_key(ours.write_public(tmp_path / "cosign.pub"))
    other = load_key(theirs.write_public(tmp_path / "other.pub"))
    key_repo = RepoKey(env.REGISTRY, *repo.split("/"))
    found = read_signatures(reader(), key_repo, digest)
    assert found is not None and len(found) == 1
    assert verify(found, [key], digest, repo).ok
    assert not verify(found, [other], digest, repo).ok
    theirs.push(repo, digest)  # a second signature is appended, as cosign does
    found = read_signatures(reader(), key_repo, digest)
    assert found is not None and len(found) == 2
    assert verify(found, [other], digest, repo).ok and verify(found, [key], digest, repo).ok


def test_no_sig_tag_reads_as_unsigned_and_a_replayed_signature_is_refused(repo: str, tmp_path: Path) -> None:
    d1, d2 = tiny_image(repo, "v1"), tiny_image(repo, "v2")
    signer = Signer()
    key = load_key(signer.write_public(tmp_path / "cosign.pub"))
    key_repo = RepoKey(env.REGISTRY, *repo.split("/"))
    assert read_signatures(reader(), key_repo, d2) is None
    assert verify(None, [key], d2, repo).kind == "unsigned"
    signer.push(repo, d2, signed_digest=d1)  # d1's valid signature copied under d2's tag
    v = verify(read_signatures(reader(), key_repo, d2), [key], d2, repo)
    assert not v.ok and "digest mismatch" in v.detail
