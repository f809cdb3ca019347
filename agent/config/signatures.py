"""[signatures] and the per-entry `signatures`, `public_keys`, `signature_identity`: every key file is
loaded here, so `agent check` (and every command) refuses an unreadable file, a private key or an
unsupported key type before a pass starts."""

from __future__ import annotations

from typing import Any

from agent.config.fields import Problems, table_of, typed, unknown
from agent.config.schema import Config, SignatureSettings, Watch

IDENTITIES = ("repository", "any")


def _key_list(p: Problems, path: str, t: dict[str, Any]) -> tuple[str, ...] | None:
    if "public_keys" not in t:
        return None
    value = t["public_keys"]  # never from a label: the keys a box trusts are the config's alone
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        p.add(f"{path}.public_keys", 'must be a list of paths, e.g. ["/etc/cr-agent/cosign.pub"]')
        return None
    from agent.signatures.keys import KeyProblem, load_key  # cryptography: only with [signatures]

    for i, key in enumerate(value):
        try:
            load_key(key)
        except KeyProblem as e:
            p.add(f"{path}.public_keys[{i}]", str(e))
    return tuple(value)


def signatures_section(p: Problems, value: Any) -> SignatureSettings:
    if value is None:
        return SignatureSettings()
    t = table_of(p, "signatures", value)
    unknown(p, "signatures", t, {"public_keys"})
    keys = _key_list(p, "signatures", t)
    if keys == ():
        p.add("signatures.public_keys", "empty: list at least one public key, or remove [signatures]")
    return SignatureSettings(keys or ())


def signature_keys(p: Problems, path: str, t: dict[str, Any]) -> tuple[bool, tuple[str, ...] | None, str]:
    """An entry's (signatures, public_keys, signature_identity)."""
    signed = t.get("signatures", Watch.signatures)
    if isinstance(signed, str) and signed.strip().lower() in ("true", "false"):  # from a label
        signed = signed.strip().lower() == "true"
    if not isinstance(signed, bool):
        p.add(f"{path}.signatures", f"expected true or false, got {signed!r}")
        signed = True
    keys = _key_list(p, path, t)
    identity = typed(p, path, t, "signature_identity", str, Watch.signature_identity)
    if identity not in IDENTITIES:
        p.add(f"{path}.signature_identity", f"must be 'repository' or 'any', got {identity!r}")
        identity = Watch.signature_identity
    if keys is not None and not signed:
        p.add(f"{path}.public_keys", "given with signatures = false: remove one of them")
    return signed, keys, identity


def describe(cfg: Config) -> list[str]:
    """`agent check`: the keys each loaded, and which entries deploy without a signature."""
    paths = sorted({k for w in cfg.watches for k in cfg.trusted_keys(w)} | set(cfg.signatures.public_keys))
    if not paths:
        return []
    from agent.signatures.keys import load_key  # cryptography: only with [signatures]

    out = [
        f"  signature key {p}: {k.kind} sha256:{k.fingerprint[:16]}"
        for p, k in ((p, load_key(p)) for p in paths)
    ]
    unsigned = [w.container for w in cfg.watches if not cfg.trusted_keys(w)]
    out.append(
        "  signatures: a new digest is deployed only when one of these keys signed it (docs/signatures.md)"
        + (f"; without a signature: {', '.join(unsigned)}" if unsigned else "")
    )
    return out
