"""Tag patterns: npm-style semver ranges and regexes; pre-releases and lower versions never win."""

from __future__ import annotations

import pytest

from agent.choices import Sort
from agent.config import parse
from agent.config.patterns import matches, newest
from agent.config.patterns import parse as pattern
from agent.errors import ConfigError

TAGS = [
    ("1.2.0", 1.0),
    ("1.2.9", 2.0),
    ("1.10.0", 3.0),
    ("1.11.0-rc.1", 9.0),
    ("2.0.0", 4.0),
    ("latest", 8.0),
]


@pytest.mark.parametrize(
    ("text", "running", "want"),
    [
        ("semver:^1.2", "1.2.0", "1.10.0"),  # numeric, not text order; the rc and 2.0.0 never win
        ("semver:~1.2", "1.2.0", "1.2.9"),
        ("semver:>=1.2.0 <1.10", None, "1.2.9"),
        ("semver:1.x", "1.2.0", "1.10.0"),
        ("semver:^1.2", "1.12.0", "1.12.0"),  # the running tag is newer than every match: it stays
        ("semver:^1.2", "1.11.0-rc.1", "1.11.0-rc.1"),  # a running pre-release above every match stays
        ("semver:^3", "1.2.0", None),
    ],
)
def test_semver_ranges(text: str, running: str | None, want: str | None) -> None:
    p = pattern(text, None, None)
    assert p is not None
    assert newest(p, TAGS, running) == want


def test_regex_with_a_version_group_sorts_by_semver_and_skips_pre_releases() -> None:
    p = pattern(None, r"^release-v(?P<version>\d+\.\d+\.\d+(-[\w.]+)?)$", None)
    assert p is not None
    tags = [
        ("release-v1.2.3", 5.0),
        ("release-v1.2.10", 1.0),
        ("release-v1.3.0-beta.1", 9.0),
        ("v9.9.9", 9.0),
    ]
    assert newest(p, tags, "release-v1.2.3") == "release-v1.2.10"
    assert newest(p, tags, "release-v2.0.0") == "release-v2.0.0"
    assert matches(p, "release-v1.2.4") and not matches(p, "release-v1.3.0-beta.1")


def test_regex_sorted_by_time_picks_the_newest_push() -> None:
    p = pattern(None, r"^main-[0-9a-f]{7}$", Sort.TIME)
    assert p is not None
    tags = [("main-aaaaaaa", 5.0), ("main-bbbbbbb", 7.0), ("dev-ccccccc", 9.0)]
    assert newest(p, tags, "main-aaaaaaa") == "main-bbbbbbb"


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"tag": "semver:^^1"}, "watch[0].tag: not an npm-style version range"),
        ({"tag_regex": "(unclosed"}, "watch[0].tag_regex: tag_regex is not a valid regular expression"),
        ({"tag_regex": "^v(\\d+)$"}, "needs one named (?P<version>...)"),
        (
            {"tag_regex": "^v.*$", "sort": "alphabet"},
            "watch[0].sort: must be 'semver' or 'time', got 'alphabet'",
        ),
        ({"sort": "time"}, "sort applies to tag_regex only"),
        ({"tag": "bad tag"}, "watch[0].tag: invalid tag"),
    ],
)
def test_bad_patterns_are_config_errors_naming_the_key(entry: dict[str, str], problem: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse({"watch": [{"container": "web", "image": "127.0.0.1:5000/ns/web:v1", **entry}]}, {})
    assert problem in str(e.value)


def test_a_fixed_tag_key_replaces_the_image_tag() -> None:
    cfg = parse({"watch": [{"container": "web", "image": "127.0.0.1:5000/ns/web:v1", "tag": "stable"}]}, {})
    assert str(cfg.watches[0].image) == "127.0.0.1:5000/ns/web:stable" and cfg.watches[0].pattern is None
