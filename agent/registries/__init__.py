"""The Registry port: where the latest digest of a tag comes from."""

from __future__ import annotations

import ipaddress
import urllib.parse
from collections.abc import Collection
from typing import Any, Protocol, runtime_checkable

from agent.model import RepoKey


class Registry(Protocol):
    def latest(self, repo: RepoKey, tags: Collection[str]) -> dict[str, str]:
        """Return `{tag: "sha256:<hex>"}` for each of `tags` that exists in `repo`.

        Tags the repository does not have are left out. Makes as few API requests as it
        can (one, when every wanted tag is on the first page). Raises RegistryError.
        """
        ...

    def tags(self, repo: RepoKey) -> list[tuple[str, float | None]]:
        """Every tag of `repo` with its update time when the registry says it (tag patterns).

        Pages through the whole list. Raises RegistryError.
        """
        ...

    def credentials(self, host: str) -> tuple[str, str] | None:
        """A (username, password) for pulling from `host`, if this registry can issue one."""
        ...


@runtime_checkable
class Confirms(Protocol):
    """A registry that can check the API's answer against the registry itself (ACR: a registry HEAD)."""

    def confirm(self, repo: RepoKey, tag: str, api_digest: str) -> str:
        """The digest `tag` points to by the registry's own word; `api_digest` when it cannot tell."""
        ...


@runtime_checkable
class PrivateCA(Protocol):
    """A registry whose hosts may use a private CA (ACR's `[aliyun] ca_file`): reads of the same hosts use it."""

    cafile: str | None


@runtime_checkable
class ListsBuilds(Protocol):
    """A registry that builds images too (ACR): its newest build records, for the build watch."""

    def builds(self, repo: RepoKey) -> tuple[Any, str]:
        """(the API's answer, a console link to the builds); agent/notify/buildwatch.py reads the answer."""
        ...


def is_loopback(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1, with or without a port: no proxy, plain http allowed."""
    name = urllib.parse.urlsplit("//" + host).hostname or host
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
