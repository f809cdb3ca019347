"""ACR for every image host: the right API (region, edition, instance) for each, made on first use.

- personal hosts -> the 2016 API of the host's region;
- enterprise hosts -> the 2018 API, with the instance from the config or found by ListInstance;
- crpi hosts -> the personal API first, then the registry's own Registry v2 HEAD.
Before an update, the API's digest is cross-checked once with a registry HEAD (`confirm`); the registry wins.
Temporary tokens go only to the hosts of the region or instance that issued them.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any, TypeVar

from loguru import logger

from agent.choices import Edition
from agent.config.schema import AliyunSettings
from agent.errors import AgentError, RegistryError
from agent.model import RepoKey
from agent.registries.acr_hosts import AcrHost, parse_host
from agent.registries.acr_instances import JsonCache, find_instance
from agent.registries.acr_public import (
    INSTANCE_NOT_FOUND,
    NO_CREDENTIALS,
    Routes,
    both_answers,
    falls_back,
    registry_only,
    registry_source,
)
from agent.registries.aliyun import AliyunRegistry
from agent.registries.aliyun_sdk import CA_BUNDLE_ENV
from agent.registries.credentials import CredentialsProvider, provider_for
from agent.registries.oci import OciRegistry

T = TypeVar("T")
SOURCES_FILE = "acr-sources.json"  # which source answered, per repository: `agent status` shows it


def _endpoints(configured: str | None, region: str, vpc: bool) -> tuple[str, str | None]:
    """The API endpoint for a region, and the other network's to fall back to once when it cannot be reached."""
    if configured:  # [aliyun] endpoint: tests and proxies, no fallback
        return configured, None
    public, private = f"https://cr.{region}.aliyuncs.com", f"https://cr-vpc.{region}.aliyuncs.com"
    return (private, public) if vpc else (public, private)


def load_sources(state_dir: Path) -> dict[str, Any]:
    return JsonCache(Path(state_dir) / SOURCES_FILE).load()


class AcrRegistry:
    """The Registry port for every ACR watch, whatever its host."""

    def __init__(
        self,
        settings: AliyunSettings,
        *,
        state_dir: Path,
        instance_ids: Mapping[str, str] | None = None,  # host -> cri-... from watch entries
        regions: Mapping[str, str] | None = None,  # custom domain -> region, from watch entries
        host_auth: Callable[[str], tuple[str, str] | None] = lambda host: None,
        on_request: Callable[[str, float, str], None] | None = None,
        client_options: Mapping[str, Any] | None = None,
    ) -> None:
        self._settings = settings
        self._instance_ids = {h.lower(): i for h, i in (instance_ids or {}).items()}
        self._regions = {h.lower(): r for h, r in (regions or {}).items()}
        self._host_auth = host_auth
        self._on_request = on_request
        self._options = dict(client_options or {})
        self._lock = threading.Lock()
        self._clients: dict[tuple[Any, ...], AliyunRegistry] = {}  # (region, edition, instance[, "vpc"])
        self._creds: CredentialsProvider | None = None  # one for every client; the chain asked on first use
        self._instances = JsonCache(Path(state_dir) / "acr-instances.json")
        self._digests = JsonCache(Path(state_dir) / "acr-digests.json")
        self._sources = JsonCache(Path(state_dir) / SOURCES_FILE)
        self._routes = Routes(Path(state_dir))
        self._tokenless: set[str] = set()  # hosts being followed through the registry right now
        cafile = settings.ca_file or os.environ.get(CA_BUNDLE_ENV) or None
        # the private CA for registry HEADs too; a missing file is reported by the API clients
        self.cafile = cafile if cafile and os.path.isfile(cafile) else None
        self._oci = OciRegistry(auth=self.registry_login, cafile=self.cafile, timeout=settings.timeout)

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()

    # -- where a host goes ----------------------------------------------------------------
    def target(self, host: str) -> AcrHost:
        """Raises ValueError for a host it cannot map (`agent check` names those first)."""
        a = self._settings
        return parse_host(
            host,
            region=self._regions.get(host.lower()) or a.region,
            edition=a.edition,
            instance_id=self._instance_ids.get(host.lower()),
            default_instance_id=a.instance_id,
        )

    def client(self, target: AcrHost) -> AliyunRegistry:
        """The API client for the target's (region, edition, instance); finds the instance if needed."""
        instance = target.instance_id
        if target.edition is Edition.ENTERPRISE and instance is None:
            instance = self._instances.load().get(target.host.lower())
            if not isinstance(instance, str):
                discovery = self._client_for(target.region, Edition.PERSONAL, None, target.vpc)
                instance = find_instance(discovery, target)
                self._instances.put(target.host.lower(), instance)
        client = self._client_for(target.region, target.edition, instance, target.vpc)
        if target.form != "crpi":
            client.serve(target.host)
        return client

    def _client_for(self, region: str, edition: Edition, instance: str | None, vpc: bool) -> AliyunRegistry:
        network = self._settings.api_network
        vpc = network == "vpc" or (network == "auto" and vpc)
        key = (region, edition, instance) + (("vpc",) if vpc else ())
        with self._lock:
            if key not in self._clients:
                a = self._settings
                endpoint, other = _endpoints(a.endpoint, region, vpc)
                # without a static key, the credential chain: NO_CREDENTIALS at the first request if none
                self._clients[key] = AliyunRegistry(  # RegistryError CONFIG e.g. for a missing CA bundle
                    credentials=self._credentials(), region=region, edition=edition, instance_id=instance,
                    endpoint=endpoint, fallback_endpoint=other, ca_file=a.ca_file, read_timeout=a.timeout,
                    retries=a.retries, on_request=self._on_request, **self._options,
                )  # fmt: skip
            return self._clients[key]

    def _credentials(self) -> CredentialsProvider:
        if self._creds is None:
            self._creds = provider_for(self._settings)
        return self._creds

    def credentials_source(self) -> str:
        """Where the API credentials come from and how long they last (`agent check --online`); never the
        secret. Raises RegistryError (NO_CREDENTIALS) when there are none."""
        return self._credentials().current().describe()

    def describe(self, host: str) -> dict[str, Any]:
        """Where `host` resolves: for `agent check --online` and logs."""
        t = self.target(host)
        where = {
            "form": t.form,
            "region": t.region,
            "edition": t.edition,
            "instance": None,
            "endpoint": f"https://{host}",
        }
        client, fixed = None, registry_only(t)
        try:
            client = self.client(t) if fixed is None else None
        except RegistryError as e:
            if not falls_back(e):
                raise
            fixed = f"its registry: {e}"
        if client is None:
            return {**where, "api": f"registry only ({fixed})"}
        api = f"ACR API {t.edition} ({'2018-12-01' if t.edition is Edition.ENTERPRISE else '2016-06-07'})"
        return {"form": t.form, "region": t.region, "edition": t.edition, "instance": client.instance_id,
                "endpoint": client.endpoint, "api": api}  # fmt: skip

    # -- the Registry port ----------------------------------------------------------------
    def latest(self, repo: RepoKey, tags: Collection[str], *, recheck: bool = False) -> dict[str, str]:
        """`recheck`: ask the API even when the registry was chosen for this image (`check --online`)."""
        wanted = sorted(tags)
        return self._follow(
            repo, lambda c: c.latest(repo, wanted), lambda: self._oci.latest(repo, wanted), wanted, recheck
        )

    def tags(self, repo: RepoKey) -> list[tuple[str, float | None]]:
        """Every tag of `repo` with its update time (tag patterns): the whole list, from the source that serves it."""
        return self._follow(repo, lambda c: c.tags(repo), lambda: self._oci.tags(repo), None, False)

    def _follow(self, repo: RepoKey, api: Callable[[AliyunRegistry], T], registry: Callable[[], T],
                wanted: list[str] | None, recheck: bool) -> T:  # fmt: skip
        """The API's answer, or the registry's when the API cannot answer for this image (acr_public)."""
        try:
            t = self.target(repo.host)
        except ValueError as e:
            raise RegistryError(str(e), code="UNMAPPABLE_HOST") from None
        fresh: RegistryError | None = None
        entry = self._routes.remembered(repo, recheck=recheck)
        reason, code = (registry_only(t), None) if entry is None else (entry.get("why"), entry.get("code"))
        if reason is None:
            try:
                client = self.client(t)
                found = api(client)
            except RegistryError as e:
                if (
                    e.code == "INSTANCE_NOT_EXIST" and t.instance_id is None
                ):  # found once, gone since: look again
                    self._instances.drop(t.host.lower())
                if not falls_back(e):
                    raise
                fresh, reason, code = e, str(e), e.code
                logger.info("{}: {}; asking the registry", repo, e)
            else:
                self._routes.api_answered(repo, host_too=True)
                instance = f" {client.instance_id}" if client.instance_id else ""
                self._note_source(repo, f"ACR API {t.edition} {t.region}{instance}")
                return found
        if code == INSTANCE_NOT_FOUND:  # no token to ask for while the registry answers
            self._tokenless.add(t.host.lower())
        try:
            out = registry()
        except RegistryError as r:
            raise both_answers(repo, str(reason), str(r), code) from None
        finally:
            self._tokenless.discard(t.host.lower())
        if wanted is not None and not out:
            raise both_answers(repo, str(reason), f"it has no tag {', '.join(wanted)}", code)
        if fresh is not None and fresh.code != NO_CREDENTIALS:
            self._routes.remember(repo, fresh)
        self._note_source(repo, registry_source(code))
        return out

    def credentials(self, host: str) -> tuple[str, str] | None:
        """A temporary token, only for hosts of the region or instance that issues it; never for crpi,
        nor for a host whose instance is not in the account, nor without an AccessKey."""
        try:
            t = self.target(host)
        except ValueError:
            return None
        if (
            t.form == "crpi"
            or registry_only(t)
            or host.lower() in self._tokenless
            or self._routes.host_routed(host)
        ):
            return None  # whether the 2016 API's tokens open crpi registries is not known
        try:
            return self.client(t).credentials(host)
        except RegistryError as e:
            if falls_back(e):
                return None
            raise

    # -- the registry's own word ----------------------------------------------------------
    def builds(self, repo: RepoKey) -> tuple[Any, str]:
        """The newest ACR build records of `repo` and a console link, through the client for its host."""
        try:
            client = self.client(self.target(repo.host))
        except ValueError as e:
            raise RegistryError(str(e), code="UNMAPPABLE_HOST") from None
        return client.builds(repo)

    def registry_login(self, host: str) -> tuple[str, str] | None:
        configured = self._host_auth(host)
        if configured:
            return configured
        try:
            return self.credentials(host)
        except AgentError as e:
            logger.warning("{}: no temporary token for the registry HEAD ({})", host, e)
            return None

    def pull_probe(self, repo: RepoKey, tag: str) -> tuple[str, str | None]:
        """`check --online`: one HEAD of the tag's manifest with what a pull uses, the temporary token first.
        Returns (whose credentials, the digest or None); raises RegistryError (DENIED, UNAUTHORIZED...)."""
        creds, label = self.credentials(repo.host), "the temporary token"
        if creds is None:
            creds = self.registry_login(repo.host)
            label = "the registry login" if creds else "no login (anonymous)"
        oci = OciRegistry(auth=lambda host: creds, cafile=self.cafile, timeout=self._settings.timeout)
        try:
            return label, oci.latest(repo, [tag]).get(tag)
        except RegistryError as e:
            e.args = (f"with {label}: {e.args[0]}",)
            raise

    def registry_digest(self, repo: RepoKey, tag: str) -> str | None:
        """Docker-Content-Digest of one HEAD that accepts index and manifest types."""
        return self._oci.latest(repo, [tag]).get(tag)

    def confirm(self, repo: RepoKey, tag: str, api_digest: str) -> str:
        """Before an update: the digest docker records for a pull by tag. One HEAD per new API digest (cached)."""
        key = f"{repo}:{tag}"
        known = self._digests.load().get(key)
        if (
            isinstance(known, dict)
            and known.get("api") == api_digest
            and isinstance(known.get("registry"), str)
        ):
            return str(known["registry"])
        try:
            registry = self.registry_digest(repo, tag)
        except AgentError as e:
            logger.warning("{}: registry HEAD failed ({}); using the API's digest {}", key, e, api_digest)
            return api_digest
        if registry is None:
            logger.warning("{}: the registry does not have the tag the API lists; using {}", key, api_digest)
            return api_digest
        if registry != api_digest:
            logger.warning(
                "{}: the API says {} but the registry says {} (a multi-arch index?); trusting the registry",
                key,
                api_digest,
                registry,
            )
            if api_digest not in self._children(repo, registry):
                # not an index of the API's manifest: the API may report another repository of the same name
                # (an old instance's); remembering the pair could hide the next push, so ask again next time
                return registry
        self._digests.put(key, {"api": api_digest, "registry": registry})
        return registry

    def _children(self, repo: RepoKey, digest: str) -> set[str]:
        try:
            return self._oci.index_children(repo, digest)
        except AgentError as e:
            logger.warning("{}: could not read the index {} ({})", repo, digest, e)
            return set()

    def source_of(self, repo: RepoKey) -> str | None:
        """Which source answered for `repo` last (state_dir/acr-sources.json)."""
        found = self._sources.load().get(str(repo))
        return found if isinstance(found, str) else None

    def _note_source(self, repo: RepoKey, source: str) -> None:
        if self._sources.load().get(str(repo)) != source:
            logger.info("{}: digests from {}", repo, source)
            self._sources.put(str(repo), source)
