"""Trusted cosign public keys (PEM, as `cosign generate-key-pair` writes cosign.pub)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from agent.errors import AgentError

_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)
MIN_RSA_BITS = 2048


class KeyProblem(AgentError):
    """A public key that cannot be used: the message names the file and what is wrong."""


@dataclass(frozen=True)
class TrustedKey:
    name: str  # the file it came from
    fingerprint: str  # sha256 of the DER SubjectPublicKeyInfo, hex
    key: Any  # a cryptography public key of a supported type

    @property
    def kind(self) -> str:
        if isinstance(self.key, ec.EllipticCurvePublicKey):
            return {"secp256r1": "ECDSA P-256", "secp384r1": "ECDSA P-384"}.get(
                self.key.curve.name, "ECDSA P-521"
            )
        if isinstance(self.key, rsa.RSAPublicKey):
            return f"RSA {self.key.key_size}"
        return "Ed25519"


def load_key(path: str | Path) -> TrustedKey:
    """Read one PEM public key; raises KeyProblem naming the file and the problem."""
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise KeyProblem(f"{path}: cannot read the public key: {e.strerror or e}") from None
    if b"PRIVATE KEY" in raw:
        raise KeyProblem(
            f"{path}: this is a private key; give the public key (cosign.pub), and keep the private one "
            "in CI only"
        )
    try:
        key = serialization.load_pem_public_key(raw)
    except (ValueError, TypeError) as e:
        raise KeyProblem(f"{path}: not a PEM public key ({e})") from None
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, _CURVES):
            raise KeyProblem(f"{path}: unsupported key type: ECDSA on curve {key.curve.name}")
    elif isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise KeyProblem(
                f"{path}: unsupported key type: RSA of {key.key_size} bits (at least {MIN_RSA_BITS})"
            )
    elif not isinstance(key, ed25519.Ed25519PublicKey):
        raise KeyProblem(
            f"{path}: unsupported key type {type(key).__name__.lstrip('_')}: "
            "use ECDSA P-256 (cosign generate-key-pair), RSA or Ed25519"
        )
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return TrustedKey(str(path), hashlib.sha256(der).hexdigest(), key)


def load_keys(paths: tuple[str, ...]) -> list[TrustedKey]:
    """Every key of `paths`; raises KeyProblem listing each problem."""
    out, problems = [], []
    for p in paths:
        try:
            out.append(load_key(p))
        except KeyProblem as e:
            problems.append(str(e))
    if problems:
        raise KeyProblem("; ".join(problems))
    return out
