"""The ACR adapter: latest tag digests and temporary pull credentials from the ACR OpenAPI.

Personal edition: ROA 2016-06-07 (GetRepoTags, GetAuthorizationToken).
Enterprise edition: RPC 2018-12-01 (GetRepository -> RepoId, ListRepoTag, GetAuthorizationToken).
SDK data never leaves this module; every failure becomes a RegistryError with secrets redacted.
"""

from __future__ import annotations

import functools
import json
import random
import re
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Collection
from typing import Any

import aliyunsdkcore.client  # noqa: F401  # with the adapter, at start-up: not inside the first pass (~20 ms)
from aliyunsdkcore.acs_exception.exceptions import ClientException, ServerException
from aliyunsdkcore.http import protocol_type
from aliyunsdkcore.request import AcsRequest
from aliyunsdkcr.request.v20160607 import GetAuthorizationTokenRequest as PersonalToken
from loguru import logger

from agent.choices import Edition
from agent.errors import RegistryError, TagDigestError
from agent.model import RepoKey, normalize_digest
from agent.registries import acr_requests as requests
from agent.registries import is_loopback
from agent.registries.acr_builds import list_builds
from agent.registries.acr_hints import clock_offset
from agent.registries.aliyun_errors import ErrorWords, expired
from agent.registries.aliyun_sdk import _as_int, _field, _split_endpoint, _unreachable, tls_verify
from agent.registries.credentials import Credentials, CredentialsProvider, SignedClients, StaticCredentials
from agent.secret import register

MAX_PAGES = 200  # 20 000 tags at 100 a page: beyond that something is wrong
TOKEN_MARGIN = 300.0  # renew a pull token this many seconds before it expires
_REGION = re.compile(r"^[a-z0-9-]+$")
# The SDK switches TLS on by identity (`protocol is PT.HTTPS`): only its own constants will do.
_PROTOCOLS = {"http": protocol_type.HTTP, "https": protocol_type.HTTPS}


class AliyunRegistry:
    """Registry port for ACR, through aliyun-python-sdk-core with our own retries."""

    def __init__(
        self,
        *,
        access_key_id: str = "",
        access_key_secret: str = "",
        region: str,
        edition: Edition = Edition.PERSONAL,
        instance_id: str | None = None,
        endpoint: str | None = None,
        fallback_endpoint: str | None = None,
        security_token: str | None = None,
        ca_file: str | None = None,
        connect_timeout: float = 5,
        read_timeout: float = 10,
        retries: int = 3,
        backoff: float = 0.5,
        backoff_max: float = 8.0,
        total_timeout: float = 60.0,
        page_size: int = 100,
        registry_hosts: Collection[str] = (),
        sleep: Callable[[float], None] = time.sleep,
        on_request: Callable[[str, float, str], None] | None = None,
        credentials: CredentialsProvider | None = None,  # else the static key given here
    ) -> None:
        if credentials is None and (not access_key_id or not access_key_secret):
            raise RegistryError("access_key_id and access_key_secret are required", code="CONFIG")
        if not _REGION.match(region or ""):
            raise RegistryError(f"invalid region {region!r}", code="CONFIG")
        if edition not in tuple(Edition):  # config gives the enum; a plain "enterprise" is fine too
            raise RegistryError(f"edition must be 'personal' or 'enterprise', got {edition!r}", code="CONFIG")
        edition = Edition(edition)
        if edition is Edition.ENTERPRISE and not instance_id:
            raise RegistryError("the enterprise edition needs instance_id (cri-...)", code="CONFIG")
        self.region, self.edition, self.instance_id = region, edition, instance_id
        self._scheme, self._host = _split_endpoint(endpoint or f"https://cr.{region}.aliyuncs.com")
        # the other network's endpoint (cr-vpc. or cr.): asked once when this one cannot be reached
        self._other = _split_endpoint(fallback_endpoint) if fallback_endpoint else None
        verify = tls_verify(ca_file)
        self._creds = credentials or StaticCredentials(access_key_id, access_key_secret, security_token)
        self._retries, self._backoff, self._backoff_max = max(0, retries), backoff, backoff_max
        self._total_timeout, self._page_size = total_timeout, page_size
        self._sleep, self._on_request = sleep, on_request
        self._errors = ErrorWords(self._host)
        self._errors.clock = lambda: clock_offset(self.endpoint, verify, no_proxy)
        self._registry_hosts = {h.lower() for h in registry_hosts}
        self._lock = threading.Lock()
        self._repo_ids: dict[tuple[str, str], str] = {}
        self._pull: tuple[str, str, float] | None = None  # user, password, expiry (epoch s)
        # The SDK applies HTTP(S)_PROXY itself and ignores NO_PROXY: decide here.
        no_proxy = is_loopback(self._host) or bool(urllib.request.proxy_bypass(self._host))
        self._sdk = SignedClients(region, self._host, on_rotate=self._rotated, auto_retry=False,
                                  connect_timeout=connect_timeout, timeout=read_timeout, verify=verify,
                                  proxy={"http": None, "https": None} if no_proxy else None)  # fmt: skip

    def _rotated(self) -> None:
        with self._lock:
            self._pull = None  # the pull token carries the old key's identity

    def close(self) -> None:
        """Close pooled connections to the API."""
        self._sdk.close()

    def __enter__(self) -> AliyunRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"AliyunRegistry(edition={self.edition!r}, region={self.region!r}, endpoint={self._host!r})"

    # -- the Registry port ------------------------------------------------------------------
    def latest(self, repo: RepoKey, tags: Collection[str]) -> dict[str, str]:
        wanted = set(tags)
        if not wanted:
            return {}
        deadline = time.monotonic() + self._total_timeout
        if self.edition is Edition.PERSONAL:
            raw = self._personal_tags(repo, wanted, deadline)
        else:
            raw = self._enterprise_tags(repo, wanted, deadline)
        found, bad = {}, {}
        for tag, value in raw.items():
            try:
                found[tag] = normalize_digest(str(value))
            except ValueError:
                bad[tag] = str(value)[:80]
        if bad:
            listed = ", ".join(f"{repo.path}:{t} ({v!r})" for t, v in sorted(bad.items()))
            raise TagDigestError(f"ACR listed an invalid digest for {listed}", found=found, bad=bad)
        return found

    def tags(self, repo: RepoKey) -> list[tuple[str, float | None]]:
        """Every tag with its update time (seconds), paging through the whole list."""
        listed: dict[str, tuple[str, float | None]] = {}
        deadline = time.monotonic() + self._total_timeout
        if self.edition is Edition.PERSONAL:
            self._personal_tags(repo, set(), deadline, listed)
        else:
            self._enterprise_tags(repo, set(), deadline, listed)
        return list(listed.values())

    def credentials(self, host: str) -> tuple[str, str] | None:
        """ACR's temporary pull login (user cr_temp_user, ~1 h) for this edition's registry hosts."""
        if not self._serves(host):
            return None
        self._sdk.client(self._creds.current())  # a rotated key drops the pull token it got
        with self._lock:
            if self._pull and self._pull[2] - TOKEN_MARGIN > time.time():
                return self._pull[0], self._pull[1]
        deadline = time.monotonic() + self._total_timeout
        if self.edition is Edition.PERSONAL:
            request = PersonalToken.GetAuthorizationTokenRequest
            data = _field(self._call("GetAuthorizationToken", "pull credentials", request, deadline), "data")
            user, password = _field(data, "tempUserName"), _field(data, "authorizationToken")
            expiry_ms = _field(data, "expireDate")
        else:
            make = requests.enterprise_token(self.instance_id)
            body = self._call("GetAuthorizationToken", "pull credentials", make, deadline)
            user, password = _field(body, "TempUsername"), _field(body, "AuthorizationToken")
            expiry_ms = _field(body, "ExpireTime")
        if not isinstance(user, str) or not isinstance(password, str) or not user or not password:
            raise RegistryError("unexpected answer from ACR GetAuthorizationToken: no user or token")
        register(password)
        expiry = _as_int(expiry_ms)
        expires = expiry / 1000 if expiry else time.time() + 1800
        with self._lock:
            self._pull = (user, password, expires)
        return user, password

    def _serves(self, host: str) -> bool:
        """Personal: this region's registry[-…] hosts. Enterprise: only the hosts mapped to this instance."""
        host = host.lower()
        if host in self._registry_hosts:
            return True
        r = re.escape(self.region)
        pattern = rf"registry(-vpc|-internal|-intl|-intl-vpc)?\.{r}\.aliyuncs\.com"
        return self.edition is Edition.PERSONAL and re.fullmatch(pattern, host) is not None

    def serve(self, host: str) -> None:
        """Hand this client's temporary token to `host` too (a host the router mapped to it)."""
        with self._lock:
            self._registry_hosts.add(host.lower())

    # -- tag listing ------------------------------------------------------------------------
    def _personal_tags(
        self, repo: RepoKey, wanted: set[str], deadline: float, listed: dict[str, Any] | None = None
    ) -> dict[str, str]:
        page_request = requests.personal_tags(repo)
        try:
            return self._scan("GetRepoTags", repo, wanted, deadline, page_request, listed)
        except RegistryError as e:
            # The personal edition's page-size limit is undocumented: if 100 is refused, use 30 from now on.
            refused = not e.temporary and "page" in f"{e.code} {e}".lower() and self._page_size > 30
            if not refused:
                raise
            logger.warning("ACR refused PageSize={} ({}); using 30", self._page_size, e)
            self._page_size = 30
            return self._scan("GetRepoTags", repo, wanted, deadline, page_request, listed)

    def _enterprise_tags(
        self, repo: RepoKey, wanted: set[str], deadline: float, listed: dict[str, Any] | None = None
    ) -> dict[str, str]:
        page_request = requests.enterprise_tags(self.instance_id, self._repo_id(repo, deadline))
        try:
            return self._scan("ListRepoTag", repo, wanted, deadline, page_request, listed)
        except RegistryError as e:
            if e.code == "REPO_NOT_EXIST":  # deleted and maybe re-created: resolve again next time
                with self._lock:
                    self._repo_ids.pop((repo.namespace, repo.name), None)
            raise

    def _scan(
        self,
        action: str,
        repo: RepoKey,
        wanted: set[str],
        deadline: float,
        page_request: Callable[[int, int], AcsRequest],
        listed: dict[str, Any] | None = None,
    ) -> dict[str, str]:
        """Page through the tag list until every wanted tag is seen or the list ends.

        With `listed`, the whole list: every tag and its update time go there (tag patterns).

        Personal answers nest {tags, total} under data, enterprise ones have {Images, TotalCount};
        keys are matched case-insensitively, and counts may be strings.
        """
        found: dict[str, str] = {}
        seen, size = 0, self._page_size
        for page in range(1, MAX_PAGES + 1):
            body = self._call(action, repo.path, functools.partial(page_request, page, size), deadline)
            if self.edition is Edition.PERSONAL:
                body = _field(body, "data")
            items = _field(body, "tags", "Images")
            if not isinstance(items, list):
                raise RegistryError(f"unexpected answer from ACR {action} for {repo.path}: no tag list")
            for item in items:
                tag = _field(item, "tag")
                if isinstance(tag, str) and tag in wanted:
                    found[tag] = _field(item, "digest")
                if isinstance(tag, str) and listed is not None:
                    stamp = _as_int(_field(item, "imageUpdate", "ImageUpdate"))
                    listed[tag] = (tag, stamp / 1000 if stamp else None)
            seen += len(items)
            total = _as_int(_field(body, "total", "TotalCount"))
            if (listed is None and found.keys() >= wanted) or (total is not None and seen >= total):
                return found
            if not items:
                if total is None:
                    return found
                raise RegistryError(
                    f"ACR {action} for {repo.path}: page {page} came back empty after {seen} of {total} tags; "
                    "refusing to call a tag missing",
                    code="PAGING",
                    temporary=True,
                )
            # Number the next pages in the size the server really used (it may cap what we asked).
            echoed = _as_int(_field(body, "pageSize", "PageSize"))
            if echoed and echoed != size and page == 1:
                size = echoed
        raise RegistryError(f"ACR {action} for {repo.path}: gave up after {MAX_PAGES} pages")

    def _repo_id(self, repo: RepoKey, deadline: float) -> str:
        key = (repo.namespace, repo.name)
        with self._lock:
            if key in self._repo_ids:
                return self._repo_ids[key]

        request = requests.repository(self.instance_id, repo)
        repo_id = _field(self._call("GetRepository", repo.path, request, deadline), "RepoId")
        if not isinstance(repo_id, str) or not repo_id:
            raise RegistryError(f"unexpected answer from ACR GetRepository for {repo.path}: no RepoId")
        with self._lock:
            self._repo_ids[key] = repo_id
        return repo_id

    # -- one API call with retries ----------------------------------------------------------
    def builds(self, repo: RepoKey) -> tuple[Any, str]:
        """The newest build records of `repo` (the build watch) and a console link to them."""
        deadline = time.monotonic() + self._total_timeout
        return list_builds(
            lambda action, what, make: self._call(action, what, make, deadline),
            lambda: self._repo_id(repo, deadline),
            edition=self.edition, region=self.region, instance_id=self.instance_id, repo=repo,
        )  # fmt: skip

    def call(self, action: str, what: str, make: Callable[[], AcsRequest]) -> dict[str, Any]:
        """Any ACR API request (e.g. ListInstance), with this client's retries and error mapping."""
        return self._call(action, what, make, time.monotonic() + self._total_timeout)

    @property
    def endpoint(self) -> str:
        return f"{self._scheme}://{self._host}"

    def _call(
        self, action: str, what: str, make: Callable[[], AcsRequest], deadline: float
    ) -> dict[str, Any]:
        attempt, renewed = 0, False
        while True:
            start = time.monotonic()
            creds = self._creds.current()  # refreshed by its provider before it expires
            try:
                body = self._once(action, what, make, creds)
            except RegistryError as err:
                self._report(action, time.monotonic() - start, err.code or "error")
                if expired(err.code) and not renewed:
                    renewed = True  # a fresh key, if one can be had, and one more try that is no retry
                    if not creds.same_key(self._creds.refresh()):
                        logger.info("ACR {} for {}: the security token expired; retrying with fresh credentials",
                                    action, what)  # fmt: skip
                        continue
                delay = random.uniform(0, min(self._backoff_max, self._backoff * 2**attempt))
                if not err.temporary or attempt >= self._retries or time.monotonic() + delay > deadline:
                    raise
                attempt += 1
                logger.warning("ACR {} for {} failed ({}); retry {}/{} in {:.2f}s",
                               action, what, err, attempt, self._retries, delay)  # fmt: skip
                self._sleep(delay)
                continue
            self._report(action, time.monotonic() - start, "ok")
            return body

    def _once(
        self,
        action: str,
        what: str,
        make: Callable[[], AcsRequest],
        creds: Credentials,
        fallback: bool = True,
    ) -> dict[str, Any]:
        req = make()
        used = self._host
        req.set_endpoint(used)
        req.set_protocol_type(_PROTOCOLS[self._scheme])
        token = creds.token.reveal() if creds.token else None
        if token:  # what the SDK's StsTokenSigner would do, without its env-var surprise
            if req.get_style() == "RPC":
                req.add_query_param("SecurityToken", token)
            else:
                req.add_header("x-acs-security-token", token)
        where = f"ACR {action} for {what}"
        try:
            raw = self._sdk.client(creds).do_action_with_exception(req)
        except ClientException as e:
            if fallback and self._other is not None and _unreachable(e):
                return self._switch(action, what, make, creds, used, self._errors.client(where, e))
            raise self._errors.client(where, e) from None
        except ServerException as e:
            raise self._errors.server(where, e) from None
        except Exception as e:  # the SDK itself can trip (e.g. IndexError on odd error bodies)
            raise self._errors.error(
                f"{where}: unexpected failure in the ACR SDK ({type(e).__name__})", None, False
            ) from None
        try:
            body = json.loads(raw)
        except (TypeError, ValueError):
            body = None
        if not isinstance(body, dict):  # a gateway's HTML page with 200: try again
            raise self._errors.error(f"unexpected answer from {where}: not a JSON object", "NOT_JSON", True)
        refused = self._errors.body(where, body)
        if refused is not None:
            raise refused
        return body

    def _switch(
        self, action: str, what: str, make: Callable[[], AcsRequest], creds: Credentials, used: str,
        err: RegistryError,
    ) -> dict[str, Any]:  # fmt: skip
        """`used` cannot be reached: ask the other network's endpoint once; it stays in use if it answers."""
        with self._lock:
            if self._host == used and self._other is not None:  # not switched by a concurrent call already
                (self._scheme, self._host), self._other = self._other, (self._scheme, self._host)
                self._errors.host = self._host
        try:
            body = self._once(action, what, make, creds, fallback=False)
        except RegistryError:
            with self._lock:  # neither answers: the next call starts from the first one again
                if self._host != used and self._other is not None and self._other[1] == used:
                    (self._scheme, self._host), self._other = self._other, (self._scheme, self._host)
                    self._errors.host = self._host
            raise
        logger.warning(
            "ACR API {} could not be reached ({}); {} answered and is used from now on", used, err, self._host
        )
        return body

    def _report(self, action: str, seconds: float, outcome: str) -> None:
        if self._on_request is None:
            return
        try:
            self._on_request(action, seconds, outcome)
        except Exception:  # metrics must never break a pass
            logger.exception("on_request callback failed")
