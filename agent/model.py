"""Value types shared by every layer. No I/O here."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields

from agent.compat import StrEnum

# The agent's own container names, beside the name it replaces: one spelling for every module.
OLD_SUFFIX = "--cr-agent-old"  # stop-first: the old container's name while the new one proves itself
NEW_SUFFIX = "--cr-agent-new"  # start-first: the new container's name until it is proven
HELPER_SUFFIX = "--cr-agent-self-update"  # the short-lived container that replaces the agent's own
MARK = "--cr-agent-"  # in every name above: the engine lists only those (a name filter), not every container

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
# Docker reference grammar, lower-case path components.
_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_HOST = re.compile(r"^(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$")


def normalize_digest(value: str) -> str:
    """Return `sha256:<hex>` for a bare or prefixed sha256 digest; raise ValueError otherwise."""
    v = value.strip().lower()
    if v.startswith("sha256:"):
        v = v[len("sha256:") :]
    if not _HEX64.match(v):
        raise ValueError(f"not a sha256 digest: {value!r}")
    return "sha256:" + v


def short_digest(digest: str | None) -> str:
    """The first 12 hex digits, for one-line reports; "-" for none."""
    return digest[7:19] if digest else "-"


@dataclass(frozen=True, order=True)
class RepoKey:
    """One repository on one registry: `<host>/<namespace>/<name>`."""

    host: str
    namespace: str
    name: str

    @property
    def path(self) -> str:
        return f"{self.namespace}/{self.name}"

    def __str__(self) -> str:
        return f"{self.host}/{self.path}"


@dataclass(frozen=True)
class ImageRef:
    """A watched image: `host/namespace/name:tag`. ACR paths have exactly two components."""

    host: str
    namespace: str
    name: str
    tag: str

    @classmethod
    def parse(cls, text: str) -> ImageRef:
        """Parse `host/namespace/name[:tag]`; raise ValueError naming what is wrong."""
        if not text or text != text.strip():
            raise ValueError("image reference is empty or has surrounding spaces")
        if "@" in text:
            raise ValueError("give a tag to follow, not a digest (remove '@sha256:...')")
        host, _, rest = text.partition("/")
        host = host[:-1] if host.endswith(".") and ":" not in host else host.replace(".:", ":")  # FQDN's dot
        if not rest or not ("." in host or ":" in host or host == "localhost"):
            raise ValueError(
                "image must start with a registry host, e.g. registry.cn-hangzhou.aliyuncs.com/ns/repo:tag"
            )
        if not _HOST.match(host):
            raise ValueError(f"invalid registry host {host!r}")
        path, tag = rest, "latest"
        last = rest.rsplit("/", 1)[-1]
        if ":" in last:
            path, tag = rest.rsplit(":", 1)
        parts = path.split("/")
        if len(parts) != 2:
            raise ValueError(f"repository path must be <namespace>/<repository>, got {path!r}")
        for part in parts:
            if part != part.lower():
                raise ValueError(f"upper-case letters are not allowed in a repository name ({part!r})")
            if not _COMPONENT.match(part):
                raise ValueError(f"invalid repository path component {part!r}")
        if not _TAG.match(tag):
            raise ValueError(f"invalid tag {tag!r}")
        return cls(host, parts[0], parts[1], tag)

    @property
    def repo(self) -> RepoKey:
        return RepoKey(self.host, self.namespace, self.name)

    @property
    def repository(self) -> str:
        """`host/namespace/name`, without the tag."""
        return f"{self.host}/{self.namespace}/{self.name}"

    def at(self, digest: str) -> str:
        """The pull reference for a digest: `host/namespace/name@sha256:...`."""
        return f"{self.repository}@{digest}"

    def __str__(self) -> str:
        return f"{self.repository}:{self.tag}"


def repository_path(reference: str) -> str:
    """`host[:port]/ns/repo[:tag|@digest]` → `ns/repo`: the registry host is not part of the identity."""
    name = reference.split("@", 1)[0]
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        name = rest
    last = name.rsplit("/", 1)
    if ":" in last[-1]:
        name = name[: len(name) - len(last[-1])] + last[-1].split(":", 1)[0]
    return name.lower()


def digest_for_repo(repo_digests: list[str], repo: RepoKey) -> list[str]:
    """The digests in `RepoDigests` entries that name `repo`'s path, whatever the host."""
    found = []
    for entry in repo_digests:
        name, sep, digest = entry.partition("@")
        if not sep:
            continue
        path = name.split("/", 1)[1] if "/" in name else name
        if path == repo.path:
            try:
                found.append(normalize_digest(digest))
            except ValueError:
                continue
    return found


OCI_VERSION, OCI_REVISION, OCI_SOURCE = (
    f"org.opencontainers.image.{k}" for k in ("version", "revision", "source")
)
_HEXISH = re.compile(r"^[0-9a-f]{8,64}$")


@dataclass(frozen=True)
class Version:
    """What an image says it is, from its OCI labels: `v1.4.2 (3f2a9c1)`, shown beside the short digest."""

    version: str | None = None
    revision: str | None = None
    source: str | None = None

    @classmethod
    def from_labels(cls, labels: Mapping[str, str] | None) -> Version | None:
        """From an image's labels: printable characters only (no terminal escapes), at most 200 each.
        Still untrusted text: the page escapes it."""

        def one(key: str) -> str | None:
            value = (labels or {}).get(key)
            text = "".join(ch for ch in value[:200] if ch.isprintable()) if isinstance(value, str) else ""
            return text.strip() or None

        got = [one(k) for k in (OCI_VERSION, OCI_REVISION, OCI_SOURCE)]
        return cls(*got) if any(got[:2]) else None

    def as_json(self) -> dict[str, str | None]:
        return {"version": self.version, "revision": self.revision, "source": self.source, "text": str(self)}

    def __str__(self) -> str:
        rev = self.revision[:7] if self.revision and _HEXISH.match(self.revision) else self.revision
        if self.version and rev:
            return f"{self.version} ({rev})"
        return self.version or rev or ""


class Status(StrEnum):
    UP_TO_DATE = "up_to_date"
    UPDATED = "updated"
    WOULD_UPDATE = "would_update"
    ROLLED_BACK = "rolled_back"
    FAILED = "failed"
    SKIPPED = "skipped"

    @property
    def ok(self) -> bool:
        return self not in (Status.FAILED, Status.ROLLED_BACK)


@dataclass(frozen=True)
class ContainerInfo:
    """What the runtime says about one container, reduced to what planning needs."""

    id: str
    name: str
    image_id: str
    repo_digests: tuple[str, ...]
    running: bool
    host_ports: bool = False
    static_ip: bool = False
    state: str = ""  # the engine's word: created, running, restarting, exited, paused, dead
    exit_code: int = 0
    stop_timeout: int | None = (
        None  # the container's own (`docker run --stop-timeout`); None: the engine's 10 s
    )
    version: Version | None = None  # the running image's OCI labels, where present

    @property
    def broken(self) -> str | None:
        """Why the container is not serving ("restarting, exit code 3"), or None.

        A container stopped cleanly (exit code 0) counts as stopped on purpose, not broken.
        """
        if self.state in ("restarting", "dead") or (self.state == "exited" and self.exit_code != 0):
            return f"{self.state}, exit code {self.exit_code}"
        return None


@dataclass(frozen=True)
class Rejoined:
    """A sharer of a replaced container (its namespaces, volumes or a link), recreated after it or started
    again beside the restored old one (outcome: restarted, failed)."""

    container: str
    outcome: str
    error: str | None = None


@dataclass(frozen=True)
class Result:
    """The outcome for one watch entry in one pass. Optional facts are None when they do not apply."""

    container: str
    image: str
    status: Status
    current_digest: str | None = None
    to_digest: str | None = None  # the digest the entry should run; "latest_digest" in JSON
    error: str | None = None
    # a pinned entry (`agent rollback`): the pin wins; tag_digest is what the tag itself points to
    pinned: bool | None = field(default=None, kw_only=True)
    tag_digest: str | None = field(default=None, kw_only=True)
    pin_conflict: bool | None = field(default=None, kw_only=True)  # pinned, then recreated outside
    seen_before: bool | None = field(default=None, kw_only=True)  # the last pass reported the same
    # a replacement: its strategy, new container, duration; a failed one's logs and quarantine
    strategy: str | None = field(default=None, kw_only=True)
    container_id: str | None = field(default=None, kw_only=True)
    seconds: float | None = field(default=None, kw_only=True)
    logs: str | None = field(default=None, kw_only=True)
    quarantined: bool | None = field(default=None, kw_only=True)
    dependants: tuple[Rejoined, ...] | None = field(default=None, kw_only=True)  # its sharers, recreated
    dependants_error: str | None = field(default=None, kw_only=True)
    # recovery of a crashed pass: what was finished or undone (True: Swarm finished it)
    recovered: str | bool | None = field(default=None, kw_only=True)
    attention: bool | None = field(default=None, kw_only=True)  # a leftover the user must look at
    service: str | None = field(default=None, kw_only=True)  # a Swarm service's name
    self_update: str | None = field(default=None, kw_only=True)  # the helper container's name
    tag_pattern: str | None = field(default=None, kw_only=True)  # a tag pattern entry's pattern
    running_tag: str | None = field(default=None, kw_only=True)
    note: str | None = field(default=None, kw_only=True)
    signature: str | None = field(default=None, kw_only=True)  # verified, unsigned, untrusted, unchecked
    version: Version | None = field(default=None, kw_only=True)  # the new image's OCI labels (updated)

    def as_json(self) -> dict[str, object]:
        """The `--json` shape: the fixed keys, then each optional fact that applies."""
        out: dict[str, object] = {
            "container": self.container,
            "image": self.image,
            "status": self.status.value,
            "current_digest": self.current_digest,
            "latest_digest": self.to_digest,
            "error": self.error,
        }
        for f in fields(self)[6:]:
            value = getattr(self, f.name)
            if value is not None or (f.name == "tag_digest" and self.pinned):
                out[f.name] = (
                    [asdict(d) for d in value]
                    if isinstance(value, tuple)
                    else value.as_json()
                    if isinstance(value, Version)
                    else value
                )
        return out


@dataclass(frozen=True)
class Report:
    results: tuple[Result, ...]

    @property
    def ok(self) -> bool:
        return all(r.status.ok for r in self.results)

    def count(self, status: Status) -> int:
        return sum(1 for r in self.results if r.status is status)

    def as_json(self) -> dict[str, object]:
        return {"results": [r.as_json() for r in self.results]}
