"""The closed sets of values config accepts, as StrEnums: compared by identity, never by string; and the
languages people are told in."""

from __future__ import annotations

from collections.abc import Mapping

from agent.compat import StrEnum


class Source(StrEnum):
    """Where a watch's digests come from."""

    ALIYUN = "aliyun"  # the ACR API
    REGISTRY = "registry"  # the registry's v2 API


class Strategy(StrEnum):
    STOP_FIRST = "stop-first"
    START_FIRST = "start-first"  # opt-in: two instances overlap


class Edition(StrEnum):
    PERSONAL = "personal"
    ENTERPRISE = "enterprise"


class Sort(StrEnum):
    """How a tag_regex pattern orders the tags it matches."""

    SEMVER = "semver"  # by the version in the tag
    TIME = "time"  # by push time


class Match(StrEnum):
    """Which pushes a webhook counts for a watched repository."""

    ANY = "any"  # any tag of it
    TAG = "tag"  # only the watched tag (or one its pattern could pick)


LANGUAGES = ("zh", "en")  # of notifications (and of the status page)


def language_from_env(env: Mapping[str, str]) -> str:
    """`zh` when the system locale is Chinese (LC_ALL, LC_MESSAGES or LANG), else `en`."""
    for var in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(var)
        if value:
            return "zh" if value.lower().startswith("zh") else "en"
    return "en"
