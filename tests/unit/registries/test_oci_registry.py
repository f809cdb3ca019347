"""OciRegistry: HEAD manifests against the real local registry (Basic) and a small Bearer fake."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agent.errors import RegistryError, TagDigestError
from agent.model import RepoKey
from agent.registries import Registry
from agent.registries.oci import MANIFEST_ACCEPT, OciRegistry, default_scheme
from tests.support import env
from tests.support.registry_front import send_reply

CREDS = (env.REGISTRY_USER, env.REGISTRY_PASSWORD)
D1 = "sha256:" + "1" * 64


# -- the real local registry ---------------------------------------------------------------
def _reachable(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), 1).close()
        return True
    except OSError:
        return False


class _Pusher:
    """Puts blobs and manifests into a Registry v2 over its API (no Docker needed)."""

    def __init__(self, registry: str, creds: tuple[str, str]) -> None:
        self.base = f"http://{registry}"
        self.auth = "Basic " + base64.b64encode(":".join(creds).encode()).decode()
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def _do(self, method: str, url: str, data: bytes = b"", ctype: str | None = None) -> tuple[int, dict]:
        req = urllib.request.Request(url, data=data if method != "POST" else b"", method=method)
        req.add_header("Authorization", self.auth)
        if ctype:
            req.add_header("Content-Type", ctype)
        with self.opener.open(req, timeout=10) as resp:
            return resp.status, dict(resp.headers)

    def blob(self, repo: str, data: bytes) -> dict:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        _, headers = self._do("POST", f"{self.base}/v2/{repo}/blobs/uploads/")
        location = urllib.parse.urljoin(self.base, headers["Location"])
        sep = "&" if "?" in location else "?"
        self._do(
            "PUT", f"{location}{sep}digest={urllib.parse.quote(digest)}", data, "application/octet-stream"
        )
        return {"digest": digest, "size": len(data)}

    def manifest(self, repo: str, tag: str, body: dict, media_type: str) -> str:
        raw = json.dumps(body).encode()
        self._do("PUT", f"{self.base}/v2/{repo}/manifests/{tag}", raw, media_type)
        return "sha256:" + hashlib.sha256(raw).hexdigest()

    def image(self, repo: str, tag: str, seed: str) -> tuple[str, dict]:
        config = self.blob(repo, json.dumps({"architecture": "amd64", "os": "linux", "seed": seed}).encode())
        layer = self.blob(repo, seed.encode())
        media = "application/vnd.docker.distribution.manifest.v2+json"
        body = {
            "schemaVersion": 2,
            "mediaType": media,
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", **config},
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", **layer}],
        }
        digest = self.manifest(repo, tag, body, media)
        return digest, {"mediaType": media, "digest": digest, "size": len(json.dumps(body).encode())}


@pytest.fixture(scope="module")
def pushed() -> dict[str, str]:
    """A single-arch tag and a multi-arch (OCI index) tag in a fresh namespace of the local registry."""
    if not _reachable(env.REGISTRY):
        pytest.fail(f"local registry {env.REGISTRY} unreachable (run scripts/dev-env.sh)")
    pusher = _Pusher(env.REGISTRY, CREDS)
    ns = "oci-" + uuid.uuid4().hex[:8]
    repo = f"{ns}/app"
    single, descriptor = pusher.image(repo, "v1", "one")
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{**descriptor, "platform": {"architecture": "amd64", "os": "linux"}}],
    }
    multi = pusher.manifest(repo, "multi", index, "application/vnd.oci.image.index.v1+json")
    return {"ns": ns, "v1": single, "multi": multi}


def test_real_registry_with_basic_auth_gives_the_manifest_digest(pushed):
    """HEAD with Basic auth returns the digest of the manifest we stored; a missing tag is left out."""
    registry: Registry = OciRegistry(auth=lambda host: CREDS)
    repo = RepoKey(env.REGISTRY, pushed["ns"], "app")
    assert registry.latest(repo, ["v1", "nope"]) == {"v1": pushed["v1"]}


def test_real_registry_multi_arch_tag_gives_the_index_digest(pushed):
    """The Accept header lists the index types, so a multi-arch tag yields the index digest docker records."""
    repo = RepoKey(env.REGISTRY, pushed["ns"], "app")
    assert OciRegistry(auth=lambda host: CREDS).latest(repo, ["multi"]) == {"multi": pushed["multi"]}


def test_real_registry_wrong_password_is_a_permanent_error(pushed):
    """Rejected credentials give RegistryError UNAUTHORIZED, not temporary, without the password in it."""
    with pytest.raises(RegistryError) as e:
        OciRegistry(auth=lambda host: ("cr-test", "wrong-pass-123")).latest(
            RepoKey(env.REGISTRY, pushed["ns"], "app"), ["v1"]
        )
    assert e.value.code == "UNAUTHORIZED" and not e.value.temporary
    assert "wrong-pass-123" not in str(e.value)


# -- a tiny Bearer-token registry ----------------------------------------------------------
class BearerRegistry:
    """Registry v2 that demands a Bearer token from its own /token realm (Basic-authenticated)."""

    def __init__(self, tags: dict[str, str], creds: tuple[str, str] = ("u", "p")) -> None:
        self.tags, self.creds = tags, creds
        self.requests: Counter[str] = Counter()
        self.fail_next: list[int] = []
        self.bad_digest = False
        self.tokens: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _reply(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
                send_reply(self, status, headers, body)

            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                fake.requests[f"GET {url.path}"] += 1
                query = dict(urllib.parse.parse_qsl(url.query))
                basic = "Basic " + base64.b64encode(":".join(fake.creds).encode()).decode()
                if url.path != "/token" or self.headers.get("Authorization") != basic:
                    return self._reply(401, {})
                if query != {"service": "fake-registry", "scope": "repository:ns/app:pull"}:
                    return self._reply(400, {})
                token = uuid.uuid4().hex
                fake.tokens.append(token)
                self._reply(200, {"Content-Type": "application/json"}, json.dumps({"token": token}).encode())

            def do_HEAD(self) -> None:
                fake.requests[f"HEAD {self.path}"] += 1
                if fake.fail_next:
                    return self._reply(fake.fail_next.pop(0), {})
                realm = f"http://127.0.0.1:{fake.port}/token"
                challenge = f'Bearer realm="{realm}",service="fake-registry",scope="repository:ns/app:pull"'
                auth = self.headers.get("Authorization", "")
                if not auth.startswith("Bearer ") or auth[7:] not in fake.tokens:
                    return self._reply(401, {"WWW-Authenticate": challenge})
                if self.headers.get("Accept") != MANIFEST_ACCEPT:
                    return self._reply(406, {})
                tag = self.path.rsplit("/", 1)[-1]
                if not self.path.startswith("/v2/ns/app/manifests/") or tag not in fake.tags:
                    return self._reply(404, {})
                digest = "sha256:nothex" if fake.bad_digest else fake.tags[tag]
                self._reply(200, {"Docker-Content-Digest": digest})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.host = f"127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> BearerRegistry:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def bearer() -> Iterator[BearerRegistry]:
    with BearerRegistry({"latest": D1, "v2": "sha256:" + "2" * 64}) as fake:
        yield fake


def _oci(fake: BearerRegistry, creds: tuple[str, str] | None = ("u", "p")) -> OciRegistry:
    return OciRegistry(auth=lambda host: creds if host == fake.host else None, timeout=2)


def test_bearer_flow_then_one_head_per_tag(bearer):
    """First tag: 401, token (with Basic creds and the challenge's scope), HEAD; later tags: one HEAD each."""
    registry = _oci(bearer)
    repo = RepoKey(bearer.host, "ns", "app")
    assert registry.latest(repo, ["latest"]) == {"latest": D1}
    assert bearer.requests == {"HEAD /v2/ns/app/manifests/latest": 2, "GET /token": 1}
    bearer.requests.clear()
    assert registry.latest(repo, ["latest", "v2", "gone"]) == {"latest": D1, "v2": "sha256:" + "2" * 64}
    assert bearer.requests == Counter({f"HEAD /v2/ns/app/manifests/{t}": 1 for t in ("latest", "v2", "gone")})


def test_bearer_without_credentials_is_unauthorized(bearer):
    """The token service refuses anonymous requests: a permanent UNAUTHORIZED error."""
    with pytest.raises(RegistryError) as e:
        _oci(bearer, None).latest(RepoKey(bearer.host, "ns", "app"), ["latest"])
    assert e.value.code == "UNAUTHORIZED" and not e.value.temporary


def test_server_errors_are_temporary(bearer):
    """A 503 from the registry is a temporary RegistryError (the next pass tries again)."""
    bearer.fail_next = [503]
    with pytest.raises(RegistryError) as e:
        _oci(bearer).latest(RepoKey(bearer.host, "ns", "app"), ["latest"])
    assert e.value.temporary and "503" in str(e.value)


def test_invalid_digest_header_is_an_error_for_that_tag(bearer):
    """A Docker-Content-Digest that is not sha256 raises TagDigestError naming the tag."""
    bearer.bad_digest = True
    with pytest.raises(TagDigestError) as e:
        _oci(bearer).latest(RepoKey(bearer.host, "ns", "app"), ["latest"])
    assert set(e.value.bad) == {"latest"}


def test_unreachable_registry_is_temporary():
    """Nothing listening: RegistryError NETWORK, temporary."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(RegistryError) as e:
        OciRegistry(timeout=1).latest(RepoKey(f"127.0.0.1:{port}", "ns", "app"), ["latest"])
    assert e.value.temporary and e.value.code == "NETWORK"


def test_proxy_env_is_not_used_for_loopback(bearer, monkeypatch):
    """HTTP_PROXY pointing at a dead port does not affect a loopback registry."""
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    assert _oci(bearer).latest(RepoKey(bearer.host, "ns", "app"), ["latest"]) == {"latest": D1}


@pytest.mark.parametrize(
    ("host", "scheme"),
    [
        ("127.0.0.1:5000", "http"),
        ("localhost", "http"),
        ("[::1]:5000", "http"),
        ("registry.cn-hangzhou.aliyuncs.com", "https"),
    ],
)
def test_plain_http_only_for_loopback_hosts(host, scheme):
    """Loopback registries are spoken to over http, every other host over https."""
    assert default_scheme(host) == scheme


def test_credentials_delegate_to_auth():
    """credentials(host) is whatever the auth callable gives."""
    registry = OciRegistry(auth=lambda host: ("a", "b") if host == "h" else None)
    assert registry.credentials("h") == ("a", "b") and registry.credentials("x") is None


def test_real_registry_tag_list_follows_the_next_links(pushed):
    """`GET /v2/<name>/tags/list?n=…` page by page (Link rel="next"), for tag patterns; no times in v2."""
    registry = OciRegistry(auth=lambda host: CREDS)
    registry.tag_page = 1
    assert sorted(registry.tags(RepoKey(env.REGISTRY, pushed["ns"], "app"))) == [
        ("multi", None),
        ("v1", None),
    ]


def test_a_refusal_without_credentials_says_to_log_in_in_the_error_itself(pushed):
    """HTTP 401 on HEAD: the message names `docker login HOST` and `[registry_auth."HOST"]`."""
    with pytest.raises(RegistryError) as e:
        OciRegistry(auth=lambda host: None).latest(RepoKey(env.REGISTRY, pushed["ns"], "app"), ["v1"])
    assert "HTTP 401" in str(e.value)
    assert f"docker login {env.REGISTRY}" in str(e.value) and f'[registry_auth."{env.REGISTRY}"]' in str(
        e.value
    )
