"""The cosign verifier against a signature made by real cosign (tests/fixtures/cosign, from containers/image)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from agent.model import repository_path
from agent.signatures.cosign import from_storage, verify
from agent.signatures.format import Signature
from agent.signatures.keys import KeyProblem, load_key

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "cosign"
DIGEST = "sha256:" + hashlib.sha256((FIXTURE / "manifest.json").read_bytes()).hexdigest()
REPO = "cosign-signed-single-sample"


def real() -> Signature:
    return from_storage((FIXTURE / "signature-1").read_bytes())


def test_the_fixture_digest_is_the_manifest_sha256() -> None:
    assert DIGEST == "sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00"


def test_real_cosign_signature_verifies_with_its_key_for_its_digest() -> None:
    v = verify([real()], [load_key(FIXTURE / "cosign.pub")], DIGEST, REPO)
    assert v.ok and v.kind == "verified" and v.key == load_key(FIXTURE / "cosign.pub").fingerprint


def test_real_cosign_signature_is_refused_with_another_key() -> None:
    v = verify([real()], [load_key(FIXTURE / "cosign2.pub")], DIGEST, REPO)
    assert not v.ok and v.kind == "untrusted" and "1 signature, none by a trusted key" in v.detail


def test_real_cosign_signature_is_refused_for_any_other_digest() -> None:
    other = "sha256:" + "0" * 64
    v = verify([real()], [load_key(FIXTURE / "cosign.pub")], other, REPO)
    assert not v.ok and v.kind == "untrusted" and "digest mismatch" in v.detail


def test_identity_ignores_the_registry_host_but_not_the_repository() -> None:
    key = [load_key(FIXTURE / "cosign.pub")]
    assert verify([real()], key, DIGEST, "cosign-signed-single-sample").ok  # signed on 192.168.64.2:5000
    v = verify([real()], key, DIGEST, "ns/other")
    assert not v.ok and "not 'ns/other'" in v.detail
    assert verify([real()], key, DIGEST, None).ok  # signature_identity = "any"


@pytest.mark.parametrize(
    ("reference", "path"),
    [
        ("registry.cn-hangzhou.aliyuncs.com/ns/app", "ns/app"),
        ("registry-vpc.cn-hangzhou.aliyuncs.com/ns/app:v1", "ns/app"),
        ("127.0.0.1:5000/ns/app@sha256:" + "a" * 64, "ns/app"),
        ("localhost/app", "app"),
        ("ns/app", "ns/app"),
    ],
)
def test_repository_path_drops_host_tag_and_digest(reference: str, path: str) -> None:
    assert repository_path(reference) == path


def test_a_tampered_payload_is_refused() -> None:
    sig = real()
    forged = Signature(sig.payload.replace(b"634a8f35", b"634a8f36"), sig.signature)
    v = verify([forged], [load_key(FIXTURE / "cosign.pub")], DIGEST.replace("634a8f35", "634a8f36"), REPO)
    assert not v.ok and "none by a trusted key" in v.detail


def test_no_sig_tag_and_an_empty_manifest_are_unsigned() -> None:
    key = [load_key(FIXTURE / "cosign.pub")]
    assert verify(None, key, DIGEST, REPO).kind == "unsigned"
    assert "no sha256-634a8f35" in verify(None, key, DIGEST, REPO).detail
    assert verify([], key, DIGEST, REPO).kind == "unsigned"


def test_key_loading_refuses_bad_files(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, x25519

    with pytest.raises(KeyProblem, match="cannot read"):
        load_key(tmp_path / "missing.pub")
    private = tmp_path / "cosign.key"
    private.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    with pytest.raises(KeyProblem, match="private key"):
        load_key(private)
    cosign_private = tmp_path / "cosign-enc.key"
    cosign_private.write_text(
        "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nabc\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n"
    )
    with pytest.raises(KeyProblem, match="private key"):
        load_key(cosign_private)
    for name, key in (
        ("x25519.pub", x25519.X25519PrivateKey.generate().public_key()),
        ("k1.pub", ec.generate_private_key(ec.SECP256K1()).public_key()),
    ):
        (tmp_path / name).write_bytes(
            key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
        with pytest.raises(KeyProblem, match="unsupported key type"):
            load_key(tmp_path / name)
    garbage = tmp_path / "garbage.pub"
    garbage.write_text("hello")
    with pytest.raises(KeyProblem, match="not a PEM public key"):
        load_key(garbage)
