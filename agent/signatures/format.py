"""Cosign's names and one signature as stored: no cryptography here, so a quiet pass never imports it."""

from __future__ import annotations

from dataclasses import dataclass

MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
ANNOTATION = "dev.cosignproject.cosign/signature"
TYPE = "cosign container image signature"


@dataclass(frozen=True)
class Signature:
    payload: bytes  # the exact bytes that were signed
    signature: str  # base64 of the raw signature (DER for ECDSA)
