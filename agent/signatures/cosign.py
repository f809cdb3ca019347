"""Cosign's simple-signing format, verified with `cryptography`. Pure: bytes in, a verdict out.

A signature is a payload (JSON naming the signed digest) and a base64 signature over the payload bytes
(cosign's SIGNATURE_SPEC). Valid means: a trusted key verifies it, its `docker-manifest-digest` is exactly
the digest about to be deployed, its `type` is cosign's, and (unless relaxed) its `docker-reference`
names the watched repository on any registry host.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from agent.model import repository_path
from agent.signatures.format import ANNOTATION, MEDIA_TYPE, TYPE, Signature
from agent.signatures.keys import TrustedKey

STORAGE_PREFIX = b"\x00sigstore-json"  # containers/image's on-disk form of one signature


@dataclass(frozen=True)
class Verdict:
    ok: bool
    kind: str  # "verified", "unsigned" (nothing signed it), "untrusted" (signatures, none valid)
    detail: str  # for people: what was found
    key: str | None = None  # the fingerprint of the key that verified it


def from_storage(raw: bytes) -> Signature:
    """One signature in containers/image's storage form (`\\x00sigstore-json` + JSON)."""
    if not raw.startswith(STORAGE_PREFIX):
        raise ValueError("not a sigstore-json signature")
    doc = json.loads(raw[len(STORAGE_PREFIX) :])
    if doc.get("mimeType") != MEDIA_TYPE:
        raise ValueError(f"unexpected media type {doc.get('mimeType')!r}")
    return Signature(
        base64.b64decode(doc["payload"]), str((doc.get("annotations") or {}).get(ANNOTATION, ""))
    )


def _payload_problem(sig: Signature, digest: str, repo_path: str | None) -> str | None:
    """Why a verified payload still does not allow `digest`, or None."""
    try:
        doc = json.loads(sig.payload)
        critical = doc["critical"]
        signed = critical["image"]["docker-manifest-digest"]
        kind = critical["type"]
        reference = critical["identity"]["docker-reference"]
    except (ValueError, TypeError, KeyError):
        return "a payload that is not cosign's simple-signing JSON"
    if kind != TYPE:
        return f"a signature of type {str(kind)[:60]!r}, not {TYPE!r}"
    if signed != digest:
        return f"a signature for {str(signed)[:80]}, not for {digest} (digest mismatch)"
    if repo_path is not None and repository_path(str(reference)) != repo_path.lower():
        return f"a signature for repository {str(reference)[:120]!r}, not {repo_path!r}"
    return None


def _verifies(key: TrustedKey, sig: Signature) -> bool:
    try:
        raw = base64.b64decode(sig.signature, validate=True)
    except (binascii.Error, ValueError):
        return False
    pub = key.key
    try:
        if isinstance(pub, ec.EllipticCurvePublicKey):
            # cosign signs with SHA-256; keys on larger curves imported elsewhere may use their own size
            for h in (hashes.SHA256(), hashes.SHA384(), hashes.SHA512()):
                try:
                    pub.verify(raw, sig.payload, ec.ECDSA(h))
                    return True
                except InvalidSignature:
                    continue
            return False
        if isinstance(pub, rsa.RSAPublicKey):  # sigstore verifies RSA keys as PKCS#1 v1.5
            pub.verify(raw, sig.payload, padding.PKCS1v15(), hashes.SHA256())
            return True
        if isinstance(pub, ed25519.Ed25519PublicKey):
            pub.verify(raw, sig.payload)
            return True
    except (InvalidSignature, ValueError):
        return False
    return False


def verify(
    signatures: Sequence[Signature] | None,
    keys: Sequence[TrustedKey],
    digest: str,
    repo_path: str | None,
) -> Verdict:
    """Whether one of `signatures` allows deploying `digest` (`repo_path` None: any repository).

    `signatures` None means the registry has no `.sig` tag for the digest.
    """
    if signatures is None:
        return Verdict(False, "unsigned", f"no signature: no sha256-{digest.removeprefix('sha256:')}.sig tag")
    if not signatures:
        return Verdict(False, "unsigned", "no signature: the .sig manifest has no signature layers")
    problems: list[str] = []
    for sig in signatures:
        key = next((k for k in keys if _verifies(k, sig)), None)
        if key is None:
            continue
        problem = _payload_problem(sig, digest, repo_path)
        if problem is None:
            return Verdict(True, "verified", f"signed by {key.name}", key.fingerprint)
        problems.append(problem)
    n = len(signatures)
    found = f"{n} signature{'s' if n != 1 else ''}"
    if problems:
        return Verdict(False, "untrusted", f"{found}, by a trusted key but {problems[0]}")
    return Verdict(False, "untrusted", f"{found}, none by a trusted key")
