"""Registry v2 fallback: a tag's digest from `HEAD /v2/<ns>/<repo>/manifests/<tag>`.

`Docker-Content-Digest` is exactly what `docker pull` records, for single- and multi-arch tags.
Basic auth and the Bearer token flow; stdlib urllib only.
"""

from __future__ import annotations

import base64
import json
import re
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Collection
from email.message import Message
from typing import Any

from agent.errors import RegistryError, TagDigestError
from agent.model import RepoKey, normalize_digest
from agent.registries import is_loopback

MANIFEST_ACCEPT = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


def default_scheme(host: str) -> str:
    return "http" if is_loopback(host) else "https"


_NEXT_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


def login_hint(host: str) -> str:
    """What to do when a registry refuses us: said in the error itself."""
    return (
        f"; the registry wants credentials: run `docker login {host}` where the agent runs, "
        f'or add [registry_auth."{host}"] with username and password_env to the config'
    )


class _SameHostAuth(urllib.request.HTTPRedirectHandler):
    """Follow redirects, but never carry credentials to another host."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if (
            new is not None
            and urllib.parse.urlsplit(newurl).netloc != urllib.parse.urlsplit(req.full_url).netloc
        ):
            new.remove_header("Authorization")
        return new


class OciRegistry:
    """Registry port for any Registry v2 (Docker Distribution, ACR's registry hosts, Harbor...)."""

    def __init__(
        self,
        auth: Callable[[str], tuple[str, str] | None] = lambda host: None,
        scheme_for: Callable[[str], str] | None = None,
        timeout: float = 10,
        cafile: str | None = None,
    ) -> None:
        """`cafile`: a private CA trusted in addition to the system's (e.g. [aliyun] ca_file)."""
        self._auth = auth
        self._scheme_for = scheme_for or default_scheme
        self._timeout = timeout
        self._lock = threading.Lock()
        self._bearer: dict[tuple[str, str], tuple[str, float]] = {}  # (host, scope) -> token, expiry
        self._basic_hosts: set[str] = set()
        self._local = urllib.request.build_opener(urllib.request.ProxyHandler({}), _SameHostAuth())
        context = ssl.create_default_context()
        if cafile:
            context.load_verify_locations(cafile)
        # env proxies and no_proxy apply
        self._remote = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=context), _SameHostAuth()
        )

    tag_page = 1000  # tags per page of a tag list

    def credentials(self, host: str) -> tuple[str, str] | None:
        return self._auth(host)

    def latest(self, repo: RepoKey, tags: Collection[str]) -> dict[str, str]:
        found, bad = {}, {}
        for tag in sorted(set(tags)):
            value = self._head(repo, tag)
            if value is None:
                continue
            try:
                found[tag] = normalize_digest(value)
            except ValueError:
                bad[tag] = value[:80]
        if bad:
            listed = ", ".join(f"{repo}:{t} ({v!r})" for t, v in sorted(bad.items()))
            raise TagDigestError(
                f"registry sent an invalid Docker-Content-Digest for {listed}", found=found, bad=bad
            )
        return found

    def tags(self, repo: RepoKey) -> list[tuple[str, float | None]]:
        """`GET /v2/<name>/tags/list`, following `Link: <…>; rel="next"`; Registry v2 gives no times."""
        host, scope, what = repo.host, f"repository:{repo.path}:pull", f"{repo} tag list"
        url: str | None = f"{self._scheme_for(host)}://{host}/v2/{repo.path}/tags/list?n={self.tag_page}"
        out: list[tuple[str, float | None]] = []
        for _ in range(100):
            if url is None:
                return out
            status, headers, raw = self._get(url, self._known_auth(host, scope), what)
            if status == 401:
                authorization = self._answer(host, scope, headers.get("WWW-Authenticate", ""), what)
                if authorization:
                    status, headers, raw = self._get(url, authorization, what)
            if status != 200:
                code = "NOT_FOUND" if status == 404 else f"HTTP{status}"
                fix = login_hint(host) if status in (401, 403) else ""
                raise RegistryError(
                    f"registry refused {what}: HTTP {status}{fix}", code=code, temporary=status >= 500
                )
            try:
                listed = json.loads(raw).get("tags") or []
            except (ValueError, AttributeError):
                raise RegistryError(f"registry sent no JSON tag list for {what}") from None
            out += [(t, None) for t in listed if isinstance(t, str)]
            nxt = _NEXT_LINK.search(headers.get("Link", ""))
            url = urllib.parse.urljoin(url, nxt.group(1)) if nxt else None
        raise RegistryError(f"{what}: gave up after 100 pages")

    def fetch(self, repo: RepoKey, path: str, accept: str, what: str, limit: int = 1 << 20) -> bytes | None:
        """`GET /v2/<name>/<path>` (a manifest or a blob), authorised like every request; None on 404."""
        host, scope = repo.host, f"repository:{repo.path}:pull"
        url = f"{self._scheme_for(host)}://{host}/v2/{repo.path}/{path}"
        status, headers, raw = self._get(url, self._known_auth(host, scope), what, accept)
        if status == 401:
            authorization = self._answer(host, scope, headers.get("WWW-Authenticate", ""), what)
            if authorization:
                status, headers, raw = self._get(url, authorization, what, accept)
        if status == 404:
            return None
        if status != 200:
            code = {401: "UNAUTHORIZED", 403: "DENIED", 429: "TOOMANYREQUESTS"}.get(status, f"HTTP{status}")
            temporary = status == 429 or status >= 500
            raise RegistryError(f"registry refused {what}: HTTP {status}", code=code, temporary=temporary)
        if len(raw) > limit:
            raise RegistryError(f"registry sent {len(raw)} bytes for {what}, more than {limit}")
        return raw

    def _get(
        self, url: str, authorization: str | None, what: str, accept: str = "application/json"
    ) -> tuple[int, Message, bytes]:
        req = urllib.request.Request(url, headers={"Accept": accept})
        if authorization:
            req.add_header("Authorization", authorization)
        return self._open(req, what)

    # -- one tag ----------------------------------------------------------------------------
    def _head(self, repo: RepoKey, tag: str) -> str | None:
        status, headers, _ = self._manifest("HEAD", repo, tag)
        if status == 200:
            digest = headers.get("Docker-Content-Digest")
            if not digest:
                raise RegistryError(f"registry answered HEAD {repo}:{tag} without Docker-Content-Digest")
            return str(digest)
        return None

    def index_children(self, repo: RepoKey, digest: str) -> set[str]:
        """The manifest digests an index (manifest list) lists; empty for a single manifest."""
        status, _, raw = self._manifest("GET", repo, digest)
        try:
            listed = json.loads(raw).get("manifests") if status == 200 else None
        except (ValueError, AttributeError):
            listed = None
        return {m["digest"] for m in listed or [] if isinstance(m, dict) and isinstance(m.get("digest"), str)}

    def _manifest(self, method: str, repo: RepoKey, ref: str) -> tuple[int, Message, bytes]:
        """One manifest request with the auth dance; 200 or 404, else RegistryError."""
        host, scope = repo.host, f"repository:{repo.path}:pull"
        url = f"{self._scheme_for(host)}://{host}/v2/{repo.path}/manifests/{urllib.parse.quote(ref)}"
        what = f"{repo}:{ref}"
        status, headers, raw = self._send(method, url, self._known_auth(host, scope), what)
        if status == 401:
            authorization = self._answer(host, scope, headers.get("WWW-Authenticate", ""), what)
            if authorization:
                status, headers, raw = self._send(method, url, authorization, what)
        if status in (200, 404):
            return status, headers, raw
        code = {401: "UNAUTHORIZED", 403: "DENIED", 429: "TOOMANYREQUESTS"}.get(status, f"HTTP{status}")
        temporary = status == 429 or status >= 500
        fix = login_hint(host) if status in (401, 403) else ""
        raise RegistryError(
            f"registry refused {method} {what}: HTTP {status}{fix}", code=code, temporary=temporary
        )

    def _known_auth(self, host: str, scope: str) -> str | None:
        with self._lock:
            token = self._bearer.get((host, scope))
            if token and token[1] > time.monotonic():
                return "Bearer " + token[0]
            basic = host in self._basic_hosts
        creds = self._auth(host) if basic else None
        return _basic(creds) if creds else None

    def _answer(self, host: str, scope: str, challenge: str, what: str) -> str | None:
        """The Authorization header that answers a 401 challenge, or None if we have nothing to offer."""
        kind = challenge.split(" ", 1)[0].lower()
        creds = self._auth(host)
        if kind == "basic":
            with self._lock:
                self._basic_hosts.add(host)
            return _basic(creds) if creds else None
        if kind != "bearer":
            return None
        params = dict(_CHALLENGE_PARAM.findall(challenge))
        realm = params.get("realm")
        if not realm or urllib.parse.urlsplit(realm).scheme not in ("http", "https"):
            raise RegistryError(f"registry {host} sent an unusable Bearer challenge for {what}")
        query = {"service": params.get("service", ""), "scope": params.get("scope", scope)}
        url = (
            realm
            + ("&" if "?" in realm else "?")
            + urllib.parse.urlencode({k: v for k, v in query.items() if v})
        )
        status, body = self._token(url, _basic(creds) if creds else None, what)
        token = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
        if status != 200 or not isinstance(token, str):
            code = "UNAUTHORIZED" if status in (401, 403) else f"HTTP{status}"
            raise RegistryError(
                f"token service for {host} refused {what}: HTTP {status}"
                + (login_hint(host) if status in (401, 403) else ""),
                code=code,
                temporary=status >= 500,
            )
        ttl = body.get("expires_in") if isinstance(body.get("expires_in"), int) else 60
        with self._lock:
            self._bearer[(host, scope)] = (token, time.monotonic() + max(ttl - 10, 5))
        return "Bearer " + token

    # -- HTTP -------------------------------------------------------------------------------
    def _open(self, req: urllib.request.Request, what: str) -> tuple[int, Message, bytes]:
        opener = self._local if is_loopback(urllib.parse.urlsplit(req.full_url).netloc) else self._remote
        try:
            with opener.open(req, timeout=self._timeout) as resp:
                return resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as e:
            with e:
                return e.code, e.headers, e.read()
        except (OSError, ValueError) as e:  # URLError, timeouts, refused connections, bad URLs
            reason = getattr(e, "reason", e)
            raise RegistryError(
                f"registry unreachable for {what}: {reason}", code="NETWORK", temporary=True
            ) from e

    def _send(
        self, method: str, url: str, authorization: str | None, what: str
    ) -> tuple[int, Message, bytes]:
        req = urllib.request.Request(url, method=method, headers={"Accept": MANIFEST_ACCEPT})
        if authorization:
            req.add_header("Authorization", authorization)
        return self._open(req, what)

    def _token(self, url: str, authorization: str | None, what: str) -> tuple[int, Any]:
        req = urllib.request.Request(url)
        if authorization:
            req.add_header("Authorization", authorization)
        status, _, raw = self._open(req, what)
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, None


def _basic(creds: tuple[str, str]) -> str:
    return "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
