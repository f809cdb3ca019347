"""`agent check --online`: what no offline test can confirm, asked of the real account once.

For each ACR watch: where its host resolves, whether the API answers with these credentials,
whether the repository and tag exist, whether the API digest equals the registry's HEAD digest,
whether the registry accepts the pull credentials (GET /v2/, no pull), and whether the container
runs an image of that repository. Exit 0 only when every check passes.
"""

from __future__ import annotations

import base64
import json
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from agent import app
from agent.choices import Source
from agent.config import Config, Watch
from agent.errors import AgentError, RegistryError
from agent.model import digest_for_repo
from agent.registries import is_loopback
from agent.registries.acr import AcrRegistry
from agent.registries.acr_hints import PULL_HINT, hint
from agent.registries.acr_public import NO_CREDENTIALS, NeitherAnswers
from agent.runtimes import Runtime


@dataclass(frozen=True)
class Signatures:
    """What the signature check needs: the entry's trusted key files and a reader of its signatures."""

    keys: tuple[str, ...]
    reader: Callable[[Watch, tuple[str, str] | None], Any]


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def hint_for(err: RegistryError) -> str:
    code = err.code or ""
    advice = hint(code)
    return f"{code or 'error'}: {err}" + (f" — hint: {advice}" if advice and advice not in str(err) else "")


def check_watch(
    acr: AcrRegistry, runtime: Runtime, w: Watch, cafile: str | None, signatures: Signatures | None = None
) -> tuple[dict[str, Any], list[Check]]:
    """`signatures`: with `.keys` (the entry's trusted key files) and `.reader(w, creds)`, or None."""
    checks: list[Check] = []
    repo, tag = w.image.repo, w.image.tag
    try:
        where = acr.describe(w.image.host)
    except (ValueError, AgentError) as e:
        msg = hint_for(e) if isinstance(e, RegistryError) else str(e)
        return {}, [Check("resolve", False, msg)]
    checks.append(Check("resolve", True, "{form} host → {api} at {endpoint}, region {region}".format(**where)
                        + (f", instance {where['instance']}" if where["instance"] else "")))  # fmt: skip
    api_digest, via_registry = None, where["api"].startswith("registry")
    try:  # ask the API even when the registry was chosen for this image: the choice is renewed
        found = acr.latest(repo, [tag], recheck=True)
        source = acr.source_of(repo) or ""
        via_registry = source.startswith("registry")
        api_text = "the API answers with these credentials"
        if via_registry:
            api_text = f"the image is followed through the registry: {source}"
        checks += [Check("api", True, api_text), Check("repository", True, str(repo))]
        digest = found.get(tag)
        api_digest = None if via_registry else digest
        checks.append(Check("tag", digest is not None, f"{tag} → {digest}" if digest else f"no tag {tag!r}"))
    except NeitherAnswers as e:
        keyless = e.code == NO_CREDENTIALS
        checks.append(Check("api", not keyless, "no AccessKey: not asked" if keyless else "the API answered"))
        checks.append(
            Check(
                "repository",
                False,
                f"the API does not know {repo.path}, and the registry cannot serve it either: {e}",
            )
        )
    except RegistryError as e:
        checks.append(Check("api", False, hint_for(e)))
    checks.append(_digest_check(acr, w, api_digest, via_registry))
    login = _login_check(acr, w.image.host, cafile, via_registry)
    checks += [login, _pull_check(acr, w, login.ok)]
    checks.append(_container_check(runtime, w))
    if signatures is not None:
        checks.append(_signature_check(acr, runtime, w, signatures))
    return where, checks


def _signature_check(acr: AcrRegistry, runtime: Runtime, w: Watch, signatures: Signatures) -> Check:
    """Whether the running and the latest digest carry a trusted signature (docs/signatures.md)."""
    from agent.signatures.gate import verify_now  # cryptography: only with [signatures]
    from agent.signatures.keys import KeyProblem, load_keys  # cryptography: only with [signatures]

    try:
        keys = load_keys(signatures.keys)
        info = runtime.inspect(w.container)
        running = digest_for_repo(list(info.repo_digests), w.image.repo) if info else []
        latest = acr.registry_digest(w.image.repo, w.image.tag)
    except (AgentError, KeyProblem) as e:
        return Check("signatures", False, str(e))
    reader = signatures.reader(w, acr.registry_login(w.image.host))
    said, ok = [], True
    for what, digest in (("running", running[0] if running else None), ("latest", latest)):
        if digest is None:
            said.append(f"{what} -")
            continue
        kind, detail, _ = verify_now(keys, reader, w, digest)
        said.append(f"{what} {digest[:19]} {'signed ✔' if kind == 'verified' else detail}")
        ok = ok and (kind == "verified" or what == "running")  # a latest unsigned one will not deploy
    return Check("signatures", ok, "; ".join(said))


def _digest_check(acr: AcrRegistry, w: Watch, api_digest: str | None, via_registry: bool) -> Check:
    try:
        head = acr.registry_digest(w.image.repo, w.image.tag)
    except AgentError as e:
        return Check("digest", False, f"registry HEAD failed: {e}")
    if head is None:
        return Check("digest", False, f"the registry has no tag {w.image.tag!r}")
    if api_digest is None:
        return Check(
            "digest", True, f"registry HEAD {head}" + ("" if via_registry else " (the API listed none)")
        )
    same = head == api_digest
    text = f"API {api_digest} {'=' if same else '≠'} registry HEAD {head}"
    return Check("digest", same, text + ("" if same else "; the agent trusts the registry (docs/acr.md)"))


def _login_check(acr: AcrRegistry, host: str, cafile: str | None, via_registry: bool) -> Check:
    try:
        creds = acr.registry_login(host)
    except AgentError as e:
        return Check("registry login", False, f"no pull credentials: {e}")
    if creds is None and via_registry:
        return Check("registry login", True, "no login: anonymous pulls (a public image)")
    if creds is None:
        return Check("registry login", False, "no pull credentials ([registry_auth], token or docker config)")
    status = _v2_login(host, creds, cafile)
    ok = status == 200
    return Check(
        "registry login",
        ok,
        f"GET /v2/ with the pull credentials: HTTP {status}" + ("" if ok else " (refused)"),
    )


def _pull_check(acr: AcrRegistry, w: Watch, login_ok: bool) -> Check:
    """A HEAD of the watched tag's manifest with the temporary token: may the RAM user pull?"""
    what = f"HEAD of {w.image.tag}'s manifest"
    try:
        label, got = acr.pull_probe(w.image.repo, w.image.tag)
    except RegistryError as e:
        if e.code in ("DENIED", "UNAUTHORIZED") and login_ok and "temporary token" in str(e):
            return Check(
                "pull", False, f"PULL_DENIED: login works, pull refused: {what} {e} — hint: {PULL_HINT}"
            )
        return Check("pull", False, f"{what} {e}")
    except AgentError as e:
        return Check("pull", False, f"no pull credentials: {e}")
    return Check("pull", got is not None, f"{what} with {label}: " + ("HTTP 200" if got else "no such tag"))


def _v2_login(host: str, creds: tuple[str, str], cafile: str | None) -> int:
    """Status of an authenticated GET /v2/ (following a Bearer challenge to its token service)."""
    context = ssl.create_default_context()
    if cafile:
        context.load_verify_locations(cafile)
    handlers: list[Any] = [urllib.request.HTTPSHandler(context=context)]
    if is_loopback(host):
        handlers.append(urllib.request.ProxyHandler({}))
    opener = urllib.request.build_opener(*handlers)
    basic = "Basic " + base64.b64encode(":".join(creds).encode()).decode()
    url = f"{'http' if is_loopback(host) else 'https'}://{host}/v2/"

    def get(target: str) -> tuple[int, str]:
        try:
            with opener.open(
                urllib.request.Request(target, headers={"Authorization": basic}), timeout=10
            ) as r:
                return r.status, ""
        except urllib.error.HTTPError as e:
            return e.code, e.headers.get("WWW-Authenticate", "")
        except OSError as e:
            return 0, str(e)

    status, challenge = get(url)
    if status == 401 and challenge.lower().startswith("bearer"):
        params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        if params.get("realm", "").startswith(("https://", "http://")):
            query = urllib.parse.urlencode({"service": params.get("service", "")})
            status, _ = get(f"{params['realm']}?{query}")
    return status


def _credentials_check(acr: AcrRegistry) -> Check:
    """Where the API credentials come from (the chain's source, temporary or not, until when); never the secret."""
    try:
        return Check("credentials", True, acr.credentials_source())
    except RegistryError as e:
        if e.code != NO_CREDENTIALS:
            return Check("credentials", False, hint_for(e))
        # not a failure in itself: public images need none; each watch's checks say what it lacks
        return Check("credentials", True, f"none: {e}; images on ACR hosts are followed through the registry")


def _container_check(runtime: Runtime, w: Watch) -> Check:
    try:
        info = runtime.inspect(w.container)
    except AgentError as e:
        return Check("container", False, f"docker: {e}")
    if info is None:
        return Check("container", False, f"no container {w.container!r}")
    digests = digest_for_repo(list(info.repo_digests), w.image.repo)
    if not digests:
        return Check("container", False, f"{w.container} runs an image of another repository")
    state = "running" if info.running else "not running"
    return Check("container", info.running, f"{w.container} {state}, image {digests[0]}")


def run_online(cfg: Config, *, as_json: bool) -> int:

    acr = app.REGISTRIES[Source.ALIYUN](cfg, None)
    assert isinstance(acr, AcrRegistry)  # what app builds for ACR watches
    runtime = app.runtime(cfg)
    rows: list[dict[str, Any]] = []
    try:
        creds = _credentials_check(acr)
        for w in cfg.watches:
            if w.source is not Source.ALIYUN:
                continue
            keys = cfg.trusted_keys(w)
            sigs = Signatures(keys, app.signature_reader({"aliyun": acr})) if keys else None
            where, checks = check_watch(acr, runtime, w, acr.cafile, sigs)
            rows.append({"container": w.container, "image": str(w.image), "resolved": where,
                         "ok": all(c.ok for c in checks), "checks": [asdict(c) for c in checks]})  # fmt: skip
    finally:
        acr.close()
    ok = creds.ok and all(r["ok"] for r in rows)
    if as_json:
        print(json.dumps({"ok": ok, "credentials": asdict(creds), "watches": rows}, indent=2))
    else:
        print(f"{'ok  ' if creds.ok else 'FAIL'}  {creds.name:<15} {creds.detail}")
        for r in rows:
            print(f"{r['container']}  ({r['image']})")
            for c in r["checks"]:
                print(f"  {'ok  ' if c['ok'] else 'FAIL'}  {c['name']:<15} {c['detail']}")
        print("all checks passed" if ok else "some checks failed")
    return 0 if ok else 1
