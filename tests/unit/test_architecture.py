"""Layering: the core (model, plan, deploy) never imports an SDK; only the adapters and the CLI do."""

from __future__ import annotations

import ast
from pathlib import Path

AGENT = Path(__file__).resolve().parents[2] / "agent"
CORE = [
    "model.py",
    "reconcile.py",
    "deploy/journal.py",
    "deploy/replace.py",
    "deploy/gate.py",
    "deploy/recover.py",
    "deploy/hooks.py",
    "config.py",
    "state.py",
    "errors.py",
    "daemon.py",
    "durations.py",
]
SDKS = ("docker", "aliyunsdkcore", "aliyunsdkcr")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


def test_core_modules_never_import_an_sdk() -> None:
    for name in CORE:
        bad = imported_modules(AGENT / name) & set(SDKS)
        assert not bad, f"agent/{name} imports {bad}"


def test_sdk_clients_are_built_only_in_adapters_cli_and_daemon() -> None:
    allowed = {"cli.py", "daemon.py"}
    for path in AGENT.rglob("*.py"):
        rel = path.relative_to(AGENT).as_posix()
        if rel.startswith(("registries/", "runtimes/")) or rel in allowed:
            continue
        assert not imported_modules(path) & set(SDKS), f"agent/{rel} imports an SDK"
