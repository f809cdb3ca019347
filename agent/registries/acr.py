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
from typing import Any

from loguru import logger

from agent.choices import Edition
from agent.config.schema import AliyunSettings
from agent.errors import AgentError, RegistryError
from agent.model import RepoKey
from agent.registries.acr_hosts import AcrHost, parse_host
from agent.registries.acr_instances import JsonCache, find_instance
from agent.registries.aliyun import AliyunRegistry
from agent.registries.aliyun_sdk import CA_BUNDLE_ENV
from agent.registries.credentials import CredentialsProvider, provider_for
from agent.registries.oci import OciRegistry

SOURCES_FILE = "acr-sources.json"  # which source answered, per repository: `agent status` shows it


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
        host_auth: Callable[[str], tuple[str, str] | None] = lambda host: None,
        on_request: Callable[[str, float, str], None] | None = None,
        client_options: Mapping[str, Any] | None = None,
    ) -> None:
        self._settings = settings
        self._instance_ids = {h.lower(): i for h, i in (instance_ids or {}).items()}
        self._host_auth = host_auth
        self._on_request = on_request
        self._options = dict(client_options or {})
        self._lock = threading.Lock()
        self._clients: dict[tuple[str, str, str | None], AliyunRegistry] = {}
        self._creds: CredentialsProvider | None = (
            None  # one for every client; the chain is asked on first use
        )
        self._instances = JsonCache(Path(state_dir) / "acr-instances.json")
        self._digests = JsonCache(Path(state_dir) / "acr-digests.json")
        self._sources = JsonCache(Path(state_dir) / SOURCES_FILE)
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
            host, region=a.region, edition=a.edition, instance_id=self._instance_ids.get(host.lower()),
            default_instance_id=a.instance_id,
        )  # fmt: skip

    def client(self, target: AcrHost) -> AliyunRegistry:
        """The API client for the target's (region, edition, instance); finds the instance if needed."""
        instance = target.instance_id
        if target.edition is Edition.ENTERPRISE and instance is None:
            instance = self._instances.load().get(target.host.lower())
            if not isinstance(instance, str):
                instance = find_instance(self._client_for(target.region, Edition.PERSONAL, None), target)
                self._instances.put(target.host.lower(), instance)
        client = self._client_for(target.region, target.edition, instance)
        if target.form != "crpi":
            client.serve(target.host)
        return client

    def _client_for(self, region: str, edition: Edition, instance: str | None) -> AliyunRegistry:
        key = (region, edition, instance)
        with self._lock:
            if key not in self._clients:
                a = self._settings
                self._clients[key] = AliyunRegistry(  # RegistryError CONFIG e.g. for a missing CA bundle
                    credentials=self._credentials(), region=region, edition=edition, instance_id=instance,
                    endpoint=a.endpoint, ca_file=a.ca_file, read_timeout=a.timeout,
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
        client = self.client(t)
        api = f"ACR API {t.edition} ({'2018-12-01' if t.edition is Edition.ENTERPRISE else '2016-06-07'})"
        return {"form": t.form, "region": t.region, "edition": t.edition, "instance": client.instance_id,
                "endpoint": client.endpoint, "api": api}  # fmt: skip

    # -- the Registry port ----------------------------------------------------------------
    def latest(self, repo: RepoKey, tags: Collection[str]) -> dict[str, str]:
        try:
            t = self.target(repo.host)
        except ValueError as e:
            raise RegistryError(str(e), code="UNMAPPABLE_HOST") from None
        client = self.client(t)
        source = f"ACR API {t.edition} {t.region}" + (f" {client.instance_id}" if client.instance_id else "")
        try:
            found = client.latest(repo, tags)
        except RegistryError as e:
            if e.code == "INSTANCE_NOT_EXIST" and t.instance_id is None:  # found once, gone since: look again
                self._instances.drop(t.host.lower())
            if t.form != "crpi" or e.code != "REPO_NOT_EXIST":
                raise
            logger.info("{}: the personal API does not know this crpi repository; asking the registry", repo)
            found, source = self._oci.latest(repo, tags), "registry HEAD"
            self._note_source(repo, source)
            return found
        self._note_source(repo, source)
        return found

    def tags(self, repo: RepoKey) -> list[tuple[str, float | None]]:
        """Every tag of `repo` with its update time (tag patterns): the whole list, from the API that serves it."""
        try:
            t = self.target(repo.host)
        except ValueError as e:
            raise RegistryError(str(e), code="UNMAPPABLE_HOST") from None
        try:
            return self.client(t).tags(repo)
        except RegistryError as e:
            if t.form != "crpi" or e.code != "REPO_NOT_EXIST":
                raise
            return self._oci.tags(repo)

    def credentials(self, host: str) -> tuple[str, str] | None:
        """A temporary token, only for hosts of the region or instance that issues it; never for crpi."""
        try:
            t = self.target(host)
        except ValueError:
            return None
        if t.form == "crpi":  # whether the 2016 API's tokens open crpi registries is not known
            return None
        return self.client(t).credentials(host)

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
                key, api_digest, registry,
            )  # fmt: skip
        self._digests.put(key, {"api": api_digest, "registry": registry})
        return registry

    def _note_source(self, repo: RepoKey, source: str) -> None:
        if self._sources.load().get(str(repo)) != source:
            logger.info("{}: digests from {}", repo, source)
            self._sources.put(str(repo), source)
