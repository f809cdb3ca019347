"""The shipped systemd units and the docs' snippets, read as systemd reads them; install paths agree."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agent.config import Watch
from tests.support import unitfile

ROOT = Path(__file__).resolve().parents[2]
UNITS = sorted((ROOT / "packaging" / "systemd").glob("cr-agent*"))
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
CONTAINER_STOP_TIMEOUT = 10.0  # Docker's default stop timeout, spent again by a rollback


def _doc_units() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        for block in re.findall(r"```ini\n(.*?)```", doc.read_text(encoding="utf-8"), re.S):
            if "[Service]" in block or "[Timer]" in block:
                found.append((doc.relative_to(ROOT).as_posix(), block))
    return found


def test_the_three_units_are_shipped() -> None:
    assert [p.name for p in UNITS] == ["cr-agent-once.service", "cr-agent-once.timer", "cr-agent.service"]


@pytest.mark.parametrize("path", UNITS, ids=lambda p: p.name)
def test_shipped_unit_values_carry_no_trailing_comment(path: Path) -> None:
    assert unitfile.inline_comments(unitfile.parse(path.read_text())) == []


def test_unit_snippets_in_the_docs_carry_no_trailing_comment() -> None:
    # main's docs/operations.md had `TimeoutStopSec=300   # ...`: systemd drops that value (90 s default)
    bad = {doc: unitfile.inline_comments(unitfile.parse(text)) for doc, text in _doc_units()}
    assert {doc: b for doc, b in bad.items() if b} == {}


@pytest.mark.parametrize("name", ["cr-agent.service", "cr-agent-once.service"])
def test_stop_timeout_outlasts_the_longest_health_gate(name: str) -> None:
    service = unitfile.parse((ROOT / "packaging" / "systemd" / name).read_text())["Service"]
    longest_gate = Watch.health_timeout + CONTAINER_STOP_TIMEOUT
    assert unitfile.timespan(service["TimeoutStopSec"][-1]) > longest_gate


def test_doc_snippets_stop_timeout_parses() -> None:
    for doc, text in _doc_units():
        service = unitfile.parse(text).get("Service", {})
        for v in service.get("TimeoutStopSec", []):
            assert unitfile.timespan(v) > Watch.health_timeout, doc


def test_environment_file_is_one_absolute_path() -> None:
    for path in UNITS:
        for v in unitfile.parse(path.read_text()).get("Service", {}).get("EnvironmentFile", []):
            assert re.fullmatch(r"-?/[\w./-]+", v), (path.name, v)


def _install_bin_dirs() -> set[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    dirs = set(re.findall(r"PIPX_BIN_DIR=(/\S+)", readme))
    dirs |= {str(Path(m).parent) for m in re.findall(r"ln -s\S* \S+/bin/agent (/\S+/agent)", readme)}
    return dirs


def test_units_cron_line_and_install_paths_name_the_same_agent() -> None:
    bin_dirs = _install_bin_dirs()
    assert bin_dirs == {"/usr/local/bin"}, "the pipx and venv installs must put `agent` in one place"
    agent = "/usr/local/bin/agent"
    for path in UNITS:
        for cmd in unitfile.parse(path.read_text()).get("Service", {}).get("ExecStart", []):
            assert cmd.split()[0] == agent, path.name
    ops = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    cron_lines = re.findall(r"^\*/\d+ .*$", ops, re.M)
    assert cron_lines and all(f" {agent} once " in line for line in cron_lines)


def test_unit_parser_reads_as_systemd_does() -> None:
    units = unitfile.parse("[Service]\n# c\nA=1 # not a comment\nB=x\\\n  y\n; c\n")
    assert units == {"Service": {"A": ["1 # not a comment"], "B": ["x y"]}}
    assert unitfile.timespan("5min") == 300 and unitfile.timespan("1min 30s") == 90
    with pytest.raises(ValueError):
        unitfile.timespan("300 # comment")


def test_compose_example_runs_the_agent_as_documented() -> None:
    import yaml  # PyYAML comes with apprise

    service = yaml.safe_load((ROOT / "packaging" / "compose.yaml").read_text())["services"]["cr-agent"]
    assert service["network_mode"] == "host"
    assert "/var/run/docker.sock:/var/run/docker.sock" in service["volumes"]
    assert "/etc/localtime:/etc/localtime:ro" in service["volumes"]
    targets = {v.split(":")[1] for v in service["volumes"]}
    assert {"/etc/cr-agent", "/var/lib/cr-agent"} <= targets
    assert unitfile.timespan(service["stop_grace_period"]) > Watch.health_timeout + CONTAINER_STOP_TIMEOUT
    assert service["command"] == ["run", "-c", "/etc/cr-agent/agent.toml"]


def test_dockerfile_runs_agent_run_with_the_documented_paths() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM debian:bookworm-slim$", text, re.M)
    assert 'ENTRYPOINT ["agent"]' in text and 'CMD ["run", "-c", "/etc/cr-agent/agent.toml"]' in text
    assert 'VOLUME ["/var/lib/cr-agent"]' in text


@pytest.mark.parametrize("name", ["cr-agent.service", "cr-agent-once.service"])
def test_units_want_docker_but_do_not_require_its_unit_name(name: str) -> None:
    """snap's Docker (snap.docker.dockerd) and NAS builds have no docker.service: Requires= would fail."""
    unit = unitfile.parse((ROOT / "packaging" / "systemd" / name).read_text())["Unit"]
    assert "Requires" not in unit and "BindsTo" not in unit
    assert "docker.service" in " ".join(unit["Wants"]).split()
    assert "docker.service" in " ".join(unit["After"]).split()
