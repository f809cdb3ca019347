"""Python 3.10 is supported: the 3.11-only names come from agent/compat.py alone, and packaging says so."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from agent.compat import UTC, StrEnum, tomllib

ROOT = Path(__file__).resolve().parents[2]
ONLY_311 = {("tomllib", None), ("enum", "StrEnum"), ("datetime", "UTC")}


def uses_of_311_names(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if (a.name, None) in ONLY_311]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found += [f"{node.module}.{a.name}" for a in node.names if (node.module, a.name) in ONLY_311]
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and (node.value.id, node.attr) in ONLY_311
        ):
            found.append(f"{node.value.id}.{node.attr}")
    return found


def test_only_compat_uses_names_new_in_311() -> None:
    files = [
        *(ROOT / "agent").rglob("*.py"),
        *(ROOT / "tests").rglob("*.py"),
        *(ROOT / "scripts").rglob("*.py"),
    ]
    bad = {
        p.relative_to(ROOT).as_posix(): u
        for p in files
        if p.name != "compat.py" and (u := uses_of_311_names(p))
    }
    assert bad == {}


def test_packaging_admits_310_with_tomli_there_only() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'requires-python = ">=3.10"' in pyproject
    assert re.search(r'"tomli>=[\d.]+; python_version < \'3.11\'"', pyproject)
    assert tomllib.loads(pyproject)["project"]["requires-python"] == ">=3.10"


def test_shims_behave_like_the_311_originals() -> None:
    class Colour(StrEnum):
        RED = "red"

    assert f"{Colour.RED}" == "red" and str(Colour.RED) == "red" and Colour.RED == "red"
    assert f"{Colour.RED:<5}|" == "red  |"
    assert UTC.utcoffset(None).total_seconds() == 0
