"""A fake Alibaba Cloud Container Registry API for tests and benchmarks.

Serves the personal edition (ROA, 2016-06-07) and the enterprise edition (RPC, 2018-12-01),
verifies request signatures the way ACR does, takes tags and digests from a static table
and/or a real Registry v2, injects faults and counts requests.

    with FakeAcr(tags={"ns/app": {"latest": "sha256:..."}}) as fake:
        AliyunRegistry(..., endpoint=fake.url)

    python -m tests.support.fake_acr --port 18080 --registry 127.0.0.1:5000

`FakeAcr(tls=True)` is the strict one, as real ACR is (see tests/support/acr_world.py): it serves
the API with the test CA's certificate on 127.0.0.2:443, where /etc/hosts sends cr.<region>.aliyuncs.com,
answers by region (the Host asked) and by instance, lists its enterprise instances, and starts
a TLS front for the local registry on 127.0.0.3:443 that takes a temporary token only on the hosts
of the region or instance it was issued for. `placement` says where each repository lives:
"personal:<region>", "instance:<id>" or "crpi" (only on the crpi host: the API does not know it).

Control (not signed, not counted): POST /_fake/faults, GET|DELETE /_fake/faults,
GET /_fake/stats, POST /_fake/stats/reset, POST /_fake/tags.
"""

from __future__ import annotations

import argparse
import base64
import calendar
import email.utils
import fcntl
import hashlib
import hmac
import json
import os
import signal
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support import acr_world, env

DEFAULT_KEYS = {"test-key-id": "test-key-secret"}
DEFAULT_INSTANCE = "cri-test"
MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
ORDERS = ("name", "name-desc", "extra-first")
FAULT_KINDS = ("status", "throttle", "garbage", "delay", "lowercase", "soft")


@dataclass
class Fault:
    """One injected fault. `count=None` means until cleared; `action` limits it to one API action.

    status: answer `status` with error `code` (or the raw `body`); throttle: 400 Throttling.User;
    garbage: 200 with a non-JSON body; delay: sleep `delay` seconds, then answer normally;
    lowercase: enterprise error bodies use lower-case keys; soft: enterprise errors come as
    HTTP 200 with IsSuccess=false.
    """

    kind: str
    count: int | None = 1
    status: int = 500
    code: str | None = None
    delay: float = 0.0
    body: str | None = None
    action: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; one of {FAULT_KINDS}")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _q(text: str) -> str:
    """RFC 3986 percent-encoding as ACR's RPC signature uses it."""
    return urllib.parse.quote(text, safe="~")


def _sign(secret: str, text: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), text.encode(), hashlib.sha1).digest()).decode()


def _bare(digest: str) -> str:
    return digest.split(":", 1)[1] if digest.startswith("sha256:") else digest


class FakeAcr:
    """The fake server. Thread-safe; start with `with FakeAcr(...) as fake:` or `.start()`."""

    def __init__(
        self,
        *,
        tags: dict[str, dict[str, str]] | None = None,
        registry: str | None = None,
        registry_auth: tuple[str, str] | None = (env.REGISTRY_USER, env.REGISTRY_PASSWORD),
        extra_tags: dict[str, int] | None = None,
        order: str = "name",
        access_keys: dict[str, str] | None = None,
        sts_tokens: dict[str, str] | None = None,
        instances: tuple[str, ...] = (DEFAULT_INSTANCE,),
        region: str = "cn-hangzhou",
        personal_page_max: int = 100,
        offset_by_request: bool = False,
        token_ttl: float = 3600.0,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: bool = False,
        placement: dict[str, str] | None = None,
        enterprise: dict[str, tuple[str, str, tuple[str, ...]]] | None = None,
        vpc: bool = False,
    ) -> None:
        if order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}")
        self.static: dict[str, dict[str, str]] = {r: dict(t) for r, t in (tags or {}).items()}
        self.registry = registry
        self.registry_auth = registry_auth
        self.extra_tags = dict(extra_tags or {})
        self.order = order
        self.access_keys = dict(DEFAULT_KEYS if access_keys is None else access_keys)
        self.sts_tokens = dict(sts_tokens or {})
        self.sts_expiry: dict[str, float] = {}  # temporary key id -> when it expires (epoch s), see issue_sts
        self.instances = tuple(instances)
        self.region = region
        self.personal_page_max = personal_page_max
        self.offset_by_request = offset_by_request
        self.token_ttl = token_ttl
        self.tokens_issued: list[str] = []
        self.tls = tls
        self.placement = dict(placement or {})
        # id -> (name, region, custom domains); the plain fake names its instances after their ids
        plain = {i: (i.removeprefix("cri-"), region, ()) for i in instances}
        self.enterprise = dict(enterprise or (acr_world.INSTANCES if tls else plain))
        if tls:
            self.instances = tuple(self.enterprise)
        self.reject_tokens = False  # the registry front refuses every temporary token
        self.deny_pull_tokens = False  # temporary tokens log in, but pulls are refused (no cr:PullRepository)
        self.public_repos: set[str] = set()  # ns/repo that the registry front serves to anyone
        self.clock_offset = 0.0  # seconds this fake's clock is ahead of the local one (signature times)
        self._nonces: set[str] = set()
        self._token_scopes: dict[str, tuple[str, float]] = {}
        self.front: Any = None
        self._held: Any = None
        self._repo_ids: dict[str, str] = {}
        self.builds: dict[str, list[tuple[str, str, int, str]]] = {}  # repo -> (id, status, start ms, tag)
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.reset_stats()
        if tls:
            self._held = _hold_port_443()
            host, port = acr_world.API_IP, 443
        self._server = self._listen(host, port)
        # the VPC endpoint (cr-vpc.<region>.aliyuncs.com) answers too; without it, connecting there is refused
        self._vpc = self._listen(acr_world.VPC_API_IP, 443) if tls and vpc else None
        self._vpc_thread: threading.Thread | None = None

    def _listen(self, host: str, port: int) -> ThreadingHTTPServer:
        server = ThreadingHTTPServer((host, port), _handler_for(self), bind_and_activate=False)
        server.allow_reuse_address = True
        server.daemon_threads = True
        server.server_bind()
        server.server_activate()
        if self.tls:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(acr_world.CERT_FILE, acr_world.KEY_FILE)
            server.socket = ctx.wrap_socket(server.socket, server_side=True)
        return server

    # -- lifecycle --------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        if self.tls:
            return f"https://{acr_world.api_host(self.region)}"
        return f"http://{self._server.server_address[0]!s}:{self.port}"

    def start(self) -> FakeAcr:
        if self.tls:
            from tests.support.registry_front import RegistryFront

            self.front = RegistryFront(self.token_valid)
            self.front.public = lambda repo: repo in self.public_repos
            self.front.pull_denied = lambda password: self.deny_pull_tokens and password in self.tokens_issued
            self.front.start()
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="fake-acr", daemon=True
        )
        self._thread.start()
        if self._vpc is not None:
            self._vpc_thread = threading.Thread(target=self._vpc.serve_forever, args=(0.05,), daemon=True)
            self._vpc_thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes delayed handlers
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
        self._server.server_close()
        if self._vpc is not None:
            if self._vpc_thread is not None:
                self._vpc.shutdown()
                self._vpc_thread.join(5)
            self._vpc.server_close()
        if self.front is not None:
            self.front.stop()
        if self._held is not None:
            self._held.close()

    def __enter__(self) -> FakeAcr:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @staticmethod
    def fixture(**kwargs: Any) -> Callable[[], Iterator[FakeAcr]]:
        """A pytest fixture serving a fresh FakeAcr(**kwargs) per test: `fake = FakeAcr.fixture(...)`."""
        import pytest

        @pytest.fixture
        def _fake() -> Iterator[FakeAcr]:
            with FakeAcr(**kwargs) as fake:
                yield fake

        return _fake

    # -- faults and stats -------------------------------------------------------------------
    def inject(self, kind: str, count: int | None = 1, **params: Any) -> Fault:
        """Queue a fault for the next `count` matching API requests (see `Fault`)."""
        if kind == "throttle":
            params.setdefault("status", 400)
        fault = Fault(kind, count, **params)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def faults(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(f) for f in self._faults]

    def reset_stats(self) -> None:
        with self._lock:
            self.total = 0
            self.requests: Counter[str] = Counter()  # "GET /repos/ns/app/tags" or the RPC action
            self.actions: Counter[str] = Counter()
            self.repos: Counter[str] = Counter()
            self.keys: Counter[str] = Counter()
            self.hosts: Counter[str] = Counter()  # the API host asked (its region)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "total": self.total,
                "requests": dict(self.requests),
                "actions": dict(self.actions),
                "repos": dict(self.repos),
                "keys": dict(self.keys),
                "hosts": dict(self.hosts),
            }

    def _count(self, request_key: str, action: str, repo: str | None, key_id: str | None) -> list[Fault]:
        """Count one API request and take the faults that apply to it."""
        with self._lock:
            self.total += 1
            self.requests[request_key] += 1
            self.actions[action] += 1
            if repo:
                self.repos[repo] += 1
            if key_id:
                self.keys[key_id] += 1
            taken, terminal = [], False
            for fault in self._faults:
                if fault.action not in (None, action) or fault.count == 0:
                    continue
                is_terminal = fault.kind in ("status", "throttle", "garbage")
                if is_terminal and terminal:
                    continue
                terminal = terminal or is_terminal
                if fault.count is not None:
                    fault.count -= 1
                taken.append(fault)
            self._faults = [f for f in self._faults if f.count != 0]
            return taken

    # -- data -------------------------------------------------------------------------------
    def set_tags(self, repo: str, tags: dict[str, str]) -> None:
        with self._lock:
            self.static[repo] = dict(tags)

    def set_builds(self, repo: str, builds: list[tuple[str, str, int, str]]) -> None:
        """Build records, newest first: (id, status such as FAILED or BUILDING, start epoch ms, tag)."""
        with self._lock:
            self.builds[repo] = list(builds)

    def repo_tags(self, repo: str) -> list[tuple[str, str]] | None:
        """[(tag, bare hex digest)] in this fake's listing order; None if the repo does not exist."""
        with self._lock:
            static = self.static.get(repo)
            extra = self.extra_tags.get(repo, 0)
        real: list[tuple[str, str]] | None
        if static is not None:
            real = [(t, _bare(d)) for t, d in static.items()]
        elif self.registry:
            real = self._registry_tags(repo)
        else:
            real = None
        if real is None and not extra:
            return None
        synthetic = [
            (f"extra-{i:03d}", hashlib.sha256(f"{repo}:{i}".encode()).hexdigest()) for i in range(extra)
        ]
        real = sorted(real or [])
        if self.order == "extra-first":
            return synthetic + real
        return sorted(synthetic + real, reverse=self.order == "name-desc")

    def _registry(self, method: str, path: str, accept: str | None = None) -> tuple[int, Any, bytes]:
        req = urllib.request.Request(f"http://{self.registry}{path}", method=method)
        if self.registry_auth:
            raw = ":".join(self.registry_auth).encode()
            req.add_header("Authorization", "Basic " + base64.b64encode(raw).decode())
        if accept:
            req.add_header("Accept", accept)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(req, timeout=10) as resp:
                return resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()
        except OSError as e:
            raise ApiError(500, "InternalError", f"registry {self.registry} unreachable: {e}") from e

    def _registry_tags(self, repo: str) -> list[tuple[str, str]] | None:
        status, _, body = self._registry("GET", f"/v2/{repo}/tags/list")
        if status == 404:
            return None
        if status != 200:
            raise ApiError(500, "InternalError", f"registry answered {status} for {repo} tags")
        out = []
        for tag in json.loads(body).get("tags") or []:
            status, headers, _ = self._registry(
                "HEAD", f"/v2/{repo}/manifests/{tag}", ", ".join(MANIFEST_TYPES)
            )
            digest = headers.get("Docker-Content-Digest") if status == 200 else None
            if digest:  # a tag deleted since the listing is left out
                out.append((tag, _bare(digest)))
        return out

    def repo_id(self, repo: str) -> str:
        repo_id = "crr-" + hashlib.sha1(repo.encode()).hexdigest()[:16]
        with self._lock:
            self._repo_ids[repo_id] = repo
        return repo_id

    def repo_for_id(self, repo_id: str) -> str | None:
        with self._lock:
            if repo_id in self._repo_ids:
                return self._repo_ids[repo_id]
            names = set(self.static) | set(self.extra_tags)
        names |= self._registry_catalog()
        return next((r for r in names if self.repo_id(r) == repo_id), None)

    def _registry_catalog(self) -> set[str]:
        if not self.registry:
            return set()
        status, _, body = self._registry("GET", "/v2/_catalog?n=10000")
        return set(json.loads(body).get("repositories") or []) if status == 200 else set()

    def issue_token(self, scope: str = "") -> tuple[str, str, int]:
        """(user, password, expiry ms) for `scope` ("personal:<region>" or "instance:<id>").

        Plain mode: the local registry's real login, so a pull with it works. TLS mode: a fresh
        token that the registry front takes only on the hosts of `scope`.
        """
        if self.tls or not self.registry_auth:
            user, password = "cr_temp_user", "tok-" + uuid.uuid4().hex
        else:
            user, password = self.registry_auth
        with self._lock:
            self.tokens_issued.append(password)
            self._token_scopes[password] = (scope, time.time() + self.token_ttl)
        return user, password, int((time.time() + self.token_ttl) * 1000)

    def issue_sts(self, ttl: float) -> tuple[str, str, str, float]:
        """A temporary key as STS hands one out: (STS.<id>, secret, security token, expiry epoch s).

        Requests signed with it need its token; after `ttl` they get InvalidSecurityToken.Expired.
        """
        key_id, secret, token = (
            "STS." + uuid.uuid4().hex[:24],
            uuid.uuid4().hex,
            "CAIS" + uuid.uuid4().hex * 3,
        )
        expiry = time.time() + ttl
        with self._lock:
            self.access_keys[key_id], self.sts_tokens[key_id], self.sts_expiry[key_id] = secret, token, expiry
        return key_id, secret, token, expiry

    def token_valid(self, scope: str, user: str, password: str) -> bool:
        with self._lock:
            issued = self._token_scopes.get(password)
        return (
            not self.reject_tokens
            and user == "cr_temp_user"
            and issued is not None
            and issued[0] == scope
            and issued[1] > time.time()
        )

    def exists_in(self, repo: str, scope: str) -> bool:
        """Repositories without a placement live everywhere (the plain fake's old behaviour)."""
        return self.placement.get(repo, scope) == scope


def _hold_port_443() -> Any:
    """Only one strict fake can own 127.0.0.2:443 at a time: wait for the others (lock file)."""
    path = os.path.join(os.environ.get("CR_TEST_WORK", "/var/lib/cr-agent-test"), "fake-acr-443.lock")
    f = open(path, "w")  # noqa: SIM115 - held for the fake's lifetime
    deadline = time.monotonic() + 600
    while True:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return f
        except BlockingIOError:
            if time.monotonic() > deadline:
                f.close()
                raise TimeoutError(f"another test holds {path} for more than 10 minutes") from None
            time.sleep(0.1)


def _tag_fields(tag: str, hexdigest: str) -> dict[str, Any]:
    seed = hashlib.sha256(hexdigest.encode()).hexdigest()
    stamp = 1_700_000_000_000 + int(seed[:6], 16)
    return {
        "tag": tag,
        "digest": hexdigest,
        "imageId": seed,
        "imageUpdate": stamp,
        "imageCreate": stamp,
        "imageSize": 1_000_000 + int(seed[6:10], 16),
        "status": "NORMAL",
    }


def _page(items: list[Any], page: int, size: int) -> list[Any]:
    return items[(page - 1) * size : page * size]


def _int_param(params: dict[str, str], name: str, default: int) -> int:
    try:
        value = int(params.get(name, default))
    except ValueError:
        raise ApiError(400, "PARAM_INVALID", f"{name} is not a number") from None
    if value < 1:
        raise ApiError(400, "PARAM_INVALID", f"{name} must be positive")
    return value


def _handler_for(fake: FakeAcr) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        pass

    Handler.fake = fake
    return Handler


class _Handler(BaseHTTPRequestHandler):
    disable_nagle_algorithm = True  # else every answer on a kept-alive connection waits ~40 ms for an ACK
    fake: FakeAcr
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    # -- plumbing ---------------------------------------------------------------------------
    def _send(self, status: int, body: bytes | str | dict[str, Any], ctype: str = "application/json") -> None:
        raw = json.dumps(body).encode() if isinstance(body, dict) else body
        raw = raw.encode() if isinstance(raw, str) else raw
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype + ";charset=utf-8")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)
        except OSError:  # the client gave up (timeout test)
            self.close_connection = True

    def _dispatch(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(url.path)
        query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if path.startswith("/_fake/"):
            return self._control(path, body)
        rpc = path in ("", "/") and "Action" in query
        if rpc and self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            query.update(urllib.parse.parse_qsl(body.decode(), keep_blank_values=True))
        action, repo = self._rpc_target(query) if rpc else self._roa_target(path)
        key_id = query.get("AccessKeyId") if rpc else self._roa_key_id()
        faults = self.fake._count(action if rpc else f"{self.command} {path}", action, repo, key_id)
        with self.fake._lock:
            self.fake.hosts[self.headers.get("Host", "")] += 1
        lowercase = any(f.kind == "lowercase" for f in faults)
        soft = any(f.kind == "soft" for f in faults)
        try:
            for fault in faults:
                self._apply(fault, rpc)
                if fault.kind in ("status", "throttle", "garbage"):
                    return
            if rpc:
                self._verify_rpc(query)
                result = self._rpc(action, query)
                result.update(Code="success", IsSuccess=True, RequestId=str(uuid.uuid4()).upper())
            else:
                self._verify_roa(path, query)
                result = {"data": self._roa(action, path, query), "requestId": str(uuid.uuid4()).upper()}
            self._send(200, result)
        except ApiError as e:
            self._error(e, rpc, lowercase, soft)
        except Exception as e:  # a bug in the fake must look like a server error, not a hang
            self._error(ApiError(500, "InternalError", f"fake-acr: {type(e).__name__}: {e}"), rpc)

    def _error(self, e: ApiError, rpc: bool, lowercase: bool = False, soft: bool = False) -> None:
        rid = str(uuid.uuid4()).upper()
        if not rpc or lowercase:
            self._send(e.status, {"code": e.code, "message": e.message, "requestId": rid})
        elif soft and e.status < 500:
            self._send(200, {"Code": e.code, "Message": e.message, "IsSuccess": False, "RequestId": rid})
        else:
            self._send(
                e.status, {"Code": e.code, "Message": e.message, "RequestId": rid, "HostId": "fake-acr"}
            )

    def _apply(self, fault: Fault, rpc: bool) -> None:
        if fault.kind == "delay":
            self.fake._stopping.wait(fault.delay)
        elif fault.kind == "garbage":
            self._send(200, fault.body or "<html><body>502 Bad Gateway (not JSON)</body></html>", "text/html")
        elif fault.kind == "throttle":
            msg = "Request was denied due to user flow control."
            self._error(ApiError(fault.status, fault.code or "Throttling.User", msg), rpc)
        elif fault.kind == "status":
            if fault.body is not None:
                self._send(fault.status, fault.body)
            else:
                code = fault.code or ("ServiceUnavailable" if fault.status == 503 else "InternalError")
                self._error(ApiError(fault.status, code, "injected fault"), rpc)

    # -- signatures -------------------------------------------------------------------------
    def _secret_for(self, key_id: str | None) -> str:
        secret = self.fake.access_keys.get(key_id or "")
        if secret is None and (key_id or "").startswith("STS."):  # a temporary key STS never issued
            msg = "Specified signature is not matched with our calculation."
            raise ApiError(400, "SignatureDoesNotMatch", msg)
        if secret is None:
            raise ApiError(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
        return secret

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The Date header, from this fake's clock (`clock_offset`)."""
        return email.utils.formatdate(time.time() + self.fake.clock_offset, usegmt=True)

    def _check_time(self, stamp: str, rpc: bool) -> None:
        """As ACR: a signed request more than 15 minutes off the server's clock is refused."""
        try:
            if rpc:
                when: float = calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ"))
            else:
                when = email.utils.parsedate_to_datetime(stamp).timestamp()
        except (ValueError, TypeError):
            raise ApiError(
                400, "InvalidTimeStamp.Format", f"Specified time stamp {stamp!r} is invalid."
            ) from None
        if abs(time.time() + self.fake.clock_offset - when) > 900:
            raise ApiError(400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.")

    def _check_sts(self, key_id: str, token: str | None) -> None:
        wanted = self.fake.sts_tokens.get(key_id)
        if wanted is not None and token != wanted:
            raise ApiError(400, "InvalidSecurityToken.Mismatch", "Specified SecurityToken is invalid.")
        expiry = self.fake.sts_expiry.get(key_id)
        if expiry is not None and time.time() >= expiry:
            raise ApiError(400, "InvalidSecurityToken.Expired", "Specified SecurityToken is expired.")

    def _roa_key_id(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        return auth[4:].rsplit(":", 1)[0] if auth.startswith("acs ") and ":" in auth else None

    def _verify_roa(self, path: str, query: dict[str, str]) -> None:
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("acs ") or ":" not in auth:
            raise ApiError(400, "IncompleteSignature", "The Authorization header is missing or malformed.")
        key_id, signature = auth[4:].rsplit(":", 1)
        secret = self._secret_for(key_id)
        h = self.headers
        lines = [self.command, h.get("Accept", ""), h.get("Content-MD5", ""), h.get("Content-Type", "")]
        lines.append(h.get("Date", ""))
        acs = sorted((k.lower(), v) for k, v in h.items() if k.lower().startswith("x-acs-"))
        text = "\n".join(lines) + "\n" + "".join(f"{k}:{v}\n" for k, v in acs)
        text += path + ("?" + "&".join(f"{k}={v}" for k, v in sorted(query.items())) if query else "")
        if not hmac.compare_digest(_sign(secret, text), signature):
            msg = "Specified signature is not matched with our calculation. server string to sign is:" + text
            raise ApiError(400, "SignatureDoesNotMatch", msg)
        self._check_time(h.get("Date", ""), rpc=False)
        self._check_sts(key_id, h.get("x-acs-security-token"))

    def _verify_rpc(self, query: dict[str, str]) -> None:
        params = dict(query)
        signature = params.pop("Signature", "")
        key_id = params.get("AccessKeyId", "")
        secret = self._secret_for(key_id)
        if params.get("Version") != "2018-12-01":
            raise ApiError(
                400, "InvalidVersion", f"Specified version {params.get('Version')!r} is not supported."
            )
        canonical = "&".join(f"{_q(k)}={_q(v)}" for k, v in sorted(params.items()))
        text = f"{self.command}&{_q('/')}&{_q(canonical)}"
        if not hmac.compare_digest(_sign(secret + "&", text), signature):
            msg = "Specified signature is not matched with our calculation. server string to sign is:" + text
            raise ApiError(400, "SignatureDoesNotMatch", msg)
        self._check_time(params.get("Timestamp", ""), rpc=True)
        nonce = params.get("SignatureNonce", "")
        with self.fake._lock:
            used = nonce in self.fake._nonces
            self.fake._nonces.add(nonce)
        if used:
            raise ApiError(400, "SignatureNonceUsed", "Specified signature nonce was used already.")
        self._check_sts(key_id, params.get("SecurityToken"))

    # -- personal edition (ROA) -------------------------------------------------------------
    @staticmethod
    def _roa_target(path: str) -> tuple[str, str | None]:
        parts = path.strip("/").split("/")
        if parts == ["tokens"]:
            return "GetAuthorizationToken", None
        if len(parts) >= 3 and parts[0] == "repos":
            repo = f"{parts[1]}/{parts[2]}"
            if len(parts) == 3:
                return "GetRepo", repo
            if parts[3:] == ["tags"]:
                return "GetRepoTags", repo
            if parts[3:] == ["build"]:
                return "GetRepoBuildList", repo
            if len(parts) == 5 and parts[3] == "tags":
                return "GetRepoTag", repo
        return "Unknown", None

    def _region(self) -> str:
        """The region asked: cr[-vpc].<region>.aliyuncs.com in the Host header, else the fake's own."""
        host = (self.headers.get("Host") or "").split(":")[0].lower()
        if host.startswith(("cr.", "cr-vpc.")) and host.endswith(".aliyuncs.com"):
            return host.split(".", 1)[1][: -len(".aliyuncs.com")]
        return self.fake.region

    def _existing(self, repo: str, scope: str | None = None) -> list[tuple[str, str]]:
        tags = self.fake.repo_tags(repo)
        if tags is None or not self.fake.exists_in(repo, scope or f"personal:{self._region()}"):
            raise ApiError(404, "REPO_NOT_EXIST", "repo not exist")
        return tags

    def _roa(self, action: str, path: str, query: dict[str, str]) -> dict[str, Any]:
        parts = path.strip("/").split("/")
        if action == "GetAuthorizationToken":
            user, password, expiry = self.fake.issue_token(f"personal:{self._region()}")
            return {"authorizationToken": password, "tempUserName": user, "expireDate": expiry}
        if action == "GetRepoTags":
            tags = self._existing("/".join(parts[1:3]))
            page = _int_param(query, "Page", 1)
            asked = _int_param(query, "PageSize", 30)
            size = min(asked, self.fake.personal_page_max)
            # offset_by_request: pages start where the asked size says, then are cut to the cap
            start = (page - 1) * (asked if self.fake.offset_by_request else size)
            items = [_tag_fields(t, d) for t, d in tags[start : start + size]]
            return {"page": page, "pageSize": size, "total": len(tags), "tags": items}
        if action == "GetRepoBuildList":  # the documented-by-nobody shape: lowercase, as the other calls
            repo = "/".join(parts[1:3])
            self._existing(repo)
            builds = self.fake.builds.get(repo, [])[: _int_param(query, "PageSize", 30)]
            items = [{"buildId": i, "buildStatus": st, "startTime": ms, "endTime": ms + 1000,
                      "image": {"repoNamespace": parts[1], "repoName": parts[2], "tag": tag}}
                     for i, st, ms, tag in builds]  # fmt: skip
            return {"builds": items, "total": len(self.fake.builds.get(repo, [])), "page": 1}
        if action == "GetRepoTag":
            found = dict(self._existing("/".join(parts[1:3]))).get(parts[4])
            if found is None:
                raise ApiError(404, "TAG_NOT_EXIST", "tag not exist")
            return _tag_fields(parts[4], found)
        if action == "GetRepo":
            self._existing("/".join(parts[1:3]))
            region = self._region()
            public = self.fake.registry or f"registry.{region}.aliyuncs.com"
            if self.fake.tls:
                public = f"registry.{region}.aliyuncs.com"
            domains = {
                "public": public,
                "internal": f"registry-internal.{region}.aliyuncs.com",
                "vpc": f"registry-vpc.{region}.aliyuncs.com",
            }
            info: dict[str, Any] = {"repoNamespace": parts[1], "repoName": parts[2], "repoType": "PRIVATE"}
            info.update(repoStatus="NORMAL", regionId=region, repoDomainList=domains)
            return {"repo": info}
        raise ApiError(404, "InvalidAction.NotFound", f"no such API: {self.command} {path}")

    # -- enterprise edition (RPC) -----------------------------------------------------------
    def _rpc_target(self, query: dict[str, str]) -> tuple[str, str | None]:
        action = query.get("Action", "")
        if action == "GetRepository" and query.get("RepoNamespaceName"):
            return action, f"{query['RepoNamespaceName']}/{query.get('RepoName', '')}"
        if action in ("ListRepoTag", "ListRepoBuildRecord") and query.get("RepoId"):
            return action, self.fake.repo_for_id(query["RepoId"]) or query["RepoId"]
        return action, None

    def _rpc(self, action: str, query: dict[str, str]) -> dict[str, Any]:
        known = (
            "GetRepository",
            "ListRepoTag",
            "GetAuthorizationToken",
            "ListInstance",
            "ListInstanceEndpoint",
            "ListRepoBuildRecord",
        )
        if action not in known:
            raise ApiError(404, "InvalidAction.NotFound", f"Specified api {action!r} is not found.")
        region = query.get("RegionId") or self._region()
        if action == "ListInstance":
            return self._list_instances(region, query)
        instance = query.get("InstanceId", "")
        where = self.fake.enterprise.get(instance)
        if instance not in self.fake.instances or where is None or (self.fake.tls and where[1] != region):
            raise ApiError(404, "INSTANCE_NOT_EXIST", f"instance {instance!r} does not exist in {region}")
        scope = f"instance:{instance}"
        if action == "ListInstanceEndpoint":
            return self._endpoints(instance)
        if action == "GetAuthorizationToken":
            user, password, expiry = self.fake.issue_token(scope)
            return {"AuthorizationToken": password, "TempUsername": user, "ExpireTime": expiry}
        if action == "GetRepository":
            repo = f"{query.get('RepoNamespaceName', '')}/{query.get('RepoName', '')}"
            self._existing(repo, scope)
            return {
                "RepoId": self.fake.repo_id(repo),
                "RepoNamespaceName": query.get("RepoNamespaceName"),
                "RepoName": query.get("RepoName"),
                "InstanceId": query["InstanceId"],
                "RepoType": "PRIVATE",
                "RepoStatus": "NORMAL",
            }
        found = self.fake.repo_for_id(query.get("RepoId", ""))
        if found is None:
            raise ApiError(404, "REPO_NOT_EXIST", "repo not exist")
        tags = self._existing(found, scope)
        if action == "ListRepoBuildRecord":
            ns, name = found.split("/")
            builds = self.fake.builds.get(found, [])
            records = [{"BuildRecordId": i, "BuildStatus": st, "StartTime": str(ms), "EndTime": str(ms + 1000),
                        "Image": {"RepoNamespaceName": ns, "RepoName": name, "ImageTag": tag, "RepoId": query["RepoId"]}}
                       for i, st, ms, tag in builds[: _int_param(query, "PageSize", 30)]]  # fmt: skip
            return {"BuildRecords": records, "TotalCount": str(len(builds)), "PageNo": 1}
        page = _int_param(query, "PageNo", 1)
        size = min(_int_param(query, "PageSize", 30), 100)
        images = []
        for tag, digest in _page(tags, page, size):
            f = _tag_fields(tag, digest)
            images.append(
                {
                    "Tag": tag,
                    "Digest": digest,
                    "ImageId": f["imageId"],
                    "ImageSize": f["imageSize"],
                    "ImageCreate": str(f["imageCreate"]),
                    "ImageUpdate": str(f["imageUpdate"]),
                    "Status": "NORMAL",
                }
            )
        return {"Images": images, "TotalCount": str(len(tags)), "PageNo": page, "PageSize": size}

    def _list_instances(self, region: str, query: dict[str, str]) -> dict[str, Any]:
        name = query.get("InstanceName")
        rows = [
            {"InstanceId": i, "InstanceName": n, "RegionId": r, "InstanceStatus": "RUNNING",
             "InstanceSpecification": "Enterprise_Basic", "CreateTime": "1700000000000",
             "ModifiedTime": "1700000000000"}
            for i, (n, r, _) in sorted(self.fake.enterprise.items())
            if (r == region or not self.fake.tls) and name in (None, n)
        ]  # fmt: skip
        page = _int_param(query, "PageNo", 1)
        size = min(_int_param(query, "PageSize", 30), 30)
        return {
            "Instances": _page(rows, page, size),
            "TotalCount": len(rows),
            "PageNo": page,
            "PageSize": size,
        }

    def _endpoints(self, instance: str) -> dict[str, Any]:
        name, region, custom = self.fake.enterprise[instance]
        system = {"internet": f"{name}-registry.{region}.cr.aliyuncs.com",
                  "vpc": f"{name}-registry-vpc.{region}.cr.aliyuncs.com"}  # fmt: skip
        endpoints = []
        for kind, domain in system.items():
            domains = [{"Domain": domain, "Type": "SYSTEM"}]
            if kind == "internet":
                domains += [{"Domain": d, "Type": "USER"} for d in custom]
            endpoints.append({"EndpointType": kind, "Enable": True, "Status": "RUNNING", "Domains": domains})
        return {"Endpoints": endpoints}

    # -- control ----------------------------------------------------------------------------
    def _control(self, path: str, body: bytes) -> None:
        fake = self.fake
        try:
            data = json.loads(body) if body else {}
            if path == "/_fake/stats" and self.command == "GET":
                return self._send(200, fake.stats())
            if path == "/_fake/stats/reset" or (path == "/_fake/stats" and self.command == "DELETE"):
                fake.reset_stats()
                return self._send(200, {"ok": True})
            if path == "/_fake/faults" and self.command == "DELETE":
                fake.clear_faults()
                return self._send(200, {"ok": True})
            if path == "/_fake/faults" and self.command == "POST":
                if isinstance(data, dict) and data.get("clear"):
                    fake.clear_faults()
                for item in data if isinstance(data, list) else [data] if "kind" in data else []:
                    fake.inject(**item)
                return self._send(200, {"faults": fake.faults()})
            if path == "/_fake/faults":
                return self._send(200, {"faults": fake.faults()})
            if path == "/_fake/tags" and self.command == "POST":
                if "tags" in data:
                    fake.set_tags(data["repo"], data["tags"])
                if "extra" in data:
                    fake.extra_tags[data["repo"]] = int(data["extra"])
                return self._send(200, {"ok": True})
        except (ValueError, TypeError, KeyError) as e:
            return self._send(400, {"error": str(e)})
        self._send(404, {"error": f"unknown control endpoint {self.command} {path}"})


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m tests.support.fake_acr", description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--registry", help="take tags from this Registry v2, e.g. 127.0.0.1:5000")
    p.add_argument("--registry-user", default=env.REGISTRY_USER)
    p.add_argument("--registry-password", default=env.REGISTRY_PASSWORD)
    p.add_argument("--key", action="append", metavar="ID:SECRET", help="accepted access key (repeatable)")
    p.add_argument("--instance", action="append", help="enterprise instance id (repeatable)")
    p.add_argument("--tags-file", help='JSON {"ns/repo": {"tag": "sha256:..."}}')
    p.add_argument("--extra-tags", action="append", default=[], metavar="NS/REPO=N")
    p.add_argument("--order", choices=ORDERS, default="name")
    p.add_argument("--personal-page-max", type=int, default=100)
    p.add_argument("--region", default="cn-hangzhou")
    p.add_argument(
        "--tls", action="store_true", help="the strict fake on 127.0.0.2:443 (scripts/dev-env.sh world)"
    )
    a = p.parse_args(argv)
    tags = None
    if a.tags_file:
        with open(a.tags_file) as f:
            tags = json.load(f)
    fake = FakeAcr(
        tags=tags,
        registry=a.registry,
        registry_auth=(a.registry_user, a.registry_password),
        extra_tags={r: int(n) for r, n in (e.rsplit("=", 1) for e in a.extra_tags)},
        order=a.order,
        access_keys=dict(k.split(":", 1) for k in a.key) if a.key else None,
        instances=tuple(a.instance or (DEFAULT_INSTANCE,)),
        region=a.region,
        personal_page_max=a.personal_page_max,
        host=a.host,
        port=a.port,
        tls=a.tls,
    )
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with fake:
        print(f"fake-acr listening on {fake.url}", flush=True)
        stop.wait()


if __name__ == "__main__":
    main()
