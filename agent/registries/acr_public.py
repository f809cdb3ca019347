"""Which source answers an ACR entry: the ACR API, or the registry itself (public images, no AccessKey).

This module is the one place that decides it:
- no AccessKey can be had at all: the API client raises `NO_CREDENTIALS` at its first request (no static
  key, and the credential chain finding nothing), and every ACR entry is followed through
  the registry: an anonymous `HEAD`, or the docker config's login;
- the API answers that the image is not in this account (`NOT_IN_ACCOUNT`: an enterprise instance that
  ListInstance does not list, a repository or namespace it does not know): the registry is asked, and
  when it answers, that choice is remembered in state_dir/acr-routes.json, per host for an instance,
  per repository otherwise. The API is asked again after `RECHECK`, and on `agent check --online`;
- `registry.aliyuncs.com` (no region in it) always goes to the registry;
- any other API error is the entry's own failure, as before.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.errors import RegistryError
from agent.model import RepoKey
from agent.registries.acr_hosts import AcrHost
from agent.registries.acr_instances import JsonCache

ROUTES_FILE = "acr-routes.json"
RECHECK = 24 * 3600.0  # ask the API again about a remembered "not in this account" after this long
NO_CREDENTIALS = "NO_CREDENTIALS"  # no AccessKey from the config, the environment or the credential chain
INSTANCE_NOT_FOUND = (
    "INSTANCE_NOT_FOUND"  # acr_instances.find_instance: no instance in the account serves the host
)
# "not in this account": the registry may still serve it to anyone (a vendor's public image)
NOT_IN_ACCOUNT = frozenset(
    {
        INSTANCE_NOT_FOUND,
        "REPO_NOT_EXIST",
        "REPO_NOT_FOUND",
        "NAMESPACE_NOT_EXIST",
        "NAMESPACE_NOT_FOUND",
        "REPO_NAMESPACE_NOT_EXIST",
        "USER_NOT_EXIST",  # a RAM user without a personal registry: someone else's image, or the hint
    }
)


def falls_back(err: RegistryError) -> bool:
    """True when the registry should be asked instead of failing the entry on `err`."""
    return err.code in NOT_IN_ACCOUNT or err.code == NO_CREDENTIALS


class NeitherAnswers(RegistryError):
    """Neither the API nor the registry can read an image; `.code` is the API's answer."""


def both_answers(repo: RepoKey, api: str, registry: str, code: str | None) -> NeitherAnswers:
    """Neither the API nor the registry can read `repo`: say both answers, and what to do."""
    return NeitherAnswers(
        f"{repo}: the ACR API cannot answer for it ({api}), and the registry cannot either ({registry}); "
        "if the image is yours, check the host and the AccessKey's account and region; if it is someone "
        "else's private image, give its login in [registry_auth] or `docker login`",
        code=code,
    )


def registry_source(code: str | None) -> str:
    """What `agent status` shows for an image followed through the registry."""
    if code == NO_CREDENTIALS:
        return "registry HEAD (no AccessKey)"
    return f"registry HEAD (not in this account: {code})" if code else "registry HEAD (no region in the host)"


class Routes:
    """The remembered choices: key (a host, or host/ns/repo) -> {via, why, code, since, asked}."""

    def __init__(self, state_dir: Path, clock: Callable[[], float] = time.time) -> None:
        self._cache = JsonCache(Path(state_dir) / ROUTES_FILE)
        self._clock = clock

    @staticmethod
    def key(repo: RepoKey, err: RegistryError) -> str:
        """An instance not in the account is the whole host's; a repository only itself."""
        return repo.host.lower() if err.code == INSTANCE_NOT_FOUND else str(repo)

    def remembered(self, repo: RepoKey, *, recheck: bool = False) -> dict[str, Any] | None:
        """The registry choice for `repo` while it is fresh; None when the API is to be asked."""
        if recheck:
            return None
        data = self._cache.load()
        for key in (repo.host.lower(), str(repo)):
            entry = data.get(key)
            if isinstance(entry, dict) and self._clock() - float(entry.get("asked") or 0) < RECHECK:
                return entry
        return None

    def remember(self, repo: RepoKey, err: RegistryError) -> None:
        key, now = self.key(repo, err), self._clock()
        old = self._cache.load().get(key)
        since = old.get("since") if isinstance(old, dict) else None
        self._cache.put(
            key,
            {"via": "registry", "code": err.code, "why": str(err)[:300], "since": since or now, "asked": now},
        )

    def api_answered(self, repo: RepoKey, host_too: bool) -> None:
        """The API serves `repo` (again): forget the registry choice for it (and its host's, if asked)."""
        data = self._cache.load()
        for key in (str(repo), repo.host.lower()) if host_too else (str(repo),):
            if key in data:
                self._cache.drop(key)

    def host_routed(self, host: str) -> bool:
        """True when the whole host's instance is known not to be in the account (no temporary token)."""
        entry = self._cache.load().get(host.lower())
        return isinstance(entry, dict) and self._clock() - float(entry.get("asked") or 0) < RECHECK

    def all(self) -> dict[str, Any]:
        return {k: v for k, v in self._cache.load().items() if isinstance(v, dict)}


def registry_only(target: AcrHost) -> str | None:
    """Why a host can only be followed through the registry, whatever the API would say; or None."""
    if target.form == "alias":
        return "registry.aliyuncs.com names no region, so no ACR API can be asked"
    return None


def keyless(settings: Any) -> bool:
    """No AccessKey in the config or the environment (config.AliyunSettings), and no source of the credential
    chain set up here (checked without importing it)."""
    from agent.registries.credentials import chain_may_answer  # the credentials module: only for ACR watches

    return not (settings.access_key_id and settings.access_key_secret) and not chain_may_answer()


def describe_routes(state_dir: Path) -> list[str]:
    """Lines for `agent check`: which ACR images are remembered as followed through the registry, and why."""
    lines = []
    for key, entry in sorted(Routes(state_dir).all().items()):
        asked = time.strftime("%Y-%m-%d %H:%M", time.localtime(float(entry.get("asked") or 0)))
        lines.append(
            f"  {key}: followed through the registry (the ACR API said {entry.get('code')}; "
            f"asked {asked}, again after a day or on `agent check --online`)"
        )
    return lines
