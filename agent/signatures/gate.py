"""Before a digest is deployed: does a trusted key sign it? Per watch entry, with verified digests
remembered in state so a retry does not fetch again. Every deploy path asks here (every pass, whatever
triggered it; Swarm services; `rollback --to`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from loguru import logger

from agent.config import Config, Watch
from agent.errors import AgentError
from agent.model import Result, Status
from agent.state import State

if TYPE_CHECKING:
    from agent.signatures.fetch import Reader

UNSIGNED, UNTRUSTED = "unsigned", "signature not trusted"
ReaderFor = Callable[[Watch, "tuple[str, str] | None"], "Reader"]


def check(
    config: Config,
    state: State,
    reader_for: ReaderFor | None,
    w: Watch,
    digest: str,
    auth: tuple[str, str] | None,
) -> tuple[str, str] | None:
    """None when `digest` may be deployed for `w` (no keys configured, or a trusted signature);
    else (signature, why): "unsigned" / "untrusted" / "unchecked" and a reason naming what was found."""
    paths = config.trusted_keys(w)
    if not paths:
        return None
    from agent.signatures.keys import KeyProblem, load_keys  # cryptography: only with [signatures]

    try:
        keys = load_keys(paths)
    except KeyProblem as e:
        return "untrusted", f"{UNTRUSTED}: no usable key ({e})"
    repo, identity = str(w.image.repo), w.signature_identity
    if state.signature_verified(repo, digest, {k.fingerprint for k in keys}, identity):
        return None
    if reader_for is None:
        return "unchecked", "signature not checked: no registry reader"
    kind, detail, key = verify_now(keys, reader_for(w, auth), w, digest)
    if key is not None:
        state.remember_signature(repo, digest, key, identity)
        logger.info("{}: {} {}", w.container, digest, detail)
        return None
    return kind, detail


def verify_now(keys: list[Any], reader: Reader, w: Watch, digest: str) -> tuple[str, str, str | None]:
    """(kind, reason, fingerprint of the verifying key or None), asking the registry now."""
    from agent.signatures.cosign import verify  # cryptography: only with [signatures]
    from agent.signatures.fetch import read_signatures  # only when a signature is read

    try:
        found = read_signatures(reader, w.image.repo, digest)
    except AgentError as e:
        return "unchecked", f"signature not checked: {e}", None
    verdict = verify(found, keys, digest, None if w.signature_identity == "any" else w.image.repo.path)
    if verdict.ok:
        return "verified", verdict.detail, verdict.key
    return verdict.kind, f"{UNSIGNED if verdict.kind == 'unsigned' else UNTRUSTED}: {verdict.detail}", None


def signature_status(config: Config, state: State, w: Watch, running: str | None) -> dict[str, Any] | None:
    """`agent status`: whether the running and the latest digest carry a verified trusted signature."""
    if not config.trusted_keys(w):
        return None
    latest = (state.last_check(w.container) or {}).get("latest_digest")
    return {
        "running": known_signed(config, state, w, running),
        "latest": known_signed(config, state, w, latest),
    }


def known_signed(config: Config, state: State, w: Watch, digest: str | None) -> str | None:
    """For `agent status`, from state alone: "signed" when a trusted key's signature of `digest` was
    verified, else "unsigned"; None when the entry needs no signature."""
    paths = config.trusted_keys(w)
    if not paths or digest is None:
        return None
    from agent.signatures.keys import KeyProblem, load_keys  # cryptography: only with [signatures]

    try:
        prints = {k.fingerprint for k in load_keys(paths)}
    except KeyProblem:
        return "unsigned"
    found = state.signature_verified(str(w.image.repo), digest, prints, w.signature_identity)
    return "signed" if found else "unsigned"


def refused(w: Watch, current: str | None, digest: str, why: tuple[str, str]) -> Result:
    """The result of an entry whose new digest is not deployed: skipped (not quarantined; the next pass
    looks again), or failed when the signature could not be read at all."""
    kind, reason = why
    status = Status.FAILED if kind == "unchecked" else Status.SKIPPED
    return Result(w.container, str(w.image), status, current, digest, reason, signature=kind)


def signed(r: Result) -> Result:
    return replace(r, signature="verified")


class SignatureRefused(AgentError):
    """A digest asked for by name (`rollback --to`) that no trusted key signed."""


def require(
    config: Config,
    state: State,
    reader_for: ReaderFor | None,
    w: Watch,
    digest: str,
    auth: Callable[[], tuple[str, str] | None],
    force_flag: str,
) -> None:
    """Raise SignatureRefused unless `digest` may be deployed for `w` (`auth`: the pull's credentials,
    asked only when the entry needs a signature)."""
    if not config.trusted_keys(w):
        return
    why = check(config, state, reader_for, w, digest, auth())
    if why is not None:
        raise SignatureRefused(
            f"{w.container}: {digest} is not deployed: {why[1]} (give {force_flag} to deploy it anyway)"
        )
