"""The agent's own errors. Adapters wrap SDK exceptions in these, cause chained."""

from __future__ import annotations


class AgentError(Exception):
    """Base of every error the agent raises on purpose."""


class ConfigError(AgentError):
    """The configuration is invalid. Holds every problem found, each with its key path."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in self.problems))


class RegistryError(AgentError):
    """A registry or ACR API call failed.

    `code` is ACR's own error code where one was given (REPO_NOT_EXIST, SignatureDoesNotMatch, ...).
    `temporary` says whether a later try may succeed (network, 5xx, throttling).
    """

    def __init__(self, message: str, *, code: str | None = None, temporary: bool = False) -> None:
        self.code = code
        self.temporary = temporary
        super().__init__(f"{message} [{code}]" if code else message)


class TagDigestError(RegistryError):
    """ACR listed a wanted tag with a digest that is not a sha256 digest.

    `found` holds the wanted tags that were fine, so a caller may still use them; `bad` maps
    each broken tag to what ACR sent.
    """

    def __init__(self, message: str, *, found: dict[str, str], bad: dict[str, str]) -> None:
        super().__init__(message, code="InvalidDigest", temporary=False)
        self.found = found
        self.bad = bad


class RuntimeFault(AgentError):
    """The container runtime (Docker) refused or failed an operation."""


class DeployError(AgentError):
    """A replacement could not go on."""


class HealthFailed(DeployError):
    """The new container did not prove itself: its image is at fault and is quarantined."""


class Interrupted(DeployError):
    """Shutdown was asked for while waiting; roll back without blaming the image."""


class Disturbed(DeployError):
    """Another actor changed a container of the replacement (removed or recreated it).

    The image is not at fault: nothing is quarantined.
    """


class StateError(AgentError):
    """state_dir or state.db cannot be read or written (read-only, full disk, ...)."""


class LockBusy(AgentError):
    """Another pass holds the run lock."""


class PassRunning(LockBusy):
    """Another pass of this same process holds the run lock (a wake-up during a scheduled pass)."""


class HostLockBusy(LockBusy):
    """Another process (a second agent, or `agent once` from cron) holds the run lock file."""
