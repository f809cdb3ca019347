"""agent.toml.example, the README's key tables and the zh guide's key table hold every key of the schema,
and no key the schema does not know (issue 21 item 8). The schema is asked of the loader itself: an
unknown key's error lists the known ones."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from agent.config.load import parse
from agent.errors import ConfigError

ROOT = Path(__file__).resolve().parents[3]
ENV = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "id", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "secret"}
W = {"container": "web", "image": "registry.cn-hangzhou.aliyuncs.com/ns/web"}
Z = {"zz_unknown": 1}
NOTIFY = {"urls": ["json://127.0.0.1/x"]}


def _known(raw: dict[str, Any], where: str) -> set[str]:
    with pytest.raises(ConfigError) as e:
        parse(raw, ENV)
    for line in e.value.problems:
        m = re.search(r"unknown key \(known: ([^)]*)\)", line)
        if m and line.startswith(where):
            return set(m.group(1).split(", "))
    raise AssertionError(f"no unknown-key error at {where}: {e.value.problems}")


def schema() -> dict[str, set[str]]:
    return {
        "": _known({**Z, "watch": [W]}, "zz_unknown"),
        "agent": _known({"agent": Z, "watch": [W]}, "agent."),
        "aliyun": _known({"aliyun": Z, "watch": [W]}, "aliyun."),
        "registry_auth": _known(
            {"registry_auth": {"h": {"username": "u", "password": "p", **Z}}, "watch": [W]}, "registry_auth."
        ),  # fmt: skip
        "webhook": _known(
            {"webhook": {"listen": "127.0.0.1:1", "token": "x" * 32, **Z}, "watch": [W]}, "webhook."
        ),
        "metrics": _known({"metrics": Z, "watch": [W]}, "metrics."),
        "signatures": _known({"signatures": Z, "watch": [W]}, "signatures."),
        "notify": _known({"notify": {**NOTIFY, **Z}, "watch": [W]}, "notify."),
        "watch": _known({"watch": [{**W, **Z}]}, "watch[0]."),
        "health": _known({"watch": [{**W, "health": {"tcp": "127.0.0.1:1", **Z}}]}, "watch[0].health"),
        "build_watch": _known(
            {"build_watch": [{"repository": W["image"], **Z}], "watch": [W], "notify": NOTIFY}, "build_watch"
        ),  # fmt: skip
    }


SCHEMA = schema()


def _section(header: str) -> str:
    name = header.strip("[]").split(".", 1)[0]
    return name


def example_keys() -> dict[str, set[str]]:
    """Keys per section in agent.toml.example, commented out or not."""
    keys: dict[str, set[str]] = {"": set()}
    section = ""
    for line in (ROOT / "agent.toml.example").read_text().splitlines():
        body = line.lstrip("#").strip()
        header = re.match(r"^(\[\[?[a-z_]+(?:\.\"[^\"]*\")?\]\]?)(\s|$)", body)
        if header:
            section = _section(header.group(1))
            keys[""].add(section)
            continue
        m = re.match(r"^([a-z_]+)\s*=", body)
        if m:
            keys.setdefault(section, set()).add(m.group(1))
            if m.group(1) == "health":
                inner = body.split("{", 1)[1].split("}", 1)[0]
                keys.setdefault("health", set()).update(re.findall(r"([a-z_]+)\s*=", inner))
    return keys


@pytest.mark.parametrize("section", sorted(SCHEMA))
def test_the_example_holds_every_key_of_the_schema_and_no_other(section: str) -> None:
    found = example_keys().get(section, set())
    assert found == SCHEMA[section], (
        f"[{section}] missing from agent.toml.example: {sorted(SCHEMA[section] - found)}; "
        f"not in the schema: {sorted(found - SCHEMA[section])}"
    )


def _readme_sections() -> dict[str, str]:
    text = (ROOT / "README.md").read_text()
    ref = text.split("\n## Configuration reference\n", 1)[1].split("\n## ", 1)[0]
    out = {}
    for part in ref.split("\n### ")[1:]:
        head, _, body = part.partition("\n")
        out[_section(re.search(r"`([^`]+)`", head).group(1))] = body  # type: ignore[union-attr]
    return out


@pytest.mark.parametrize("section", sorted(set(SCHEMA) - {"", "health"}))
def test_readme_key_tables_name_every_key_of_the_schema_and_no_other(section: str) -> None:
    body = _readme_sections()[section]
    named = set(re.findall(r"`([a-z_]+)`", body))
    assert SCHEMA[section] <= named, f"README [{section}] lacks {sorted(SCHEMA[section] - named)}"
    first = {k for row in re.findall(r"(?m)^\| ([^|]+) \|", body) for k in re.findall(r"`([a-z_]+)`", row)}
    assert first - {"key"} <= SCHEMA[section], (
        f"README [{section}] documents unknown {first - SCHEMA[section]}"
    )
    if section == "watch":
        health = next(row for row in body.splitlines() if row.startswith("| `health`"))
        assert all(re.search(rf"\b{k}\b", health) for k in SCHEMA["health"]), health


def test_readme_has_a_section_per_config_table() -> None:
    assert set(_readme_sections()) == SCHEMA[""]


def test_zh_guide_key_table_matches_the_schema() -> None:
    text = (ROOT / "docs" / "zh" / "README.md").read_text()
    table = text.split("\n## 配置项速查\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for row in re.findall(r"(?m)^\| `(\[[^`]+\])`[^|]* \| (.*) \|$", table):
        rows[_section(row[0])] = set(re.findall(r"`([a-z_]+)`", row[1]))
    assert set(rows) == SCHEMA[""] | {"health"}
    for section, keys in rows.items():
        assert keys == SCHEMA[section], (
            f"zh [{section}]: missing {SCHEMA[section] - keys}, unknown {keys - SCHEMA[section]}"
        )
