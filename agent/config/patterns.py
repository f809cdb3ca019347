"""Tag patterns: follow the newest tag matching `semver:<npm range>` or a regex. Pure; no I/O."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent.choices import Sort

if TYPE_CHECKING:  # imported where used: only configs with patterns pay for it
    import semantic_version as sv


@dataclass(frozen=True)
class TagPattern:
    """`semver:^1.2` (an npm range), or a regex whose `version` group (else the whole tag) is sorted."""

    text: str
    regex: str | None = None
    sort: Sort = Sort.SEMVER

    def __str__(self) -> str:
        return self.text if self.regex is None else f"regex {self.regex!r} (sort {self.sort})"


def parse(tag: str | None, regex: str | None, sort: Sort | None) -> TagPattern | None:
    """None for a fixed tag; raise ValueError naming what is wrong (config names the key)."""
    if regex is not None:
        if tag is not None and tag.startswith("semver:"):
            raise ValueError("give tag = 'semver:...' or tag_regex, not both")
        try:
            compiled = re.compile(regex)
        except re.error as e:
            raise ValueError(f"tag_regex is not a valid regular expression: {e}") from None
        if (sort or Sort.SEMVER) is Sort.SEMVER and "version" not in compiled.groupindex and compiled.groups:
            raise ValueError("tag_regex with groups needs one named (?P<version>...) for sort = 'semver'")
        return TagPattern(regex, regex, sort or Sort.SEMVER)
    if sort is not None:
        raise ValueError("sort applies to tag_regex only")
    if tag is None or not tag.startswith("semver:"):
        return None
    _spec(tag)
    return TagPattern(tag)


def _spec(text: str) -> sv.NpmSpec:
    import semantic_version as sv

    try:
        return sv.NpmSpec(text[len("semver:") :].strip())
    except ValueError as e:
        raise ValueError(f"not an npm-style version range: {text!r} ({e})") from None


def _version(text: str) -> sv.Version | None:
    """`1.2.3`, `v1.2.3`; `1.2` counts as 1.2.0. None when it is no version."""
    import semantic_version as sv

    text = text[1:] if text[:1] in "vV" else text
    try:
        return sv.Version(text)
    except ValueError:
        pass
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return sv.Version.coerce(text)
    return None


# cosign's signatures, attestations and SBOMs live beside the image as tags: never an image to deploy
COSIGN_TAG = re.compile(r"^sha256-[0-9a-f]{64}\.(sig|att|sbom)$")


def _key(p: TagPattern, tag: str, when: float | None) -> tuple[object, ...] | None:
    """The sort key of a matching, released tag; None when it does not match or is a pre-release."""
    if COSIGN_TAG.match(tag):
        return None
    if p.regex is None:
        v = _version(tag)
        return (v,) if v is not None and not v.prerelease and v in _spec(p.text) else None
    m = re.search(p.regex, tag)
    if m is None:
        return None
    v = _version(m.groupdict().get("version") or tag)
    if v is not None and v.prerelease:
        return None
    if p.sort is Sort.TIME:
        return (when or 0.0, tag)
    return (v,) if v is not None else None


def matches(p: TagPattern, tag: str) -> bool:
    """Whether a pushed tag could be picked (webhook `match = "tag"`)."""
    return _key(p, tag, None) is not None


def newest(p: TagPattern, tags: Iterable[tuple[str, float | None]], running: str | None) -> str | None:
    """The newest matching tag, or None. A running tag at least as new as every match keeps running."""
    listed = list(tags)
    best: tuple[tuple[object, ...], str] | None = None
    for tag, when in listed:
        key = _key(p, tag, when)
        if key is not None and (best is None or key > best[0]):
            best = (key, tag)
    if best is None:
        return None
    if running is not None and running != best[1]:
        times = dict(listed)
        mine = _key(p, running, times.get(running)) if p.sort is not Sort.TIME or running in times else None
        if mine is None and p.regex is None:
            v = _version(running)
            mine = (v,) if v is not None else None
        if mine is not None and mine >= best[0]:
            return running
    return best[1]
