"""Cosign signatures (key-based, no transparency log): a digest is deployed only when a trusted key signed it.

cosign.py verifies (pure), keys.py loads public keys, fetch.py reads `sha256-<hex>.sig` from the registry,
gate.py decides per watch entry and remembers verified digests in state.
"""
